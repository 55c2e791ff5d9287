"""Time-window partitions, one definition per observing run, bounded to that run's span."""

import dagster as dg

from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.core.runs.windows import PARTITION_KEY_FORMAT, ceil_to_cadence, floor_to_cadence, gps_to_utc


def window_partitions(run: ObservingRun) -> dg.TimeWindowPartitionsDefinition:
    """UTC-aligned windows of the run's cadence covering [gps_start, gps_end) and nothing else."""
    return dg.TimeWindowPartitionsDefinition(
        start=floor_to_cadence(gps_to_utc(run.gps_start), run.cadence),
        end=ceil_to_cadence(gps_to_utc(run.gps_end), run.cadence),
        cron_schedule=run.cadence.cron,
        fmt=PARTITION_KEY_FORMAT,
        timezone="UTC",
    )
