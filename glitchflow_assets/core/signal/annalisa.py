"""ANNALISA: which auxiliary channels witness the strain's glitches.

For every event and channel: whiten a few seconds around the event against the channel's PSD from the
whole window, take a single-Q transform on a linear grid (Q=12, 8-50 Hz, 0.5 Hz x 0.1 s by default), and
mark peaks: 2-D local maxima (3x3, per channel, never across channels) with normalised energy >= 20.
Then, with ``Ms``/``Mc`` the strain/channel peak masks, ``I = |Ms & Mc|`` (channel peaks may be dilated by a
time tolerance), ``corr = I / |Ms|`` and ``IoU = I / |Ms | Mc|``, averaged over events. A channel is kept iff
mean corr > 0.17 and mean IoU > 0.08.

Every channel, the strain too, is transformed at the scan rate: the lowest rate the band needs
(``AnnalisaConfig.scan_rate``, 128 Hz for 8-50 Hz), which a window file keeps its auxiliary channels at; the
transform of a band-limited signal does not depend on the rate it is sampled at, and its cost and the file's size
fall with the rate.

Fixes of the original: an event is scored for a channel only when the strain has peaks there and the channel
has valid data (no credit for silence); peaks are found per channel in 2-D; each channel is whitened with its
own PSD at the scan rate after its own anti-alias filter, and rows above 95 % of a channel's native
Nyquist frequency are ignored for it; exact-pixel coincidence is optional (``row_tolerance``,
``time_tolerance``). Added: a Poisson coincidence significance per channel (hveto-style), with the trials factor
of the channels tried: ``-log10 (1 - (1 - P(N >= n | mu))^K)``, ``n`` the coincident peaks, ``mu`` those expected if
the channel's (dilated) peaks fell at random pixels, ``K`` the channels scored; so the chance that any of hundreds of
channels passes stays what the threshold says. ``selection="significance"`` (the default, at 5: where hveto stops
its rounds) keeps channels by it; the original's corr/IoU rule (``selection="corr_iou"``) dilutes a witness of one
glitch family among the events of the others, and drops witnesses with weak couplings.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import ConfigDict, TypeAdapter, ValidationError
from scipy.stats import poisson

from glitchflow_assets.core.artifacts.raw_strain_segments import RawSegmentSummary, ScanBlock, read_strain, scan_blocks
from glitchflow_assets.core.artifacts.storage import ContentDigest
from glitchflow_assets.core.runs.segments import Segments, covers
from glitchflow_assets.core.signal.dsp import psd_of_segments, q_transform, whiten
from glitchflow_assets.core.signal.resample import edge_seconds, resample


def _problem(error: dict) -> str:
    """One pydantic error of an annalisa block, in the registry's words."""
    where = ".".join(map(str, error["loc"]))
    if error["type"] == "unexpected_keyword_argument":
        return f"unknown setting {where} (known: {', '.join(AnnalisaConfig.__dataclass_fields__)})"
    return f"setting {where or '(the block)'}: {error['msg']} (got {error['input']!r})"


@dataclass(frozen=True)
class AnnalisaConfig:
    __pydantic_config__ = ConfigDict(extra="forbid")  # a registry's annalisa block is validated against these fields
    q: float = 12.0
    frange: tuple[float, float] = (8.0, 50.0)
    rows: int = 85  # output frequency rows: 0.5 Hz apart over 8-50 Hz when linear
    logf: bool = False
    dt: float = 0.1  # s between output columns
    duration: float = 6.0  # s transformed around each event
    crop: float = 1.0  # s dropped at each end of the transform
    snr2_threshold: float = 20.0  # peak normalised energy (~SNR^2)
    time_tolerance: float = 0.0  # s: a channel peak this close in time to a strain peak counts ...
    row_tolerance: int = 0  # ... if also this many rows or fewer apart (0, 0: exact pixels, as the original)
    fftlength: float = 2.0  # s, PSD estimate ...
    psd_seconds: float = 64.0  # ... over at most this much valid data of the window (median of ~60 averages)
    selection: str = "significance"  # trials-corrected -log10 p >= significance_threshold; corr_iou: the original's rule,
    corr_threshold: float = 0.17  # mean corr > corr_threshold and mean IoU > iou_threshold
    iou_threshold: float = 0.08
    significance_threshold: float = 5.0
    batch: int = 4  # events transformed at once (bounds memory; 1-4 is fastest on CPU, see bench/RESULTS.md)

    def __post_init__(self) -> None:
        if self.selection not in ("corr_iou", "significance"):
            raise ValueError(f"annalisa selection {self.selection!r}: expected corr_iou or significance")
        if not 0 < self.frange[0] < self.frange[1] or self.rows < 2 or self.duration <= 2 * self.crop:
            raise ValueError(f"annalisa: bad band/grid frange={self.frange} rows={self.rows} duration={self.duration} crop={self.crop}")

    @classmethod
    def from_mapping(cls, values: dict) -> "AnnalisaConfig":
        """Build from a registry block; unknown keys and wrong types are errors naming the setting."""
        try:
            return TypeAdapter(cls).validate_python(values)
        except ValidationError as exc:
            raise ValueError("annalisa: " + "; ".join(map(_problem, exc.errors()))) from None

    def keeps(self, mean_corr: float, mean_iou: float, significance: float) -> bool:
        if self.selection == "significance":
            return significance >= self.significance_threshold
        return mean_corr > self.corr_threshold and mean_iou > self.iou_threshold

    @property
    def rule(self) -> str:
        """:meth:`keeps` in words (figure titles, descriptions)."""
        if self.selection == "significance":
            return f"-log10 p >= {self.significance_threshold:g} (p: of any of the channels scored)"
        return f"mean corr > {self.corr_threshold:g} and mean IoU > {self.iou_threshold:g}"

    def scan_rate(self, sample_rate: int) -> int:
        """The rate (Hz) auxiliary channels are kept and scanned at: the lowest power of two whose Q tiles reach the
        band's top (gwpy's rule, ``f <= rate / 2 / (1 + sqrt(11) / q)``) inside the resampler's pass band (95 % of
        Nyquist); at most the analysis rate ``sample_rate``. 128 Hz for the default 8-50 Hz at Q=12."""
        need = 2 * self.frange[1] * max(1 + math.sqrt(11) / self.q, 1 / 0.95)
        return min(1 << max(math.ceil(math.log2(need)), 0), sample_rate)

    @property
    def statistic(self) -> str:
        """The ``channel_table`` column the rule ranks channels by."""
        return "significance" if self.selection == "significance" else "mean_corr"

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, int(round((self.duration - 2 * self.crop) / self.dt))

    @property
    def tolerance(self) -> tuple[int, int]:
        """(rows, columns) a channel peak is dilated by."""
        return self.row_tolerance, int(round(self.time_tolerance / self.dt))

    def frequencies(self) -> np.ndarray:
        f0, f1 = self.frange
        return np.geomspace(f0, f1, self.rows) if self.logf else np.linspace(f0, f1, self.rows)


COUNTS = ("intersection", "strain", "aux", "union", "aux_area")  # per event and channel, see coincidence_counts


def peak_mask(energy: torch.Tensor, threshold: float) -> torch.Tensor:
    """Local maxima of each ``[freq, time]`` plane of ``energy[..., freq, time]`` at or above ``threshold``."""
    planes = energy.reshape(-1, 1, *energy.shape[-2:])
    pooled = F.max_pool2d(planes, kernel_size=3, stride=1, padding=1)  # pads with -inf: edges can be peaks
    return ((planes == pooled) & (planes >= threshold)).reshape(energy.shape)


def coincidence_counts(strain: torch.Tensor, aux: torch.Tensor, tolerance: tuple[int, int] = (0, 0)) -> dict[str, torch.Tensor]:
    """Strain mask ``[event, freq, time]`` vs channel masks ``[event, channel, freq, time]`` -> counts ``[event, channel]``.

    ``intersection`` counts strain peaks with a channel peak within ``tolerance`` (rows, columns).
    """
    dilated = aux
    if any(tolerance):
        flat = aux.float().reshape(-1, 1, *aux.shape[-2:])
        kernel = (2 * tolerance[0] + 1, 2 * tolerance[1] + 1)
        dilated = F.max_pool2d(flat, kernel, stride=1, padding=tolerance).reshape(aux.shape) > 0
    s = strain[:, None]
    intersection = (s & dilated).sum((-2, -1))
    strain_n = strain.sum((-2, -1))[:, None].expand_as(intersection)
    aux_n = aux.sum((-2, -1))
    return {
        "intersection": intersection,
        "strain": strain_n,
        "aux": aux_n,
        "union": strain_n + aux_n - intersection,
        "aux_area": dilated.sum((-2, -1)),
    }


@dataclass
class WindowScores:
    """Per event and channel counts of one window (``channels`` excludes the strain)."""

    channels: list[str]
    event_gps: np.ndarray  # [event]
    counts: dict[str, np.ndarray]  # name -> [event, channel] int
    scored: np.ndarray  # [event, channel] bool: strain has peaks and the channel has valid data
    pixels: int  # pixels per plane (for the chance expectation)
    native_rates: list[float] = field(default_factory=list)  # [channel] Hz in this window, NaN where absent; [] if unknown

    def per_event(self) -> pd.DataFrame:
        rows = []
        for i, gps in enumerate(self.event_gps):
            for j, ch in enumerate(self.channels):
                c = {k: int(v[i, j]) for k, v in self.counts.items()}
                rows.append({"gps": gps, "channel": ch, "scored": bool(self.scored[i, j]), **c})
        return pd.DataFrame(rows)

    def data_version(self) -> str:
        """Changes exactly when the scores (or the channels' native rates) do; files without rates keep their version."""
        counts = [self.counts[k] for k in sorted(self.counts)]
        rates = [np.asarray(self.native_rates, dtype="f8")] if self.native_rates else []
        return ContentDigest(self.channels, self.event_gps, self.scored, sorted(self.counts), *counts, self.pixels, *rates).hexdigest()


def _peak_masks(x: torch.Tensor, starts: list[int], n: int, sample_rate: float, psd: torch.Tensor, config: AnnalisaConfig) -> torch.Tensor:
    """The peak pixels ``[event, channel, row, col]`` of the ``n`` samples of ``x`` ``[channel, time]`` from each of
    ``starts``, whitened by ``psd`` and Q-transformed."""
    segment = torch.stack([x[:, s : s + n] for s in starts])  # [event, channel, time]
    white = whiten(segment, sample_rate, psd=psd).float()  # whitened data: float32 is plenty for peaks
    energy = q_transform(
        white,
        sample_rate,
        q=config.q,
        frange=config.frange,
        spectrogram_shape=config.shape,
        logf=config.logf,
        outseg=(config.crop, config.duration - config.crop),
    )
    return peak_mask(energy, config.snr2_threshold)


def _strain_masks(
    strain: np.ndarray,
    t0: float,
    sample_rate: float,
    segments: Segments,
    scan_rate: float,
    event_gps: np.ndarray,
    config: AnnalisaConfig,
    device,
) -> tuple[np.ndarray, torch.Tensor | None]:
    """The events whose transform span is valid strain, and the strain's peak masks ``[event, freq, time]`` on them,
    from the strain ``[time]`` brought down to ``scan_rate`` (its valid segments shrink by the filter's reach)."""
    edge = edge_seconds(sample_rate, scan_rate)
    valid = [(s + edge, e - edge) for s, e in segments if e - s > 2 * edge]
    half = config.duration / 2
    events = np.array([g for g in event_gps if covers(valid, g - half, g + half)], dtype=np.float64)
    if len(events) == 0:
        return events, None
    x = torch.as_tensor(resample(strain, sample_rate, scan_rate), device=device)[None]  # float64: raw strain needs it to whiten
    psd = psd_of_segments(x[0], t0, scan_rate, valid, config.fftlength, config.psd_seconds)
    if psd is None:
        return events[:0], None
    n = int(round(config.duration * scan_rate))
    starts = [int(round((g - half - t0) * scan_rate)) for g in events]
    masks = [
        _peak_masks(x, starts[b : b + config.batch], n, scan_rate, psd[None, None], config)[:, 0]
        for b in range(0, len(events), config.batch)
    ]
    return events, torch.cat(masks)


def _score_block(
    block: ScanBlock, events: np.ndarray, strain_masks: torch.Tensor, config: AnnalisaConfig, device, out: dict, scored: np.ndarray
) -> None:
    """Fill ``out[k][:, columns]`` and ``scored[:, columns]`` ``[event, channel]`` for the channels of ``block``."""
    x = torch.as_tensor(np.asarray(block.data, dtype=np.float64), device=device)
    rate, half, n = block.sample_rate, config.duration / 2, int(round(config.duration * block.sample_rate))
    psds = [psd_of_segments(x[c], block.t0, rate, block.segments[c], config.fftlength, config.psd_seconds) for c in range(len(block.names))]
    fill = torch.ones(int(config.fftlength * rate) // 2 + 1, dtype=x.dtype, device=device)
    psd = torch.stack([p if p is not None else fill for p in psds])[None]  # [1, channel, freq]
    # rows a channel cannot see (above 95 % of its native Nyquist) never hold its peaks
    in_band = torch.tensor(np.array([config.frequencies() < 0.95 * r / 2 for r in block.native_rates]), device=device)[None, :, :, None]
    for b0 in range(0, len(events), config.batch):
        gps = events[b0 : b0 + config.batch]
        starts = [int(round((g - half - block.t0) * rate)) for g in gps]
        aux = _peak_masks(x, starts, n, rate, psd, config) & in_band
        for k, v in coincidence_counts(strain_masks[b0 : b0 + len(gps)], aux, config.tolerance).items():
            out[k][b0 : b0 + len(gps)] = v.cpu().numpy()
        valid = np.array(
            [[p is not None and covers(seg, g - half, g + half) for p, seg in zip(psds, block.segments, strict=True)] for g in gps]
        )
        scored[b0 : b0 + len(gps)] = valid & (out["strain"][b0 : b0 + len(gps)] > 0)


def score_window(
    strain: np.ndarray,
    t0: float,
    sample_rate: float,
    segments: Segments,
    blocks: Iterable[ScanBlock],
    scan_rate: float,
    event_gps: np.ndarray,
    config: AnnalisaConfig = AnnalisaConfig(),
    device: torch.device | None = None,
) -> WindowScores:
    """Score every auxiliary channel of ``blocks`` (a window's channels at ``scan_rate``, a block at a time) on the
    events, against the strain ``[time]`` at ``sample_rate`` from ``t0`` with its valid ``segments``.

    Events whose ``config.duration`` span is not all valid strain are left out."""
    if scan_rate < (need := config.scan_rate(int(sample_rate))):
        raise ValueError(f"auxiliary channels held at {scan_rate:g} Hz; ANNALISA's band up to {config.frange[1]:g} Hz needs {need} Hz")
    device = device or torch.device("cpu")
    events, strain_masks = _strain_masks(strain, t0, sample_rate, segments, scan_rate, event_gps, config, device)
    names, rates, counts, flags = [], [], [], []
    for block in blocks:
        out = {k: np.zeros((len(events), len(block.names)), dtype=np.int64) for k in COUNTS}
        scored = np.zeros((len(events), len(block.names)), dtype=bool)
        if strain_masks is not None and block.names:
            _score_block(block, events, strain_masks, config, device, out, scored)
        names += block.names
        rates += block.native_rates
        counts.append(out)
        flags.append(scored)
    joined = {k: np.concatenate([c[k] for c in counts], axis=1) if counts else np.zeros((len(events), 0), np.int64) for k in COUNTS}
    scored = np.concatenate(flags, axis=1) if flags else np.zeros((len(events), 0), bool)
    n_rows, n_cols = config.shape
    return WindowScores(names, events, joined, scored, n_rows * n_cols, rates)


def score_window_file(
    summary: RawSegmentSummary, event_gps: np.ndarray, config: AnnalisaConfig, device: torch.device | None = None
) -> WindowScores:
    """:func:`score_window` on the window file ``summary`` describes, its auxiliary channels read a block at a time."""
    strain, t0 = read_strain(summary.path)
    blocks = scan_blocks(summary)
    return score_window(strain, t0, summary.sample_rate, summary.strain.segments, blocks, summary.scan_rate, event_gps, config, device)


# what a reader scans first (the verdict, its statistics, the channel's coverage) before the counts behind them
CHANNEL_COLUMNS = [
    "channel",
    "selected",
    "mean_corr",
    "significance",
    "n_events",
    "windows_scored",
    "native_rate_hz",
    "other_rates",
    "mean_iou",
    "coincidences",
    "expected",
]


def _rates(per_window: list[float]) -> tuple[float, str]:
    """The native rate a channel has in most windows (``per_window``: one rate each, NaN where unknown), and the others
    as "2048 Hz in 3 windows; ..."; NaN and "" where no rate was recorded."""
    rates = pd.Series(per_window, dtype=float).dropna()
    if rates.empty:
        return float("nan"), ""
    counts = rates.value_counts(sort=False)  # first-seen order: the earliest rate wins a tie
    main = float(counts.idxmax())
    return main, "; ".join(f"{r:g} Hz in {n} window{'s' * (n > 1)}" for r, n in counts.items() if r != main)


def _significance(observed: int, expected: float, trials: int) -> float:
    """``-log10`` of the chance that any of ``trials`` channels, each with ``expected`` chance coincidences, reaches
    ``observed`` (``1 - (1 - p)^trials``, computed in logs: ``p`` reaches 1e-300 and below for true witnesses)."""
    log_p = float(poisson.logsf(observed - 1, expected))  # natural log of P(N >= observed)
    if not math.isfinite(log_p):  # P underflows float64 (a strong witness over hours): the tail's first term times
        # the geometric bound on the rest, which matches logsf to 1e-7 where both are finite
        log_p = float(poisson.logpmf(observed, expected)) - math.log1p(-expected / (observed + 1))
    if log_p > -30:
        p_any = -math.expm1(trials * math.log1p(-math.exp(log_p))) if log_p < 0 else 1.0
        return -math.log10(max(p_any, 1e-300))
    return -(log_p + math.log(trials)) / math.log(10)  # p tiny: 1 - (1 - p)^K = K p


def _channel_sums(windows: list[WindowScores], channels: list[str]) -> tuple[dict[str, np.ndarray], list[list[float]]]:
    """Per channel ``[channel]``, summed over the scored events of every window: corr, IoU, events, coincidences and
    their chance expectation, and the windows with a scored event; and each channel's native rate in every window
    holding it. Vectorised over channels: a year of hourly windows of a thousand channels is ~10^7 cells."""
    index = {ch: i for i, ch in enumerate(channels)}
    sums = {k: np.zeros(len(channels)) for k in ("corr", "iou", "n_events", "observed", "expected", "windows_scored")}
    rates: list[list[float]] = [[] for _ in channels]
    for w in windows:
        cols = np.array([index[ch] for ch in w.channels], dtype=int)
        m = w.scored  # [event, channel]; a scored event has strain peaks, so strain and union counts are > 0 there
        c = {k: np.where(m, v, 0).astype(float) for k, v in w.counts.items()}
        sums["corr"][cols] += (c["intersection"] / np.where(m, c["strain"], 1.0)).sum(0)
        sums["iou"][cols] += (c["intersection"] / np.where(m, c["union"], 1.0)).sum(0)
        sums["n_events"][cols] += m.sum(0)
        sums["observed"][cols] += c["intersection"].sum(0)
        sums["expected"][cols] += (c["strain"] * c["aux_area"]).sum(0) / w.pixels
        sums["windows_scored"][cols] += m.any(0)
        for j, col in enumerate(cols):
            rates[col].append(float(w.native_rates[j]) if w.native_rates else math.nan)
    return sums, rates


def channel_table(windows: list[WindowScores], config: AnnalisaConfig = AnnalisaConfig()) -> pd.DataFrame:
    """Aggregate window scores into one row per channel (CHANNEL_COLUMNS), sorted by mean corr.

    Channels may come and go between windows (a channel renamed, removed or added mid-run): every channel any
    window holds gets a row, scored on the windows holding it; ``windows_scored`` counts those where it had valid data
    at an event at least once, and a channel whose native rate changed names its ``other_rates`` (downstream stages
    use ``native_rate_hz`` only)."""
    channels = list(dict.fromkeys(ch for w in windows for ch in w.channels))
    sums, rates = _channel_sums(windows, channels)
    trials = max(int((sums["windows_scored"] > 0).sum()), 1)  # the channels tried
    rows = []
    for i, ch in enumerate(channels):
        n_events, observed, expected = int(sums["n_events"][i]), int(sums["observed"][i]), float(sums["expected"][i])
        mean_corr = float(sums["corr"][i] / n_events) if n_events else 0.0
        mean_iou = float(sums["iou"][i] / n_events) if n_events else 0.0
        significance = _significance(observed, expected, trials) if expected > 0 and observed > 0 else 0.0
        main_rate, other_rates = _rates(rates[i])
        rows.append(
            {
                "channel": ch,
                "n_events": n_events,
                "mean_corr": mean_corr,
                "mean_iou": mean_iou,
                "coincidences": observed,
                "expected": expected,
                "significance": significance,
                "selected": bool(n_events) and config.keeps(mean_corr, mean_iou, significance),
                "windows_scored": int(sums["windows_scored"][i]),
                "native_rate_hz": main_rate,
                "other_rates": other_rates,
            }
        )
    return pd.DataFrame(rows, columns=CHANNEL_COLUMNS).sort_values("mean_corr", ascending=False).reset_index(drop=True)
