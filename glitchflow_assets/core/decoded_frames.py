"""Frames decoded once for consecutive windows.

A window is read with margins (``raw_segments.window_read_span``), so the frames at its edges are partly inside the
neighbouring windows too; GWF vectors are decompressed whole, so reading a few seconds of an edge frame costs as much
as reading all of it. :class:`DecodedFrames` asks the decoder for a frame's whole span and keeps the samples of the
last frames read (bounded in bytes), so ingesting windows one after another decodes every frame once. A file is
known by its path, size and modification time: a rewritten file is decoded again.
"""

from collections import OrderedDict
from collections.abc import Callable

from glitchflow_assets.core.frames import ChannelData, FrameFile

Decode = Callable[[FrameFile, list[str], str, float, float], dict[str, ChannelData]]
DEFAULT_BUDGET_BYTES = 512 * 2**20  # a few 60 s frames of every channel of a Virgo-like run


def _slice(channel: ChannelData, start: float, end: float) -> ChannelData:
    """The part of a whole-frame read over [start, end) (the same samples a read of that span returns)."""
    i0 = max(0, round((start - channel.t0) * channel.sample_rate))
    i1 = min(channel.data.size, round((end - channel.t0) * channel.sample_rate))
    return ChannelData(channel.name, channel.data[i0:i1], channel.t0 + i0 / channel.sample_rate, channel.sample_rate, channel.unit)


class DecodedFrames:
    """``read(frame, channels, kind, start, end)`` like ``frame_decoder.read``, decoding each (file, channel) once
    while it stays among the most recently read ``budget_bytes`` of samples."""

    def __init__(self, decode: Decode, budget_bytes: int = DEFAULT_BUDGET_BYTES):
        self.decode, self.budget_bytes = decode, budget_bytes
        self._kept: OrderedDict[tuple, ChannelData] = OrderedDict()
        self.decoded_seconds = 0.0  # of frame data asked of the decoder (for benchmarks)

    def _key(self, frame: FrameFile, kind: str, channel: str) -> tuple:
        stat = frame.path.stat()
        return (str(frame.path), stat.st_size, stat.st_mtime_ns, kind, channel)

    def read(self, frame: FrameFile, channels: list[str], kind: str, start: float, end: float) -> dict[str, ChannelData]:
        keys = {c: self._key(frame, kind, c) for c in channels}
        missing = [c for c in channels if keys[c] not in self._kept]
        if missing:
            whole = self.decode(frame, missing, kind, frame.gps_start, frame.gps_end)
            self.decoded_seconds += frame.duration * len(missing)
            for name, channel in whole.items():
                self._kept[keys[name]] = channel
        out = {}
        for c in channels:
            if keys[c] in self._kept:
                self._kept.move_to_end(keys[c])
                out[c] = _slice(self._kept[keys[c]], start, end)
        self._trim()
        return out

    def _trim(self) -> None:
        size = sum(c.data.nbytes for c in self._kept.values())
        while size > self.budget_bytes and len(self._kept) > 1:
            _, oldest = self._kept.popitem(last=False)
            size -= oldest.data.nbytes
