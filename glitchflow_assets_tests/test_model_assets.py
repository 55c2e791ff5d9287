"""The model stage through Dagster on simulated SIM data, with a real SQLite MLflow store and registry:
training -> registered version + aliases, lineage both ways, held-out evaluation, synthetic glitch set."""

import json

import dagster as dg
import h5py
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from glitchflow_assets.core.ml.data import read_normalisation
from glitchflow_assets.core.ml.evaluation import SYNTHETIC_SCHEMA
from glitchflow_assets.core.ml.tracking import CANDIDATE, CHAMPION, ModelVersionRef, Tracker
from glitchflow_assets.core.runs import load_registry
from glitchflow_assets.core.sim import simulate
from glitchflow_assets.core.tables import read_table
from glitchflow_assets.core.windows import windows_overlapping
from glitchflow_assets.defs.families import build_definitions
from glitchflow_assets.defs.model import EVALUATION, SYNTHETIC, TRAINED, MlflowTracking
from glitchflow_assets.defs.resources import GlitchflowStorage
from glitchflow_assets_tests.conftest import sim_run

MINUTES, SEED = 20, 21
TRAINING = {"epochs": 40, "seed": 3}
SPLIT_CONFIG = {"train_fraction": 0.6, "validation_fraction": 0.2}  # enough held-out events in 20 minutes


class Pipeline:
    def __init__(self, root, instance):
        run = sim_run(root / "frames")
        self.defs = build_definitions({"SIM": run})
        self.instance = instance
        self.tracking_uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
        self.storage = GlitchflowStorage(root=str(root / "storage"))
        self.resources = {"storage": self.storage, "mlflow": MlflowTracking(tracking_uri=self.tracking_uri)}
        self.keys = [w.key for w in windows_overlapping(run.gps_start, run.gps_start + MINUTES * 60, run.cadence)]

    def materialize(self, names, partition=None, ops=None) -> dg.ExecuteInProcessResult:
        assets = [self.defs.get_assets_def(dg.AssetKey(["SIM", n])) for n in names]
        result = dg.materialize(
            assets,
            instance=self.instance,
            resources=self.resources,
            partition_key=partition,
            run_config={"ops": {f"SIM__{n}": {"config": c} for n, c in (ops or {}).items()}},
        )
        assert result.success
        return result

    def metadata(self, result, name) -> dict:
        (event,) = result.asset_materializations_for_node(f"SIM__{name}")
        return {k: v.value for k, v in event.metadata.items()}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("model-stage")
    sim = load_registry()["SIM"]
    simulate(root / "frames", sim.gps_start, MINUTES * 60 + 60, frame_length=60, seed=SEED)
    with dg.instance_for_test() as instance:
        p = Pipeline(root, instance)
        for key in p.keys:
            p.materialize(["raw_strain_segments", "glitch_events", "annalisa_scores"], key)
        p.materialize(["channel_selection"])
        for key in p.keys:
            p.materialize(["spectrograms"], key)
        p.materialize(["dataset_split"], ops={"dataset_split": SPLIT_CONFIG})
        p.first = p.materialize([TRAINED, EVALUATION, SYNTHETIC], ops={TRAINED: TRAINING})
        yield p


def test_training_registers_a_version_with_lineage_both_ways(pipeline):
    meta = pipeline.metadata(pipeline.first, TRAINED)
    client = MlflowClient(tracking_uri=pipeline.tracking_uri, registry_uri=pipeline.tracking_uri)
    version = client.get_model_version(meta["model_name"], meta["model_version"])
    assert meta["model_name"] == "glitchflow-SIM" and meta["model_uri"] == f"models:/glitchflow-SIM/{meta['model_version']}"
    assert version.run_id == meta["mlflow_run_id"]
    assert str(client.get_model_version_by_alias("glitchflow-SIM", CANDIDATE).version) == meta["model_version"]
    run = client.get_run(meta["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["dagster_run_id"] == pipeline.first.run_id
    assert run.data.tags["dagster_asset_key"] == "SIM/trained_model" and run.data.tags["dagster_partition"] == "SIM"
    assert run.data.params["train.epochs"] == "40" and "torch" in run.data.tags and "device" in run.data.tags
    history = client.get_metric_history(run.info.run_id, "validation_loss")
    assert len(history) == meta["epochs_run"] and [m.step for m in history] == list(range(meta["epochs_run"]))
    assert history[meta["best_epoch"]].value == min(m.value for m in history)  # the restored checkpoint is the best one
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert artifacts == {"model/glitchflow_model.json", "model/weights.safetensors"}
    # nothing left RUNNING anywhere in the store
    experiment = client.get_experiment_by_name("glitchflow-SIM")
    assert {r.info.status for r in client.search_runs([experiment.experiment_id])} == {"FINISHED"}


def test_the_model_beats_trivial_baselines_on_held_out_data(pipeline):
    (check,) = [c for c in pipeline.first.get_asset_check_evaluations() if c.check_name == "beats_baselines"]
    assert check.passed, check.description
    meta = pipeline.metadata(pipeline.first, TRAINED)
    client = MlflowClient(tracking_uri=pipeline.tracking_uri, registry_uri=pipeline.tracking_uri)
    assert str(client.get_model_version_by_alias("glitchflow-SIM", CHAMPION).version) == meta["model_version"]  # promoted by the check
    test = pipeline.metadata(pipeline.first, EVALUATION)
    assert test["n_tiles"] >= 10
    assert test["l1"] < test["l1_zero_baseline"] and test["l1"] < test["l1_mean_tile_baseline"]


def test_evaluation_curves_tables_and_mlflow_artifacts(pipeline):
    meta = pipeline.metadata(pipeline.first, EVALUATION)
    curves, attrs = read_table(meta["path"], "curves")
    assert curves["threshold"].tolist() == list(range(1, 51)) and attrs["model_uri"] == meta["model_uri"]
    assert np.all(np.diff(curves["denoising_accuracy"]) >= 0) and np.all(np.diff(curves["real_glitch_fraction"]) <= 0)
    assert curves.loc[15, "denoising_accuracy"] == pytest.approx(meta["denoising_accuracy_snr2_16"])
    tiles, _ = read_table(meta["path"], "tiles")
    vetoes, _ = read_table(meta["path"], "vetoes")
    with h5py.File(pipeline.storage.run_file("SIM", "dataset_split")) as f:
        test_gps = set(f["test/event_gps"][()])
        train_gps = set(f["train/event_gps"][()]) | set(f["validation/event_gps"][()])
    assert set(vetoes["gps"]) == test_gps and not test_gps & train_gps  # test split only
    assert len(tiles) == meta["n_tiles"] and {"l1", "ssim", "event_gps", "tile_offset"} <= set(tiles.columns)
    client = MlflowClient(tracking_uri=pipeline.tracking_uri)
    run = client.get_run(meta["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["model_uri"] == meta["model_uri"]
    assert run.data.metrics["test_veto_accuracy_snr2_16"] == pytest.approx(meta["veto_accuracy_snr2_16"])
    assert {a.path for a in client.list_artifacts(run.info.run_id, "figures")} == {"figures/accuracy_curves.png"}


def test_synthetic_set_schema_and_reload_gives_identical_outputs(pipeline):
    meta = pipeline.metadata(pipeline.first, SYNTHETIC)
    trained = pipeline.metadata(pipeline.first, TRAINED)
    dataset = pipeline.storage.run_file("SIM", "dataset_split")
    with h5py.File(meta["path"]) as f, h5py.File(dataset) as d:
        assert f.attrs["schema"] == SYNTHETIC_SCHEMA and f.attrs["model_uri"] == trained["model_uri"]
        assert f.attrs["mlflow_run_id"] == trained["mlflow_run_id"] and f.attrs["dataset_version"]
        n = f["generated"].shape[0]
        assert n == d["test/label"].shape[0] == meta["items"]["test"] and f["generated"].shape[1:] == (64, 64)
        for name in ("real", "event_gps", "window", "tile_offset", "label", "split"):
            assert f[name].shape[0] == n, name
        np.testing.assert_array_equal(f["real"][()], d["test/tiles"][:, 0])
        np.testing.assert_array_equal(f["event_gps"][()], d["test/event_gps"][()])
        assert set(f["window"].asstr()[()]) <= set(pipeline.keys) and (f["generated"][()] >= 0).all()
        assert f["axes/frequencies"].attrs["units"] == "Hz" and f["axes/times"].shape == (256,)
        assert read_normalisation(dataset).channels == tuple(json.loads(f.attrs["channels"]))
        generated, tiles = f["generated"][()], d["test/tiles"][()]
    reloaded = Tracker(pipeline.tracking_uri).load(ModelVersionRef(trained["model_name"], trained["model_version"], ""))
    np.testing.assert_allclose(reloaded.generate(tiles, torch.device("cpu"), batch_size=7), generated, rtol=1e-5, atol=1e-5)


def test_retraining_makes_a_new_version_and_downstream_follows_the_record(pipeline):
    second = pipeline.materialize([TRAINED], ops={TRAINED: {**TRAINING, "epochs": 2, "seed": 4}})
    meta = pipeline.metadata(second, TRAINED)
    assert int(meta["model_version"]) == int(pipeline.metadata(pipeline.first, TRAINED)["model_version"]) + 1
    synthetic = pipeline.metadata(pipeline.materialize([SYNTHETIC]), SYNTHETIC)
    assert synthetic["model_uri"] == meta["model_uri"]
