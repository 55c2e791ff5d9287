"""How well a time-domain prediction matches the strain glitch, in the whitened domain (where the inner product
``<a, b> = sum a b`` is the noise-weighted one and ``|a|`` is an SNR).

- **mismatch** ``1 - <p, t> / (|p| |t|)`` between prediction and the true glitch (simulated runs): shape only.
- **amplitude** ``alpha = <p, y> / <p, p>`` fitted on the strain data ``y`` inside the gate: a witness's coupling
  gain changes from glitch to glitch (it does in the simulator, and in detectors), so the witnesses fix the shape and
  the strain fixes the scale, as in template subtraction. The fit is where a gravitational-wave signal could leak
  into the prediction, so it is constrained: a glitch is subtracted only where the witnesses predict one (whitened
  SNR >= PREDICTED_SNR_MIN) *and* the strain confirms it, the predicted shape's matched-filter SNR in the gated
  strain ``<p, y> / |p|`` reaching CONFIRMED_SNR_MIN. Witness noise mapped through the twin can reach the first
  bar; without a glitch in the strain the second is unit-normal around ``<p, h> / |p|``, so a signal no witness
  sees (a burst, a chirp) is not subtracted on the strength of witness noise.
- **SNR removed**: ``|t| - |t - alpha p|`` (truth), and without truth the **excess power** in the gate before and
  after cleaning, ``sum (g y)^2 - sum g^2`` (the second term is white noise's expectation).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from glitchflow_assets.core.signal.glitch_classes import shown

PREDICTED_SNR_MIN = 4.0  # a twin "predicts a glitch" when its witness-only prediction reaches this whitened SNR ...
CONFIRMED_SNR_MIN = 4.0  # ... and the strain confirms it: the predicted shape's matched-filter SNR in the gated strain


def mismatch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[event]`` from ``[event, time]`` pairs; 1 where either is zero."""
    num = np.sum(a * b, axis=-1)
    den = np.sqrt(np.sum(a * a, axis=-1) * np.sum(b * b, axis=-1))
    return np.where(den > 0, 1.0 - num / np.where(den > 0, den, 1.0), 1.0)


def fitted_amplitude(prediction: np.ndarray, strain: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """``alpha`` ``[event]``: the least-squares scale of ``prediction`` onto the gated strain; 0 where the twin predicts
    no glitch (witness-only SNR below PREDICTED_SNR_MIN) or the strain does not confirm it (below CONFIRMED_SNR_MIN)."""
    pp = np.sum(prediction**2, axis=-1)
    py = np.sum(prediction * strain * gate, axis=-1)
    norm = np.sqrt(pp)
    confirmed = py >= CONFIRMED_SNR_MIN * norm
    return np.where((norm >= PREDICTED_SNR_MIN) & confirmed, py / np.where(pp > 0, pp, 1.0), 0.0)


@dataclass
class WaveformScores:
    """Per-event scores of a prediction set (see the module docstring)."""

    table: pd.DataFrame

    @staticmethod
    def of(prediction: np.ndarray, strain: np.ndarray, gate: np.ndarray, truth: np.ndarray | None) -> "WaveformScores":
        alpha = fitted_amplitude(prediction, strain, gate)
        fit = alpha[:, None] * prediction
        g2 = np.sum(gate**2, axis=-1)
        columns = {
            "predicted_snr": np.sqrt(np.sum(prediction**2, axis=-1)),
            "amplitude": alpha,
            "excess_power_before": np.sum((gate * strain) ** 2, axis=-1) - g2,
            "excess_power_after": np.sum((gate * (strain - fit)) ** 2, axis=-1) - g2,
        }
        if truth is not None:
            true_snr = np.sqrt(np.sum(truth**2, axis=-1))
            residual = np.sqrt(np.sum((truth - fit) ** 2, axis=-1))
            columns |= {
                "true_snr": true_snr,
                "mismatch": mismatch(prediction, truth),
                "residual_snr": residual,
                "snr_removed": true_snr - residual,
                "witness_amplitude_ratio": columns["predicted_snr"] / np.where(true_snr > 0, true_snr, 1.0),
            }
        return WaveformScores(pd.DataFrame(columns))

    def summary(self, min_true_snr: float = 8.0) -> dict[str, float]:
        """Medians over events (those with true SNR >= ``min_true_snr`` when truth is known) and how many there are."""
        t = self.table
        out = {
            "events": float(len(t)),
            "predicted_fraction": float(np.mean(t.amplitude > 0)) if len(t) else float("nan"),
            "median_excess_power_before": float(t.excess_power_before.median()),
            "median_excess_power_after": float(t.excess_power_after.median()),
        }
        if "mismatch" in t:
            loud = t[t.true_snr >= min_true_snr]
            out |= {
                "loud_events": float(len(loud)),
                "median_mismatch": float(loud.mismatch.median()),
                "median_snr_removed_fraction": float((loud.snr_removed / loud.true_snr).median()),
                "median_residual_snr": float(loud.residual_snr.median()),
            }
        return out


_CLASS_KEY_COLUMNS = ["class", "events", "loud_events", "median_mismatch", "median_snr_removed_fraction", "predicted_fraction"]


def per_class(table: pd.DataFrame, classes: np.ndarray, min_true_snr: float = 8.0) -> pd.DataFrame:
    """:meth:`WaveformScores.summary` per glitch class (``classes`` ``[event]``, "" where none is known, shown as
    unlabelled), one row each and a last row ``all``, rounded for display. Empty where no event has a class."""
    classes = np.asarray(classes, dtype=str)
    if not (classes != "").any():
        return pd.DataFrame()
    groups = [*table.groupby(shown(classes), sort=True), ("all", table)]
    table = pd.DataFrame([{"class": name, **WaveformScores(g).summary(min_true_snr)} for name, g in groups]).round(4)
    first = [c for c in _CLASS_KEY_COLUMNS if c in table]  # what the UI shows without scrolling
    table = table[first + [c for c in table.columns if c not in first]]
    return table.astype({c: int for c in ("events", "loud_events") if c in table})
