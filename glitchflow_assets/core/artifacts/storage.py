"""Artifact files on disk: atomic writes (readers see the old file or the complete new one, never a
partial file), checked reads that name the file when it is damaged, and content digests."""

import errno
import fcntl
import glob
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import h5py
import numpy as np


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_dead_temporaries(final: Path) -> list[Path]:
    """Delete temporaries of ``final`` left by writers on this host that no longer exist (a killed run).

    Temporaries of other hosts are left alone: their process ids mean nothing here.
    """
    prefix, removed = _temporary_prefix(final), []
    for tmp in final.parent.glob(f"{glob.escape(prefix)}*"):
        pid = tmp.name[len(prefix) :].split("-")[0]  # .NAME.tmp-HOST-PID-UUID
        if pid.isdigit() and not process_alive(int(pid)):
            with suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _temporary_prefix(final: Path) -> str:
    return f".{final.name}.tmp-{socket.gethostname()}-"


WRITE_FAILURES = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


@contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``final``; on success fsync and rename it onto ``final``.

    On any exception the temporary file is removed and ``final`` is left as it was; a writer killed outright
    leaves its temporary behind, and the next write of ``final`` on the same host removes it. Temporaries
    start with '.' so frame discovery and listings never pick them up.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(final)
    tmp = final.with_name(f"{_temporary_prefix(final)}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except OSError as exc:
        if exc.errno not in WRITE_FAILURES:
            raise
        # a full disk, a quota, a file-size limit, an I/O error: name the file (HDF5 names only the temporary)
        raise OSError(exc.errno, f"{final}: not written ({exc}); the earlier file, if any, is kept") from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(final: str | Path, data: bytes) -> None:
    """``data`` (a figure, a document) written to ``final`` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_json_document(path: str | Path, document: dict, figure: bytes | None = None, indent: int = 2) -> None:
    """``document`` as JSON at ``path``, and ``figure`` (PNG) beside it with the suffix ``.png``; each atomic."""
    if figure is not None:
        write_bytes(Path(path).with_suffix(".png"), figure)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, indent=indent))


def read_json_document(path: str | Path, what: str) -> dict:
    """The JSON document at ``path``; a ValueError naming the file and ``what`` it should hold when it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the {what} ({exc})") from exc


class LockTimeout(TimeoutError):
    """Another writer held an artifact's lock for longer than the caller would wait."""


@contextmanager
def exclusive(lock_file: str | Path, on_wait: Callable[[str], None] = lambda holder: None, timeout_s: float = 3600.0) -> Iterator[None]:
    """Hold the write lock ``lock_file`` of one artifact for the block.

    Two writers of one artifact (two ``glitchflow materialize`` over overlapping windows, the CLI and a sensor's run)
    take turns: the second waits, calling ``on_wait`` once with who holds the lock, and raises :class:`LockTimeout`
    naming the lock and its holder after ``timeout_s``. The lock is the kernel's (``flock``), so a writer that dies
    releases it at once; the lock file stays (deleting it would let two writers lock two different files).
    """
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another writer"
            on_wait(holder)
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LockTimeout(f"{lock_file}: still locked by {holder} after {timeout_s:g} s") from None
                    time.sleep(0.2)
        fh.truncate(0)
        fh.write(f"{socket.gethostname()} pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# Free space a streamed HDF5 file always leaves: its final flush (metadata, every dataset's 1 MiB chunk cache) must
# never meet a full disk. When it does, HDF5 reports the error but keeps the file half-closed, and the process dies
# of a segmentation fault when it exits (HDF5 1.14, seen on a full tmpfs).
FLUSH_HEADROOM = 32 << 20


class AtomicHDF5Writer:
    """The writer of every HDF5 artifact, a context manager: the file is published (its ``schema`` and
    ``schema_version`` stamped, then renamed onto ``path``) only by :meth:`publish`; leaving the block by an
    exception, or without publishing (a loop left early), discards the partial file and leaves the earlier one
    as it was. Artifacts written in one block use :func:`write_artifact`; streaming writers subclass this and
    call :meth:`reserve` before each write."""

    def __init__(self, path: str | Path, schema: str, schema_version: int):
        self.path = Path(path)
        self.schema, self.schema_version = schema, schema_version
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self.file = h5py.File(self._tmp, "w")
        self._closed = False

    def reserve(self, nbytes: int) -> None:
        """Refuse a write of ``nbytes`` that would leave less than :data:`FLUSH_HEADROOM` free, with ENOSPC (the
        artifact is named as the writer leaves): the file is then closed while HDF5 can still flush it."""
        free = shutil.disk_usage(self._tmp.parent).free
        if free < nbytes + FLUSH_HEADROOM:
            raise OSError(
                errno.ENOSPC, f"No space left on device: {free} bytes free, {nbytes} to write, {FLUSH_HEADROOM} kept for HDF5's flush"
            )

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if not self._closed:
            self._discard(exc or RuntimeError(f"{self.path}: writer left before it finished; nothing written"))
        return False

    def publish(self) -> None:
        self.file.attrs.update({"schema": self.schema, "schema_version": self.schema_version})
        self._close()
        self._atomic.__exit__(None, None, None)

    def _discard(self, exc: BaseException) -> None:
        try:
            self._close()
        finally:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)

    def _close(self) -> None:
        self._closed = True
        self.file.close()


@contextmanager
def write_artifact(path: str | Path, schema: str, schema_version: int) -> Iterator[h5py.File]:
    """An HDF5 artifact written in one block: yields the open file, published when the block completes."""
    with AtomicHDF5Writer(path, schema, schema_version) as writer:
        yield writer.file
        writer.publish()


class ContentDigest:
    """A running SHA-256 over arrays and strings, fed as an artifact is written or read: its data version changes
    exactly when its content does (dtype and shape included), without a second pass over the file."""

    def __init__(self, *values: object):
        self._sha = hashlib.sha256()
        self.update(*values)

    def update(self, *values: object) -> None:
        for value in values:
            array = np.asarray(value)
            if array.dtype.kind in "OUS":  # strings: their UTF-8 bytes, one per line
                self._sha.update(f"str{array.shape}".encode() + "\n".join(map(str, array.ravel())).encode())
            else:
                self._sha.update(f"{array.dtype.str}{array.shape}".encode() + np.ascontiguousarray(array).tobytes())

    def hexdigest(self) -> str:
        return self._sha.hexdigest()[:24]


def sha256sum(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@contextmanager
def open_hdf5(path: str | Path) -> Iterator[h5py.File]:
    """Open an HDF5 artifact read-only; a missing, truncated or damaged file, or a missing dataset in it,
    raises an error that names the file (h5py's own messages do not)."""
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise OSError(f"{path}: cannot open as HDF5 ({exc})") from exc
    with f:
        try:
            yield f
        except (OSError, KeyError) as exc:
            raise type(exc)(f"{path}: damaged or incomplete ({exc})") from exc


@contextmanager
def open_artifact(path: str | Path, schema: str, supported: Collection[int]) -> Iterator[h5py.File]:
    """An HDF5 artifact, read-only (:func:`open_hdf5`), after :func:`check_schema`."""
    with open_hdf5(path) as f:
        check_schema(path, f.attrs, schema, supported)
        yield f


def content_version(value: object) -> str:
    """A short digest of a JSON-serialisable value: the data version an artifact records for Dagster."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:24]


class SchemaError(ValueError):
    """A file of another artifact, or of a schema version this code does not read."""


def check_schema(path: str | Path, attrs: Mapping, schema: str, supported: Collection[int]) -> int:
    """The schema version of the file at ``path`` (root ``attrs``), or a SchemaError naming the file, what it is and
    the versions this code reads."""
    found = attrs.get("schema")
    found = found.decode() if isinstance(found, bytes) else found
    if found != schema:
        raise SchemaError(f"{path}: not a {schema} file (schema {found!r})")
    version = int(attrs.get("schema_version", 0))
    if version not in supported:
        raise SchemaError(
            f"{path}: {schema} schema version {version}; this glitchflow reads version(s) "
            f"{', '.join(map(str, sorted(supported)))}: rematerialize it"
        )
    return version
