"""Frames decoded once for consecutive windows.

A window is read with margins (``raw_strain_segments.window_read_span``), so the frames at its edges are partly inside the
neighbouring windows too; GWF vectors are decompressed whole, so reading a few seconds of an edge frame costs as much
as reading all of it. :class:`DecodedFrames` asks the decoder for a frame's whole span and keeps the samples of the
last frames read (bounded in bytes), so ingesting windows one after another decodes every frame once. A file is
known by its path, size and modification time: a rewritten file is decoded again. :meth:`DecodedFrames.read_each`
decodes the files a window still needs concurrently (``parallel`` at a time: the decoder has one process per core).
"""

from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from glitchflow_assets.core import settings
from glitchflow_assets.core.io.frames import ChannelData, FrameError, FrameFile

Decode = Callable[[FrameFile, list[str], str, float, float], dict[str, ChannelData]]
DEFAULT_BUDGET_BYTES = 512 * 2**20  # a few 60 s frames of every channel of a Virgo-like run


def _slice(channel: ChannelData, start: float, end: float) -> ChannelData:
    """The part of a whole-frame read over [start, end) (the same samples a read of that span returns)."""
    i0 = max(0, round((start - channel.t0) * channel.sample_rate))
    i1 = min(channel.data.size, round((end - channel.t0) * channel.sample_rate))
    return ChannelData(channel.name, channel.data[i0:i1], channel.t0 + i0 / channel.sample_rate, channel.sample_rate, channel.unit)


class DecodedFrames:
    """``read(frame, channels, kind, start, end)`` like ``decoder.read``, decoding each (file, channel) once
    while it stays among the most recently read ``budget_bytes`` of samples."""

    def __init__(self, decode: Decode, budget_bytes: int = DEFAULT_BUDGET_BYTES, parallel: int | None = 1):
        """``parallel``: files decoded at once; None: as many as there are decoder processes (read when first used)."""
        self.decode, self.budget_bytes, self._parallel = decode, budget_bytes, parallel
        self._kept: OrderedDict[tuple, ChannelData] = OrderedDict()
        self._threads: ThreadPoolExecutor | None = None
        self.decoded_seconds = 0.0  # of frame data asked of the decoder (for benchmarks)

    def _key(self, frame: FrameFile, kind: str, channel: str) -> tuple:
        stat = frame.path.stat()
        return (str(frame.path), stat.st_size, stat.st_mtime_ns, kind, channel)

    def read(self, frame: FrameFile, channels: list[str], kind: str, start: float, end: float) -> dict[str, ChannelData]:
        """``channels`` of ``frame`` over [start, end); raises the decoder's :class:`FrameError`."""
        (got,) = self.read_each([(frame, channels)], kind, start, end)
        if isinstance(got, FrameError):
            raise got
        return got

    def read_each(
        self, reads: list[tuple[FrameFile, list[str]]], kind: str, start: float, end: float
    ) -> list[dict[str, ChannelData] | FrameError]:
        """For each (frame, channels) of ``reads``, in order, the channels over [start, end), or the
        :class:`FrameError` its decoding raised (one damaged file does not hide what the others hold)."""
        keys = [{c: self._key(frame, kind, c) for c in channels} for frame, channels in reads]
        missing = [[c for c, key in k.items() if key not in self._kept] for k in keys]

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
            for name, channel in decoded.get(i, {}).items():
                self._kept[keys[i][name]] = channel
            self.decoded_seconds += frame.duration * len(missing[i])
            got = {}
            for c in channels:
                if keys[i][c] in self._kept:
                    self._kept.move_to_end(keys[i][c])
                    got[c] = _slice(self._kept[keys[i][c]], start, end)
            out.append(got)
        self._trim()
        return out

    def _trim(self) -> None:
        size = sum(c.data.nbytes for c in self._kept.values())
        while size > self.budget_bytes and len(self._kept) > 1:
            _, oldest = self._kept.popitem(last=False)
            size -= oldest.data.nbytes
