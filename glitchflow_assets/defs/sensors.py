"""The new-frame sensor: one per observing run, watching its frame directory."""

import os

import dagster as dg

from glitchflow_assets.core.frame_watch import WatchCursor, plan_window_requests
from glitchflow_assets.core.frames import scan_frame_dir
from glitchflow_assets.core.runs import ObservingRun

MAX_LOGGED_SKIPS = 20
# How often the daemon evaluates the sensor; lowered in end-to-end tests.
INTERVAL_S = int(os.environ.get("GLITCHFLOW_SENSOR_INTERVAL_S", "30"))


def new_frames_sensor(run: ObservingRun, job_name: str) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{run.name}_new_frames",
        job_name=job_name,
        minimum_interval_seconds=INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING if run.watch else dg.DefaultSensorStatus.STOPPED,
        description=(
            f"Watches {run.frames.path} for new or late {run.frames.extension} files and ingests the windows "
            "they complete (incomplete windows wait until data reach one window past their end)."
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        found, skipped = scan_frame_dir(run.frames.path, run.frames.extension)
        for s in skipped[:MAX_LOGGED_SKIPS]:
            context.log.warning(f"ignoring {s.path}: {s.reason}")
        requests, cursor = plan_window_requests(found, WatchCursor.loads(context.cursor), run.cadence, (run.gps_start, run.gps_end))
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=r.run_key,
                    partition_key=r.window.key,
                    tags={"glitchflow/trigger": "new_frames", "glitchflow/complete": str(r.complete).lower()},
                )
                for r in requests
            ],
            cursor=cursor.dumps(),
        )

    return _sensor
