"""Shared fixtures: a small simulated SIM data set (made once per session) and an isolated home."""

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from glitchflow_assets.core.runs.registry import ObservingRun, load_registry
from glitchflow_assets.core.runs.windows import Window, windows_overlapping
from glitchflow_assets.core.sim import simulate

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
    """SIM reading ``frames_dir`` (or the ``frames`` source given), over its whole registry span (tests write more frames
    after building on it)."""
    run = load_registry(follow_frames=False)["SIM"]
    changes.setdefault("frames", dataclasses.replace(run.frames, path=Path(frames_dir)))
    return dataclasses.replace(run, **changes)


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


def _real_run(tmp_path, monkeypatch, name: str, file: str, spec: str) -> ObservingRun:
    """Register run ``name`` over a copy of a real data file through a user registry ($GLITCHFLOW_RUNS)."""
    frames = tmp_path / f"{name}-frames"
    frames.mkdir()
    shutil.copy(real_file(file), frames)
    registry = tmp_path / "runs.yaml"
    registry.write_text(
        f"runs:\n  {name}: {{{spec}, frames: {{kind: {'gwf' if file.endswith('.gwf') else 'gwosc-hdf5'}, path: '{frames}'}}}}\n"
    )
    monkeypatch.setenv("GLITCHFLOW_RUNS", str(registry))
    return load_registry()[name]


@pytest.fixture
def gw150914_run(tmp_path, monkeypatch) -> ObservingRun:
    """32 s of real LIGO Hanford strain around GW150914 (GWOSC HDF5, 4096 Hz), 1-minute windows."""
    spec = "gps_start: 1126259446, gps_end: 1126259478, window: 1min, strain_channel: 'H1:GWOSC-STRAIN'"
    return _real_run(tmp_path, monkeypatch, "GW150914", "H-H1_LOSC_4_V2-1126259446-32.hdf5", spec)


@pytest.fixture
def hw100916_run(tmp_path, monkeypatch) -> ObservingRun:
    """1 s of real H1/L1/V1 strain (GWF, 16384 Hz) from 2010, V1 as the strain channel."""
    spec = "gps_start: 968654552, gps_end: 968654553, window: 1min, strain_channel: 'V1:h_16384Hz', aux_channels: ['H1:*', 'L1:*']"
    return _real_run(tmp_path, monkeypatch, "HW100916", "HLV-HW100916-968654552-1.gwf", spec)


def drop_frame_file(directory: Path, gps: int, duration: int = 60, mtime: float | None = None, content: bytes = b"x") -> Path:
    """A file named like a SIM frame (the new-frame sensor reads names, sizes and mtimes only)."""
    path = directory / f"V-V1SIM-{gps}-{duration}.gwf"
    path.write_bytes(content)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def sensor_tick(sensor, cursor: str | None = None) -> tuple[list, str]:
    """One evaluation of a new-frame sensor on a fresh instance: (run requests, new cursor)."""
    import dagster as dg

    from glitchflow_assets.lib.resources import GlitchflowStorage

    with dg.instance_for_test() as instance:
        result = sensor(dg.build_sensor_context(cursor=cursor, instance=instance, resources={"storage": GlitchflowStorage()}))
    return result.run_requests, result.cursor
