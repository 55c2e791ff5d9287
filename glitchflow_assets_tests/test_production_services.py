"""The production configuration against real servers on 127.0.0.1: deploy/dagster.yaml on PostgreSQL, training
tracked in an MLflow server backed by PostgreSQL, and the faults those servers bring (restarts, outages)."""

import os
import shutil
import signal
import subprocess
import threading

import dagster as dg
import h5py
import psutil
import pytest
from mlflow import MlflowClient

from glitchflow_assets.core.ml.tracking import CANDIDATE
from glitchflow_assets.defs.families import build_definitions
from glitchflow_assets.lib.names import TRAINED
from glitchflow_assets.lib.resources import GlitchflowStorage, MlflowTracking
from glitchflow_assets.runner import materialize_span
from glitchflow_assets_tests.conftest import sim_run
from glitchflow_assets_tests.servers import MlflowServer, PostgresServer
from glitchflow_assets_tests.services import BIN, REPO, wait_for

WINDOWS = ["2024-05-17T16:55", "2024-05-17T17:00"]
# Ten minutes of SIM are too few events to judge a model by: platform tests open the quality gate (soundness stays on);
# test_model_assets and test_ml_quality test the gate itself.
PLATFORM_GATE = {"min_validation_events": 1, "min_balanced_accuracy": 0.0, "beat_linear_baseline": False}


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    server = PostgresServer()
    server.start()
    for database in ("dagster", "mlflow"):
        server.create_database(database)
    yield server
    server.stop()
    server.remove()


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory):
    server = MlflowServer(root=tmp_path_factory.mktemp("mlflow-server"), backend_uri=postgres.url("mlflow"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def production_home(postgres, tmp_path_factory):
    """A DAGSTER_HOME holding deploy/dagster.yaml, with its credentials in the environment."""
    home = tmp_path_factory.mktemp("dagster-prod")
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in postgres.dagster_env("dagster").items():
            mp.setenv(k, v)
        mp.setenv("DAGSTER_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def dataset(production_home, sim_frames, tmp_path_factory):
    """SIM's first two windows up to dataset_split, materialized on the PostgreSQL instance."""
    root = tmp_path_factory.mktemp("prod-storage")
    storage = GlitchflowStorage(root=str(root))
    defs = build_definitions({"SIM": sim_run(sim_frames)}, {"storage": storage})
    split = {"train_fraction": 0.6, "validation_fraction": 0.2}
    with _instance(production_home) as instance:
        assert materialize_span(defs, "SIM", WINDOWS, instance, {"dataset_split": split}, through="dataset_split").success
    return defs, storage


def _instance(home) -> dg.DagsterInstance:
    """The instance whose ``dagster.yaml`` is in ``home``, loaded the way every Dagster process loads it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home))
        return dg.DagsterInstance.get()


def test_production_instance_loads_against_postgresql(production_home, postgres):
    with _instance(production_home) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 2
        assert {limit["key"] for limit in concurrency.run_queue_config.tag_concurrency_limits} == {"dagster/backfill", "glitchflow/gpu"}
        assert instance.run_monitoring_enabled and instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 300
        assert instance.run_monitoring_max_runtime_seconds == 21600  # no run hangs forever
        assert postgres.password not in instance.get_settings("storage").__repr__()  # credentials stay env references
        assert postgres.password not in (production_home / "dagster.yaml").read_text()


def test_no_credentials_on_command_lines_or_in_server_logs(postgres, mlflow_server):
    assert postgres.password not in " ".join(psutil.Process(mlflow_server.process.pid).cmdline())
    for child in psutil.Process(mlflow_server.process.pid).children(recursive=True):
        assert postgres.password not in " ".join(child.cmdline())
    assert postgres.password not in (mlflow_server.root / "mlflow.log").read_text(errors="replace")


def test_postgresql_restart_and_the_instance_reconnects(production_home, postgres):
    @dg.asset
    def heartbeat() -> int:
        return 1

    with _instance(production_home) as instance:
        assert dg.materialize([heartbeat], instance=instance).success
        postgres.restart()
        assert dg.materialize([heartbeat], instance=instance).success  # same instance object, new connections
        assert len(instance.get_runs(dg.RunsFilter(job_name="__ephemeral_asset_job__"))) >= 2


def test_training_is_tracked_and_registered_in_the_mlflow_server(dataset, production_home, mlflow_server):
    defs, storage = dataset
    resources = {"storage": storage, "mlflow": MlflowTracking(tracking_uri=mlflow_server.uri)}
    config = {"ops": {f"SIM__{TRAINED}": {"config": {"epochs": 3, **PLATFORM_GATE}}}}
    with _instance(production_home) as instance:
        result = dg.materialize(
            [defs.get_assets_def(dg.AssetKey(["SIM", TRAINED]))],
            instance=instance,
            resources=resources,
            run_config=config,
            raise_on_error=False,
        )
    (event,) = result.asset_materializations_for_node(f"SIM__{TRAINED}")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert meta["tracking_uri"] == mlflow_server.uri
    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    assert str(client.get_model_version_by_alias("glitchflow-SIM", CANDIDATE).version) == meta["model_version"]
    run = client.get_run(meta["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["dagster_run_id"] == result.run_id
    assert (mlflow_server.root / "artifacts").is_dir() and any((mlflow_server.root / "artifacts").rglob("weights.safetensors"))


def test_mlflow_server_down_during_training_fails_clearly_then_retries(dataset, production_home, mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail fast instead of MLflow's 2-minute backoff
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    defs, storage = dataset
    resources = {"storage": storage, "mlflow": MlflowTracking(tracking_uri=mlflow_server.uri)}
    config = {"ops": {f"SIM__{TRAINED}": {"config": {"epochs": 25, "early_stopping_patience": 100, **PLATFORM_GATE}}}}
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    experiment = client.get_experiment_by_name("glitchflow-SIM")
    before = {r.info.run_id for r in client.search_runs([experiment.experiment_id])} if experiment else set()
    outcome = {}

    def train():
        with _instance(production_home) as instance:
            outcome["result"] = dg.materialize(
                [defs.get_assets_def(dg.AssetKey(["SIM", TRAINED]))],
                instance=instance,
                resources=resources,
                run_config=config,
                raise_on_error=False,
            )

    worker = threading.Thread(target=train)
    worker.start()

    def training_started():
        experiment = client.get_experiment_by_name("glitchflow-SIM")
        runs = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_id not in before] if experiment else []
        return runs and client.get_metric_history(runs[0].info.run_id, "validation_loss")

    wait_for(training_started, 120, "the first epoch's metrics in the MLflow server", interval=0.2)
    mlflow_server.stop()  # mid-training

    def attempt_failed():  # on its next MLflow call; the retry then waits 15 s
        with _instance(production_home) as instance:
            (latest,) = instance.get_runs(limit=1)
            return instance.get_records_for_run(latest.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY).records

    wait_for(attempt_failed, 120, "the training attempt to fail on the stopped server", interval=0.5)
    mlflow_server.start()
    worker.join(300)
    result = outcome["result"]
    assert result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert failures, "the step was not retried"
    error = failures[0].event_specific_data.error.to_string()  # with its cause chain, as the UI shows it
    assert f"MLflow tracking store {mlflow_server.uri} failed during run" in error and "Connection refused" in error
    experiment = client.get_experiment_by_name("glitchflow-SIM")
    runs = {r.info.run_id: r.info.status for r in client.search_runs([experiment.experiment_id]) if r.info.run_id not in before}
    assert sorted(runs.values()) == ["FAILED", "FINISHED"]  # the interrupted run is closed, not left RUNNING


def test_a_run_killed_mid_write_leaves_no_partial_file_and_reruns(sim_frames, tmp_path):
    """A real ``dagster asset materialize`` process SIGKILLed while it writes its HDF5 file."""
    storage = tmp_path / "storage"
    registry = _sim_registry(tmp_path, sim_frames)
    env = dict(os.environ, GLITCHFLOW_STORAGE=str(storage), DAGSTER_HOME=str(tmp_path / "dagster"), GLITCHFLOW_RUNS=str(registry))
    args = [str(BIN / "dagster"), "asset", "materialize", "-m", "glitchflow_assets.definitions"]
    args += ["--select", "SIM/raw_strain_segments", "--partition", WINDOWS[0]]
    final = storage / "SIM" / "raw_strain_segments" / "SIM-raw_strain_segments-1400000118-300.h5"
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    writing = lambda: final.parent.exists() and list(final.parent.glob(f".{final.name}.tmp-*"))  # noqa: E731
    wait_for(writing, 180, "the temporary file", interval=0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert not final.exists()  # readers never see a partial file under the real name
    assert [p for p in final.parent.iterdir() if not p.name.startswith(".")] == []
    subprocess.run(args, cwd=REPO, env=env, check=True, capture_output=True, timeout=300)
    with h5py.File(final) as f:
        assert f.attrs["schema"]
    assert list(final.parent.glob(".*tmp-*")) == []  # the dead writer's temporary was cleaned up by the re-run


def _sim_registry(tmp_path, frames, backfill_batch: int | None = None) -> os.PathLike:
    import yaml

    from glitchflow_assets.core.runs.registry import SHIPPED_REGISTRY

    doc = yaml.safe_load(SHIPPED_REGISTRY.read_text())
    sim = doc["runs"]["SIM"]
    sim["frames"]["path"] = str(frames)
    sim["watch"] = False
    if backfill_batch:
        sim["backfill_batch"] = backfill_batch
    path = tmp_path / "runs.yaml"
    path.write_text(yaml.safe_dump({"runs": {"SIM": sim}}))
    return path
