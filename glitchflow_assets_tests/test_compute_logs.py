"""The terminal mirror of captured step output dies with its process, even one killed at the worst moment."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

# A process killed (SIGKILL) while it captures its output with ``manager``: inside the capture, and right after the
# first subprocess the capture starts (Dagster's ``tail``, before the watcher that would stop it).
KILLED_WHILE_CAPTURING = textwrap.dedent(
    """
    import os, signal, subprocess, sys
    from {module} import {manager}

    def kill():
        print("captured output", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    started = subprocess.Popen.__init__
    def popen(self, args, *a, **k):
        started(self, args, *a, **k)
        kill()
    subprocess.Popen.__init__ = popen
    with {manager}(sys.argv[1]).capture_logs(["run", "step"]):
        kill()
    """
)


def _killed_with(module: str, manager: str, logs: Path) -> subprocess.Popen:
    """The killed process, not yet reaped: a caller reading its output to the end before reaping it, as
    ``subprocess.run(..., capture_output=True)`` does, must still see the end."""
    script = KILLED_WHILE_CAPTURING.format(module=module, manager=manager)
    return subprocess.Popen([sys.executable, "-c", script, str(logs)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _tails_of(logs: Path) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"tail .*{logs}"], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def test_a_killed_process_leaves_no_mirror_holding_its_terminal(tmp_path):
    """``glitchflow materialize | tee log`` killed by the OOM killer: the pipe closes, nothing stays behind."""
    logs = tmp_path / "compute_logs"
    process = _killed_with("glitchflow_assets.lib.compute_logs", "MirrorDiesWithProcessComputeLogManager", logs)
    process.communicate(timeout=60)  # EOF: nothing else holds the pipe
    assert process.returncode == -9 and not _tails_of(logs)
    assert "captured output" in "".join(p.read_text() for p in logs.rglob("*.out"))  # it was killed inside the capture


def test_dagsters_own_mirror_is_left_behind_by_the_same_kill(tmp_path):
    """Why the manager above exists: with Dagster's ``LocalComputeLogManager`` the same kill leaves ``tail -F``
    running for good with the dead process's output still open (when this fails, Dagster has closed the window and
    lib/compute_logs.py can go). The output goes to a file here, so that nothing in this test waits on it."""
    logs, output = tmp_path / "compute_logs", tmp_path / "output"
    script = KILLED_WHILE_CAPTURING.format(module="dagster._core.storage.local_compute_log_manager", manager="LocalComputeLogManager")
    with output.open("w") as out:
        process = subprocess.Popen([sys.executable, "-c", script, str(logs)], stdout=out, stderr=subprocess.STDOUT)
    assert process.wait(120) == -9
    orphans = _tails_of(logs)
    try:
        assert orphans and all(os.readlink(f"/proc/{pid}/fd/1") == str(output) for pid in orphans)
        assert "captured output" in output.read_text()
    finally:
        for pid in orphans:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while _tails_of(logs) and time.monotonic() < deadline:
            time.sleep(0.1)


def test_captured_output_reaches_both_the_file_the_ui_reads_and_the_terminal(tmp_path):
    """What a step prints, its subprocesses included, lands in the run's ``.out``/``.err`` files and on the terminal."""
    logs = tmp_path / "compute_logs"
    script = textwrap.dedent(
        """
        import subprocess, sys
        from glitchflow_assets.lib.compute_logs import MirrorDiesWithProcessComputeLogManager
        manager = MirrorDiesWithProcessComputeLogManager(sys.argv[1])
        with manager.capture_logs(["run", "step"]):
            print("step says hello", flush=True)
            subprocess.run(["sh", "-c", "echo child complains >&2"])
        print("out:" + open(manager.get_captured_local_path(["run", "step"], "out")).read().strip())
        print("err:" + open(manager.get_captured_local_path(["run", "step"], "err")).read().strip())
        print("complete:", manager.is_capture_complete(["run", "step"]))
        """
    )
    done = subprocess.run([sys.executable, "-c", script, str(logs)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "out:step says hello" in done.stdout and "err:child complains" in done.stdout and "complete: True" in done.stdout
    assert "step says hello" in done.stdout.replace("out:step says hello", "")  # mirrored to the terminal too
    assert "child complains" in done.stderr
