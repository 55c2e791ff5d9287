"""Frames decoded once for consecutive windows.

A window is read with margins (``raw_strain_segments.window_read_span``), so the frames at its edges are partly inside the
neighbouring windows too; GWF vectors are decompressed whole, so reading a few seconds of an edge frame costs as much
as reading all of it. :class:`DecodedFrames` asks the decoder for a frame's whole span and, where the caller says from
which GPS time on the next window will read (``keep_from``), keeps those samples for it, bounded in bytes: ingesting
windows one after another decodes every frame once. What is kept for one ``keep_from`` (one next window, read in
several batches of channels) never evicts itself, so a window wider than the budget keeps what fits instead of each
channel evicting the one before; it is evicted for a later ``keep_from``, oldest first. A file is known by its path,
size and modification time: a rewritten file is decoded again. :meth:`DecodedFrames.read_each` decodes the files a
window still needs concurrently (``parallel`` at a time: the decoder has one process per core).
"""

from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from glitchflow_assets.core import settings
from glitchflow_assets.core.io.frames import ChannelData, FrameError, FrameFile

Decode = Callable[[FrameFile, list[str], str, float, float], dict[str, ChannelData]]
DEFAULT_BUDGET_BYTES = 512 * 2**20  # a minute of ~700 channels of a Virgo-like run (mostly slow, float32)


def _slice(channel: ChannelData, start: float, end: float) -> ChannelData:
    """The part of ``channel`` over [start, end) (the same samples a read of that span returns)."""
    i0 = max(0, round((start - channel.t0) * channel.sample_rate))
    i1 = min(channel.data.size, round((end - channel.t0) * channel.sample_rate))
    return ChannelData(channel.name, channel.data[i0:i1], channel.t0 + i0 / channel.sample_rate, channel.sample_rate, channel.unit)


def _covers(channel: ChannelData, start: float, end: float) -> bool:
    """Whether ``channel`` holds every sample of [start, end)."""
    half = 0.5 / channel.sample_rate
    return channel.t0 <= start + half and channel.t0 + channel.data.size / channel.sample_rate >= end - half


class DecodedFrames:
    """``read(frame, channels, kind, start, end)`` like ``decoder.read``; :meth:`read_each` keeps, within ``budget_bytes``,
    the samples a later read of the next window will ask for again."""

    def __init__(self, decode: Decode, budget_bytes: int = DEFAULT_BUDGET_BYTES, parallel: int | None = 1):
        """``parallel``: files decoded at once; None: as many as there are decoder processes (read when first used)."""
        self.decode, self.budget_bytes, self._parallel = decode, budget_bytes, parallel
        self._kept: OrderedDict[tuple, tuple[float, ChannelData]] = OrderedDict()  # key -> (keep_from it was kept for, samples)
        self._bytes = 0
        self._threads: ThreadPoolExecutor | None = None
        self.decoded_seconds = 0.0  # of frame data asked of the decoder (for benchmarks)

    def _key(self, frame: FrameFile, kind: str, channel: str) -> tuple:
        stat = frame.path.stat()
        return (str(frame.path), stat.st_size, stat.st_mtime_ns, kind, channel)

    def read(
        self, frame: FrameFile, channels: list[str], kind: str, start: float, end: float, keep_from: float | None = None
    ) -> dict[str, ChannelData]:
        """``channels`` of ``frame`` over [start, end); raises the decoder's :class:`FrameError`."""
        (got,) = self.read_each([(frame, channels)], kind, start, end, keep_from)
        if isinstance(got, FrameError):
            raise got
        return got

    def read_each(
        self, reads: list[tuple[FrameFile, list[str]]], kind: str, start: float, end: float, keep_from: float | None = None
    ) -> list[dict[str, ChannelData] | FrameError]:
        """For each (frame, channels) of ``reads``, in order, the channels over [start, end), or the
        :class:`FrameError` its decoding raised (one damaged file does not hide what the others hold). Decoded
        samples from GPS ``keep_from`` on are kept for a later read (none when None)."""
        keys = [{c: self._key(frame, kind, c) for c in channels} for frame, channels in reads]
        spans = [(max(start, frame.gps_start), min(end, frame.gps_end)) for frame, _ in reads]
        held = [{c: k for c, k in keys[i].items() if k in self._kept and _covers(self._kept[k][1], *spans[i])} for i in range(len(reads))]
        missing = [[c for c in keys[i] if c not in held[i]] for i in range(len(reads))]

        def decode(i: int) -> dict[str, ChannelData] | FrameError:
            frame = reads[i][0]
            try:
                return self.decode(frame, missing[i], kind, frame.gps_start, frame.gps_end)
            except FrameError as exc:
                return exc

        todo = [i for i in range(len(reads)) if missing[i]]
        parallel = self._parallel or settings.frame_decoders()
        if parallel > 1 and self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="glitchflow-decode")
        decoded = dict(zip(todo, self._threads.map(decode, todo) if parallel > 1 else map(decode, todo), strict=True))
        out: list[dict[str, ChannelData] | FrameError] = []
        for i, (frame, channels) in enumerate(reads):
            if isinstance(decoded.get(i), FrameError):
                out.append(decoded[i])
                continue
            self.decoded_seconds += frame.duration * len(missing[i])
            got = {c: _slice(self._kept[k][1], *spans[i]) for c, k in held[i].items()}
            for name, channel in decoded.get(i, {}).items():
                got[name] = _slice(channel, *spans[i])
                if keep_from is not None and frame.gps_end > keep_from:
                    self._keep(keys[i][name], _slice(channel, keep_from, frame.gps_end), keep_from)
            out.append({c: got[c] for c in channels if c in got})
        return out

    def _keep(self, key: tuple, channel: ChannelData, keep_from: float) -> None:
        """Keep ``channel`` under ``key`` if it fits, evicting what was kept for other ``keep_from`` (oldest first)."""
        if key in self._kept:
            self._bytes -= self._kept.pop(key)[1].data.nbytes
        while self._bytes + channel.data.nbytes > self.budget_bytes and self._kept:
            oldest = next(iter(self._kept))
            if self._kept[oldest][0] == keep_from:
                return  # full of what the same next window needs
            self._bytes -= self._kept.pop(oldest)[1].data.nbytes
        if self._bytes + channel.data.nbytes <= self.budget_bytes:
            # a copy: a view would hold the whole decoded frame in memory
            self._kept[key] = (keep_from, ChannelData(channel.name, channel.data.copy(), channel.t0, channel.sample_rate, channel.unit))
            self._bytes += channel.data.nbytes
