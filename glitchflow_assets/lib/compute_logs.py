"""Step stdout/stderr kept on disk for the UI and mirrored to the terminal, by a mirror that dies with its process.

Dagster's ``LocalComputeLogManager`` mirrors a run's captured output with a ``tail -F`` process and only afterwards
starts the watcher process that kills that ``tail`` once its parent is gone. A process killed between the two
(SIGKILL, the kernel's OOM killer) leaves ``tail -F`` behind for good, holding the terminal or pipe it inherited:
``glitchflow materialize ... | tee log`` then never ends. Here the mirror is a thread of the process itself, so it
cannot outlive it, and at the end of a capture it copies the file to its last byte before it stops (a ``tail``
killed at the end may not have caught up).
"""

import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import dagster as dg
from dagster._core.storage.compute_log_manager import CapturedLogContext
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, ComputeIOType, LocalComputeLogManager

from glitchflow_assets.core import settings

MIRROR_POLL_S = 0.1  # how often the terminal catches up with the file during a capture


class MirrorDiesWithProcessComputeLogManager(LocalComputeLogManager):
    """``LocalComputeLogManager`` (same files, same UI) whose terminal mirror cannot outlive the process.

    Instance configuration (``dagster.yaml``)::

        compute_logs:
          module: glitchflow_assets.lib.compute_logs
          class: MirrorDiesWithProcessComputeLogManager
          config:
            base_dir: <directory>  # optional: $DAGSTER_HOME/storage, where Dagster's own manager keeps them
    """

    @classmethod
    def config_type(cls) -> dict:
        return {"base_dir": dg.Field(dg.StringSource, is_required=False), "polling_timeout": dg.Field(dg.Float, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> "MirrorDiesWithProcessComputeLogManager":
        return cls(inst_data=inst_data, **({"base_dir": str(settings.dagster_home() / "storage")} | config_value))

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Iterator[CapturedLogContext]:
        out = Path(self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDOUT]))
        err = Path(self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDERR]))
        with mirrored_to_file(sys.stdout, out), mirrored_to_file(sys.stderr, err):
            yield CapturedLogContext(log_key)
        Path(self.complete_artifact_path(log_key)).touch()  # tells readers the capture is complete


@contextmanager
def mirrored_to_file(stream: TextIO, path: Path) -> Iterator[None]:
    """Everything written to ``stream``'s file descriptor (this process's and its children's) goes to ``path``,
    and a thread copies it on to where ``stream`` pointed before. A stream without a file descriptor (a test's
    captured stdout) is left alone."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    terminal = os.dup(fd)
    mirror = _Mirror(path, terminal)
    mirror.start()
    try:
        with path.open("a", buffering=1, encoding="utf8") as file:
            stream.flush()
            os.dup2(file.fileno(), fd)
            try:
                yield
            finally:
                stream.flush()
                os.dup2(terminal, fd)
    finally:
        mirror.finish()
        os.close(terminal)


class _Mirror(threading.Thread):
    """Copies what is appended to ``path`` to the file descriptor ``target`` until :meth:`finish`."""

    def __init__(self, path: Path, target: int) -> None:
        super().__init__(name=f"glitchflow-log-mirror {path.name}", daemon=True)
        self._source, self._target, self._done = path.open("rb"), target, threading.Event()

    def run(self) -> None:
        with self._source:
            while not self._done.wait(MIRROR_POLL_S):
                self._copy()
            self._copy()  # what was written since the last look

    def finish(self) -> None:
        """Copy the rest and stop."""
        self._done.set()
        self.join()

    def _copy(self) -> None:
        try:
            while chunk := self._source.read(1 << 16):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self._target, view) :]
        except OSError:  # the terminal went away (a closed pipe): the file still holds everything
            self._done.set()
