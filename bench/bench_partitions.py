"""Partition scale: a whole observing run (O3, one year) at 1-hour and at 5-minute windows, no frames needed.

A user registry (``bench/out/partitions-*/runs.yaml``, named by ``$GLITCHFLOW_RUNS``) adds the run ``O3``, GPS
1238166018 + 365 days, ``show_without_frames: true`` and ``watch: true`` (both sensors running), its frame directory
empty; the shipped ``SIM`` is hidden so that ``O3`` is the only family. For each cadence, on the production
configuration (``deploy/dagster.yaml`` on a real PostgreSQL, ``dagster-webserver`` + ``dagster-daemon`` on 127.0.0.1,
one fresh database per cadence), it measures:

(a) code-location load, in a fresh process: importing Dagster, importing ``glitchflow_assets.definitions``, building
    the definitions (what a code server does: autodiscovery, the ``defs`` folder, the repository) and the repository
    snapshot the code server sends; plus the wall time of ``dagster definitions validate -w workspace.yaml`` and the
    webserver's start until it answers with the location loaded.
(b) the daemon's ticks of ``O3_new_frames`` and ``O3_automation`` (declarative automation), read from the instance's
    tick records through GraphQL (``timestamp`` to ``endTimestamp``): the first tick and the slowest of the next ones,
    with ``$GLITCHFLOW_SENSOR_INTERVAL_S`` lowered to 10 s. Before the daemon starts, ``--seed`` windows spread over the
    year are recorded as materialized for every window asset (runless events), so that the statuses hold many ranges.
(c) GraphQL, the UI's own documents (read from the installed ``dagster-webserver`` bundle's source maps, fragments
    resolved): the asset page of ``O3/raw_strain_segments`` (``PartitionHealthQuery``, ``AssetViewDefinitionQuery``,
    ``AssetGraphLiveQuery`` for the asset and ``AssetCheckPartitionHealthQuery`` for its checks) and the asset catalog
    (``AssetCatalogTableQuery`` then ``AssetGraphLiveQuery`` and ``AssetStaleStatusQuery`` over every asset), first
    request after the start and warm (median of 3); the partitions page again while the backfill below is queued.
(d) a backfill of every window of every window asset through GraphQL ``launchPartitionBackfill`` with every partition
    name, as the UI's "Materialize" dialog sends it (time of the mutation), then the daemon's first iteration over it:
    the time to its first run and the runs it created within ``--observe`` seconds. No run executes: the copy of
    ``deploy/dagster.yaml`` sets ``max_concurrent_runs: 0``, so the queued-run coordinator holds every run QUEUED; the
    backfill is cancelled at the end.
(e) the peak RSS of the daemon and of the webserver (alone, and with their process trees: the code servers they
    start), sampled every second over the whole period.

    PYTHONPATH=. .venv/bin/python bench/bench_partitions.py --windows 1h 5min
"""

import argparse
import glob
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_load import PeakRss  # noqa: E402

from glitchflow_assets.core.runs.registry import SHIPPED_REGISTRY  # noqa: E402
from glitchflow_assets_tests.servers import PostgresServer  # noqa: E402
from glitchflow_assets_tests.services import REPO, DagsterServices, wait_for  # noqa: E402

GPS_START = 1238166018  # O3a's start (2019-04-01 15:00 UTC)
YEAR = 365 * 86400
RUN = "O3"
ASSET = [RUN, "raw_strain_segments"]
LOCATION, REPOSITORY = "glitchflow", "__repository__"
OUT = Path(__file__).resolve().parent / "out"

LOAD = """
import json, time
t0 = time.perf_counter()
import dagster as dg
from dagster._core.code_pointer import CodePointer
from dagster._core.definitions.reconstruct import def_from_pointer, repository_def_from_target_def
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._core.workspace.autodiscovery import loadable_targets_from_python_module
t1 = time.perf_counter()
[target] = loadable_targets_from_python_module("glitchflow_assets.definitions", ".")
t2 = time.perf_counter()
pointer = CodePointer.from_module("glitchflow_assets.definitions", target.attribute, ".")
repo = repository_def_from_target_def(def_from_pointer(pointer))
repo.load_all_definitions()
t3 = time.perf_counter()
RepositorySnap.from_def(repo)
t4 = time.perf_counter()
print(json.dumps({"import_dagster": t1 - t0, "import_module": t2 - t1, "definitions": t3 - t2, "snapshot": t4 - t3}))
"""

TICKS = """query($loc: String!, $repo: String!, $name: String!) { sensorOrError(sensorSelector: {repositoryLocationName: $loc,
  repositoryName: $repo, sensorName: $name}) { __typename ... on Sensor { sensorState {
  ticks(limit: 50) { id status timestamp endTimestamp runIds
  requestedAssetMaterializationCount skipReason error { message } } } } ... on PythonError { message } } }"""
LOCATION_STATUS = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
BACKFILL = """mutation($keys: [AssetKeyInput!], $names: [String!]) { launchPartitionBackfill(backfillParams: {
  assetSelection: $keys, partitionNames: $names, fromFailure: false }) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } ... on InvalidSubsetError { message } } }"""
BACKFILL_STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status numPartitions } } }"""
BACKFILL_RUNS = """query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}, limit: 1) {
  ... on Runs { count } } }"""
CANCEL = """mutation($id: String!) { cancelPartitionBackfill(backfillId: $id) { __typename } }"""


# -- the UI's GraphQL documents -------------------------------------------------------------------------------------


def ui_documents() -> dict[str, str]:
    """Every named query/fragment of the installed UI (its source maps), ``${FRAGMENT}`` interpolations removed."""
    import dagster_webserver

    found: dict[str, str] = {}
    maps = Path(dagster_webserver.__file__).parent / "webapp" / "build" / "_next" / "static" / "chunks"
    for path in glob.glob(str(maps / "*.js.map")):
        for source in json.loads(Path(path).read_text()).get("sourcesContent") or []:
            if not source or "gql`" not in source:
                continue
            for body in re.findall(r"gql`(.*?)`", source, re.S):
                body = re.sub(r"\$\{\w+\}", "", body)
                at = 0
                while m := re.search(r"\b(query|fragment|mutation)\s+(\w+)[^{]*\{", body[at:]):
                    start, end, depth = at + m.start(), at + m.end(), 1
                    while depth:
                        depth += {"{": 1, "}": -1}.get(body[end], 0)
                        end += 1
                    found.setdefault(m.group(2), body[start:end])
                    at = end
    return found


def document(docs: dict[str, str], name: str) -> str:
    """The query ``name`` with every fragment it uses, transitively."""
    parts, todo, seen = [docs[name]], [docs[name]], set()
    while todo:
        for frag in re.findall(r"\.\.\.\s*(\w+)", todo.pop()):
            if frag not in seen and frag in docs and docs[frag].startswith("fragment"):
                seen.add(frag)
                parts.append(docs[frag])
                todo.append(docs[frag])
    return "\n".join(parts)


# -- set-up ---------------------------------------------------------------------------------------------------------


def registry(root: Path, frames: Path, cadence: str, batch: int) -> Path:
    """O3 over a year at ``cadence`` (empty frame directory, shown and watched); the shipped SIM hidden."""
    shipped = yaml.safe_load(SHIPPED_REGISTRY.read_text())["runs"]
    sim = dict(shipped["SIM"], show_without_frames=False, span_follows_frames=False, watch=False)
    o3 = dict(
        {k: shipped["O3a"][k] for k in ("sample_rate", "strain_channel", "aux_channels")},
        description="O3 as one year (partition-scale bench)",
        gps_start=GPS_START,
        gps_end=GPS_START + YEAR,
        window=cadence,
        frames={"kind": "gwf", "path": str(frames)},
        show_without_frames=True,
        watch=True,
        backfill_batch=batch,
    )
    path = root / f"runs-{cadence}.yaml"
    path.write_text(yaml.safe_dump({"runs": {RUN: o3, "SIM": sim}}))
    return path


def dagster_home(root: Path, cadence: str) -> Path:
    """deploy/dagster.yaml with ``max_concurrent_runs: 0``: queued runs are never launched."""
    home = root / f"dagster-{cadence}"
    home.mkdir()
    config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    config["concurrency"]["runs"]["max_concurrent_runs"] = 0
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def load_times(env: dict) -> dict[str, float]:
    """(a) A fresh process loading the code location, by phase, and ``dagster definitions validate``."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", LOAD], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    phases = json.loads(out.stdout.strip().splitlines()[-1])
    phases["process"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        check=True,
    )
    phases["validate"] = time.perf_counter() - t0
    return phases


def seed(home: Path, spread: int) -> tuple[int, int]:
    """``spread`` windows over the year (evenly) recorded as materialized for every window asset, in graph order."""
    from glitchflow_assets.defs.families import build_definitions

    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.toposorted_asset_keys if k.path[0] == RUN and graph.get(k).partitions_def is not None]
    partitions = graph.get(keys[0]).partitions_def.get_partition_keys()
    chosen = partitions[:: max(1, len(partitions) // spread)][:spread]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for window in chosen:
            for key in keys:
                instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=window))
    return len(partitions), len(keys)


def new_window(home: Path) -> float:
    """A window past the seeded ones recorded as ingested (``raw_strain_segments`` materialized); the time it was recorded."""
    from glitchflow_assets.defs.families import build_definitions

    partitions = build_definitions().get_assets_def(dg.AssetKey(ASSET)).partitions_def
    with dg.DagsterInstance.from_config(str(home)) as instance:
        recorded = time.time()
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=dg.AssetKey(ASSET), partition=partitions.get_partition_keys()[1])
        )
    return recorded


# -- measurements ---------------------------------------------------------------------------------------------------


def timed(svc: DagsterServices, query: str, variables: dict | None = None) -> tuple[float, dict]:
    t0 = time.perf_counter()
    data = svc.graphql(query, variables)
    return time.perf_counter() - t0, data


def first_and_warm(svc: DagsterServices, steps: list[tuple[str, dict]]) -> tuple[float, float]:
    """The time of ``steps`` run one after the other: the first request, and the median of 3 warm ones."""
    runs = [sum(timed(svc, q, v)[0] for q, v in steps) for _ in range(4)]
    return runs[0], statistics.median(runs[1:])


def ticks(svc: DagsterServices, name: str) -> list[dict]:
    data = svc.graphql(TICKS, {"loc": LOCATION, "repo": REPOSITORY, "name": name})["sensorOrError"]
    if data["__typename"] != "Sensor":
        raise RuntimeError(f"sensor {name}: {data}")
    done = [t for t in data["sensorState"]["ticks"] if t["endTimestamp"] and t["status"] != "STARTED"]
    return sorted(done, key=lambda t: t["timestamp"])


def tick_summary(done: list[dict]) -> dict:
    seconds = [t["endTimestamp"] - t["timestamp"] for t in done]
    return {
        "n": len(done),
        "first_s": seconds[0],
        "next_max_s": max(seconds[1:], default=float("nan")),
        "statuses": sorted({t["status"] for t in done}),
        "runs_first": len(done[0]["runIds"]),
        "requested_first": done[0]["requestedAssetMaterializationCount"],
        "errors": [t["error"]["message"][:300] for t in done if t["error"]][:1],
    }


def measure(cadence: str, args, root: Path, postgres: PostgresServer, docs: dict[str, str]) -> dict:
    frames = root / "frames"
    frames.mkdir(exist_ok=True)
    database = "dagster_" + cadence.replace("min", "m")
    postgres.create_database(database)
    home = dagster_home(root, cadence)
    env = dict(
        os.environ,
        **postgres.dagster_env(database),
        DAGSTER_HOME=str(home),
        GLITCHFLOW_RUNS=str(registry(root, frames, cadence, args.batch)),
        GLITCHFLOW_HOME=str(root / "home"),
        GLITCHFLOW_STORAGE=str(root / f"storage-{cadence}"),
        GLITCHFLOW_SENSOR_INTERVAL_S="10",
        PYTHONPATH=str(REPO),
    )
    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "GLITCHFLOW_RUNS", "GLITCHFLOW_HOME", "GLITCHFLOW_STORAGE")})
    os.environ.update(postgres.dagster_env(database))
    result: dict = {"cadence": cadence, "load_avg_start": os.getloadavg()[0]}

    result["load"] = load_times(env)
    print(f"[{cadence}] load: {result['load']}", flush=True)
    t0 = time.perf_counter()
    result["partitions"], result["window_assets"] = seed(home, args.seed)
    result["seed_s"] = time.perf_counter() - t0
    print(f"[{cadence}] {result['partitions']:,} partitions x {result['window_assets']} assets, seed {result['seed_s']:.0f} s", flush=True)

    logs = root / f"logs-{cadence}"
    logs.mkdir()
    svc = DagsterServices(env, logs=logs)
    try:
        t0 = time.perf_counter()
        svc.start_webserver()

        def loaded():
            entries = svc.graphql(LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
            entry = next(e for e in entries if e["name"] == LOCATION)
            if entry["loadStatus"] == "LOADED":
                error = entry["locationOrLoadError"]
                if error and error["__typename"] == "PythonError":
                    raise RuntimeError(error["message"])
                return True
            return False

        wait_for(loaded, 600, "the code location to load", interval=0.5)
        result["webserver_start_s"] = time.perf_counter() - t0
        svc.start_daemon()
        rss = PeakRss({"webserver": svc.processes["webserver"].pid, "daemon": svc.processes["daemon"].pid})
        t_daemon = time.time()

        # (b) the daemon's ticks: wait for 3 finished ticks of each sensor.
        sensors = {"new_frames": f"{RUN}_new_frames", "automation": f"{RUN}_automation"}

        def finished():
            found = {k: ticks(svc, n) for k, n in sensors.items()}
            return found if all(len(v) >= args.ticks for v in found.values()) else None

        done = wait_for(
            finished,
            args.tick_timeout,
            "the sensors' ticks",
            interval=3,
        )
        result["ticks"] = {k: tick_summary(v) for k, v in done.items()}
        result["first_tick_after_daemon_s"] = {k: v[0]["timestamp"] - t_daemon for k, v in done.items()}
        print(f"[{cadence}] ticks: {result['ticks']}", flush=True)

        # (b') a tick with work: one more window ingested (a materialization of raw_strain_segments, as an ingest run
        # records it); the next automation tick requests its window stages.
        window = new_window(home)
        seen = {t["id"] for t in done["automation"]}
        after = wait_for(
            lambda: [t for t in ticks(svc, sensors["automation"]) if t["id"] not in seen and t["timestamp"] > window],
            args.tick_timeout,
            "an automation tick after the new window",
            interval=2,
        )
        result["ticks"]["automation_new_window"] = tick_summary(after[:1])
        print(f"[{cadence}] ticks: {result['ticks']}", flush=True)

        # (c) GraphQL: the asset page (its Partitions tab) and the catalog, document by document, first and warm.
        key = {"path": ASSET}
        _, catalog = timed(svc, document(docs, "AssetCatalogTableQuery"), {"limit": 1000})
        all_keys = [{"path": n["key"]["path"]} for n in catalog["assetsOrError"]["nodes"]]
        requests = {
            "page:AssetViewDefinitionQuery": ("AssetViewDefinitionQuery", {"assetKey": key}),
            "page:PartitionHealthQuery": ("PartitionHealthQuery", {"assetKey": key}),
            "page:AssetGraphLiveQuery": ("AssetGraphLiveQuery", {"assetKeys": [key]}),
            "checks:AssetCheckPartitionHealthQuery": ("AssetCheckPartitionHealthQuery", {"assetKey": key, "checkName": "sample_rates"}),
            "catalog:AssetCatalogTableQuery": ("AssetCatalogTableQuery", {"limit": 1000}),
            "catalog:AssetGraphLiveQuery": ("AssetGraphLiveQuery", {"assetKeys": all_keys}),
            "catalog:AssetStaleStatusQuery": ("AssetStaleStatusQuery", {"assetKeys": all_keys}),
        }
        result["graphql"] = {label: first_and_warm(svc, [(document(docs, q), v)]) for label, (q, v) in requests.items()}
        for page in ("page", "catalog"):
            parts = [v for k, v in result["graphql"].items() if k.startswith(page + ":")]
            result["graphql"][page] = (sum(p[0] for p in parts), sum(p[1] for p in parts))
        _, health_doc = timed(svc, document(docs, "PartitionHealthQuery"), {"assetKey": key})
        node = health_doc["assetNodeOrError"]
        result["health_keys"] = sum(len(d["partitionKeys"]) for d in node["partitionKeysByDimension"])
        result["health_ranges"] = len(node["assetPartitionStatuses"]["ranges"])
        print(f"[{cadence}] graphql (first, warm): {result['graphql']}", flush=True)

        # (d) a backfill of every window of every window asset, as the UI launches it.
        from glitchflow_assets.defs.families import build_definitions

        graph = build_definitions().resolve_asset_graph()
        window_keys = [k for k in graph.toposorted_asset_keys if k.path[0] == RUN and graph.get(k).partitions_def is not None]
        names = graph.get(window_keys[0]).partitions_def.get_partition_keys()
        t_launch = time.time()
        launch_s, launched = timed(svc, BACKFILL, {"keys": [{"path": k.path} for k in window_keys], "names": names})
        launched = launched["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill = launched["backfillId"]
        result["backfill_launch_s"] = launch_s
        counts: list[tuple[float, int]] = []
        while time.time() - t_launch < args.observe:
            time.sleep(2)
            counts.append((time.time() - t_launch, svc.graphql(BACKFILL_RUNS, {"id": backfill})["runsOrError"]["count"]))
        first = next((t for t, n in counts if n), None)
        result["backfill_first_run_s"] = first
        result["backfill_runs_observed"] = counts[-1][1]
        result["backfill_observe_s"] = args.observe
        result["backfill_runs_per_s"] = (
            (counts[-1][1] - 1) / (counts[-1][0] - first) if first is not None and counts[-1][0] > first and counts[-1][1] > 1 else None
        )
        result["backfill_status"] = svc.graphql(BACKFILL_STATUS, {"id": backfill})["partitionBackfillOrError"]
        result["health_during_backfill_s"] = timed(svc, document(docs, "PartitionHealthQuery"), {"assetKey": key})[0]
        during = {k: [t for t in ticks(svc, n) if t["timestamp"] >= t_launch] for k, n in sensors.items()}
        result["ticks_during_backfill"] = {
            k: {
                "n": len(v),
                "max_s": max((t["endTimestamp"] - t["timestamp"] for t in v), default=None),
                "failures": sum(t["status"] == "FAILURE" for t in v),
                "error": next((t["error"]["message"][:200] for t in v if t["error"]), None),
            }
            for k, v in during.items()
        }
        try:
            result["backfill_cancel_s"] = timed(svc, CANCEL, {"id": backfill})[0]
        except OSError as exc:  # the webserver did not answer within 60 s
            result["backfill_cancel_s"] = f"no answer: {exc}"
        print(f"[{cadence}] backfill: { {k: v for k, v in result.items() if k.startswith('backfill')} }", flush=True)
        result["rss_mib"] = rss.stop()
        result["load_avg_end"] = os.getloadavg()[0]
    finally:
        svc.stop()
    return result


def _during(r: dict) -> str:
    ticks = r["ticks_during_backfill"]
    return "; ".join(f"{ticks[k]['n']}, {ticks[k]['max_s'] or 0:.1f}, {ticks[k]['failures']}" for k in ("new_frames", "automation"))


def _seconds(value) -> str:
    return value if isinstance(value, str) else f"{value:.1f}"


GRAPHQL_ROWS = (
    "page:AssetViewDefinitionQuery",
    "page:PartitionHealthQuery",
    "page:AssetGraphLiveQuery",
    "page",
    "checks:AssetCheckPartitionHealthQuery",
    "catalog:AssetCatalogTableQuery",
    "catalog:AssetGraphLiveQuery",
    "catalog:AssetStaleStatusQuery",
    "catalog",
)


def table(results: list[dict], machine: str) -> str:
    rows = [
        ("partitions per asset (window assets)", lambda r: f"{r['partitions']:,} ({r['window_assets']})"),
        ("load avg (1 min) at start / end", lambda r: f"{r['load_avg_start']:.2f} / {r['load_avg_end']:.2f}"),
        (
            "code location, fresh process: import dagster + module + definitions + snapshot = process wall (s)",
            lambda r: "{import_dagster:.1f} + {import_module:.1f} + {definitions:.1f} + {snapshot:.2f} = {process:.1f}".format(**r["load"]),
        ),
        ("`dagster definitions validate` wall (s)", lambda r: f"{r['load']['validate']:.1f}"),
        ("webserver start until the location is loaded (s)", lambda r: f"{r['webserver_start_s']:.1f}"),
        (
            "`O3_new_frames` tick: first / slowest of the next (s)",
            lambda r: f"{r['ticks']['new_frames']['first_s']:.2f} / {r['ticks']['new_frames']['next_max_s']:.2f}",
        ),
        (
            "`O3_automation` tick: first / slowest of the next (s)",
            lambda r: f"{r['ticks']['automation']['first_s']:.2f} / {r['ticks']['automation']['next_max_s']:.2f}",
        ),
        (
            "`O3_automation` tick after one new window: s (runs requested)",
            lambda r: f"{r['ticks']['automation_new_window']['first_s']:.2f} ({r['ticks']['automation_new_window']['runs_first']})",
        ),
        (
            "  automation: runs / partitions requested by the first tick",
            lambda r: f"{r['ticks']['automation']['runs_first']} / {r['ticks']['automation']['requested_first']}",
        ),
        *[
            (f"GraphQL {label} first / warm (s)", lambda r, label=label: "{:.2f} / {:.2f}".format(*r["graphql"][label]))
            for label in GRAPHQL_ROWS
        ],
        ("  PartitionHealthQuery: keys / status ranges returned", lambda r: f"{r['health_keys']:,} / {r['health_ranges']:,}"),
        ("backfill of every window, `launchPartitionBackfill` (s)", lambda r: f"{r['backfill_launch_s']:.1f}"),
        (
            "backfill daemon: first run after (s); runs created in the observed time",
            lambda r: (
                f"{r['backfill_first_run_s'] if r['backfill_first_run_s'] is None else round(r['backfill_first_run_s'], 1)}; "
                f"{r['backfill_runs_observed']:,} in {r['backfill_observe_s']} s"
            ),
        ),
        ("  runs created per s", lambda r: "-" if r["backfill_runs_per_s"] is None else f"{r['backfill_runs_per_s']:.1f}"),
        ("PartitionHealthQuery while the backfill is queued (s)", lambda r: f"{r['health_during_backfill_s']:.2f}"),
        ("sensor ticks while the backfill runs: n, slowest s, failures (new_frames; automation)", _during),
        ("cancelPartitionBackfill (s)", lambda r: _seconds(r["backfill_cancel_s"])),
        ("daemon peak RSS MiB (with its tree)", lambda r: f"{r['rss_mib']['daemon']:.0f} ({r['rss_mib']['daemon_tree']:.0f})"),
        ("webserver peak RSS MiB (with its tree)", lambda r: f"{r['rss_mib']['webserver']:.0f} ({r['rss_mib']['webserver_tree']:.0f})"),
    ]
    lines = [f"machine: {machine}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", ""]
    lines.append("| measure | " + " | ".join(r["cadence"] for r in results) + " |")
    lines.append("|---|" + "---:|" * len(results))
    for label, cell in rows:
        values = []
        for r in results:
            try:
                values.append(cell(r))
            except (KeyError, TypeError) as exc:
                values.append(f"n/a ({exc})")
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", nargs="+", default=["1h", "5min"], help="cadences of O3 to measure")
    parser.add_argument("--seed", type=int, default=100, help="windows recorded as materialized for every window asset")
    parser.add_argument("--batch", type=int, default=1, help="O3's backfill_batch (windows per backfill run)")
    parser.add_argument("--ticks", type=int, default=3, help="finished ticks of each sensor to wait for")
    parser.add_argument("--tick-timeout", type=float, default=900)
    parser.add_argument("--observe", type=int, default=90, help="seconds to watch the backfill daemon before cancelling")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory under bench/out/")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    OUT.mkdir(exist_ok=True)
    root = OUT / f"partitions-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    root.mkdir()
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.machine())
    machine = f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}, Dagster {dg.__version__}, PostgreSQL instance"
    docs = ui_documents()
    postgres = PostgresServer()
    postgres.start()
    results = []
    try:
        for cadence in args.windows:
            results.append(measure(cadence, args, root, postgres, docs))
            (root / "results.json").write_text(json.dumps(results, indent=1, default=str))
    finally:
        postgres.stop()
        postgres.remove()
        print(table(results, machine))
        if not args.keep:
            for path in root.iterdir():
                if path.is_dir() and not path.name.startswith("logs-"):
                    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
