"""Step stdout/stderr kept on disk for the UI and mirrored to the terminal, by a mirror that dies with its process.

Dagster's ``LocalComputeLogManager`` mirrors a run's captured output with ``tail -F`` and only afterwards starts
the watcher that kills that ``tail`` once its parent is gone. A process killed between the two (SIGKILL, the
kernel's OOM killer) leaves ``tail -F`` behind for good, holding the terminal or pipe it inherited: ``glitchflow
materialize ... | tee log`` then never ends. Here the mirror holds a lifeline, the read end of a pipe whose only
writer is the process it serves; the kernel closes that writer when the process exits, however it exits (before it
is even reaped: ``tail --pid`` would wait on a zombie whose parent reads the pipe before reaping), and the mirror
stops. There is no window: the lifeline exists before the mirror does.
"""

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import dagster as dg
from dagster._core.storage.compute_log_manager import CapturedLogContext
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, ComputeIOType, LocalComputeLogManager

from glitchflow_assets.core import settings

MIRROR_STOP_TIMEOUT_S = 30.0
# `tail` copies the file; `cat` waits for the lifeline (stdin) to close, then the mirror ends with `tail`.
MIRROR_SCRIPT = 'tail -F -c +0 "$1" & cat >/dev/null; kill $!'


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
    and a mirror bound to this process's life copies it back to where ``stream`` pointed before. A stream
    without a file descriptor (a test's captured stdout) is left alone."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    lifeline_end, lifeline = os.pipe()  # not inheritable: no other child of this process holds `lifeline`
    mirror = subprocess.Popen(["sh", "-c", MIRROR_SCRIPT, "glitchflow-log-mirror", str(path)], stdin=lifeline_end, stdout=fd)
    os.close(lifeline_end)
    saved = os.dup(fd)
    try:
        with path.open("a", buffering=1, encoding="utf8") as file:
            stream.flush()
            os.dup2(file.fileno(), fd)
            try:
                yield
            finally:
                stream.flush()
                os.dup2(saved, fd)
    finally:
        os.close(saved)
        os.close(lifeline)
        mirror.wait(MIRROR_STOP_TIMEOUT_S)
