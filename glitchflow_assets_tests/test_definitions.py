"""The code location: it loads, and its asset graph matches the committed snapshot.

Regenerate the snapshot after an intended change with ``GLITCHFLOW_UPDATE_SNAPSHOTS=1 pytest -k snapshot``
and review the diff like code.
"""

import itertools
import json
import os
from pathlib import Path

import dagster as dg
import yaml

from glitchflow_assets import definitions
from glitchflow_assets.core.runs.registry import load_registry
from glitchflow_assets.definitions import defs as load_defs
from glitchflow_assets.defs.families import build_definitions
from glitchflow_assets.lib.names import CODE_LOCATION, DEFINITIONS_MODULE
from glitchflow_assets.runner import job_for, stage_groups

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def _graph(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        keys = partitions.get_partition_keys() if partitions else []
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "tags": dict(sorted(node.tags.items())),
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "partitions": {"type": type(partitions).__name__, "count": len(keys), "first": keys[0], "last": keys[-1]} if keys else None,
            "pools": sorted(node.pools or []),
            "op_tags": sorted(node.assets_def.op.tags),
            "automation": node.automation_condition.get_label() if node.automation_condition else None,
            "checks": sorted(f"{s.name}{' (blocking)' if s.blocking else ''}" for s in node.assets_def.check_specs if s.asset_key == key),
        }
    repo = defs.get_repository_def()
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "sensors": {s.name: s.default_status.value for s in sorted(repo.sensor_defs, key=lambda s: s.name)},
    }


def _run_names(defs: dg.Definitions) -> set[str]:
    return {k.path[0] for k in defs.resolve_asset_graph().get_all_asset_keys()}


def test_code_location_loads_through_the_defs_folder_with_the_runs_that_have_frames(isolated_home):
    """Runs whose frame directory is missing stay out of the UI (SIM is shown: `glitchflow simulate` makes its frames);
    a run appears once its frames do."""
    assert _run_names(load_defs()) == {"SIM"}
    (isolated_home / "frames" / "O3b").mkdir(parents=True)
    assert _run_names(load_defs()) == {"SIM", "O3b"}
    assert _run_names(build_definitions(load_registry())) == {"SIM", "O3a", "O3b", "O4a"}  # explicit runs: all of them


def test_the_runner_records_runs_under_the_workspace_code_location():
    """The origin the runner gives its runs names the code location workspace.yaml loads (else the UI would not list them)."""
    (location,) = yaml.safe_load((Path(__file__).parents[1] / "workspace.yaml").read_text())["load_from"]
    assert location["python_module"]["location_name"] == CODE_LOCATION
    assert location["python_module"]["module_name"] == DEFINITIONS_MODULE == definitions.__name__


def test_asset_graph_snapshot():
    current = _graph(build_definitions(load_registry(follow_frames=False)))  # the registry as written
    if os.environ.get("GLITCHFLOW_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_partitions_cover_each_run_exactly():
    graph = build_definitions(load_registry(follow_frames=False)).resolve_asset_graph()
    sim = graph.get(dg.AssetKey(["SIM", "raw_strain_segments"])).partitions_def
    keys = sim.get_partition_keys()
    assert len(keys) == 288 and keys[0] == "2024-05-17T16:55" and keys[-1] == "2024-05-18T16:50"  # one day, 5 min
    o3b = graph.get(dg.AssetKey(["O3b", "raw_strain_segments"])).partitions_def
    assert (o3b.get_first_partition_key(), o3b.get_last_partition_key()) == ("2019-11-01T15:00", "2020-03-27T16:00")


def test_sim_shows_the_windows_simulated_and_no_more(isolated_home):
    """SIM's span follows its frames: no window is shown that was never simulated; more frames, more windows."""

    def sim_keys() -> list[str]:
        graph = build_definitions({"SIM": load_registry()["SIM"]}).resolve_asset_graph()
        return graph.get(dg.AssetKey(["SIM", "raw_strain_segments"])).partitions_def.get_partition_keys()

    assert len(sim_keys()) == 288  # nothing simulated yet: the day it may hold (a sensor started now ingests what comes)
    frames = isolated_home / "frames" / "SIM"
    frames.mkdir(parents=True)
    start = load_registry(follow_frames=False)["SIM"].gps_start
    for t in range(start, start + 660, 60):  # 11 minutes: two windows and a part of a third
        (frames / f"V-V1SIM-{t}-60.gwf").write_bytes(b"frame")  # the span is read from the names
    assert sim_keys() == ["2024-05-17T16:55", "2024-05-17T17:00", "2024-05-17T17:05"]
    (frames / "late").mkdir()
    (frames / "late" / f"V-V1SIM-{start + 3600}-60.gwf").write_bytes(b"frame")
    assert sim_keys()[-1] == "2024-05-17T17:55" and len(sim_keys()) == 13


def test_partial_first_and_last_windows_are_kept(gw150914_run):
    graph = build_definitions({"GW150914": gw150914_run}).resolve_asset_graph()
    keys = graph.get(dg.AssetKey(["GW150914", "raw_strain_segments"])).partitions_def.get_partition_keys()
    assert keys == ["2015-09-14T09:50", "2015-09-14T09:51"]  # data span 09:50:29-09:51:01 UTC


def test_every_stage_group_the_runner_launches_is_one_job_in_the_graph_order():
    """`glitchflow demo` and `materialize` launch one run per stage group: each must be held by one job (a run-level
    stage of its own job, such as cleaning_evaluation, once landed beside the model's evaluation and broke the demo)."""
    defs = build_definitions({"SIM": load_registry()["SIM"]})
    groups = stage_groups(defs, "SIM")
    names = [k.path[-1] for _, keys in groups for k in keys]
    assert names == [k.path[-1] for k in defs.resolve_asset_graph().toposorted_asset_keys] and len(set(names)) == len(names)
    jobs = [job_for("SIM", keys) for _, keys in groups]  # raises for a group no job holds
    assert jobs[-1] == "SIM_cleaning_evaluation" and all(a != b for a, b in itertools.pairwise(jobs))
