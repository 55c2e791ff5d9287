"""The pipeline as declared in the graph: what Dagster's automation requests as windows arrive and cron ticks pass,
evaluated with Dagster's own evaluator on recorded materializations (nothing is executed)."""

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from glitchflow_assets.core.runs.registry import load_registry
from glitchflow_assets.defs.families import build_definitions
from glitchflow_assets.lib.names import (
    CLEAN_EVAL,
    CLEANED,
    EVALUATION,
    EVENTS,
    JOBS,
    RAW,
    SCORES,
    SELECTION,
    SPECTROGRAMS,
    SPLIT,
    SYNTHETIC,
    TRAINED,
    WAVEFORMS,
)

WINDOWS = ["2024-05-17T16:55", "2024-05-17T18:00"]  # an early window and a later one: both must flow, not only the latest


class Automation:
    """Evaluates the SIM run's automation conditions tick after tick, carrying the cursor like the sensor does."""

    def __init__(self, instance: dg.DagsterInstance):
        self.defs = build_definitions({"SIM": load_registry(follow_frames=False)["SIM"]})
        self.instance, self.cursor = instance, None
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
        self.t0 = hour + timedelta(minutes=10)  # SIM refreshes hourly ("0 * * * *")

    def tick(self, at: datetime) -> dict[str, set[str | None]]:
        """Asset name -> requested partitions (None: the run-level asset) at ``at``."""
        result = dg.evaluate_automation_conditions(self.defs, self.instance, evaluation_time=at, cursor=self.cursor)
        self.cursor = result.cursor
        requested = {}
        for key in self.defs.resolve_asset_graph().get_all_asset_keys():
            partitions = result.get_requested_partitions(key)
            if partitions:
                requested[key.path[-1]] = set(partitions)
        return requested

    def record(self, asset: str, partitions=(None,)) -> None:
        """A materialization of ``asset`` (each partition) as a run would leave it."""
        for partition in partitions:
            self.instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey(["SIM", asset]), partition=partition))


@pytest.fixture
def automation():
    with dg.instance_for_test() as instance:
        yield Automation(instance)


def test_new_windows_flow_through_the_window_stages_and_run_level_stages_wait_for_the_cron(automation):
    assert automation.tick(automation.t0) == {}  # the first evaluation starts nothing (what exists stays as it is)
    automation.record(RAW, WINDOWS)  # what the new-frame sensor's runs leave behind
    requested = automation.tick(automation.t0 + timedelta(minutes=5))
    # every new window, not only the latest; spectrograms wait for a channel selection; nothing run-level before the tick
    assert requested == {EVENTS: set(WINDOWS), SCORES: set(WINDOWS)}
    automation.record(EVENTS, WINDOWS)
    automation.record(SCORES, WINDOWS)
    assert automation.tick(automation.t0 + timedelta(minutes=10)) == {}  # done, and nothing runs twice
    # the hourly tick: the selection refreshes, its spectrograms follow, then the dataset, the model, its
    # evaluation and its synthetic set (run-level stages chain in one tick)
    assert automation.tick(automation.t0 + timedelta(minutes=55)) == {SELECTION: {None}}
    automation.record(SELECTION)
    assert automation.tick(automation.t0 + timedelta(minutes=56)) == {SPECTROGRAMS: set(WINDOWS)}
    automation.record(SPECTROGRAMS, WINDOWS)
    model_stages = {SPLIT: {None}, WAVEFORMS: {None}, TRAINED: {None}, EVALUATION: {None}, SYNTHETIC: {None}}
    assert automation.tick(automation.t0 + timedelta(minutes=57)) == model_stages
    for asset in model_stages:
        automation.record(asset)
    # the refitted time-domain twin cleans every window again
    assert automation.tick(automation.t0 + timedelta(minutes=58)) == {CLEANED: set(WINDOWS)}
    automation.record(CLEANED, WINDOWS)
    # then, never beside the windows it reads, the cleaning evaluation
    assert automation.tick(automation.t0 + timedelta(minutes=59)) == {CLEAN_EVAL: {None}}
    automation.record(CLEAN_EVAL)
    # no new window: the next tick refreshes nothing
    assert automation.tick(automation.t0 + timedelta(minutes=115)) == {}
    # a late window flows through every window stage (the selection exists now, and the twin: it is cleaned too); then
    # over the next two hours of ticks the run-level stages refresh once per tick that has new inputs
    late = "2024-05-17T19:00"
    automation.record(RAW, [late])
    assert automation.tick(automation.t0 + timedelta(minutes=116)) == {
        EVENTS: {late},
        SCORES: {late},
        SPECTROGRAMS: {late},
        CLEANED: {late},
    }
    for asset in (EVENTS, SCORES, SPECTROGRAMS, CLEANED):
        automation.record(asset, [late])
    counts, hours = Counter(), defaultdict(list)
    for minute in range(117, 240, 3):
        at = automation.t0 + timedelta(minutes=minute)
        for asset, partitions in automation.tick(at).items():
            counts.update({asset: len(partitions)})
            hours[asset] += [at.hour] if partitions == {None} else []
            automation.record(asset, partitions)
    # run-level stages refresh at most once per cron interval: at the first tick the late window's spectrogram, at the
    # next the spectrograms of the refreshed selection; the selection itself once; every window cleaned after each refit
    assert all(len(h) == len(set(h)) for h in hours.values()), hours
    assert counts == {
        SELECTION: 1,
        SPECTROGRAMS: len(WINDOWS) + 1,
        CLEANED: 2 * (len(WINDOWS) + 1),
        CLEAN_EVAL: 2,  # once per interval, after each re-cleaning
        **dict.fromkeys(model_stages, 2),
    }
    assert automation.tick(automation.t0 + timedelta(minutes=300)) == {}  # and then it rests


def test_every_asset_is_in_exactly_one_job_and_every_stage_but_ingest_is_automated():
    defs = build_definitions({"SIM": load_registry(follow_frames=False)["SIM"]})
    graph = defs.resolve_asset_graph()
    names = [k.path[-1] for k in graph.toposorted_asset_keys]
    assert sorted(n for members in JOBS.values() for n in members) == sorted(names)
    assert [n for n in names if graph.get(dg.AssetKey(["SIM", n])).automation_condition is None] == [RAW]
    sensors = {s.name: s.default_status for s in defs.get_repository_def().sensor_defs}
    assert sensors == {"SIM_new_frames": dg.DefaultSensorStatus.RUNNING, "SIM_automation": dg.DefaultSensorStatus.RUNNING}
