"""The GW170817 case on a finished SIM run: a BBH chirp put into the strain alone, at a chosen offset from a chosen
glitch, then one window ingested, searched and cleaned with the run's twin, beside the same window without the chirp.

It re-simulates the window's frames (the run's seed and glitch rate, read from its truth) with the chirp added, so
everything but the strain is bit for bit the run's. Printed: the event the search finds at the glitch and the twin's
fitted amplitude with and without the chirp, and the chirp's matched-filter SNR in the original strain, the cleaned
strain and the glitch-free truth (original minus the simulator's glitch). A first step of issue 28's
``bench/bench_safety.py``, which will draw hundreds of such injections.

    GLITCHFLOW_HOME=~/.glitchflow .venv/bin/python bench/probe_signal_on_glitch.py --glitch-gps 1400002003.36 --offset 0.0
"""

import argparse
import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from glitchflow_assets.core.artifacts.raw_strain_segments import read_strain
from glitchflow_assets.core.ingest.assemble import ingest_window, window_channels
from glitchflow_assets.core.runs.registry import load_registry
from glitchflow_assets.core.runs.windows import windows_overlapping
from glitchflow_assets.core.signal.events import EventSearchConfig, window_events
from glitchflow_assets.core.signal.matched_filter import optimal_snr, recovered_snr
from glitchflow_assets.core.sim import VIRGO_SCENARIO, Signal, simulate
from glitchflow_assets.core.sim.truth import StrainTruth
from glitchflow_assets.core.twin.event_segments import event_segments
from glitchflow_assets.core.twin.pipeline import TwinConfig, clean_window, load_twin
from glitchflow_assets.core.twin.prediction import predict

OUT = Path(__file__).resolve().parent / "out" / "probe_signal_on_glitch"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glitch-gps", type=float, required=True, help="a strain glitch of the run (its truth CSV)")
    parser.add_argument("--offset", type=float, default=0.2, help="s from the glitch's peak to the chirp's merger")
    parser.add_argument("--snr", type=float, default=15.0, help="the chirp's optimal SNR")
    parser.add_argument("--masses", type=float, nargs=2, default=(30.0, 30.0))
    args = parser.parse_args()
    home = Path(os.environ.get("GLITCHFLOW_HOME", Path.home() / ".glitchflow"))
    run = load_registry()["SIM"]
    run = dataclasses.replace(run, frames=dataclasses.replace(run.frames, path=home / "frames" / "SIM"))
    twin = load_twin(home / "storage" / "SIM" / "glitch_waveforms" / "SIM-glitch_waveforms.twin.h5")
    meta = json.loads((run.frames.path / "truth" / "channels.json").read_text())
    scenario = dataclasses.replace(VIRGO_SCENARIO, glitch_rate_per_min=meta["glitch_rate_per_min"])
    g = args.glitch_gps
    window = windows_overlapping(g, g + 1, run.cadence)[0]
    chirp = Signal("bbh", g + args.offset, args.snr, *args.masses)
    frames = OUT / f"frames-{g:.3f}-{args.offset:g}-{args.snr:g}"
    simulate(
        frames,
        window.gps_start - 60,
        window.gps_end - window.gps_start + 120,
        seed=meta["seed"],
        scenario=dataclasses.replace(scenario, signals=(chirp,)),
    )
    results = {}
    for name, r in (("without", run), ("with", dataclasses.replace(run, frames=dataclasses.replace(run.frames, path=frames)))):
        summary = ingest_window(r, window, OUT / f"{name}.h5")
        strain, t0 = read_strain(summary.path)
        events, _ = window_events(strain, t0, summary.sample_rate, summary.strain.segments, summary.window_span, EventSearchConfig())
        channels = window_channels(r, window, summary, twin.channels)
        segments, _ = event_segments(channels, "", events, TwinConfig().segments, witness_rates=twin.witness_rates)
        fit = predict(twin, segments)
        for i in np.flatnonzero(np.abs(segments.gps - g) < 3.0):  # every event near the glitch, and what the twin fits there
            e = events.iloc[int(np.argmin(np.abs(events.gps - segments.gps[i])))]
            print(
                f"{name:>7} chirp: event at glitch {e.gps - g:+.3f} s, SNR {e.snr:.1f}, {e.fmin:.0f}-{e.fmax:.0f} Hz; "
                f"twin amplitude {fit.amplitude[i]:.3f}, whitened prediction {np.linalg.norm(fit.whitened[i]):.1f}"
            )
        results[name] = (strain.astype(np.float64), t0, int(summary.sample_rate), clean_window(channels, events, twin))
    without, t0, rate, cleaned_without = results["without"]
    strain, _, _, cleaned = results["with"]
    template = strain - without  # the chirp alone: same noise, same glitches
    i0, n = int(round((chirp.gps - 14 - t0) * rate)), 16 * rate
    j0 = int(round((t0 - cleaned.gps_start) * rate)) + i0
    span, psd = slice(i0, i0 + n), scenario.channel(scenario.strain).psd(np.fft.rfftfreq(n, 1 / rate))
    truth = strain[span] - StrainTruth(run.frames.path, scenario).glitch(t0 + i0 / rate, n, rate)
    chirp_in = {"original": strain[span], "cleaned": cleaned.cleaned[j0 : j0 + n], "truth (original - glitch)": truth}
    print(
        f"chirp optimal SNR {optimal_snr(template[span], rate, psd):.2f}; recovered: "
        + ", ".join(f"{k} {recovered_snr(v, template[span], rate, psd):.2f}" for k, v in chirp_in.items())
    )
    changed = cleaned.cleaned[j0 : j0 + n] - cleaned_without.cleaned[j0 : j0 + n] - template[span]
    print(f"what cleaning did to the chirp (cleaned with - cleaned without - chirp): SNR {optimal_snr(changed, rate, psd):.2f}")


if __name__ == "__main__":
    main()
