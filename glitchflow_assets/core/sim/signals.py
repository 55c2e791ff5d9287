"""Simulated gravitational-wave signals, for proving that cleaning never removes them.

A :class:`Signal` is a binary black hole or binary neutron star chirp (``lalsimulation``'s IMRPhenomD, the plus
polarisation an optimally oriented detector sees) or a short sine-Gaussian burst, at a GPS time (the chirp's merger,
the burst's peak) and an optimal matched-filter SNR against the strain's noise PSD. Signals go into the strain only,
never into an auxiliary channel: no witness sees them, so a twin that predicts glitches from the witnesses has no
reason to subtract them. :func:`draw_signals` places them at random, seeded, away from or on top of given glitch
times (within +-1 s of the peak: the GW170817 case).
"""

import math
from dataclasses import dataclass

import numpy as np

from glitchflow_assets.core.signal.matched_filter import optimal_snr
from glitchflow_assets.core.sim.noise import PsdFunction
from glitchflow_assets.core.sim.waveforms import sine_gaussian, sine_gaussian_half_length

KINDS = ("bbh", "bns", "burst")
F_MIN = {"bbh": 20.0, "bns": 30.0}  # Hz where a chirp starts (a BNS from 30 Hz lasts ~55 s)
MASSES = {"bbh": (20.0, 40.0), "bns": (1.2, 1.6)}  # solar masses, each component uniform in this range
BURST_FREQUENCY, BURST_Q = (60.0, 500.0), (4.0, 20.0)  # log-uniform
ON_GLITCH_S = 1.0  # a signal "on top of" a glitch peaks within this of the glitch's peak
REACH_S = (120.0, 2.0)  # s before and after its GPS time that a signal can reach (a BNS from 30 Hz; a ringdown)


@dataclass(frozen=True)
class Signal:
    """One injected signal: ``kind`` (bbh | bns | burst), ``gps`` (merger or peak), ``snr`` (optimal, against the strain
    PSD), the component masses (solar masses; chirps) or the centre frequency and Q (bursts), and the phase."""

    kind: str
    gps: float
    snr: float
    mass1: float = 0.0
    mass2: float = 0.0
    frequency: float = 0.0
    q: float = 0.0
    phase: float = 0.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"signal kind {self.kind!r}: one of {KINDS}")


def unit_waveform(signal: Signal, sample_rate: float) -> tuple[np.ndarray, int]:
    """The signal's shape ``[time]`` at ``sample_rate`` (arbitrary scale) and the index of its ``gps`` sample."""
    if signal.kind == "burst":
        half = sine_gaussian_half_length(signal.frequency, signal.q)
        n = int(math.ceil(half * sample_rate))
        return sine_gaussian(np.arange(-n, n + 1) / sample_rate, signal.frequency, signal.q, signal.phase), n
    import lal
    import lalsimulation

    plus, _ = lalsimulation.SimInspiralTD(
        signal.mass1 * lal.MSUN_SI,
        signal.mass2 * lal.MSUN_SI,
        *(0.0,) * 6,  # spins
        1e6 * lal.PC_SI,  # distance: rescaled to the SNR below
        0.0,  # inclination: face on
        signal.phase,
        *(0.0,) * 3,  # longitude of ascending nodes, eccentricity, mean anomaly
        1.0 / sample_rate,
        F_MIN[signal.kind],
        F_MIN[signal.kind],
        None,
        lalsimulation.IMRPhenomD,
    )
    data = np.array(plus.data.data)
    return data, int(round(-float(plus.epoch) * sample_rate))  # lal puts the merger at t = 0


def waveform(signal: Signal, sample_rate: float, psd: PsdFunction) -> tuple[np.ndarray, int]:
    """The signal ``[time]`` at ``sample_rate`` scaled to its optimal SNR against ``psd``, and its ``gps`` sample index."""
    shape, at = unit_waveform(signal, sample_rate)
    n = 1 << int(math.ceil(math.log2(max(shape.size, 16))))  # zero-padded: a fine enough frequency grid for a short burst
    padded = np.zeros(n)
    padded[: shape.size] = shape
    return shape * (signal.snr / optimal_snr(padded, sample_rate, psd(np.fft.rfftfreq(n, 1.0 / sample_rate)))), at


def add_signals(strain: np.ndarray, t0: float, sample_rate: float, signals: list[Signal], psd: PsdFunction) -> np.ndarray:
    """``strain`` ``[time]`` (from GPS ``t0``) with ``signals`` added where they overlap it: a new array."""
    out = np.array(strain, dtype=np.float64)
    t1 = t0 + out.size / sample_rate
    for s in signals:
        if s.gps + REACH_S[1] < t0 or s.gps - REACH_S[0] > t1:
            continue  # not in this stretch: no waveform to make
        wave, at = waveform(s, sample_rate, psd)
        first = int(round((s.gps - t0) * sample_rate)) - at
        lo, hi = max(first, 0), min(first + wave.size, out.size)
        if lo < hi:
            out[lo:hi] += wave[lo - first : hi - first]
    return out


def draw_signals(
    seed: int,
    span: tuple[float, float],
    n: int,
    glitch_gps: np.ndarray,
    on_glitch: bool,
    snr: tuple[float, float] = (8.0, 30.0),
    within_s: float = ON_GLITCH_S,
) -> list[Signal]:
    """``n`` signals over GPS ``span``, kinds in turn, SNR uniform in ``snr``: each within +-``within_s`` of a glitch
    peak of ``glitch_gps`` (``on_glitch``), or at least 4 s from every one. Drawn from ``seed`` alone."""
    rng = np.random.default_rng(seed)
    signals = []
    while len(signals) < n:
        kind = KINDS[len(signals) % len(KINDS)]
        if on_glitch:
            gps = float(rng.choice(glitch_gps)) + rng.uniform(-within_s, within_s)
        else:
            gps = rng.uniform(*span)
            if len(glitch_gps) and np.min(np.abs(glitch_gps - gps)) < 4.0:
                continue
        masses = sorted(rng.uniform(*MASSES[kind], size=2), reverse=True) if kind != "burst" else (0.0, 0.0)
        frequency = math.exp(rng.uniform(*np.log(BURST_FREQUENCY))) if kind == "burst" else 0.0
        q = math.exp(rng.uniform(*np.log(BURST_Q))) if kind == "burst" else 0.0
        signals.append(Signal(kind, gps, rng.uniform(*snr), *masses, frequency, q, rng.uniform(0, 2 * np.pi)))
    return signals
