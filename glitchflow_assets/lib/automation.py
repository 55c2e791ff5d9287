"""When each stage runs by itself (Dagster declarative automation; the run's ``{RUN}_automation`` sensor evaluates
these conditions, on by default where the registry says ``watch: true``).

- Window stages after ``raw_strain_segments`` *follow their inputs*: a window is materialized as soon as one of its
  inputs is updated and none is missing or in progress - on every window of the run, not only the latest, so late
  frames and backfills flow on too. ``raw_strain_segments`` itself is started by the new-frame sensor.
- Run-level stages that aggregate many windows (channel selection, dataset, training) refresh at most once per
  interval of the run's ``refresh_cron`` (registry; UTC): at a tick when inputs were updated since their last
  refresh, or at the first input update after a quiet tick - a retraining per new window would be wasteful, and no
  window is left out because it arrived just before a tick. The evaluation and the synthetic set follow the model,
  the time-domain twin (``glitch_waveforms``) follows the dataset, and ``cleaned_strain`` follows the twin; the
  cleaning evaluation refreshes on the cron once the windows it reads are cleaned.
  A refreshed selection is followed by every spectrogram window (Dagster's condition sees the update, not whether
  the selected channels changed); their data versions then mark what actually changed.
"""

import dagster as dg

from glitchflow_assets.core import settings
from glitchflow_assets.core.runs.registry import ObservingRun


def follows_inputs() -> dg.AutomationCondition:
    """Materialize when an input updates and none is missing or in progress, on every window of the run, not only the latest."""
    return (
        dg.AutomationCondition.eager()
        .without(dg.AutomationCondition.in_latest_time_window())
        .with_label("when an input updates (any window)")
    )


def on_refresh_cron(run: ObservingRun) -> dg.AutomationCondition:
    """At most once per tick of the run's ``refresh_cron`` (UTC): when an input updated since the last refresh and nothing upstream or here
    is in progress."""
    A = dg.AutomationCondition
    tick = A.cron_tick_passed(run.refresh_cron, "UTC").since_last_handled().with_label(f"cron '{run.refresh_cron}' UTC ticked")
    new_inputs = A.any_deps_updated().since_last_handled().with_label("an input updated since the last refresh")
    return (tick & new_inputs & ~A.any_deps_in_progress() & ~A.in_progress()).with_label(
        f"once per '{run.refresh_cron}' (UTC) when inputs updated"
    )


def after_window_stages(run: ObservingRun) -> dg.AutomationCondition:
    """:func:`on_refresh_cron`, and never in the tick that requests windows of its inputs: a run-level stage that reads
    every window (the cleaning evaluation) waits until they are written, not run beside them on the old files."""
    A = dg.AutomationCondition
    return (on_refresh_cron(run) & ~A.any_deps_match(A.will_be_requested())).with_label(
        f"once per '{run.refresh_cron}' (UTC) when inputs updated, after them"
    )


def automation_sensor(run: ObservingRun) -> dg.AutomationConditionSensorDefinition:
    """The run's ``{RUN}_automation`` sensor, which evaluates the automation conditions of its assets (running by default where the registry
    says ``watch: true``)."""
    return dg.AutomationConditionSensorDefinition(
        f"{run.name}_automation",
        target=dg.AssetSelection.groups(run.name),
        default_status=dg.DefaultSensorStatus.RUNNING if run.watch else dg.DefaultSensorStatus.STOPPED,
        minimum_interval_seconds=settings.sensor_interval_s(),
        description=f"Carries new {run.name} windows through the stages after ingest and refreshes the run-level stages "
        f"on cron '{run.refresh_cron}' (UTC) when new windows came in.",
    )


# How often the daemon evaluates the sensor; lowered in end-to-end tests.
