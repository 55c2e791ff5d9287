"""Write a simulated observing run as GWF frames plus its ground-truth glitch catalogue.

Everything is a pure function of ``(scenario, seed, GPS)``: glitches are planned in fixed 256 s blocks
and noise is a seekable stream (see :mod:`.noise`), so ``simulate(a, b)`` then ``simulate(b, c)``
writes exactly the frames of ``simulate(a, c)``.
"""

import concurrent.futures
import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import butter, sosfilt

from glitchflow_assets.core.artifacts.storage import atomic_path
from glitchflow_assets.core.io.frames import ChannelData
from glitchflow_assets.core.io.gwf_writer import frame_file_name, write_gwf
from glitchflow_assets.core.signal.matched_filter import optimal_snr
from glitchflow_assets.core.sim.locks import acquisitions, state_vector, strain_gain
from glitchflow_assets.core.sim.noise import NoiseStream
from glitchflow_assets.core.sim.scenario import VIRGO_SCENARIO, ChannelSpec, Morphology, Scenario
from glitchflow_assets.core.sim.signals import Signal, add_signals
from glitchflow_assets.core.sim.waveforms import (
    scattered_light_fringe,
    scatterer_motion,
    sine_gaussian,
    sine_gaussian_half_length,
)

log = logging.getLogger(__name__)

PLAN_BLOCK_S = 256
TRUTH_DIR = "truth"
_FILTER_LEAD_S = 0.25  # zeros ahead of a strain glitch so the causal coupling filter starts at rest


@dataclass(frozen=True)
class Glitch:
    """One appearance of a glitch in one channel (a ground-truth row).

    ``role`` is ``strain`` (the glitch in h(t)), ``witness`` (the same event seen in an auxiliary
    channel; ``gps`` there is the source time, the strain sees it ``delay_s`` later), ``driver``
    (scatterer motion behind an arch), or ``self`` (a glitch confined to one auxiliary channel).
    ``snr`` is the optimal matched-filter SNR against that channel's noise PSD.
    """

    event_id: str
    channel: str
    role: str
    morphology: str
    gps: float
    snr: float
    frequency: float  # central (sine-Gaussian) or apex fringe (arches) frequency, Hz
    q: float
    modulation_hz: float  # scatterer motion frequency (arches), else 0
    n_arches: int
    phase: float
    delay_s: float
    half_length: float

    def unit_waveform(self, t: np.ndarray) -> np.ndarray:
        if self.morphology == "scattered_light" and self.role == "driver":
            return scatterer_motion(t, self.modulation_hz, self.n_arches)
        if self.morphology == "scattered_light":
            return scattered_light_fringe(t, self.modulation_hz, self.frequency, self.n_arches, self.phase)
        return sine_gaussian(t, self.frequency, self.q, self.phase)


def _pareto(rng: np.random.Generator, low: float, index: float, high: float) -> float:
    return float(min(high, low * (1.0 - rng.random()) ** (-1.0 / index)))


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _event_times(rng: np.random.Generator, block: int, rate_per_min: float, min_sep: float) -> list[float]:
    """A renewal process: gaps of ``min_sep`` + exponential, mean gap set so the rate is ``rate_per_min``.

    Margins of min_sep/2 at both block edges keep events of neighbouring blocks apart too.
    """
    start, stop = block * PLAN_BLOCK_S + min_sep / 2, (block + 1) * PLAN_BLOCK_S - min_sep / 2
    mean_gap = (stop - start) / (rate_per_min * PLAN_BLOCK_S / 60.0)
    times: list[float] = []
    t = start + rng.exponential(max(mean_gap - min_sep, 1e-3))
    while t < stop:
        times.append(float(t))
        t += min_sep + rng.exponential(max(mean_gap - min_sep, 1e-3))
    return times


def _event_rows(
    scenario: Scenario,
    rng: np.random.Generator,
    event_id: str,
    t_source: float,
    morph: Morphology,
    f0: float,
    q: float,
    phase: float,
    snr: float,
) -> list[Glitch]:
    """The strain appearance of one event and its witness (and driver) appearances (draws continue from ``rng``)."""
    if morph.name == "scattered_light":
        f_mod, n_arches = float(rng.uniform(0.15, 0.35)), int(rng.integers(1, 3))
        half = n_arches / (4.0 * f_mod)
    else:
        f_mod, n_arches = 0.0, 0
        half = sine_gaussian_half_length(f0, q)
    common = dict(morphology=morph.name, frequency=f0, q=q, modulation_hz=f_mod, n_arches=n_arches, phase=phase)
    strain_gps = t_source + morph.delay_s
    rows = [Glitch(event_id, scenario.strain, "strain", gps=strain_gps, snr=snr, delay_s=morph.delay_s, half_length=half, **common)]
    for channel, probability in morph.witnesses:
        seen = rng.random() < probability
        gain = rng.uniform(*scenario.witness_gain_range)
        if seen:
            rows.append(Glitch(event_id, channel, "witness", gps=t_source, snr=snr * gain, delay_s=0.0, half_length=half, **common))
    if morph.name == "scattered_light":
        motion = half + 1.0 / f_mod
        rows.append(Glitch(event_id, scenario.driver, "driver", gps=t_source, snr=30.0, delay_s=0.0, half_length=motion, **common))
    return rows


def _random_event(scenario: Scenario, rng: np.random.Generator, event_id: str, t_source: float) -> list[Glitch]:
    """One event of the scenario's random process at ``t_source``: family, frequency, Q, phase and SNR drawn from ``rng``."""
    weights = np.array([m.weight for m in scenario.morphologies])
    morph = scenario.morphologies[rng.choice(len(weights), p=weights / weights.sum())]
    f0 = _log_uniform(rng, *morph.f0_range)
    q = float(rng.uniform(*morph.q_range))
    phase = float(rng.uniform(0, 2 * np.pi))
    snr = _pareto(rng, scenario.snr_min, scenario.snr_index, scenario.snr_max)  # draw order fixes every seed's glitches
    return _event_rows(scenario, rng, event_id, t_source, morph, f0, q, phase, snr)


def _acquisition_events(scenario: Scenario, seed: int, block: int) -> list[Glitch]:
    """The extra strain events of the glitchier minutes after each lock acquisition in ``block`` (their own random
    streams: the scenario's other glitches are the same with or without locks)."""
    locks = scenario.locks
    if locks is None or locks.acquisition_rate_factor <= 1:
        return []
    start = block * PLAN_BLOCK_S
    stretches = acquisitions(locks, seed, start, start + PLAN_BLOCK_S)
    if not stretches:
        return []
    rate = scenario.glitch_rate_per_min * (locks.acquisition_rate_factor - 1)
    times = _event_times(np.random.default_rng([seed, 7, block]), block, rate, scenario.min_separation_s)
    times = [t for t in times if any(a <= t < b for a, b in stretches)]
    return [r for i, t in enumerate(times) for r in _random_event(scenario, np.random.default_rng([seed, 8, block, i]), f"{block}-a{i}", t)]


def _plan_block(scenario: Scenario, seed: int, block: int) -> list[Glitch]:
    rows: list[Glitch] = []
    times = _event_times(np.random.default_rng([seed, 1, block]), block, scenario.glitch_rate_per_min, scenario.min_separation_s)
    for i, t_source in enumerate(times):
        rows += _random_event(scenario, np.random.default_rng([seed, 2, block, i]), f"{block}-{i}", t_source)
    rows += _acquisition_events(scenario, seed, block)
    by_name = {m.name: m for m in scenario.morphologies}
    for i, g in enumerate(s for s in scenario.scripted if block * PLAN_BLOCK_S <= s.gps < (block + 1) * PLAN_BLOCK_S):
        rng = np.random.default_rng([seed, 5, block, i])
        phase = float(rng.uniform(0, 2 * np.pi))
        rows += _event_rows(scenario, rng, f"{block}-x{i}", g.gps, by_name[g.morphology], g.frequency, g.q, phase, g.snr)
    for c_index, spec in enumerate(scenario.self_glitches):
        times = _event_times(np.random.default_rng([seed, 3, c_index, block]), block, spec.rate_per_min, scenario.min_separation_s)
        for i, t in enumerate(times):
            rng = np.random.default_rng([seed, 4, c_index, block, i])
            f0, q = _log_uniform(rng, *spec.f0_range), float(rng.uniform(*spec.q_range))
            rows.append(
                Glitch(
                    f"{block}-s{c_index}-{i}",
                    spec.channel,
                    "self",
                    "self_burst",
                    gps=t,
                    snr=_log_uniform(rng, *spec.snr_range),
                    frequency=f0,
                    q=q,
                    modulation_hz=0.0,
                    n_arches=0,
                    phase=float(rng.uniform(0, 2 * np.pi)),
                    delay_s=0.0,
                    half_length=sine_gaussian_half_length(f0, q),
                )
            )
    return rows


def plan_glitches(scenario: Scenario, seed: int, gps_start: float, gps_end: float) -> list[Glitch]:
    """Every glitch appearance whose waveform touches [gps_start, gps_end), sorted by GPS."""
    margin = 8.0
    first, last = math.floor((gps_start - margin) / PLAN_BLOCK_S), math.floor((gps_end + margin) / PLAN_BLOCK_S)
    rows = [g for b in range(first, last + 1) for g in _plan_block(scenario, seed, b)]
    rows = [g for g in rows if g.gps + g.half_length + 1.0 > gps_start and g.gps - g.half_length - 1.0 < gps_end]
    return sorted(rows, key=lambda g: (g.gps, g.channel))


class ChannelRenderer:
    """Noise + lines + glitches of one channel, for any sample range."""

    def __init__(self, spec: ChannelSpec, seed: int, stream: int, transfers: dict[str, np.ndarray], signals: tuple[Signal, ...] = ()):
        """``signals``: gravitational-wave signals this channel records (the strain's renderer only)."""
        self.spec, self.signals = spec, signals
        self.noise = NoiseStream(spec.psd, spec.sample_rate, seed, stream)
        freqs = np.fft.rfftfreq(len(self.noise.taps), 1.0 / spec.sample_rate)
        self.rms = float(np.sqrt(np.sum(spec.psd(freqs)[1:]) * (freqs[1] - freqs[0])))
        self.transfers = transfers

    def _glitch(self, g: Glitch) -> tuple[int, np.ndarray]:
        """(first absolute sample index, waveform) of a glitch, scaled to its SNR in this channel."""
        fs = self.spec.sample_rate
        lead = _FILTER_LEAD_S if g.role == "strain" else 0.0
        n0 = math.ceil((g.gps - g.half_length - lead) * fs)
        n1 = math.floor((g.gps + g.half_length + lead) * fs) + 1
        wave = g.unit_waveform(np.arange(n0, n1) / fs - g.gps)
        if g.role == "strain":
            wave = sosfilt(self.transfers[g.morphology], wave)
        psd = self.spec.psd(np.fft.rfftfreq(len(wave), 1.0 / fs))
        return n0, wave * (g.snr / optimal_snr(wave, fs, psd))

    def background(self, start: int, n: int) -> np.ndarray:
        """Noise + lines ``[n]`` from absolute sample index ``start`` (GPS * rate)."""
        data = self.noise.samples(start, n)
        t = np.arange(start, start + n) / self.spec.sample_rate
        for freq, amplitude in self.spec.lines:
            data += amplitude * self.rms * np.sin(2 * np.pi * freq * t)
        return data

    def glitches(self, start: int, n: int, glitches: list[Glitch]) -> np.ndarray:
        """The sum ``[n]`` of this channel's glitch waveforms from absolute sample index ``start``."""
        data = np.zeros(n)
        for g in glitches:
            if g.channel != self.spec.name:
                continue
            n0, wave = self._glitch(g)
            lo, hi = max(n0, start), min(n0 + len(wave), start + n)
            if lo < hi:
                data[lo - start : hi - start] += wave[lo - n0 : hi - n0]
        return data

    def samples(self, start: int, n: int, glitches: list[Glitch]) -> np.ndarray:
        data = self.background(start, n) + self.glitches(start, n, glitches)
        fs = self.spec.sample_rate
        return add_signals(data, start / fs, fs, list(self.signals), self.spec.psd) if self.signals else data


def make_renderers(scenario: Scenario, seed: int, only: set[str] | None = None) -> list[ChannelRenderer]:
    """One renderer per channel of ``scenario`` (stream index = channel position), or per channel named in ``only``."""
    strain_rate = scenario.channel(scenario.strain).sample_rate
    transfers = {m.name: butter(2, m.transfer_band, btype="bandpass", fs=strain_rate, output="sos") for m in scenario.morphologies}
    return [
        ChannelRenderer(spec, seed, i, transfers, scenario.signals if spec.name == scenario.strain else ())
        for i, spec in enumerate(scenario.channels)
        if only is None or spec.name in only
    ]


@dataclass
class SimulationResult:
    frames: list[Path]
    truth: Path
    glitches: pd.DataFrame


def frame_name(scenario: Scenario, gps: int, duration: int) -> str:
    """The file name (``OBS-TAG-GPS-DUR.gwf``) of the scenario's frame starting at GPS ``gps`` and lasting ``duration`` s."""
    return frame_file_name(scenario.observatory, scenario.tag, gps, duration)


def write_frame(path: Path, t0: int, length: int, scenario: Scenario, renderers: list[ChannelRenderer], seed: int) -> Path:
    """One frame ``[t0, t0 + length)`` of every channel, written to a temporary name and renamed."""
    glitches = plan_glitches(scenario, seed, t0, t0 + length)
    series = []
    for r in renderers:
        fs = r.spec.sample_rate
        dtype = np.float64 if r.spec.role == "strain" else np.float32
        samples = r.samples(t0 * fs, length * fs, glitches)
        if scenario.locks and r.spec.role == "strain":  # unlocked: the strain is not science
            samples *= strain_gain(scenario.locks, seed, t0, samples.size, fs)
        series.append(ChannelData(r.spec.name, samples.astype(dtype), t0, fs, r.spec.unit))
    if locks := scenario.locks:
        bits = state_vector(locks, seed, t0, length * locks.sample_rate)
        series.append(ChannelData(locks.channel, bits, t0, locks.sample_rate, ""))
    return write_gwf(path, series)


_worker: dict = {}


def _init_worker(scenario: Scenario, seed: int) -> None:
    _worker.update(scenario=scenario, seed=seed, renderers=make_renderers(scenario, seed))


def _write_in_worker(path: Path, t0: int, length: int) -> Path:
    return write_frame(path, t0, length, _worker["scenario"], _worker["renderers"], _worker["seed"])


def _write_truth(out: Path, scenario: Scenario, seed: int, gps_start: int, duration: int) -> tuple[Path, pd.DataFrame]:
    """Write the ground truth of [gps_start, gps_start + duration) under ``out``; its CSV's path and its rows."""
    gps_end = gps_start + duration
    truth = pd.DataFrame([asdict(g) for g in plan_glitches(scenario, seed, gps_start, gps_end) if gps_start <= g.gps < gps_end])
    truth_dir = out / TRUTH_DIR
    truth_dir.mkdir(exist_ok=True)
    truth_path = truth_dir / f"glitches-{gps_start}-{duration}.csv"
    with atomic_path(truth_path) as tmp:
        truth.to_csv(tmp, index=False)
    if signals := [asdict(s) for s in scenario.signals if gps_start <= s.gps < gps_end]:
        with atomic_path(truth_dir / f"signals-{gps_start}-{duration}.csv") as tmp:
            pd.DataFrame(signals).to_csv(tmp, index=False)
    channels = {c.name: {"sample_rate": c.sample_rate, "unit": c.unit, "role": c.role} for c in scenario.channels}
    with atomic_path(truth_dir / "channels.json") as tmp:
        tmp.write_text(json.dumps({"seed": seed, "glitch_rate_per_min": scenario.glitch_rate_per_min, "channels": channels}, indent=2))
    return truth_path, truth


def simulate(
    out_dir: str | Path,
    gps_start: int,
    duration: int,
    frame_length: int = 60,
    seed: int = 0,
    scenario: Scenario = VIRGO_SCENARIO,
    progress: Callable[[int, int, Path], None] | None = None,
    overwrite: bool = False,
    workers: int = 1,
) -> SimulationResult:
    """Write frames covering [gps_start, gps_start + duration) and the ground truth under ``out_dir``.

    Frames are ``OBS-TAG-GPS-DUR.gwf`` of ``frame_length`` s (the last one shorter if needed), each
    written to a temporary name and renamed. Existing frames are kept unless ``overwrite``: a re-run
    continues where an interrupted one stopped. Ground truth: ``truth/glitches-GPS-DUR.csv`` (one row
    per glitch appearance, see :class:`Glitch`), ``truth/signals-GPS-DUR.csv`` (the scenario's gravitational-wave
    signals in the span, if any, see :class:`~.signals.Signal`) and ``truth/channels.json`` (seed, glitch rate, channel roles and
    rates: enough to render the truth again, see :mod:`.truth`).
    ``workers`` > 1 writes frames in that many processes (frames are independent: the same files result).
    """
    if duration <= 0 or frame_length <= 0 or workers < 1:
        raise ValueError("duration, frame_length and workers must be positive")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gps_end = gps_start + duration
    starts = list(range(gps_start, gps_end, frame_length))
    jobs = [(out / frame_name(scenario, t0, min(frame_length, gps_end - t0)), t0, min(frame_length, gps_end - t0)) for t0 in starts]
    todo = [job for job in jobs if overwrite or not job[0].exists()]
    first = len(jobs) - len(todo) + 1  # progress counts the frames already on disk as done
    if workers > 1 and len(todo) > 1:
        with concurrent.futures.ProcessPoolExecutor(min(workers, len(todo)), initializer=_init_worker, initargs=(scenario, seed)) as pool:
            for i, path in enumerate(pool.map(_write_in_worker, *zip(*todo, strict=True)), first):
                if progress:
                    progress(i, len(jobs), path)
    elif todo:
        renderers = make_renderers(scenario, seed)
        for i, (path, t0, length) in enumerate(todo, first):
            write_frame(path, t0, length, scenario, renderers, seed)
            if progress:
                progress(i, len(jobs), path)
    truth_path, truth = _write_truth(out, scenario, seed, gps_start, duration)
    return SimulationResult([job[0] for job in jobs], truth_path, truth)


def load_signals(frame_dir: str | Path) -> list[Signal]:
    """The gravitational-wave signals a simulation under ``frame_dir`` injected into its strain (none for older ones)."""
    files = sorted((Path(frame_dir) / TRUTH_DIR).glob("signals-*.csv"))
    rows = pd.concat([pd.read_csv(f) for f in files]).drop_duplicates() if files else pd.DataFrame()
    return sorted((Signal(**r) for r in rows.to_dict("records")), key=lambda s: s.gps)


def load_truth(frame_dir: str | Path, gps_start: float | None = None, gps_end: float | None = None) -> pd.DataFrame:
    """All ground-truth rows written under ``frame_dir`` (deduplicated), optionally within a GPS span."""
    files = sorted((Path(frame_dir) / TRUTH_DIR).glob("glitches-*.csv"))
    if not files:
        raise FileNotFoundError(f"no ground truth under {Path(frame_dir) / TRUTH_DIR}")
    table = pd.concat([pd.read_csv(f, dtype={"event_id": str}) for f in files]).drop_duplicates(["event_id", "channel"])
    if gps_start is not None:
        table = table[table.gps >= gps_start]
    if gps_end is not None:
        table = table[table.gps < gps_end]
    return table.sort_values(["gps", "channel"]).reset_index(drop=True)
