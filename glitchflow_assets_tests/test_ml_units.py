"""The model's pure core: architecture, pickle-free bundles, metrics, deterministic training, MLflow tracking."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from glitchflow_assets.core.ml.bundle import MANIFEST, WEIGHTS, GlitchModel, load_bundle, save_bundle
from glitchflow_assets.core.ml.data import Normalisation, TileSet
from glitchflow_assets.core.ml.loop import batches
from glitchflow_assets.core.ml.metrics import THRESHOLDS, accuracy_curves, cluster_area, cluster_flags, tile_residuals, veto_table
from glitchflow_assets.core.ml.model import AttentionUNet, ModelConfig, parameter_count
from glitchflow_assets.core.ml.tracking import CANDIDATE, Tracker
from glitchflow_assets.core.ml.training import TrainConfig, train, validation_loss

CPU = torch.device("cpu")


def _with_attention_on(model: AttentionUNet) -> AttentionUNet:
    """Gates start with weight 0 (identity); give them weight so attention changes the output."""
    for gate in model.gates:
        gate.gamma.data.fill_(0.7)
    return model.eval()


@pytest.mark.parametrize("key_pool", [1, 4])
def test_fused_attention_is_the_original_function(key_pool):
    torch.manual_seed(0)
    config = ModelConfig(n_aux=3, widths=(8, 16), bottleneck=16, blocks=1, key_pool=key_pool)
    fused = _with_attention_on(AttentionUNet(config))
    naive = _with_attention_on(AttentionUNet(dataclasses.replace(config, attention="naive")))
    naive.load_state_dict(fused.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        y_fused, y_naive = fused(x), naive(x)
        for gate in fused.gates:
            gate.gamma.data.zero_()
        y_off = fused(x)
    assert y_fused.shape == (2, 1, 64, 64) and (y_fused >= 0).all()  # Softplus: non-negative energy
    torch.testing.assert_close(y_fused, y_naive, rtol=1e-4, atol=1e-5)
    assert (y_fused - y_off).abs().max() > 1e-3  # the attention path really contributes


def test_model_sizes_and_bad_configs():
    assert 14e6 < parameter_count(AttentionUNet(ModelConfig.original(8))) < 18e6  # the reference quotes ~16.8 M
    assert parameter_count(AttentionUNet(ModelConfig.small(5))) < 1e6
    for bad in ({"n_aux": 0}, {"n_aux": 2, "widths": (4,)}, {"n_aux": 2, "attention": "magic"}, {"n_aux": 2, "key_pool": 0}):
        with pytest.raises(ValueError):
            ModelConfig(**bad)
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=1)


def test_bundle_round_trip_is_exact_and_pickle_free(tmp_path):
    torch.manual_seed(1)
    network = _with_attention_on(AttentionUNet(ModelConfig.small(2)))
    model = GlitchModel(network, Normalisation(("S", "A", "B"), (50.0, 10.0, 20.0)), {"dataset": "d.h5"})
    save_bundle(tmp_path / "m", model)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted([MANIFEST, WEIGHTS])
    assert (tmp_path / "m" / WEIGHTS).read_bytes()[:8] != b"\x80\x02\x8a\x0al\xfc\x9cF"  # not a torch pickle
    loaded = load_bundle(tmp_path / "m")
    tiles = np.random.default_rng(0).exponential(1.0, (3, 3, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(model.generate(tiles, CPU), loaded.generate(tiles, CPU))
    assert loaded.normalisation == model.normalisation and loaded.provenance == {"dataset": "d.h5"}
    weights = (tmp_path / "m" / WEIGHTS).read_bytes()
    (tmp_path / "m" / WEIGHTS).write_bytes(weights[:-4] + bytes(4))  # bit damage the safetensors header would not notice
    with pytest.raises(ValueError, match="SHA-256"):
        load_bundle(tmp_path / "m")
    (tmp_path / "m" / MANIFEST).write_text('{"format": "something.else", "format_version": 1}')
    with pytest.raises(ValueError, match="something.else"):
        load_bundle(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="not a glitchflow model"):
        load_bundle(tmp_path)


def test_clusters_are_8_connected_larger_than_one_pixel_and_never_cross_tiles():
    images = np.zeros((4, 8, 8))
    images[0, 3, 3] = 50  # lone pixel: not a cluster
    images[1, 2, 2] = images[1, 3, 3] = 50  # diagonal neighbours: one 8-connected cluster of 2
    images[2, 7, 7] = 50  # bottom-right of tile 2 ...
    images[3, 0, 0] = 50  # ... top-left of tile 3: adjacent in memory, not in the sky
    assert cluster_area(images, 16).tolist() == [0, 2, 0, 0]
    assert cluster_area(images, 51).tolist() == [0, 0, 0, 0]


def test_accuracy_curves_and_veto_table():
    rng = np.random.default_rng(3)
    real = rng.exponential(3.0, (40, 16, 16))
    real[:20, 5:8, 5:8] += 60  # half the tiles carry a glitch
    generated = real * rng.uniform(0.5, 1.5, real.shape)
    curves = accuracy_curves(cluster_flags(generated, real))
    assert curves["threshold"].tolist() == list(THRESHOLDS)
    assert np.all(np.diff(curves["denoising_accuracy"]) >= 0)  # a residual cluster at T implies one at every T' < T
    assert np.all(np.diff(curves["real_glitch_fraction"]) <= 0)
    perfect = accuracy_curves(cluster_flags(real, real))
    assert (perfect["denoising_accuracy"] == 1).all() and (perfect["veto_accuracy"] == 1).all()
    gps = np.repeat(np.arange(8) + 1e9, 5)
    halves = [tile_residuals(generated[s], real[s], gps[s]) for s in (slice(0, 23), slice(23, None))]
    table = veto_table(pd.concat(halves))
    assert len(table) == 8 and table["tiles"].tolist() == [5] * 8  # an event cut by a batch boundary is merged
    assert table["real_glitch"].tolist() == [True] * 4 + [False] * 4
    assert (table["cleaned"] == (table["residual_area"] == 0)).all()


def _toy_tiles(n: int, seed: int) -> TileSet:
    """Strain = a blurred copy of the first witness: learnable from the inputs."""
    g = torch.Generator().manual_seed(seed)
    aux = torch.rand(n, 2, 64, 64, generator=g)
    strain = torch.nn.functional.avg_pool2d(aux[:, :1], 3, 1, 1)
    return TileSet(aux, strain, torch.zeros(n, dtype=torch.long))


def test_batches_never_leave_a_single_tile():
    assert [len(b) for b in batches(33, 16, None)] == [16, 17]
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert all(torch.equal(a, b) for a, b in zip(batches(40, 16, g1), batches(40, 16, g2), strict=True))


def test_training_is_deterministic_and_keeps_the_best_epoch():
    config = TrainConfig(epochs=4, batch_size=8, seed=11)
    data, validation = _toy_tiles(24, 0), _toy_tiles(8, 1)

    def run(seed_config):
        torch.manual_seed(seed_config.seed)
        model = AttentionUNet(ModelConfig(n_aux=2, widths=(8, 16), bottleneck=16, blocks=1, key_pool=4))
        return model, train(model, data, validation, seed_config, CPU)

    (m1, r1), (m2, r2) = run(config), run(config)
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert [h["validation_loss"] for h in r1.history] == [h["validation_loss"] for h in r2.history]
    assert validation_loss(m1, validation, CPU, config) == pytest.approx(r1.best_validation_loss, rel=1e-6)  # best restored
    assert r1.best_validation_loss == min(h["validation_loss"] for h in r1.history)
    m3, _ = run(TrainConfig(epochs=4, batch_size=8, seed=12))
    assert not torch.equal(m1.head[0].weight, m3.head[0].weight)
    with pytest.raises(ValueError, match="validation"):
        train(m1, data, _toy_tiles(0, 2), config, CPU)


def test_early_stopping(monkeypatch):
    history = []
    model = AttentionUNet(ModelConfig(n_aux=2, widths=(8, 16), bottleneck=16, blocks=1, key_pool=4))
    config = TrainConfig(epochs=50, batch_size=8, learning_rate=1e-9, early_stopping_patience=2)  # cannot improve
    result = train(model, _toy_tiles(16, 0), _toy_tiles(8, 1), config, CPU, history.append)
    assert result.stopped == "early stopping" and len(result.history) < 50 and history == result.history


def test_tracker_ends_runs_and_registers_versions(isolated_home):
    tracker = Tracker()
    assert tracker.uri.startswith("sqlite:///") and str(isolated_home) in tracker.uri
    with pytest.raises(RuntimeError), tracker.run("glitchflow-T", "boom", {"dagster_run_id": "r1"}) as failed:
        raise RuntimeError("training diverged")
    assert tracker.client.get_run(failed).info.status == "FAILED"
    # the MLflow UI opens the experiment on its runs table (not the GenAI view), and not on an empty Default experiment
    experiment = tracker.client.get_experiment_by_name("glitchflow-T")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert [e.name for e in tracker.client.search_experiments()] == ["glitchflow-T"]
    with tracker.run("glitchflow-T", "metrics", {}) as run_id:
        tracker.log_metrics(run_id, {"balanced_accuracy": 0.9753086419753086, "events": 62.0})
    assert tracker.client.get_run(run_id).data.metrics == {"balanced_accuracy": 0.9753, "events": 62.0}
    torch.manual_seed(2)
    model = GlitchModel(_with_attention_on(AttentionUNet(ModelConfig.small(1))), Normalisation(("S", "A"), (3.0, 4.0)), {})
    refs = []
    for _ in range(2):
        with tracker.run("glitchflow-T", "train", {"dagster_run_id": "r2"}) as run_id:
            tracker.log_model(run_id, model)
        refs.append(tracker.register("glitchflow-T", run_id, {}))
    assert tracker.client.get_run(run_id).info.status == "FINISHED"
    assert [r.version for r in refs] == ["1", "2"] and tracker.alias_version("glitchflow-T", CANDIDATE) == "2"
    tiles = np.random.default_rng(1).exponential(1.0, (2, 2, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(tracker.load(refs[0]).generate(tiles, CPU), model.generate(tiles, CPU))


def test_a_dead_tracking_server_fails_within_a_minute_naming_it():
    """A functional limit, not a benchmark: MLflow's own HTTP retries took ~4 minutes per attempt before."""
    import socket
    import time

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tracker = Tracker(f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=f"http://127.0.0.1:{port} is not reachable"):
        tracker.experiment_id("glitchflow-T")
    assert time.monotonic() - start < 60
