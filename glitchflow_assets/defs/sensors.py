"""The new-frame sensor: one per observing run, watching its frame directory."""

import time
from pathlib import Path

import dagster as dg

from glitchflow_assets.core import settings
from glitchflow_assets.core.artifacts.raw_strain_segments import read_summary
from glitchflow_assets.core.io import decoder
from glitchflow_assets.core.io.discovery import find_frames
from glitchflow_assets.core.io.frames import FrameError, FrameFile
from glitchflow_assets.core.io.watch import load_state, plan_window_requests, save_state, seed_cursor
from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.core.runs.windows import Window
from glitchflow_assets.lib.names import RAW, TRIGGER_TAG
from glitchflow_assets.lib.resources import GlitchflowStorage

MAX_LOGGED = 20


def _state_dir(storage: GlitchflowStorage, run: ObservingRun) -> Path:
    """Where the sensor's watch state lives (its cursor names a file there: the UI shows the cursor)."""
    return storage.base() / run.name / ".new_frames_sensor"


def _verifier(run: ObservingRun):
    """Why a file's declared span cannot be trusted, from its table of contents ('' when it can)."""

    def verify(frame: FrameFile) -> str:
        try:
            toc = decoder.probe(frame, run.frames.format, run.strain_channel)
        except FrameError as exc:
            return str(exc)
        return toc.disagreement(frame)

    return verify


def _ingested(instance: dg.DagsterInstance, storage: GlitchflowStorage, run: ObservingRun):
    """The (name, size) of the frames each already materialized window was made from (None: not materialized)."""
    materialized = instance.get_materialized_partitions(dg.AssetKey([run.name, RAW]))

    def recorded(window: Window) -> set[tuple[str, int]] | None:
        if window.key not in materialized:
            return None
        try:
            return {(f.name, f.size_bytes) for f in read_summary(storage.window_file(run.name, RAW, window)).frames}
        except (OSError, ValueError, KeyError):
            return None  # gone or damaged: ingest it again

    return recorded


def _seen(files: int, windows: int, pending: int, outside: list[FrameFile], run: ObservingRun) -> str:
    """What a tick that requests nothing saw, for the sensor's page."""
    plural = lambda n, what: f"{n} {what}" + ("" if n == 1 else "s")  # noqa: E731
    parts = [f"{plural(files, 'file')}, {plural(windows, 'window')} unchanged"]
    if pending:
        parts.append(f"{plural(pending, 'window')} waiting for more data")
    if outside:
        parts.append(
            f"{plural(len(outside), 'file')} outside the loaded span GPS {run.gps_start}-{run.gps_end} (first {outside[0].name}): "
            "reload the code location if the run's span follows its frames"
        )
    return "; ".join(parts)


def new_frames_sensor(run: ObservingRun, job_name: str) -> dg.SensorDefinition:
    """The run's new-frame sensor: launches ``job_name`` for each window whose frame files appeared or changed (running by default where the
    registry says ``watch: true``)."""

    @dg.sensor(
        name=f"{run.name}_new_frames",
        job_name=job_name,
        minimum_interval_seconds=settings.sensor_interval_s(),
        default_status=dg.DefaultSensorStatus.RUNNING if run.watch else dg.DefaultSensorStatus.STOPPED,
        description=(
            f"Watches the {run.frames.describe()} for new, late, rewritten or deleted {run.frames.extension} files (by name, "
            f"size and mtime) and ingests the {run.name} windows whose files changed (windows already ingested from the "
            "same files are not ingested again); incomplete windows wait until data reach one window past their end."
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext, storage: GlitchflowStorage) -> dg.SensorResult:
        found, skipped = find_frames(run.frames, run.gps_start, run.gps_end)
        for s in skipped[:MAX_LOGGED]:
            context.log.warning(f"ignoring {s.path}: {s.reason}")
        span = (run.gps_start, run.gps_end)
        cursor = load_state(_state_dir(storage, run), context.cursor)
        if not cursor.windows:  # first evaluation (or a lost cursor): what is already ingested is not ingested again
            cursor = seed_cursor(found, run.cadence, span, _ingested(context.instance, storage, run))
        plan = plan_window_requests(found, cursor, run.cadence, span, now=time.time(), verify=_verifier(run))
        for notice in plan.notices[:MAX_LOGGED]:
            context.log.warning(notice)
        if plan.pending:
            context.log.info(f"{len(plan.pending)} window(s) waiting for more data, first {plan.pending[0]}")
        outside = [f for f, _ in found if f.gps_end <= run.gps_start or f.gps_start >= run.gps_end]
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=r.run_key,
                    partition_key=r.window.key,
                    tags={TRIGGER_TAG: "new_frames", "glitchflow/complete": str(r.complete).lower()},
                )
                for r in plan.requests
            ],
            cursor=save_state(_state_dir(storage, run), plan.cursor),
            skip_reason=None if plan.requests else _seen(len(found), len(plan.cursor.windows), len(plan.pending), outside, run),
        )

    return _sensor
