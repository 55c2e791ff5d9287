"""The terminal mirror of captured step output dies with its process, even one killed at the worst moment."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# A process that captures its output with ``manager`` and is SIGKILLed right after the mirror (``tail``) starts:
# the moment Dagster's own manager has not yet started the watcher that would stop that ``tail``.
KILLED_AFTER_TAIL_STARTS = textwrap.dedent(
    """
    import os, signal, subprocess, sys
    from {module} import {manager}

    started = subprocess.Popen.__init__
    def popen(self, args, *a, **k):
        started(self, args, *a, **k)
        if "tail" in " ".join(args):
            print("captured output", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    subprocess.Popen.__init__ = popen
    with {manager}(sys.argv[1]).capture_logs(["run", "step"]):
        pass
    """
)


def _killed_with(module: str, manager: str, logs: Path) -> subprocess.Popen:
    """The killed process, not yet reaped: a caller reading its output to the end before reaping it, as
    ``subprocess.run(..., capture_output=True)`` does, must still see the end."""
    script = KILLED_AFTER_TAIL_STARTS.format(module=module, manager=manager)
    return subprocess.Popen([sys.executable, "-c", script, str(logs)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _tails_of(logs: Path) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"tail .*{logs}"], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def test_a_killed_process_leaves_no_mirror_holding_its_terminal(tmp_path):
    """``glitchflow materialize | tee log`` killed by the OOM killer: the pipe closes, nothing stays behind."""
    logs = tmp_path / "compute_logs"
    process = _killed_with("glitchflow_assets.lib.compute_logs", "MirrorDiesWithProcessComputeLogManager", logs)
    out, _ = process.communicate(timeout=60)  # EOF: the mirror left with its process
    assert process.returncode == -9 and "captured output" in out
    assert not _tails_of(logs)


def test_dagsters_own_mirror_is_left_behind_by_the_same_kill(tmp_path):
    """Why the manager above exists: with Dagster's ``LocalComputeLogManager`` the same kill leaves ``tail -F``
    holding the pipe for good (when this fails, Dagster has closed the window and lib/compute_logs.py can go)."""
    logs = tmp_path / "compute_logs"
    process = _killed_with("dagster._core.storage.local_compute_log_manager", "LocalComputeLogManager", logs)
    assert process.wait(60) == -9
    orphans = _tails_of(logs)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            process.communicate(timeout=5)
        assert orphans
    finally:
        subprocess.run(["kill", *map(str, orphans)], check=False)
        process.communicate(timeout=30)
