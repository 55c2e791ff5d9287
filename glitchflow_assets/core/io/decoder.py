"""Frame decoding in child processes, so that a damaged file can crash a decoder but never the caller.

Frame libraries trust a file's end record and table of contents: LALFrame reads garbage from a truncated file
whose last bytes happen to look like an end record and dies with SIGSEGV, taking the whole process (an
in-process run, a Dagster step) with it; frameCPP (through gwframe, the decoder used here) is a C++ library of
the same kind. Every read therefore runs in a long-lived worker process, started on first use; a crash or a hang
becomes a :class:`FrameError` naming the file, and the next call starts a fresh worker. Up to
``settings.frame_decoders()`` workers serve concurrent callers (decoding is CPU-bound and single-threaded, so files
decoded from several threads use several cores); a lone caller keeps reusing one worker.

A library's messages on stderr during a failed request are added to the error the caller gets.

Nothing crosses the pipe as a pickle: requests and replies are JSON, samples are raw buffers.
"""

import atexit
import json
import math
import os
import queue
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from glitchflow_assets.core import settings
from glitchflow_assets.core.io.frames import (
    ChannelData,
    FrameError,
    FrameFile,
    check_gwf_framing,
    decode_channels,
    gwosc_dq_channel,
    parse_frame_name,
)

# A decoder that has not answered within this time is presumed hung (e.g. on a stalled network mount).
# Decoder processes serving concurrent reads: one per core, at most 4 (each holds a frame's samples).


@dataclass(frozen=True)
class FrameContents:
    """What a file's table of contents says it holds: channel names and the GPS spans of its frames."""

    channels: frozenset[str]
    spans: tuple[tuple[float, float], ...]

    @property
    def gps_start(self) -> float:
        return min(s for s, _ in self.spans)

    @property
    def gps_end(self) -> float:
        return max(e for _, e in self.spans)

    def disagreement(self, frame: FrameFile) -> str:
        """Why these contents are not what ``frame``'s name declares ('' when they are)."""
        if math.floor(self.gps_start) == frame.gps_start and math.ceil(self.gps_end) == frame.gps_end:
            return ""
        return f"its frames cover GPS {self.gps_start:g}-{self.gps_end:g}, its name declares {frame.gps_start}-{frame.gps_end}"


def probe(frame: FrameFile, kind: str, strain_channel: str) -> FrameContents:
    """Channels and frame spans of ``frame``, from its table of contents (no samples decoded)."""
    reply, _ = _workers().call({"op": "probe", "path": str(frame.path), "kind": kind, "strain": strain_channel}, frame)
    return FrameContents(frozenset(reply["channels"]), tuple((float(s), float(e)) for s, e in reply["spans"]))


def read_file(path: str | Path, channels: list[str] | None = None) -> dict[str, ChannelData]:
    """Every channel of the GWF file at ``path`` (or the named ones) over the span its name declares."""
    frame = parse_frame_name(path)
    names = sorted(probe(frame, "gwf", "").channels) if channels is None else channels
    return read(frame, names, "gwf", frame.gps_start, frame.gps_end)


def read(frame: FrameFile, channels: list[str], kind: str, gps_start: float, gps_end: float) -> dict[str, ChannelData]:
    """Read ``channels`` over [gps_start, gps_end) ∩ the file's span (see :func:`frames.decode_channels`)."""
    request = {"op": "read", "path": str(frame.path), "kind": kind, "channels": channels, "start": gps_start, "end": gps_end}
    reply, buffers = _workers().call(request, frame)
    return {
        m["name"]: ChannelData(m["name"], np.frombuffer(buf, dtype=m["dtype"]), m["t0"], m["sample_rate"], m["unit"])
        for m, buf in zip(reply["series"], buffers, strict=True)
    }


class _Worker:
    """The parent's handle on the decoding process: one request at a time, restarted after a crash.

    The worker is ``python -m glitchflow_assets.core.io.decoder`` (a plain subprocess, not
    ``multiprocessing``, so that the caller's main module is never re-imported); messages are
    length-prefixed on its stdin/stdout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def call(self, request: dict, frame: FrameFile) -> tuple[dict, list[bytearray]]:
        with self._lock:
            process = self._ensure()
            try:
                _send(process.stdin, json.dumps(request).encode())
                timeout = settings.frame_read_timeout_s()
                if not select.select([process.stdout], [], [], timeout)[0]:
                    self.stop()
                    raise FrameError(f"{frame.path}: the frame decoder did not answer in {timeout:g} s (hung file or file system)")
                reply = json.loads(_recv(process.stdout))
                buffers = [_recv(process.stdout) for _ in reply.get("series", [])]
            except (EOFError, OSError) as exc:
                raise FrameError(f"{frame.path}: {self._death()} while reading this file; it is damaged") from exc
        if "error" in reply:
            raise FrameError(f"{frame.path}: {reply['error']}")
        return reply, buffers

    def _ensure(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, close_fds=True
            )
        return self._process

    def _death(self) -> str:
        process, self._process = self._process, None
        try:
            code = process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if code < 0:
            return f"the frame decoder was killed by signal {-code} ({signal.Signals(-code).name})"
        return f"the frame decoder exited (code {code})"

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None


class _WorkerPool:
    """Hands each call an idle worker, waiting for one when all ``size`` are busy. Last in, first out, so that
    sequential calls all go to one warm worker and a second one is only started for a concurrent call."""

    def __init__(self, size: int) -> None:
        self._workers = [_Worker() for _ in range(size)]
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        for worker in reversed(self._workers):
            self._idle.put(worker)

    def call(self, request: dict, frame: FrameFile) -> tuple[dict, list[bytearray]]:
        worker = self._idle.get()
        try:
            return worker.call(request, frame)
        finally:
            self._idle.put(worker)

    def stop(self) -> None:
        for worker in self._workers:
            worker.stop()


_POOL: list[_WorkerPool] = []  # made on the first read, sized by settings.frame_decoders() then
_POOL_LOCK = threading.Lock()


def _workers() -> _WorkerPool:
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(_WorkerPool(settings.frame_decoders()))
            atexit.register(_POOL[0].stop)
        return _POOL[0]


def _send(stream: BinaryIO, payload: bytes | memoryview) -> None:
    stream.write(struct.pack("<Q", payload.nbytes if isinstance(payload, memoryview) else len(payload)))
    view = memoryview(payload).cast("B")
    while view:  # unbuffered pipes may take less than asked
        view = view[stream.write(view) :]


def _recv(stream: BinaryIO) -> bytearray:
    (size,) = struct.unpack("<Q", _read_exactly(stream, 8))
    return _read_exactly(stream, size)


def _read_exactly(stream: BinaryIO, size: int) -> bytearray:
    """``size`` bytes into one writable buffer (samples are used in place, without a copy)."""
    buf = bytearray(size)
    view, done = memoryview(buf), 0
    while done < size:
        n = stream.readinto(view[done:])
        if not n:
            raise EOFError("the frame decoder closed its output")
        done += n
    return buf


# --- in the worker process -------------------------------------------------------------------------


def _serve() -> None:
    """Answer requests on stdin/stdout until the parent closes the pipe."""
    requests, replies = os.fdopen(os.dup(0), "rb", buffering=0), os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # a library that prints must not corrupt the protocol
    while True:
        try:
            request = json.loads(_recv(requests))
        except EOFError:
            return
        with tempfile.TemporaryFile() as captured:
            saved = os.dup(2)
            os.dup2(captured.fileno(), 2)  # C++ libraries may explain a failure only on fd 2
            try:
                reply = _handle(request)
            except FrameError as exc:  # already says what is wrong, without the path (the parent adds it)
                reply = {"error": str(exc).removeprefix(f"{request['path']}: ")}
            except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent as a message
                reply = {"error": f"{exc.__class__.__name__}: {exc}"}
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            captured.seek(0)
            stderr = captured.read().decode(errors="replace")
        if "error" in reply and stderr.strip():
            reply["error"] += f" (decoder stderr: {stderr.strip().splitlines()[0]})"
        buffers = []
        if "series" in reply:
            reply, buffers = _split_buffers(reply)
        _send(replies, json.dumps(reply).encode())
        for buf in buffers:
            _send(replies, buf)


def _split_buffers(reply: dict) -> tuple[dict, list[memoryview]]:
    meta, buffers = [], []
    for s in reply["series"]:
        data = np.ascontiguousarray(s.pop("data"))
        meta.append({**s, "dtype": data.dtype.str})
        buffers.append(memoryview(data))
    return {"series": meta}, buffers


def _handle(request: dict) -> dict:
    path, kind = request["path"], request["kind"]
    if request["op"] == "probe":
        return _probe_gwosc(path, request["strain"]) if kind == "gwosc-hdf5" else _probe_gwf(path)
    series = decode_channels(Path(path), request["channels"], kind, request["start"], request["end"])
    return {"series": [{"name": c.name, "data": c.data, "t0": c.t0, "sample_rate": c.sample_rate, "unit": c.unit} for c in series.values()]}


def _probe_gwf(path: str) -> dict:
    import gwframe

    check_gwf_framing(Path(path))  # cheap, and a clearer message than the decoder's for the common cases
    # the table of contents only, as gwframe.get_channels reads it (gwframe.get_info also decodes a vector)
    toc = gwframe._core.IFrameFStream(path).get_toc()
    starts = [s + ns * 1e-9 for s, ns in zip(toc.get_time_s(), toc.get_time_ns(), strict=True)]
    spans = [(start, start + dt) for start, dt in zip(starts, toc.get_dt(), strict=True)]
    if not spans:
        raise FrameError("the file holds no frames")
    return {"channels": [*toc.get_adc(), *toc.get_proc(), *toc.get_sim()], "spans": spans}


def _probe_gwosc(path: str, strain_channel: str) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        start, duration = float(f["meta/GPSstart"][()]), float(f["meta/Duration"][()])
        dq = [gwosc_dq_channel(strain_channel)] if "quality/simple/DQmask" in f else []
    return {"channels": [strain_channel, *dq], "spans": [(start, start + duration)]}


if __name__ == "__main__":
    _serve()
