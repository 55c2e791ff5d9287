"""The twin's quality machinery on a world with a known answer: scores a flat model fails, baselines scored by the same
code, bootstrap intervals over events, and a gate that refuses constant and NaN models (and registers nothing)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from glitchflow_assets.core.dataset.splits import DatasetConfig, DatasetWriter
from glitchflow_assets.core.ml.baselines import ZeroTile, fit_linear_witness
from glitchflow_assets.core.ml.bundle import MODEL, GlitchModel
from glitchflow_assets.core.ml.data import read_normalisation
from glitchflow_assets.core.ml.evaluation import UnsoundModel, baselines, evaluate, score
from glitchflow_assets.core.ml.gate import GateConfig, judge
from glitchflow_assets.core.ml.loop import TrainingDiverged
from glitchflow_assets.core.ml.model import AttentionUNet, ModelConfig
from glitchflow_assets.core.ml.pipeline import train_and_register, validation_report
from glitchflow_assets.core.ml.scoring import choose_threshold, headline, roc_auc, roc_curve, tile_scores, with_intervals
from glitchflow_assets.core.ml.tracking import Tracker
from glitchflow_assets.core.ml.training import TrainConfig

CPU = torch.device("cpu")
TINY = ModelConfig(n_aux=1, widths=(8, 16), bottleneck=16, blocks=1, key_pool=4)


def _blob(amplitude: np.ndarray, rows: int = 64, bins: int = 256) -> np.ndarray:
    """``[event, rows, bins]`` Gaussian blobs of peak ``amplitude`` at the event centre (bin 128), row 20-44."""
    f, t = np.arange(rows)[:, None], np.arange(bins)[None, :]
    centre = np.linspace(20, 44, len(amplitude))[:, None, None]
    return amplitude[:, None, None] * np.exp(-((f - centre) ** 2) / 8.0 - (t - 128.0) ** 2 / 18.0)


def write_witness_dataset(path, events_per_window: int = 40, windows: int = 3, seed: int = 0, poison_train: bool = False):
    """A ``dataset_split`` file of two channels: strain ``S`` and witness ``W``. Half the events hold a glitch seen
    by both (witness twice as loud); noise is exponential with mean 1, as whitened Q-tile energy."""
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(path, ["S", "W"], DatasetConfig(fractions=(0.5, 0.25, 0.25)))
    writer.set_axes(np.geomspace(8.0, 500.0, 64), np.linspace(-3.0, 3.0, 256))
    for w in range(windows):
        n = events_per_window
        spectrograms = rng.exponential(1.0, (n, 2, 64, 256))
        glitch = np.where(rng.random(n) < 0.5, rng.uniform(80.0, 600.0, n), 0.0)
        blob = _blob(glitch)
        spectrograms[:, 0] += blob
        spectrograms[:, 1] += 2.0 * blob
        if poison_train:
            spectrograms[:, 1, 0, 0] = np.nan
        writer.add_window(f"w{w}", spectrograms.astype(np.float32), 1_400_000_000.0 + 1000 * w + 10.0 * np.arange(n))
    writer.close({"run": "TEST"})
    return path


@pytest.fixture(scope="module")
def witness_dataset(tmp_path_factory):
    return write_witness_dataset(tmp_path_factory.mktemp("witness") / "dataset.h5")


def _model(dataset, state: str = "random") -> GlitchModel:
    """An untrained network in the dataset's units: as initialised, witness-blind (constant) or NaN."""
    torch.manual_seed(0)
    network = AttentionUNet(TINY).eval()
    with torch.no_grad():
        if state == "constant":  # the output ignores the input: only the head's bias is left
            network.head[0].weight.zero_()
        elif state == "nan":
            network.head[0].bias.fill_(float("nan"))
    return GlitchModel(network, read_normalisation(dataset), {})


class Oracle:
    """Generates the real strain tile: the best a twin can do."""

    name = MODEL

    def generate(self, tiles, device, batch_size=64):
        return tiles[:, 0].copy()


def test_roc_auc_is_the_rank_statistic_and_a_constant_scores_chance():
    rng = np.random.default_rng(3)
    score_, label = rng.normal(size=200), rng.random(200) < 0.4
    score_[label] += 1.0
    pairs = (score_[label][:, None] > score_[~label][None, :]).mean() + 0.5 * (score_[label][:, None] == score_[~label][None, :]).mean()
    assert roc_auc(score_, label.astype(int)) == pytest.approx(pairs)
    assert roc_auc(np.ones(50), (np.arange(50) % 2)) == 0.5
    fpr, tpr = roc_curve(score_, label.astype(int))
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(score_, label.astype(int)))


def test_scores_of_an_oracle_and_of_a_flat_model():
    rng = np.random.default_rng(4)
    real = rng.exponential(1.0, (40, 64, 64)).astype(np.float32)
    real[:20] += 100.0 * _blob(np.ones(20), 64, 64)[:, :, :64] / _blob(np.ones(1), 64, 64)[:, :, :64].max()
    label = np.r_[np.ones(20, int), np.zeros(20, int)]
    frame = lambda generated: tile_scores(generated, real, 100.0).assign(label=label, event_gps=np.arange(40))  # noqa: E731
    oracle, flat = frame(real), frame(np.full_like(real, 0.7))
    perfect = headline(oracle, choose_threshold(oracle["generated_max"].to_numpy(), label))
    assert perfect["roc_auc"] == perfect["balanced_accuracy"] == perfect["loudness_ratio"] == 1.0
    assert perfect["peak_distance_time_bins"] == perfect["peak_distance_freq_rows"] == 0 and perfect["log_correlation"] == pytest.approx(
        1.0
    )
    assert perfect["l1_glitch"] == perfect["l1_background"] == 0
    nothing = headline(flat, choose_threshold(flat["generated_max"].to_numpy(), label))
    assert nothing["roc_auc"] == 0.5 and nothing["balanced_accuracy"] == 0.5 and nothing["log_correlation"] == 0
    assert nothing["loudness_ratio"] < 0.05


def test_bootstrap_intervals_resample_events_and_are_seeded():
    rng = np.random.default_rng(5)
    n = 120
    tiles = pd.DataFrame(
        {
            "event_gps": np.repeat(np.arange(n // 3), 3),  # three tiles per event
            "label": (rng.random(n) < 0.5).astype(int),
            "real_max": rng.uniform(40, 400, n),
        }
    )
    tiles["generated_max"] = tiles["real_max"] * rng.uniform(0.5, 1.5, n) * tiles["label"] + rng.uniform(0, 20, n)
    for k in ("peak_distance_time_bins", "peak_distance_freq_rows", "log_correlation", "l1", "ssim"):
        tiles[k] = rng.random(n)
    a, b = with_intervals(tiles, 30.0, resamples=200, seed=1), with_intervals(tiles, 30.0, resamples=200, seed=1)
    assert {k: str(v) for k, v in a.items()} == {k: str(v) for k, v in b.items()}
    for k, v in a.items():
        assert v.low <= v.value <= v.high, k
    few = with_intervals(tiles[tiles.event_gps < 8], 30.0, resamples=200, seed=1)
    width = lambda i: i.high - i.low  # noqa: E731
    assert width(few["loudness_ratio"]) > width(a["loudness_ratio"])  # fewer events, wider interval


def test_linear_witness_baseline_recovers_a_linear_coupling(witness_dataset):
    linear = fit_linear_witness(witness_dataset)
    assert linear.weights[32, 0] == pytest.approx(0.5, abs=0.05)  # strain = witness / 2 where the glitches are
    report = score(baselines(witness_dataset), witness_dataset, "validation", CPU, 100.0)
    assert report.headline("linear_witness")["balanced_accuracy"].value > 0.95
    assert report.headline("zero")["balanced_accuracy"].value == 0.5 and report.headline("mean_tile")["roc_auc"].value == 0.5


def test_gate_refuses_constant_and_nan_models(witness_dataset):
    with pytest.raises(UnsoundModel, match="ignores the witnesses"):
        validation_report(_model(witness_dataset, "constant"), witness_dataset, CPU)
    with pytest.raises(UnsoundModel, match="non-finite"):
        validation_report(_model(witness_dataset, "nan"), witness_dataset, CPU)
    with pytest.raises(UnsoundModel, match="non-finite"):
        evaluate(_model(witness_dataset, "nan"), witness_dataset, CPU)  # the held-out evaluation refuses it too


def test_gate_passes_an_oracle_and_fails_a_blind_or_unproven_model(witness_dataset):
    oracle = score([Oracle(), *baselines(witness_dataset)], witness_dataset, "validation", CPU, 100.0)
    verdict = judge(oracle, GateConfig(min_validation_events=10))
    assert verdict.passed and verdict.values["balanced_accuracy"] == 1.0, verdict.describe()
    unproven = judge(oracle, GateConfig(min_validation_events=10_000))  # too few events to judge by
    assert not unproven.passed and any("validation glitch events" in f for f in unproven.failures)
    blind = score([_model(witness_dataset), *baselines(witness_dataset)], witness_dataset, "validation", CPU, 100.0)
    verdict = judge(blind, GateConfig(min_validation_events=10))
    assert not verdict.passed and any("linear witness" in f for f in verdict.failures), verdict.describe()
    zero = score([dataclasses.replace(ZeroTile(), name=MODEL), *baselines(witness_dataset)], witness_dataset, "validation", CPU, 1.0)
    assert not judge(zero).passed and "ignores the witnesses" in judge(zero).failures[0]


def test_diverged_training_registers_nothing(tmp_path):
    poisoned = write_witness_dataset(tmp_path / "poisoned.h5", events_per_window=12, poison_train=True)
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    config = TrainConfig(model_size="small", epochs=2, batch_size=8)
    with pytest.raises(TrainingDiverged, match="epoch 0"):
        train_and_register(poisoned, "TEST", config, GateConfig(), CPU, tracker, {"dagster_run_id": "r"}, lambda m: None)
    client = MlflowClient(tracking_uri=tracker.uri, registry_uri=tracker.uri)
    assert client.search_model_versions("name='glitchflow-TEST'") == []
    (run,) = client.search_runs([client.get_experiment_by_name("glitchflow-TEST").experiment_id])
    assert run.info.status == "FAILED"


def test_launchpad_training_config_matches_the_core_configs():
    from glitchflow_assets.defs.model import TrainingConfig

    fields = TrainingConfig.model_fields
    core = {**{f: getattr(TrainConfig(), f) for f in TrainConfig.__dataclass_fields__}, **dataclasses.asdict(GateConfig())}
    assert set(fields) - {"device"} == set(core)  # no field added to one side only
    for name, default in core.items():
        assert fields[name].default == default, name  # the same defaults
        assert fields[name].description, name  # and a description in the Launchpad
    launchpad = TrainingConfig(representation="linear", min_validation_events=7)
    assert launchpad.train_config() == TrainConfig(representation="linear") and launchpad.gate_config().min_validation_events == 7


def test_every_launchpad_config_matches_its_core_dataclass_and_explains_itself():
    """Each field of the Launchpad's config classes has a description and no Sphinx markup; the dataset split and
    training choices are the core's; the dataset defaults are the core's."""
    from glitchflow_assets.core.artifacts.dataset_split import SPLITS
    from glitchflow_assets.core.dataset.splits import DatasetConfig
    from glitchflow_assets.core.ml.data import REPRESENTATIONS
    from glitchflow_assets.core.ml.training import MODEL_SIZES
    from glitchflow_assets.core.twin.pipeline import METHODS, TwinConfig
    from glitchflow_assets.defs.ingest import RawSegmentsConfig
    from glitchflow_assets.defs.model import DatasetSplitConfig, SyntheticConfig, TrainingConfig
    from glitchflow_assets.defs.twin import WaveformsConfig

    for config in (TrainingConfig, DatasetSplitConfig, SyntheticConfig, RawSegmentsConfig, WaveformsConfig):
        assert ":class:" not in (config.__doc__ or "") and "``" not in (config.__doc__ or ""), config
        for name, field in config.model_fields.items():
            assert field.description and ":class:" not in field.description, (config.__name__, name)
    assert DatasetSplitConfig().dataset_config() == DatasetConfig()
    # every core dataset field is on the Launchpad, or fixed on purpose (the tile geometry is the model's input shape):
    # a field added to the core must be placed in one of the two
    fixed, split_of_fractions = {"tile_size", "tile_offsets", "clamp"}, {"train_fraction", "validation_fraction"}
    launchpad = set(DatasetSplitConfig.model_fields) - split_of_fractions | {"fractions"}
    assert launchpad | fixed == set(DatasetConfig.__dataclass_fields__) and not launchpad & fixed
    assert WaveformsConfig().twin_config() == TwinConfig()
    assert {m.value for m in WaveformsConfig.model_fields["method"].annotation} == set(METHODS)
    assert WaveformsConfig(method="wiener", epochs=3).twin_config().convnet.epochs == 3
    assert {m.value for m in TrainingConfig.model_fields["model_size"].annotation} == set(MODEL_SIZES)
    assert {m.value for m in TrainingConfig.model_fields["representation"].annotation} == set(REPRESENTATIONS)
    assert [s.value for s in SyntheticConfig().splits] == ["test"]
    assert {s.value for s in SyntheticConfig.model_fields["splits"].annotation.__args__[0]} == set(SPLITS)
    with pytest.raises(ValueError, match="tset"):
        SyntheticConfig(splits=["tset"])
