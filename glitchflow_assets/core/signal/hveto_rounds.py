"""hveto beside ANNALISA: the LIGO standard's hierarchical veto rounds, run by hveto's own functions on our triggers.

hveto (PyPI ``hveto``) compares the times of strain triggers with those of every auxiliary channel's triggers. Each
round tries every (auxiliary SNR threshold, time window) pair on every channel, takes the channel and pair of
highest Poisson significance (``hveto.core.find_max_significance``), and, if that reaches the minimum significance,
vetoes a window around each of the winner's triggers above its threshold in the strain and in every channel
(``hveto.core.veto``, ``veto_all``) before the next round. The loop here is the one hveto's command line runs
(``hveto/__main__.py``), without its files, plots and segment database; the algorithm is hveto's functions, called
as that loop calls them.

Triggers come from the platform's own excess-power search (:mod:`glitchflow_assets.core.signal.events`): the strain's
are ``glitch_events``; each auxiliary channel's are the same search on that channel as a window file holds it (at
the scan rate), its band capped where the channel's own sample rate ends. Tables are gwpy ``EventTable`` in hveto's
layout: ``time, frequency, snr, channel``, sorted by time.
"""

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from gwpy.segments import Segment, SegmentList
from gwpy.table import EventTable
from hveto import core as hveto_core
from hveto.config import HvetoConfigParser

from glitchflow_assets.core.artifacts.raw_strain_segments import RawSegmentSummary, scan_blocks
from glitchflow_assets.core.runs.segments import Segments
from glitchflow_assets.core.signal.events import EventSearchConfig, window_events

TRIGGER_COLUMNS = ("time", "frequency", "snr", "channel")  # hveto's order: time, then the frequency and SNR columns
_DEFAULTS = HvetoConfigParser.HVETO_DEFAULTS  # hveto's own configuration defaults, not copies of them
SEARCH = EventSearchConfig()  # glitch_events' search, as the asset runs it


@dataclass(frozen=True)
class HvetoConfig:
    """hveto's ``[hveto]`` settings (its defaults), its primary trigger threshold, and channels it must never use."""

    snr_thresholds: tuple[float, ...] = tuple(map(float, _DEFAULTS["hveto"]["snr-thresholds"]))
    time_windows: tuple[float, ...] = tuple(map(float, _DEFAULTS["hveto"]["time-windows"]))
    minimum_significance: float = float(_DEFAULTS["hveto"]["minimum-significance"])
    primary_snr: float = float(_DEFAULTS["primary"]["snr-threshold"])  # strain triggers below it are not used
    unsafe: tuple[str, ...] = ()  # hveto's [safety] unsafe-channels: never candidates (e.g. DARM, a strain proxy)


class NoTriggers(ValueError):
    """hveto has nothing to compare: no strain triggers, or no auxiliary channel with any."""


def trigger_table(events: pd.DataFrame, channel: str) -> EventTable:
    """Our event table (``events.EVENT_COLUMNS``) -> hveto's trigger layout for ``channel``, sorted by time."""
    table = EventTable(
        [events["gps"].to_numpy(float), events["frequency"].to_numpy(float), events["snr"].to_numpy(float), np.full(len(events), channel)],
        names=TRIGGER_COLUMNS,
    )
    table.sort("time")
    return table


def channel_search_config(sample_rate: float, native_rate: float, config: EventSearchConfig = SEARCH) -> EventSearchConfig | None:
    """``config`` with its band's top capped where a channel held at ``sample_rate`` (native ``native_rate``) still has
    data at the lowest Q (gwpy's tiling rule on 95 % of the lower Nyquist: what ingest's filters keep); None where
    nothing of the band is left."""
    usable = min(sample_rate, 0.95 * native_rate if math.isfinite(native_rate) else sample_rate)
    top = min(config.frange[1], usable / 2 / (1 + math.sqrt(11) / config.qrange[0]))
    return replace(config, frange=(config.frange[0], top)) if top > 1.5 * config.frange[0] else None


def channel_triggers(
    data: np.ndarray,
    t0: float,
    sample_rate: float,
    native_rate: float,
    segments: Segments,
    window: tuple[float, float],
    channel: str,
    config: EventSearchConfig = SEARCH,
) -> EventTable:
    """The triggers of one auxiliary channel ``data[time]`` (from GPS ``t0``) that a window owns: the strain's event
    search (:func:`events.window_events`, margins included) inside the channel's valid ``segments``, in its band."""
    search = channel_search_config(sample_rate, native_rate, config)
    if search is None:
        return trigger_table(pd.DataFrame(columns=["gps", "frequency", "snr"]), channel)
    events, _ = window_events(data, t0, sample_rate, segments, window, search)
    return trigger_table(events, channel)


def window_triggers(summary: RawSegmentSummary, config: EventSearchConfig = SEARCH) -> dict[str, EventTable]:
    """Every auxiliary channel's triggers owned by the window file ``summary`` describes (read a block at a time)."""
    out = {}
    for block in scan_blocks(summary):
        for i, name in enumerate(block.names):
            out[name] = channel_triggers(
                block.data[i], block.t0, block.sample_rate, block.native_rates[i], block.segments[i], summary.window_span, name, config
            )
    return out


@dataclass
class Round:
    """One hveto round's winner and what its vetoes did (hveto's ``HvetoRound`` and ``HvetoWinner`` fields)."""

    n: int
    channel: str
    significance: float
    snr: float  # the winner's auxiliary SNR threshold
    window: float  # s, the coincidence (and veto) window
    mu: float  # coincidences expected by chance
    used: int  # winner's triggers above threshold (its vetoes)
    coincident: int  # of them, those coincident with a strain trigger (use percentage = coincident / used)
    vetoed: int  # strain triggers vetoed this round
    remaining: int  # strain triggers left for the next round
    deadtime: float  # s of livetime this round vetoes
    vetoed_times: np.ndarray = field(repr=False)  # [vetoed] GPS of the strain triggers it vetoed

    @property
    def use_percentage(self) -> float:
        return 100.0 * self.coincident / self.used if self.used else 0.0

    @property
    def efficiency(self) -> float:
        """Percentage of the strain triggers this round started with that it vetoed (hveto's round efficiency)."""
        return 100.0 * self.vetoed / (self.vetoed + self.remaining)


@dataclass
class HvetoResult:
    rounds: list[Round]
    livetime: float  # s analysed
    primary: int  # strain triggers at or above the primary threshold
    stop: str  # why the rounds ended, in words
    significances: dict[str, float]  # every channel's best significance in the last round tried

    def table(self) -> pd.DataFrame:
        cols = ["n", "channel", "significance", "snr", "window", "mu", "used", "coincident", "vetoed", "remaining", "deadtime"]
        df = pd.DataFrame([{c: getattr(r, c) for c in cols} for r in self.rounds], columns=cols)
        df["use_percentage"] = [r.use_percentage for r in self.rounds]
        df["efficiency"] = [r.efficiency for r in self.rounds]
        return df


def hveto_rounds(
    primary: EventTable, auxiliary: dict[str, EventTable], segments: Segments, config: HvetoConfig = HvetoConfig()
) -> HvetoResult:
    """hveto's rounds on strain triggers ``primary`` and per-channel ``auxiliary`` triggers (:func:`trigger_table`
    layout) over the analysed ``segments``: winners in order, until the best significance falls below
    ``config.minimum_significance`` or nothing is left to veto.

    Raises :class:`NoTriggers` (naming the livetime and what is empty) when there is nothing to compare."""
    analysed = SegmentList(Segment(float(s), float(e)) for s, e in segments).coalesce()
    livetime = float(abs(analysed))
    strain = primary[primary["snr"] >= config.primary_snr]
    strain.sort("time")  # hveto's coincidence search bisects these times
    channels = {c: t for c, t in auxiliary.items() if c not in config.unsafe and len(t)}
    if not len(strain):
        raise NoTriggers(f"hveto: no strain triggers at SNR >= {config.primary_snr:g} in {livetime:.0f} s of livetime: nothing to veto")
    if not channels:
        unsafe = set(auxiliary) & set(config.unsafe)
        raise NoTriggers(
            f"hveto: none of the {len(auxiliary)} auxiliary channels has triggers in {livetime:.0f} s of livetime"
            + (f" (unsafe, left out: {', '.join(sorted(unsafe))})" if unsafe else "")
        )
    first = len(strain)
    rounds: list[Round] = []
    n = 1
    hround = hveto_core.HvetoRound(n, strain["channel"][0], segments=analysed)
    while True:
        winner, significances = hveto_core.find_max_significance(
            strain, channels, hround.primary, list(config.snr_thresholds), list(config.time_windows), hround.livetime
        )
        if winner.significance < config.minimum_significance:
            stop = f"round {n}: best significance {winner.significance:.2f} ({winner.name}) < {config.minimum_significance:g}"
            break
        used = channels[winner.name][channels[winner.name]["snr"] >= winner.snr]
        coincident = hveto_core.find_coincidences(used["time"], strain["time"], dt=winner.window)
        hround.vetoes = winner.get_segments(used["time"])
        strain, vetoed = hveto_core.veto(strain, hround.vetoes)
        dead, _ = hround.deadtime
        rounds.append(
            Round(
                n,
                winner.name,
                winner.significance,
                winner.snr,
                winner.window,
                winner.mu,
                used=len(used),
                coincident=len(coincident),
                vetoed=len(vetoed),
                remaining=len(strain),
                deadtime=dead,
                vetoed_times=np.asarray(vetoed["time"], float),
            )
        )
        channels = {c: t for c, t in hveto_core.veto_all(channels, hround.vetoes).items() if len(t)}
        if not len(strain) or not channels:
            stop = f"round {n}: no {'strain triggers' if not len(strain) else 'auxiliary triggers'} left to veto"
            significances = {}
            break
        n += 1
        hround = hveto_core.HvetoRound(n, hround.primary, segments=hround.segments - hround.vetoes)
    return HvetoResult(rounds, livetime, first, stop, significances)
