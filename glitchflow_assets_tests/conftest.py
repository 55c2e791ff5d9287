"""Shared fixtures: a small simulated SIM data set (made once per session) and an isolated home."""

import dataclasses
import os
from pathlib import Path

import pytest

from glitchflow_assets.core.runs import ObservingRun, load_registry
from glitchflow_assets.core.sim import simulate
from glitchflow_assets.core.windows import Window, windows_overlapping

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
SIM_SEED = 7
SIM_MINUTES = 10  # two 5-minute windows


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own GLITCHFLOW_HOME / DAGSTER_HOME and no user registry."""
    monkeypatch.setenv("GLITCHFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GLITCHFLOW_RUNS", raising=False)
    monkeypatch.delenv("GLITCHFLOW_STORAGE", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    return tmp_path / "home"


def sim_run(frames_dir: Path, **changes) -> ObservingRun:
    run = load_registry()["SIM"]
    return dataclasses.replace(run, frames=dataclasses.replace(run.frames, path=Path(frames_dir)), **changes)


@pytest.fixture(scope="session")
def sim_frames(tmp_path_factory) -> Path:
    """Frames of the first SIM_MINUTES of SIM, plus one minute either side (read-only: copy to modify)."""
    out = tmp_path_factory.mktemp("sim_frames")
    run = load_registry()["SIM"]
    simulate(out, run.gps_start - 60, SIM_MINUTES * 60 + 120, frame_length=60, seed=SIM_SEED)
    for path in out.rglob("*"):
        if path.is_file():
            os.chmod(path, 0o444)
    return out


@pytest.fixture(scope="session")
def sim_windows() -> list[Window]:
    run = load_registry()["SIM"]
    return windows_overlapping(run.gps_start, run.gps_start + SIM_MINUTES * 60, run.cadence)


@pytest.fixture
def frames_copy(sim_frames, tmp_path) -> Path:
    """A writable copy of the simulated frames (for tests that damage, delete or add files)."""
    import shutil

    dest = tmp_path / "frames"
    shutil.copytree(sim_frames, dest)
    for path in dest.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return dest


def real_file(name: str) -> Path:
    path = REAL_DATA / name
    if not path.exists():
        pytest.fail(f"real detector data file {path} is missing (it ships in ../shared/data/real)")
    return path
