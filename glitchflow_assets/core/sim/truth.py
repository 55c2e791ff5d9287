"""The simulator's ground truth in the time domain: the strain's own glitch contribution over any span, at the
analysis rate - what a perfect time-domain twin would predict, and what its mismatch is measured against."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from glitchflow_assets.core.signal.resample import resample
from glitchflow_assets.core.sim.scenario import VIRGO_SCENARIO, Scenario
from glitchflow_assets.core.sim.simulator import TRUTH_DIR, load_truth, make_renderers, plan_glitches

_PAD_S = 1.0  # s rendered beyond each end and dropped: the resampling filter's reach


class StrainTruth:
    """Glitch-only strain of a simulated run written under ``frame_dir`` (its seed read from ``truth/channels.json``)."""

    def __init__(self, frame_dir: str | Path, scenario: Scenario = VIRGO_SCENARIO):
        meta = json.loads((Path(frame_dir) / TRUTH_DIR / "channels.json").read_text())
        rate = float(meta.get("glitch_rate_per_min", scenario.glitch_rate_per_min))
        self.scenario, self.seed = dataclasses.replace(scenario, glitch_rate_per_min=rate), int(meta["seed"])
        (self.renderer,) = make_renderers(scenario, self.seed, only={scenario.strain})

    @staticmethod
    def available(frame_dir: str | Path) -> bool:
        """Whether ``frame_dir`` holds a simulated run (real frames have no truth)."""
        return (Path(frame_dir) / TRUTH_DIR / "channels.json").is_file()

    def glitch(self, gps_start: float, n: int, sample_rate: int) -> np.ndarray:
        """The strain glitch contribution ``[n]`` from GPS ``gps_start`` (on the ``sample_rate`` grid), in strain units."""
        native = self.renderer.spec.sample_rate
        first = round((gps_start - _PAD_S) * native)
        count = round((n / sample_rate + 2 * _PAD_S) * native)
        glitches = plan_glitches(self.scenario, self.seed, gps_start - 2 * _PAD_S, gps_start + n / sample_rate + 2 * _PAD_S)
        data = resample(self.renderer.glitches(first, count, glitches), native, sample_rate)
        skip = round(_PAD_S * sample_rate)
        return data[skip : skip + n]


def true_strain_glitches(frame_dir: str | Path, gps: np.ndarray, tolerance_s: float = 0.1) -> pd.DataFrame:
    """For each event time ``gps`` ``[event]``, the nearest true strain glitch within ``tolerance_s``: columns
    morphology (empty when none), catalogue_snr (0 when none) and witnesses (the channels that saw it, comma-separated)."""
    table = load_truth(frame_dir)
    strain = table[table.role == "strain"].sort_values("gps")
    seen = table[table.role == "witness"].groupby("event_id").channel.agg(lambda c: ",".join(sorted(c)))
    times = strain.gps.to_numpy()
    rows = []
    for g in gps:
        i = int(np.argmin(np.abs(times - g))) if len(times) else -1
        hit = i >= 0 and abs(times[i] - g) <= tolerance_s
        rows.append(
            {
                "morphology": strain.morphology.iloc[i] if hit else "",
                "catalogue_snr": float(strain.snr.iloc[i]) if hit else 0.0,
                "witnesses": seen.get(strain.event_id.iloc[i], "") if hit else "",
            }
        )
    return pd.DataFrame(rows)
