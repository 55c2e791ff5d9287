"""The time-domain twin's headline numbers with their uncertainty, read from what the assets materialized.

``glitchflow demo`` (any ``--minutes``) leaves ``glitch_waveforms`` (the kept twin's predictions of the held-out test
events, scored against the simulator's truth) and ``cleaned_strain`` (each window cleaned and searched again) under
``GLITCHFLOW_HOME``. This prints, on the held-out glitches of true SNR >= 8, without fitting anything again: the
median mismatch with a 95 % bootstrap interval (over events), per morphology, the median SNR removed, and the
fraction the search no longer finds after cleaning with its 95 % Wilson interval: how far from the goals (median
mismatch <= 0.05, >= 90 % removed) a run of that length can tell.

    GLITCHFLOW_HOME=~/.glitchflow .venv/bin/python bench/twin_intervals.py
"""

import json

import numpy as np
from scipy.stats import norm

from glitchflow_assets.core.artifacts.glitch_waveforms import read_waveform_set
from glitchflow_assets.core.runs.registry import load_registry
from glitchflow_assets.core.runs.windows import windows_overlapping
from glitchflow_assets.core.sim.truth import true_strain_glitches
from glitchflow_assets.core.twin.cleaning import cleaning_headline, read_cleaning_report
from glitchflow_assets.lib.inputs import cleaning_report_path
from glitchflow_assets.lib.names import WAVEFORMS
from glitchflow_assets.lib.resources import GlitchflowStorage

SNR_MIN = 8.0


def bootstrap_median(values: np.ndarray, seed: int = 0, draws: int = 10_000) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the median of ``values`` ``[event]``."""
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(values, size=(draws, len(values))), axis=1)
    return float(np.quantile(medians, 0.025)), float(np.quantile(medians, 0.975))


def wilson(successes: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial fraction."""
    z = norm.ppf(0.975)
    p = successes / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def main() -> None:
    run, storage = load_registry()["SIM"], GlitchflowStorage()
    waves = read_waveform_set(storage.run_file("SIM", WAVEFORMS))
    # an arch's search peak can lie seconds from its catalogue time (its apex): those show as unmatched
    morphology = true_strain_glitches(run.frames.path, waves.gps).morphology.replace("", "unmatched (> 0.1 s)")
    scores = waves.scores.assign(morphology=morphology.to_numpy())
    loud = scores[scores.true_snr >= SNR_MIN]
    windows = [w for w in windows_overlapping(run.gps_start, run.gps_end, run.cadence) if cleaning_report_path(storage, run, w).exists()]
    cleaned = cleaning_headline(waves.gps, waves.scores, [read_cleaning_report(cleaning_report_path(storage, run, w)) for w in windows])
    n = int(cleaned["held_out_events"])
    removed = int(round(cleaned["held_out_removed_fraction"] * n))
    low, high = bootstrap_median(loud.mismatch.to_numpy())
    methods = json.loads(waves.attrs["methods"])
    print(f"{waves.attrs['method']} ({waves.attrs['model_uri']}); {len(windows)} windows cleaned")
    print(f"held-out glitches of true SNR >= {SNR_MIN:g}: {len(loud)} of {len(scores)} test events")
    print(f"median mismatch {loud.mismatch.median():.3f} [95 % {low:.3f}, {high:.3f}] (goal <= 0.05)")
    for name, group in loud.groupby("morphology"):
        g_low, g_high = bootstrap_median(group.mismatch.to_numpy())
        print(f"  {name:24s} {len(group):4d} events  median mismatch {group.mismatch.median():.3f} [{g_low:.3f}, {g_high:.3f}]")
    for method, m in methods.items():
        test = m["test"]
        print(f"  method {method:17s} median mismatch {test['median_mismatch']:.3f}, SNR removed {test['median_snr_removed_fraction']:.0%}")
    print(f"median SNR removed {(loud.snr_removed / loud.true_snr).median():.0%}")
    w_low, w_high = wilson(removed, n)
    print(f"no longer found after cleaning: {removed} of {n} = {removed / n:.1%} [95 % {w_low:.1%}, {w_high:.1%}] (goal >= 90 %)")
    print(f"new events where cleaning changed the strain: {cleaned['new_events']:.0f}; elsewhere: {cleaned['new_events_elsewhere']:.0f}")


if __name__ == "__main__":
    main()
