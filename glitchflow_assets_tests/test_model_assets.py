"""The model stage through Dagster on simulated SIM data, with a real SQLite MLflow store and registry:
training -> registered version + aliases, lineage both ways, held-out evaluation, synthetic glitch set."""

import dataclasses
import json
from pathlib import Path

import dagster as dg
import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from gwpy.timeseries import TimeSeries, TimeSeriesDict
from mlflow import MlflowClient

from glitchflow_assets.core.artifacts.cleaning_evaluation import read_cleaning_evaluation
from glitchflow_assets.core.artifacts.glitch_waveforms import read_waveform_set
from glitchflow_assets.core.artifacts.model_evaluation import read_evaluation
from glitchflow_assets.core.artifacts.storage import sha256sum
from glitchflow_assets.core.artifacts.synthetic_glitches import SCHEMA as SYNTHETIC_SCHEMA
from glitchflow_assets.core.io.gravityspy import SIM_CLASSES
from glitchflow_assets.core.ml.data import read_normalisation
from glitchflow_assets.core.ml.tracking import CANDIDATE, CHAMPION, ModelVersionRef, Tracker
from glitchflow_assets.core.runs.registry import load_registry
from glitchflow_assets.core.runs.windows import window_for_key, windows_overlapping
from glitchflow_assets.core.signal.glitch_classes import shown
from glitchflow_assets.core.sim import VIRGO_SCENARIO, Signal, simulate
from glitchflow_assets.core.sim.scenario import GW170817_SIGNAL
from glitchflow_assets.core.sim.simulator import plan_glitches
from glitchflow_assets.core.twin.cleaning import cleaning_headline, read_cleaning_report
from glitchflow_assets.defs.cleaning_evaluation import SIGNAL_SAFETY
from glitchflow_assets.defs.families import build_definitions
from glitchflow_assets.defs.model import QUALITY_GATE
from glitchflow_assets.defs.twin import WAVEFORM_GATE
from glitchflow_assets.lib.inputs import TWIN_SUFFIX
from glitchflow_assets.lib.names import CLEAN_EVAL, CLEANED, EVALUATION, EVENTS, JOBS, SPLIT, SYNTHETIC, TRAINED, WAVEFORMS, job_name
from glitchflow_assets.lib.resources import GlitchflowStorage, MlflowTracking
from glitchflow_assets.runner import job_for, materialize_span
from glitchflow_assets_tests.conftest import sim_run

MINUTES, SEED, GLITCH_RATE = 20, 21, 4.0  # the demo's rate: ~80 glitches, enough to learn the coupling in a test
# 20 minutes hold ~10 validation glitch events: the gate's default of 30 would (rightly) refuse to promote. On so few
# events glitch-tile L1 cannot rank the model against the witness regression either: one-ULP changes in a few input
# samples (one per window) moved it from below to above the baseline (2.45 vs 1.95). So the L1 gate is off here; it
# is tested refusing a witness-blind model in test_ml_quality, and bench_science ranks L1 on hundreds of events.
TRAINING = {"epochs": 12, "seed": 3, "min_validation_events": 5, "min_balanced_accuracy": 0.8, "beat_linear_baseline": False}


class Pipeline:
    def __init__(self, root, instance):
        run = sim_run(root / "frames")
        self.tracking_uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
        self.storage = GlitchflowStorage(root=str(root / "storage"))
        resources = {"storage": self.storage, "mlflow": MlflowTracking(tracking_uri=self.tracking_uri)}
        self.defs = build_definitions({"SIM": run}, resources)
        self.instance = instance
        self.keys = [w.key for w in windows_overlapping(run.gps_start, run.gps_start + MINUTES * 60, run.cadence)]
        # SIM's GW170817 window (a blip of SNR 100 on a chirp), after the 20 minutes the model stages train on: only cleaned
        self.gw170817 = windows_overlapping(GW170817_SIGNAL.gps, GW170817_SIGNAL.gps + 1, run.cadence)[0]

    def materialize(self, names, ops=None, raise_on_error=True) -> dg.ExecuteInProcessResult:
        """The run-level assets ``names`` through the job that holds them (as the UI would launch them)."""
        keys = [dg.AssetKey(["SIM", n]) for n in names]
        result = self.defs.resolve_job_def(job_for("SIM", keys)).execute_in_process(
            instance=self.instance,
            asset_selection=keys,
            run_config={"ops": {f"SIM__{n}": {"config": c} for n, c in (ops or {}).items()}},
            raise_on_error=raise_on_error,
        )
        assert result.success or not raise_on_error
        return result

    def metadata(self, result, name) -> dict:
        (event,) = result.asset_materializations_for_node(f"SIM__{name}")
        return {k: v.value for k, v in event.metadata.items()}


def _quiet_time(scenario, gps_start: float, gps_end: float, around: float) -> float:
    """The time nearest ``around`` at least 6 s from every strain glitch of the span (a signal there is away from glitches)."""
    glitches = np.array([g.gps for g in plan_glitches(scenario, SEED, gps_start, gps_end) if g.role == "strain"])
    grid = around + np.arange(-60.0, 60.0, 0.25)
    quiet = grid[np.min(np.abs(grid[:, None] - glitches[None]), axis=1) >= 6.0]
    return float(quiet[np.argmin(np.abs(quiet - around))])


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("model-stage")
    sim = load_registry()["SIM"]
    scenario = dataclasses.replace(VIRGO_SCENARIO, glitch_rate_per_min=GLITCH_RATE)
    # gravitational-wave signals in the strain alone: SIM's GW170817 case (window 17:10), a chirp and a loud burst away
    # from every glitch (17:00, 17:05; the burst loud enough for the search to find it, and no witness sees it)
    span = (sim.gps_start, sim.gps_start + MINUTES * 60)
    away = (
        Signal("bbh", _quiet_time(scenario, *span, sim.gps_start + 450), 15.0, 30.0, 25.0),
        Signal("burst", _quiet_time(scenario, *span, sim.gps_start + 750), 30.0, frequency=150.0, q=8.0),
    )
    scenario = dataclasses.replace(scenario, signals=scenario.signals + away)
    simulate(root / "frames", sim.gps_start, MINUTES * 60 + 60, frame_length=60, seed=SEED, scenario=scenario, workers=2)
    case = windows_overlapping(GW170817_SIGNAL.gps, GW170817_SIGNAL.gps + 1, sim.cadence)[0]
    simulate(
        root / "frames", case.gps_start - 60, case.gps_end - case.gps_start + 120, frame_length=60, seed=SEED, scenario=scenario, workers=2
    )
    with dg.instance_for_test() as instance:
        p = Pipeline(root, instance)
        assert materialize_span(p.defs, "SIM", p.keys, instance, through=SPLIT).success  # the graph's order, the run's jobs
        p.first = p.materialize([TRAINED, EVALUATION, SYNTHETIC], ops={TRAINED: TRAINING})
        # the default gate asks for 30 validation glitch events: this short run must not be promoted
        p.refused = p.materialize([TRAINED], ops={TRAINED: {"epochs": 2, "seed": 5}}, raise_on_error=False)
        tracker = Tracker(p.tracking_uri)
        p.aliases_after_refusal = {a: tracker.alias_version("glitchflow-SIM", a) for a in (CANDIDATE, CHAMPION)}
        yield p


def test_training_registers_a_version_with_lineage_both_ways(pipeline):
    meta = pipeline.metadata(pipeline.first, TRAINED)
    client = MlflowClient(tracking_uri=pipeline.tracking_uri, registry_uri=pipeline.tracking_uri)
    version = client.get_model_version(meta["model_name"], meta["model_version"])
    assert meta["model_name"] == "glitchflow-SIM" and meta["model_uri"] == f"models:/glitchflow-SIM/{meta['model_version']}"
    assert version.run_id == meta["mlflow_run_id"]
    run = client.get_run(meta["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    # the UI links into MLflow (here the `mlflow ui` of the README: the store is a local one)
    # (opening MLflow 3's model-training view: its GenAI view would show traces and tokens)
    assert meta["mlflow_run"].endswith(f"/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}?workflowType=machine_learning")
    assert meta["mlflow_model_version"].endswith(f"/#/models/glitchflow-SIM/versions/{meta['model_version']}?workflowType=machine_learning")
    assert run.data.tags["dagster_run_id"] == pipeline.first.run_id
    link = f"http://127.0.0.1:3000/runs/{pipeline.first.run_id}"  # back to the Dagster run (default UI address)
    assert run.data.tags["dagster_run_url"] == link and f"]({link})" in run.data.tags["mlflow.note.content"]
    assert run.data.tags["dagster_asset_key"] == "SIM/trained_model" and run.data.tags["dagster_partition"] == "SIM"
    assert run.data.params["train.epochs"] == "12" and "torch" in run.data.tags and "device" in run.data.tags
    history = client.get_metric_history(run.info.run_id, "validation_loss")
    assert len(history) == meta["epochs_run"] and [m.step for m in history] == list(range(meta["epochs_run"]))
    assert history[meta["best_epoch"]].value == min(m.value for m in history)  # the restored checkpoint is the best one
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/MLmodel", "model/pyfunc_model.py", "model/artifacts"} <= artifacts  # an MLflow model, from code
    bundle = {a.path for a in client.list_artifacts(run.info.run_id, "model/artifacts/bundle")}
    assert bundle == {"model/artifacts/bundle/glitchflow_model.json", "model/artifacts/bundle/weights.safetensors"}
    # nothing left RUNNING anywhere in the store
    experiment = client.get_experiment_by_name("glitchflow-SIM")
    assert {r.info.status for r in client.search_runs([experiment.experiment_id])} == {"FINISHED"}


def test_the_model_learns_glitches_and_passes_the_gate(pipeline):
    (check,) = [c for c in pipeline.first.get_asset_check_evaluations() if c.check_name == QUALITY_GATE]
    assert check.passed, check.description
    meta = pipeline.metadata(pipeline.first, TRAINED)
    client = MlflowClient(tracking_uri=pipeline.tracking_uri, registry_uri=pipeline.tracking_uri)
    assert client.get_model_version("glitchflow-SIM", meta["model_version"]).tags["quality_gate"] == "passed"
    meta = pipeline.metadata(pipeline.first, EVALUATION)
    assert meta["test_glitch_events"] >= 8 and "warning" in meta  # a 20-minute test split is flagged as weak
    test = _test_metrics(pipeline, meta)
    # held out: glitches are generated where the real strain has them and not elsewhere, better than the witness regression
    assert test["balanced_accuracy"] >= 0.85 and test["roc_auc"] >= 0.9
    assert test["balanced_accuracy_zero"] == test["balanced_accuracy_mean_tile"] == 0.5
    assert test["balanced_accuracy_low"] <= test["balanced_accuracy"] <= test["balanced_accuracy_high"]
    assert 0.5 < test["loudness_ratio"] < 2.0 and test["peak_distance_time_bins"] <= 2
    # its glitches are placed and shaped (log-energy correlation) where the baselines place none; glitch-tile L1 on ~10
    # held-out events of a 20-minute run is too noisy to rank (bench_science ranks it on hundreds)
    assert test["log_correlation"] > 2 * max(test["log_correlation_mean_tile"], test["log_correlation_zero"])
    assert test["l1_background"] < min(test["l1_background_zero"], test["l1_background_mean_tile"])


def test_the_default_gate_refuses_to_promote_on_too_few_events(pipeline):
    (check,) = [c for c in pipeline.refused.get_asset_check_evaluations() if c.check_name == QUALITY_GATE]
    assert not check.passed and "validation glitch events" in check.description
    refused, first = (pipeline.metadata(r, TRAINED)["model_version"] for r in (pipeline.refused, pipeline.first))
    assert pipeline.aliases_after_refusal == {CANDIDATE: refused, CHAMPION: first}  # as left then: later tests retrain
    version = Tracker(pipeline.tracking_uri).client.get_model_version("glitchflow-SIM", refused)
    assert version.tags["quality_gate"] == "failed"


def _test_metrics(pipeline, meta: dict) -> dict[str, float]:
    """The evaluation's numbers as its MLflow run holds them (the UI shows the headline table, not every number)."""
    run = MlflowClient(tracking_uri=pipeline.tracking_uri).get_run(meta["mlflow_run_id"])
    return {k.removeprefix("test_"): v for k, v in run.data.metrics.items() if k.startswith("test_")}


def test_evaluation_curves_tables_and_mlflow_artifacts(pipeline):
    meta = pipeline.metadata(pipeline.first, EVALUATION)
    numbers = _test_metrics(pipeline, meta)
    written = read_evaluation(meta["path"])
    curves, tiles, vetoes = written.curves, written.tiles, written.vetoes
    assert curves["threshold"].tolist() == list(range(1, 51)) and written.model_uri == meta["model_uri"]
    assert np.all(np.diff(curves["denoising_accuracy"]) >= 0) and np.all(np.diff(curves["real_glitch_fraction"]) <= 0)
    assert curves.loc[15, "denoising_accuracy"] == pytest.approx(numbers["denoising_accuracy_snr2_16"], abs=1e-4)
    with h5py.File(pipeline.storage.run_file("SIM", "dataset_split")) as f:
        test_gps = set(f["test/event_gps"][()])
        train_gps = set(f["train/event_gps"][()]) | set(f["validation/event_gps"][()])
    assert set(vetoes["gps"]) == test_gps and not test_gps & train_gps  # test split only
    assert {"l1", "ssim", "event_gps", "tile_offset", "generated_max", "real_max"} <= set(tiles.columns)
    assert tiles.groupby("generator").size().to_dict() == {g: numbers["n_tiles"] for g in ("model", "zero", "mean_tile", "linear_witness")}
    client = MlflowClient(tracking_uri=pipeline.tracking_uri)
    run = client.get_run(meta["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["model_uri"] == meta["model_uri"]
    # the UI's headline table: a row per generator, the key scores first, as written in the evaluation's file
    report = {r.data["generator"]: r.data for r in meta["report"].records}
    assert list(report) == ["model", "zero", "mean_tile", "linear_witness"]
    assert [c.name for c in meta["report"].schema.columns][:5] == [
        "generator",
        "balanced_accuracy",
        "roc_auc",
        "loudness_ratio",
        "l1_glitch",
    ]
    assert report["model"]["balanced_accuracy"] == pytest.approx(numbers["balanced_accuracy"], abs=1e-3)
    assert not any(k.endswith(("_zero", "_mean_tile", "_linear_witness", "_low", "_high")) for k in meta)  # no flat copies
    assert {a.path for a in client.list_artifacts(run.info.run_id, "figures")} == {"figures/accuracy_curves.png", "figures/roc.png"}
    assert written.report["generator"].tolist() == ["model", "zero", "mean_tile", "linear_witness"]
    # per glitch class (SIM's morphologies, named as Gravity Spy names them, carried by the dataset's tiles): each test
    # event counted once, in the class its tiles carry, in the UI and beside the run in MLflow
    per_class = pd.DataFrame([r.data for r in meta["per_class"].records]).set_index("class")
    model_tiles = tiles[tiles.generator == "model"]
    events_per_class = model_tiles.groupby(shown(model_tiles.event_class.to_numpy()))["event_gps"].nunique()
    assert per_class.drop(index="all").events.to_dict() == events_per_class.to_dict()
    assert per_class.loc["all", "events"] == events_per_class.sum() == numbers["n_events"]
    assert set(SIM_CLASSES.values()) & set(per_class.index) and set(per_class.index) <= {*SIM_CLASSES.values(), "unlabelled", "all"}
    assert "tables/per_class.csv" in {a.path for a in client.list_artifacts(run.info.run_id, "tables")}
    split_meta = pipeline.instance.get_latest_materialization_event(dg.AssetKey(["SIM", SPLIT])).asset_materialization.metadata
    dataset_classes = pd.DataFrame([r.data for r in split_meta["events_per_class"].value.records]).set_index("class")
    assert dataset_classes.loc[events_per_class.index, "test"].to_dict() == events_per_class.to_dict()


def test_synthetic_set_schema_and_reload_gives_identical_outputs(pipeline):
    meta = pipeline.metadata(pipeline.first, SYNTHETIC)
    dataset = pipeline.storage.run_file("SIM", "dataset_split")
    tracker = Tracker(pipeline.tracking_uri)
    with h5py.File(meta["path"]) as f, h5py.File(dataset) as d:  # whichever version made the file: its attributes name it
        ref = ModelVersionRef(f.attrs["model_name"], f.attrs["model_version"], f.attrs["mlflow_run_id"])
        assert f.attrs["schema"] == SYNTHETIC_SCHEMA and f.attrs["model_uri"] == ref.uri and f.attrs["dataset_version"]
        assert tracker.client.get_model_version(ref.name, ref.version).run_id == ref.run_id
        n = f["generated"].shape[0]
        assert n == d["test/label"].shape[0] and f["generated"].shape[1:] == (64, 64)
        for name in ("real", "event_gps", "window", "tile_offset", "label", "split"):
            assert f[name].shape[0] == n, name
        np.testing.assert_array_equal(f["real"][()], d["test/tiles"][:, 0])
        np.testing.assert_array_equal(f["event_gps"][()], d["test/event_gps"][()])
        assert set(f["window"].asstr()[()]) <= set(pipeline.keys) and (f["generated"][()] >= 0).all()
        assert f["axes/frequencies"].attrs["units"] == "Hz" and f["axes/times"].shape == (256,)
        assert read_normalisation(dataset).channels == tuple(json.loads(f.attrs["channels"]))
        generated, tiles, label = f["generated"][()], d["test/tiles"][()], f["label"][()]
    np.testing.assert_allclose(tracker.load(ref).generate(tiles, torch.device("cpu"), batch_size=7), generated, rtol=1e-5, atol=1e-5)
    if ref.uri == pipeline.metadata(pipeline.first, TRAINED)["model_uri"]:  # the gate-passing model: glitches where they are
        peaks = generated.reshape(n, -1).max(axis=1)
        assert np.median(peaks[label == 1]) > 2 * np.median(peaks[label == 0])


def test_retraining_makes_a_new_version_and_downstream_follows_the_record(pipeline):
    tracker = Tracker(pipeline.tracking_uri)
    latest = max(int(v.version) for v in tracker.client.search_model_versions("name='glitchflow-SIM'"))
    champion = tracker.alias_version("glitchflow-SIM", CHAMPION)
    second = pipeline.materialize([TRAINED], ops={TRAINED: {"epochs": 2, "seed": 4}}, raise_on_error=False)
    meta = pipeline.metadata(second, TRAINED)
    assert int(meta["model_version"]) == latest + 1 and tracker.alias_version("glitchflow-SIM", CHAMPION) == champion
    synthetic = pipeline.metadata(pipeline.materialize([SYNTHETIC]), SYNTHETIC)
    assert synthetic["model_uri"] == meta["model_uri"]


def test_every_run_is_filed_under_its_job(pipeline):
    """What the UI lists: the stages ran as the run's named jobs, none as an anonymous ephemeral job."""
    jobs = {r.job_name for r in pipeline.instance.get_runs()}
    # other tests of this module add runs of these jobs (SIM_cleaning too): the set is checked, not the count
    assert {"SIM_ingest", "SIM_selection", "SIM_spectrograms", "SIM_model"} <= jobs <= {job_name("SIM", j) for j in JOBS}
    assert not [j for j in jobs if j.startswith("__")]


def test_standard_mlflow_tooling_loads_the_champion_and_generates_from_witness_tiles(pipeline, monkeypatch, tmp_path):
    """``mlflow.pyfunc.load_model("models:/glitchflow-SIM@champion")`` as any MLflow user would call it: the same
    tiles as our own loader, from all channels or the witnesses only, and nothing in the model is a pickle."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", pipeline.tracking_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", pipeline.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model("models:/glitchflow-SIM@champion")
    tracker = Tracker(pipeline.tracking_uri)
    champion = ModelVersionRef("glitchflow-SIM", tracker.alias_version("glitchflow-SIM", CHAMPION), "")
    with h5py.File(pipeline.storage.run_file("SIM", "dataset_split")) as f:
        tiles = f["test/tiles"][:6]
    ours = tracker.load(champion).generate(tiles, torch.device("cpu"))
    np.testing.assert_allclose(pyfunc.predict(tiles), ours, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pyfunc.predict(tiles[:, 1:]), ours, rtol=1e-5, atol=1e-5)  # the witnesses alone
    with pytest.raises(Exception, match="channels"):
        pyfunc.predict(np.concatenate([tiles, tiles], axis=1))  # a wrong channel count is refused, naming the channels
    local = mlflow.artifacts.download_artifacts("models:/glitchflow-SIM@champion", dst_path=str(tmp_path))
    files = [p for p in Path(local).rglob("*") if p.is_file()]
    assert files and not [p for p in files if p.suffix in (".pkl", ".pickle", ".pt", ".pth")]


@pytest.fixture(scope="module")
def cleaned(pipeline):
    """glitch_waveforms (a few epochs: the demo trains longer), then cleaned_strain for every window one at a time as the
    UI runs them, then cleaning_evaluation; the results and each window's cleaning report."""
    pipeline.waveforms = pipeline.materialize([WAVEFORMS], ops={WAVEFORMS: {"epochs": 4}})
    job = pipeline.defs.resolve_job_def(job_for("SIM", [dg.AssetKey(["SIM", CLEANED])]))
    pipeline.reports = {}
    case = pipeline.gw170817.key
    assert materialize_span(pipeline.defs, "SIM", [case], pipeline.instance, through=EVENTS).success
    for key in [*pipeline.keys, case]:
        assert job.execute_in_process(
            instance=pipeline.instance, partition_key=key, asset_selection=[dg.AssetKey(["SIM", CLEANED])]
        ).success
        window = window_for_key(key, sim_run(Path(".")).cadence)
        pipeline.reports[key] = read_cleaning_report(pipeline.storage.window_file("SIM", CLEANED, window).with_suffix(".json"))
    pipeline.evaluation = pipeline.materialize([CLEAN_EVAL])
    # the signals as the evaluation's file records them (the UI's table shows GPS as text)
    pipeline.signals = read_cleaning_evaluation(pipeline.metadata(pipeline.evaluation, CLEAN_EVAL)["path"]).signals
    return pipeline


def test_time_domain_twin_predicts_held_out_glitches_and_cleans_the_windows(cleaned):
    """glitch_waveforms (Wiener twin, tracked and registered) then cleaned_strain for every window; the frames are read
    back through gwpy and the numbers judged against the simulator's truth."""
    pipeline = cleaned
    result = pipeline.waveforms
    meta = pipeline.metadata(result, WAVEFORMS)
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == WAVEFORM_GATE and check.passed, check.description
    waves = read_waveform_set(pipeline.storage.run_file("SIM", WAVEFORMS))
    assert len(waves.gps) == meta["test_events"] >= 10 and set(waves.split) == {"test"}
    assert waves.attrs["model_uri"] == meta["model_uri"] and np.isfinite(waves.strain).all()
    client = MlflowClient(tracking_uri=pipeline.tracking_uri, registry_uri=pipeline.tracking_uri)
    version = client.get_model_version_by_alias("glitchflow-SIM-waveforms", CHAMPION)
    assert f"models:/glitchflow-SIM-waveforms/{version.version}" == meta["model_uri"]
    assert meta["method"] in [a.path for a in client.list_artifacts(meta["mlflow_run_id"])]
    assert set(json.loads(waves.attrs["methods"])) == {"wiener", "convnet"}  # both fitted and reported, one kept
    # the twin's figures and tables in the UI and beside the model in MLflow
    assert [r.data["method"] for r in meta["methods"].records] == [meta["method"]] * 2 + [
        m for m in ("wiener", "convnet") if m != meta["method"]
    ] * 2
    # per glitch class, the simulated morphologies in Gravity Spy's names, as the dataset carries them
    by_class = pd.DataFrame([r.data for r in meta["by_class"].records]).set_index("class")
    assert set(by_class.index) - {"all"} <= {*SIM_CLASSES.values(), "unlabelled"} and set(SIM_CLASSES.values()) & set(by_class.index)
    assert by_class.loc["all", "events"] == by_class.drop(index="all").events.sum() == meta["test_events"]
    assert meta["held_out_waveforms"].startswith("![") and meta["before_after"].startswith("![")
    logged = {a.path for d in ("figures", "tables") for a in client.list_artifacts(meta["mlflow_run_id"], d)}
    assert logged == {"figures/held_out_waveforms.png", "figures/before_after.png", "tables/methods.csv", "tables/by_class.csv"}
    loud = waves.scores[waves.scores.true_snr >= 8]
    # 20 minutes train on ~50 events (the demo: ~250): shapes are rough but far from a null prediction (mismatch 1)
    assert len(loud) >= 5 and loud.mismatch.median() < 0.5 and (loud.snr_removed > 0).mean() > 0.7
    synth = [TimeSeries.read(str(p), "V1:GLITCHFLOW_SYNTH") for p in sorted(Path(meta["frames"]).glob("*.gwf"))]
    assert synth and all(np.abs(s.value).max() > 0 for s in synth) and synth[0].sample_rate.value == 4096
    for key in pipeline.keys:
        window = window_for_key(key, sim_run(Path(".")).cadence)
        frame = pipeline.storage.window_file("SIM", CLEANED, window).parent / "frames" / f"V-GLITCHFLOW_CLEAN-{window.gps_start}-300.gwf"
        data = TimeSeriesDict.read(str(frame), ["V1:GLITCHFLOW_CLEAN", "V1:GLITCHFLOW_SYNTH"])
        assert data["V1:GLITCHFLOW_CLEAN"].t0.value == window.gps_start and len(data["V1:GLITCHFLOW_CLEAN"]) == 300 * 4096
    reports = list(pipeline.reports.values())
    headline = cleaning_headline(waves.gps, waves.scores, reports)
    assert headline["held_out_events"] >= 5 and 0 <= headline["held_out_removed_fraction"] <= 1
    # cleaning lowers most events' SNR (removed ones count as 0); cleaning nothing would leave every SNR as it was
    events = pd.concat([r.table for r in reports])
    assert len(events) > 40 and (events.snr_after < events.snr_before).mean() > 0.6
    assert headline["new_events"] <= len(pipeline.reports)  # recorded, not hidden: the goal is 0 (see bench/RESULTS.md)
    # a refit the gate refuses is registered but not promoted, and leaves the twin that cleaning applies as it was
    champion_twin = pipeline.storage.run_file("SIM", WAVEFORMS, TWIN_SUFFIX)
    before = sha256sum(champion_twin)
    refused = pipeline.materialize([WAVEFORMS], ops={WAVEFORMS: {"method": "wiener", "min_validation_events": 10**6}}, raise_on_error=False)
    (check,) = refused.get_asset_check_evaluations()
    assert not check.passed and sha256sum(champion_twin) == before
    assert client.get_model_version_by_alias("glitchflow-SIM-waveforms", CHAMPION).version == version.version


def test_a_signal_away_from_glitches_is_unchanged_by_cleaning(cleaned):
    """Issue 28: the chirp and the burst away from every glitch keep their matched-filter SNR to 1 %."""
    away = cleaned.signals[~cleaned.signals.on_glitch]
    assert sorted(away.kind) == ["bbh", "burst"]
    assert ((away.snr_cleaned / away.snr_original - 1).abs() <= 0.01).all(), away
    assert (away.snr_original > 10).all()  # they are there to lose: measured at about their injected SNR


def test_a_burst_without_a_witness_is_never_subtracted(cleaned):
    """Issue 28: the loud burst no witness sees is found by the event search, and the twin predicts nothing there."""
    (burst,) = cleaned.signals[cleaned.signals.kind == "burst"].itertuples()
    events = pd.concat([r.table for r in cleaned.reports.values()])
    at_burst = events[(events.gps - burst.gps).abs() < 0.1]
    assert len(at_burst) == 1 and at_burst.snr_before.iloc[0] > 15  # the search sees it: the twin is asked about it
    assert not at_burst.predicted.iloc[0] and not at_burst.removed.iloc[0] and not burst.touched
    assert burst.snr_cleaned == burst.snr_original and burst.ep_cleaned == burst.ep_original


def test_the_gw170817_case_keeps_the_chirp_and_loses_the_glitch(cleaned):
    """Issue 28: SIM's BNS crossed by a loud witnessed blip: the original strain misstates the chirp's SNR by more than
    5 %, the cleaned strain holds it within 5 % of the glitch-free truth, and the figure is in the evaluation."""
    (bns,) = cleaned.signals[cleaned.signals.kind == "bns"].itertuples()
    assert bns.gps == GW170817_SIGNAL.gps and bns.on_glitch and bns.touched
    assert abs(bns.snr_original / bns.snr_truth - 1) > 0.05, bns
    assert abs(bns.snr_cleaned / bns.snr_truth - 1) <= 0.05, bns
    meta = cleaned.metadata(cleaned.evaluation, CLEAN_EVAL)
    assert meta["gw170817_case"].startswith("![original, cleaned and true strain](data:image/png;base64,")
    (check,) = cleaned.evaluation.get_asset_check_evaluations()
    assert check.check_name == SIGNAL_SAFETY and check.passed, check.description


def test_witness_coverage_is_reported_per_class(cleaned):
    meta = cleaned.metadata(cleaned.evaluation, CLEAN_EVAL)
    coverage = read_cleaning_evaluation(cleaned.storage.run_file("SIM", CLEAN_EVAL, ".json")).coverage.set_index("class")
    shown = pd.DataFrame([r.data for r in meta["coverage"].records])  # the UI's table: the same classes and counts
    assert shown["class"].tolist() == coverage.index.tolist() and shown.glitches.tolist() == coverage.glitches.tolist()
    classes = coverage.drop(index="all")
    assert coverage.loc["all", "glitches"] == classes.glitches.sum() >= 10 and meta["held_out_events"] >= coverage.loc["all", "glitches"]
    morphologies = set(SIM_CLASSES.values())  # SIM's morphologies, named as Gravity Spy names them
    assert morphologies & set(coverage.index) and set(coverage.index) <= morphologies | {"all"}
    # every SIM family has a witness the selection keeps: the twin predicts most loud held-out glitches of each
    assert (coverage.loc[list(morphologies & set(coverage.index)), "status"] == "witnessed").all()
    assert (
        coverage.loc["all", "predicted_fraction"] > 0.6
        and 0 < coverage.loc["all", "removed_fraction"] <= coverage.loc["all", "predicted_fraction"]
    )
