"""Load: the new-frame sensor and a batched backfill over >= 1,000 one-minute windows of a long simulated run, on
the production configuration (deploy/dagster.yaml on a real PostgreSQL; dagster-webserver + dagster-daemon on
127.0.0.1).

The run ``LOAD`` is simulated with a light scenario (strain + one witness at 4096 Hz, a 256 Hz driver) so that the
orchestration, not the signal processing, is what is measured; the backfill materializes
``LOAD/raw_strain_segments`` (read GWF through gwpy, resample, segments, atomic HDF5, 5 checks) for every window.

Reports the sensor's evaluation over all the frames (time, windows requested), the backfill's submitted runs/s and
end-to-end windows/hour, and the peak RSS of the daemon and webserver processes (sampled every second).

    .venv/bin/python bench/bench_load.py --windows 1000 --batch 50
"""

import argparse
import dataclasses
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import dagster as dg
import psutil
import yaml

from glitchflow_assets.core.runs.registry import load_registry
from glitchflow_assets.core.sim import simulate
from glitchflow_assets.core.sim.scenario import VIRGO_SCENARIO
from glitchflow_assets.defs.families import build_definitions
from glitchflow_assets_tests.servers import PostgresServer
from glitchflow_assets_tests.services import REPO, DagsterServices, wait_for

STRAIN = "V1:LOAD_STRAIN"
BACKFILL = """mutation($names: [String!]) { launchPartitionBackfill(backfillParams: {
  assetSelection: [{path: ["LOAD", "raw_strain_segments"]}], partitionNames: $names }) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }"""
RUNS = """query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
  ... on Runs { results { runId status creationTime endTime } } } }"""


def light_scenario():
    """Strain + the DARM witness at 4096 Hz and the seismic driver; blips and scattered light only."""
    strain = dataclasses.replace(VIRGO_SCENARIO.channel(VIRGO_SCENARIO.strain), name=STRAIN, sample_rate=4096)
    darm = dataclasses.replace(VIRGO_SCENARIO.channel("V1:LSC_DARM_ERR"), sample_rate=4096)
    driver = VIRGO_SCENARIO.channel(VIRGO_SCENARIO.driver)
    morphologies = tuple(
        dataclasses.replace(m, witnesses=(("V1:LSC_DARM_ERR", 1.0),))
        for m in VIRGO_SCENARIO.morphologies
        if m.name != "low_frequency_burst"
    )
    return dataclasses.replace(
        VIRGO_SCENARIO, tag="V1LOAD", strain=STRAIN, channels=(strain, darm, driver), morphologies=morphologies, self_glitches=()
    )


def registry(root: Path, frames: Path, gps_start: int, windows: int, batch: int) -> Path:
    run = {
        "gps_start": gps_start,
        "gps_end": gps_start + 60 * windows,
        "window": "1min",
        "sample_rate": 1024,
        "strain_channel": STRAIN,
        "aux_channels": ["V1:LSC_DARM_ERR"],
        "channel_rates": {STRAIN: 4096, "V1:LSC_DARM_ERR": 4096},
        "frames": {"kind": "gwf", "path": str(frames)},
        "backfill_batch": batch,
    }
    path = root / "runs.yaml"
    path.write_text(yaml.safe_dump({"runs": {"LOAD": run}}))
    return path


class PeakRss:
    """Peak resident memory of named processes, alone and with their process tree (code servers, run workers),
    sampled every second."""

    def __init__(self, processes: dict[str, int]):
        self.peak = {f"{n}{part}": 0 for n in processes for part in ("", "_tree")}
        self._procs = {n: psutil.Process(pid) for n, pid in processes.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            for name, proc in self._procs.items():
                try:
                    own = proc.memory_info().rss
                    tree = own + sum(c.memory_info().rss for c in proc.children(recursive=True))
                except psutil.Error:
                    continue
                self.peak[name] = max(self.peak[name], own)
                self.peak[f"{name}_tree"] = max(self.peak[f"{name}_tree"], tree)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {n: v / 2**20 for n, v in self.peak.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50, help="windows per backfill run (the run's backfill_batch)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="glitchflow-load-"))
    frames = root / "frames"
    gps_start = load_registry()["SIM"].gps_start
    t0 = time.monotonic()
    simulate(frames, gps_start, 60 * args.windows + 60, frame_length=60, seed=5, scenario=light_scenario())
    print(f"simulated {args.windows} min of LOAD in {time.monotonic() - t0:.0f} s")
    os.environ["GLITCHFLOW_RUNS"] = str(registry(root, frames, gps_start, args.windows, args.batch))

    # The sensor: one evaluation over every frame on disk, from an empty cursor.
    defs = build_definitions()
    sensor = defs.resolve_sensor_def("LOAD_new_frames")
    with dg.instance_for_test() as instance:
        t0 = time.monotonic()
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=None, definitions=defs, resources=defs.resources))
        sensor_s = time.monotonic() - t0
    requested = len(result.run_requests or [])

    postgres = PostgresServer()
    postgres.start()
    postgres.create_database("dagster")
    home = root / "dagster"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = dict(os.environ, **postgres.dagster_env("dagster"), DAGSTER_HOME=str(home), GLITCHFLOW_STORAGE=str(root / "storage"))
    svc = DagsterServices(env, logs=root)
    try:
        svc.start_webserver()
        svc.start_daemon()
        rss = PeakRss({name: p.pid for name, p in svc.processes.items()})
        names = [w.strftime("%Y-%m-%dT%H:%M") for w in _window_starts(defs)][: args.windows]
        t0 = time.time()
        launched = svc.graphql(BACKFILL, {"names": names})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill = launched["backfillId"]

        def done():
            status = svc.graphql(STATUS, {"id": backfill})["partitionBackfillOrError"]["status"]
            return status if status not in ("REQUESTED",) else None

        final = wait_for(done, 6 * 3600, "the backfill", interval=5)
        elapsed = time.time() - t0
        runs = svc.graphql(RUNS, {"id": backfill})["runsOrError"]["results"]
        memory = rss.stop()
    finally:
        svc.stop()
        postgres.stop()
        postgres.remove()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    created = sorted(r["creationTime"] for r in runs)
    submit_span = max(created[-1] - created[0], 1.0)  # first to last run created by the backfill daemon
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; PostgreSQL instance (deploy/dagster.yaml)")
    print(f"backfill: {len(runs)} runs created within {submit_span:.1f} s, finished {elapsed:.0f} s after launch")
    print(f"sensor: one evaluation over {args.windows} frames from an empty cursor: {sensor_s:.2f} s, {requested} windows requested")
    print("| windows | batch | runs | submitted runs/s | backfill | windows/hour | daemon MiB (tree) | webserver MiB (tree) |")
    print("|---:|---:|---:|---:|---|---:|---:|---:|")
    print(
        f"| {len(names)} | {args.batch} | {len(runs)} | {(len(runs) - 1) / submit_span:.2f} | {final} | {len(names) / elapsed * 3600:,.0f} "
        f"| {memory['daemon']:.0f} ({memory['daemon_tree']:.0f}) | {memory['webserver']:.0f} ({memory['webserver_tree']:.0f}) |"
    )


def _window_starts(defs: dg.Definitions):
    partitions = defs.get_assets_def(dg.AssetKey(["LOAD", "raw_strain_segments"])).partitions_def
    return [partitions.time_window_for_partition_key(k).start for k in partitions.get_partition_keys()]


if __name__ == "__main__":
    main()
