"""Whether cleaning keeps gravitational-wave signals: each known (injected) signal's SNR in the original strain, the
cleaned strain and the glitch-free truth (original minus the simulator's glitch).

The signal as the strain holds it is rendered the way the simulator and ingest make it (at the strain's native rate,
then decimated to the analysis rate), so the matched filter sees the same waveform in all three. Chirps are measured
by their matched-filter SNR over a stretch ending after the merger; bursts by it and by the excess power in their
time-frequency tile (what a burst search sees, which needs no template). Cleaning is local, so away from glitches the
cleaned and the original strain are the same samples, and on top of a glitch the cleaned strain should hold what the
truth holds: ``snr_truth - snr_cleaned`` is the SNR cleaning took from the signal (or left of the glitch on it).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from glitchflow_assets.core.signal.matched_filter import recovered_snr
from glitchflow_assets.core.signal.resample import resample
from glitchflow_assets.core.sim.noise import PsdFunction
from glitchflow_assets.core.sim.signals import ON_GLITCH_S, Signal, add_signals

VERSIONS = ("original", "cleaned", "truth")
LEAD_S = {"bbh": 16.0, "bns": 64.0, "burst": 2.0}  # s of data before a signal's GPS time that its SNR is measured on
TAIL_S = 2.0  # ... and after it (ringdown, the burst's second half)
OFF_GLITCH_CHANGE = 0.01  # goal: away from glitches the SNR changes by at most 1 % ...
OFF_GLITCH_SHARE = 0.99  # ... for 99 % of the signals
ON_GLITCH_CHANGE = 0.05  # goal: on top of a glitch the cleaned SNR is within 5 % of the truth's
CROSS_S = 1.0  # s beyond a glitch's half-length that it may still reach (the strain's coupling filter rings on)


@dataclass(frozen=True)
class StrainVersions:
    """The same stretch of strain ``[time]`` (sample 0 at GPS ``t0``, analysis ``sample_rate``) three ways, and what
    cleaning subtracted from it (``synthetic``)."""

    t0: float
    sample_rate: float
    original: np.ndarray
    cleaned: np.ndarray
    truth: np.ndarray
    synthetic: np.ndarray
    synthetic_without_signals: np.ndarray | None = None  # what cleaning subtracts from the same data without the signals

    @property
    def span(self) -> tuple[float, float]:
        return self.t0, self.t0 + self.original.size / self.sample_rate


def signal_in_strain(signal: Signal, t0: float, n: int, sample_rate: float, native_rate: float, psd: PsdFunction) -> np.ndarray:
    """``signal`` ``[n]`` from GPS ``t0`` at ``sample_rate``, as the strain frames (``native_rate``) hold it after
    decimation: rendered with a second of margin either side, which the decimation filter needs."""
    pad = int(native_rate)
    first = round(t0 * native_rate) - pad
    native = add_signals(np.zeros(round(n * native_rate / sample_rate) + 2 * pad), first / native_rate, native_rate, [signal], psd)
    skip = round(pad * sample_rate / native_rate)
    return resample(native, native_rate, sample_rate)[skip : skip + n]


def burst_excess_power_snr(data: np.ndarray, sample_rate: float, psd: np.ndarray, signal: Signal, offset_s: float) -> float:
    """``sqrt(max(E - dof, 0))``: the whitened energy ``E`` of ``data`` ``[time]`` (``psd`` on its rfft grid) in the
    burst's tile, frequency ``f0 (1 +- 2/Q)`` and time ``+- Q / f0`` around ``offset_s`` (its peak, from sample 0),
    less the ``dof`` (twice the tile's time-bandwidth product) that white noise puts there."""
    n = data.size
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    band = (freqs > signal.frequency * (1 - 2 / signal.q)) & (freqs < signal.frequency * (1 + 2 / signal.q))
    spectrum = np.fft.rfft(np.asarray(data, dtype=np.float64)) * np.sqrt(2.0 / (sample_rate * np.where(psd > 0, psd, np.inf)))
    whitened = np.fft.irfft(np.where(band, spectrum, 0.0), n)  # a signal's energy here is its in-band SNR squared
    half = signal.q / signal.frequency
    i0, i1 = max(int((offset_s - half) * sample_rate), 0), min(int((offset_s + half) * sample_rate) + 1, n)
    dof = 2.0 * (i1 - i0) * band.sum() / n  # 2 x duration x bandwidth: noise's expected energy in the tile
    return float(np.sqrt(max(np.sum(whitened[i0:i1] ** 2) - dof, 0.0)))


def signal_recovery(
    signals: list[Signal], strain: StrainVersions, native_rate: float, psd: PsdFunction, glitches: pd.DataFrame
) -> pd.DataFrame:
    """One row per signal whose GPS time ``strain`` covers: kind, gps, snr (injected), on_glitch (a strain glitch of
    ``glitches`` (columns gps, half_length: the simulator's truth) peaks within ON_GLITCH_S), crossed (glitches whose
    extent reaches the stretch the SNR is measured on: a BNS inspiral a minute long crosses several, however far from
    its merger), the matched-filter SNR in each of VERSIONS (``snr_original``, ...; bursts also ``ep_original``, ...
    by excess power), ``touched``: whether cleaning changed a sample within ON_GLITCH_S of the signal's GPS time, and
    where ``strain`` has what cleaning subtracts without the signals, ``snr_taken_by_fit``: the signal's SNR in the
    difference - what the signal added to the subtracted glitches, by leaking into their fitted amplitude."""
    peaks, half = glitches.gps.to_numpy(), glitches.half_length.to_numpy() + CROSS_S
    rate, (start, end) = strain.sample_rate, strain.span
    rows = []
    for s in signals:
        lo, hi = max(start, s.gps - LEAD_S[s.kind]), min(end, s.gps + TAIL_S)
        if not lo <= s.gps < hi:
            continue
        i0, n = round((lo - start) * rate), round((hi - lo) * rate)
        template = signal_in_strain(s, start + i0 / rate, n, rate, native_rate, psd)
        power = psd(np.fft.rfftfreq(n, 1.0 / rate))
        row = {
            "kind": s.kind,
            "gps": s.gps,
            "snr": s.snr,
            "on_glitch": bool(np.any(np.abs(peaks - s.gps) <= ON_GLITCH_S)),
            "crossed": int(np.sum((peaks + half > lo) & (peaks - half < hi))),
        }
        for name in VERSIONS:
            data = getattr(strain, name)[i0 : i0 + n]
            row[f"snr_{name}"] = recovered_snr(data, template, rate, power)
            if s.kind == "burst":
                row[f"ep_{name}"] = burst_excess_power_snr(data, rate, power, s, s.gps - (start + i0 / rate))
        if strain.synthetic_without_signals is not None:
            taken = strain.synthetic[i0 : i0 + n] - strain.synthetic_without_signals[i0 : i0 + n]
            row["snr_taken_by_fit"] = recovered_snr(taken, template, rate, power)
        near = slice(max(round((s.gps - ON_GLITCH_S - start) * rate), 0), round((s.gps + ON_GLITCH_S - start) * rate))
        rows.append(row | {"touched": bool(np.any(strain.synthetic[near] != 0))})
    return pd.DataFrame(rows)


def relative(a: pd.Series, b: pd.Series) -> pd.Series:
    """``|a / b - 1|``, the relative difference of SNRs."""
    return (a / b - 1).abs()


def safety_summary(table: pd.DataFrame) -> dict[str, float]:
    """The goals, measured over a :func:`signal_recovery` table:

    - ``off_glitch_within_1pc``: of the signals away from glitches (no glitch near their merger or anywhere in their
      measured stretch), the share whose cleaned SNR is within 1 % of the original's (goal >= 99 %);
    - ``crossed_within_1pc_of_truth``: of the signals whose merger is away from glitches but whose stretch (a long
      inspiral) crosses some, the share whose cleaned SNR is within 1 % of the glitch-free truth's - cleaning removes
      what those glitches added, so the change from the original is the glitches', not the signal's;
    - ``on_glitch_within_5pc``: of the signals on top of glitches whose original SNR is off the truth's by > 5 %
      (``on_glitch_needing_cleaning``), the share whose cleaned SNR is within 5 % of the truth's; and over all of them;
    - ``bursts_subtracted``: bursts not on a glitch whose cleaned SNR (matched filter or excess power) lost more than
      1 % of the original's (goal 0), and ``bursts_touched``: those where cleaning changed a sample near them.
    """
    off = table[~table.on_glitch]
    clear, crossed, on = off[off.crossed == 0], off[off.crossed > 0], table[table.on_glitch]
    needing = on[relative(on.snr_original, on.snr_truth) > ON_GLITCH_CHANGE]
    bursts = off[off.kind == "burst"]
    lost = (bursts.snr_cleaned < (1 - OFF_GLITCH_CHANGE) * bursts.snr_original) | (
        bursts.ep_cleaned < (1 - OFF_GLITCH_CHANGE) * bursts.ep_original if "ep_cleaned" in bursts else False
    )
    share = lambda mask: float(mask.mean()) if len(mask) else float("nan")  # noqa: E731
    return {
        "signals": float(len(table)),
        "off_glitch": float(len(clear)),
        "off_glitch_within_1pc": share(relative(clear.snr_cleaned, clear.snr_original) <= OFF_GLITCH_CHANGE),
        "off_glitch_max_change": float(relative(clear.snr_cleaned, clear.snr_original).max()) if len(clear) else float("nan"),
        "crossed": float(len(crossed)),
        "crossed_within_1pc_of_truth": share(relative(crossed.snr_cleaned, crossed.snr_truth) <= OFF_GLITCH_CHANGE),
        "crossed_within_1pc_of_original": share(relative(crossed.snr_cleaned, crossed.snr_original) <= OFF_GLITCH_CHANGE),
        "on_glitch": float(len(on)),
        "on_glitch_needing_cleaning": float(len(needing)),
        "on_glitch_within_5pc": share(relative(needing.snr_cleaned, needing.snr_truth) <= ON_GLITCH_CHANGE),
        "on_glitch_all_within_5pc": share(relative(on.snr_cleaned, on.snr_truth) <= ON_GLITCH_CHANGE),
        "on_glitch_original_within_5pc": share(relative(on.snr_original, on.snr_truth) <= ON_GLITCH_CHANGE),
        "bursts_off_glitch": float(len(bursts)),
        "bursts_subtracted": float(np.sum(lost)),
        "bursts_touched": float(bursts.touched.sum()),
    }
