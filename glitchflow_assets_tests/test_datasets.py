"""Spectrogram datasets and splits: true axes, no leakage, determinism, staleness on a new selection."""

import dataclasses

import dagster as dg
import h5py
import numpy as np
import pandas as pd
import pytest

from glitchflow_assets.core.artifacts.dataset_split import SPLITS, dataset_classes, iter_split, read_info, verify_dataset
from glitchflow_assets.core.artifacts.spectrograms import read_spectrograms, write_spectrograms
from glitchflow_assets.core.dataset.spectrograms import SpectrogramConfig, build_spectrograms
from glitchflow_assets.core.dataset.splits import DatasetConfig, DatasetWriter, split_of, tiles_of
from glitchflow_assets.defs.families import build_definitions
from glitchflow_assets.lib.names import CODE_LOCATION, SELECTION, SPECTROGRAMS, SPLIT
from glitchflow_assets.runner import STAGE_TAG, WINDOWS_TAG, materialize_span
from glitchflow_assets_tests.conftest import sim_run
from glitchflow_assets_tests.test_signal_units import RATE, _inject, _white_noise

# Dagster's documented tags on a materialization: its data version, and the version of each input it was computed from.
DATA_VERSION_TAG, INPUT_VERSION_TAG = "dagster/data_version", "dagster/input_data_version/"


def test_spectrogram_axes_and_gps_round_trip(tmp_path):
    x = _white_noise(64, seed=6, channels=2)
    t0, gps = 1_000_000_000.0, 1_000_000_030.25
    _inject(x[0], t0, gps, f0=80.0, q=8.0, snr=25.0)
    _inject(x[1], t0, gps + 0.5, f0=200.0, q=8.0, snr=25.0)
    spec, freqs, times, kept = build_spectrograms(x, t0, RATE, [[(t0, t0 + 64)]] * 2, np.array([gps]))
    assert spec.shape == (1, 2, 64, 256) and kept.tolist() == [gps]
    assert freqs[0] == pytest.approx(8.0) and freqs[-1] == pytest.approx(500.0)
    assert times[0] == pytest.approx(-3.0) and times[1] - times[0] == pytest.approx(6.0 / 256)
    write_spectrograms(
        tmp_path / "s.h5",
        spec,
        freqs,
        times,
        kept,
        np.array([25.0]),
        np.array(["Blip"]),
        ["S", "W"],
        dataclasses.asdict(SpectrogramConfig()),
        {"window": "w"},
    )
    with h5py.File(tmp_path / "s.h5") as f:  # a scientist needs only the file: peak at the true time and frequency
        data, f_axis, t_axis = f["spectrograms"][0], f["frequencies"][()], f["times"][()]
        for channel, (dt, f0) in enumerate([(0.0, 80.0), (0.5, 200.0)]):
            row, col = np.unravel_index(np.argmax(data[channel]), data[channel].shape)
            assert abs(t_axis[col] - dt) <= 2 * (t_axis[1] - t_axis[0])
            assert 0.8 * f0 < f_axis[row] < 1.25 * f0
        assert f["event_gps"][0] == gps and f["frequencies"].attrs["units"] == "Hz"
    assert read_spectrograms(tmp_path / "s.h5").event_class.tolist() == ["Blip"]


def test_tiles_carry_their_events_class_and_an_unclassified_dataset_keeps_its_version(tmp_path, windows):
    names = np.array(["Blip", "Koi_Fish", ""])  # "": an event of no known class
    classes = {k: names[np.arange(len(gps)) % 3] for k, (_, gps) in windows.items()}
    with DatasetWriter(tmp_path / "c.h5", ["S", "W"], DatasetConfig()) as writer:
        writer.set_axes(np.geomspace(8, 500, 64), np.linspace(-3, 3, 256, endpoint=False))
        for key, (spec, gps) in windows.items():
            writer.add_window(key, spec, gps, classes[key])
        summary = writer.close({})
    expected = {g: str(c) for k, (_, gps) in windows.items() for g, c in zip(np.round(gps, 6).tolist(), classes[k], strict=True)}
    found = dataset_classes(tmp_path / "c.h5")
    assert found == {g: c for g, c in expected.items() if g in found} and len(found) > 100  # tiles dropped by label only
    for split in SPLITS:  # each event once in its split's count, whatever its number of tiles
        events = {g for g in found if split_of(g, DatasetConfig()) == split}
        assert summary["events_per_class"][split] == pd.Series([found[g] for g in events]).value_counts().to_dict()
        for batch in iter_split(tmp_path / "c.h5", split, 64):
            assert [expected[g] for g in np.round(batch.event_gps, 6).tolist()] == batch.event_class.tolist()
    unclassified = _build(tmp_path / "u.h5", DatasetConfig(), windows)
    assert unclassified["data_version"] != summary["data_version"]
    # without classes the digest is the one a dataset had before tiles carried them, and a file of that schema
    # (version 1, no event_class) reads as unclassified
    with h5py.File(tmp_path / "u.h5", "r+") as f:
        for split in SPLITS:
            del f[split]["event_class"]
        f.attrs["schema_version"] = 1
    assert set(dataset_classes(tmp_path / "u.h5").values()) == {""}
    assert read_info(tmp_path / "u.h5").data_version() == unclassified["data_version"]


def test_the_event_never_whitens_itself():
    x = _white_noise(64, seed=7)
    _inject(x[0], 0.0, 32.0, f0=60.0, q=6.0, snr=200.0)  # so loud it would dent its own PSD
    spec, *_ = build_spectrograms(x, 0.0, RATE, [[(0.0, 64.0)]], np.array([32.0]), SpectrogramConfig(psd_seconds=64))
    guarded = spec[0, 0].max()
    spec_self, *_ = build_spectrograms(x, 0.0, RATE, [[(0.0, 64.0)]], np.array([32.0]), SpectrogramConfig(event_guard=0.0, psd_seconds=8))
    assert guarded > spec_self[0, 0].max()


def _fake_window(rng, n_events, start):
    spec = rng.exponential(1.44, (n_events, 2, 64, 256)).astype(np.float32)  # noise: row median ~1
    spec[:, :, 20:40, 120:136] += 60.0  # a glitch at the centre of every event
    return spec, start + np.sort(rng.uniform(0, 300, n_events))


def _build(path, config, windows):
    with DatasetWriter(path, ["S", "W"], config) as writer:
        writer.set_axes(np.geomspace(8, 500, 64), np.linspace(-3, 3, 256, endpoint=False))
        for key, (spec, gps) in windows.items():
            writer.add_window(key, spec, gps)
        return writer.close({})


def test_a_failed_or_unfinished_dataset_write_leaves_the_earlier_file(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "d.h5"
    _build(path, DatasetConfig(), {"w0": _fake_window(rng, 4, 1e9)})
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="disk"), DatasetWriter(path, ["S", "W"], DatasetConfig()) as writer:
        writer.add_window("w1", *_fake_window(rng, 4, 1e9 + 300))
        raise RuntimeError("disk full")
    with DatasetWriter(path, ["S", "W"], DatasetConfig()):
        pass  # left without close(): nothing is published
    assert path.read_bytes() == before and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries


@pytest.fixture
def windows():
    rng = np.random.default_rng(0)
    return {f"w{i}": _fake_window(rng, 40, 1e9 + 300 * i) for i in range(3)}


def test_splits_are_by_event_with_train_only_statistics(tmp_path, windows):
    summary = _build(tmp_path / "d.h5", DatasetConfig(), windows)
    assert all(ok for ok, _ in verify_dataset(tmp_path / "d.h5").values())
    with h5py.File(tmp_path / "d.h5") as f:
        total = sum(f[s]["label"].shape[0] for s in SPLITS)
        assert total == 3 * 40 * 5
        for split in SPLITS:  # every tile knows its event, window and offset
            g = f[split]
            for gps, window in zip(g["event_gps"][:5], g["window"].asstr()[:5], strict=True):
                assert split_of(float(gps), DatasetConfig()) == split and window.startswith("w")
            assert set(g["tile_offset"][()]) <= {0, 64, 96, 128, 192}
        train = f["train/tiles"][()][f["train/label"][()] == 1]
        np.testing.assert_allclose(f["normalisation/channel_scale"][()], train.max(axis=(2, 3)).mean(0), rtol=1e-6)
    counts = summary["counts"]
    assert counts["train"]["glitch"] > counts["test"]["glitch"] > 0 and counts["train"]["background"] > 0


def test_time_blocks_keep_neighbouring_events_together(tmp_path, windows):
    config = DatasetConfig(block_seconds=300.0)
    gps = np.concatenate([w[1] for w in windows.values()])
    blocks = {}
    for g in gps:
        blocks.setdefault(int(g // 300), set()).add(split_of(float(g), config))
    assert all(len(s) == 1 for s in blocks.values())


def test_same_seed_same_dataset_other_seed_other_split(tmp_path, windows):
    _build(tmp_path / "a.h5", DatasetConfig(seed=1), windows)
    _build(tmp_path / "b.h5", DatasetConfig(seed=1), windows)
    _build(tmp_path / "c.h5", DatasetConfig(seed=2), windows)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()  # byte for byte
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b, h5py.File(tmp_path / "c.h5") as c:
        for split in SPLITS:
            for name in ("tiles", "label", "event_gps", "tile_offset"):
                np.testing.assert_array_equal(a[split][name][()], b[split][name][()])
        assert not np.array_equal(a["test/event_gps"][()], c["test/event_gps"][()])
    # the data version is the content's: equal for the equal files, different for the other split, recorded in the file
    versions = [read_info(tmp_path / f"{n}.h5").data_version() for n in "abc"]
    assert versions[0] == versions[1] != versions[2]
    one_tile_less = {k: (spec[:-1], gps[:-1]) if k == "w2" else (spec, gps) for k, (spec, gps) in windows.items()}
    assert _build(tmp_path / "d.h5", DatasetConfig(seed=1), one_tile_less)["data_version"] != versions[0]


def test_bad_dataset_configs_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        DatasetConfig(glitch_threshold=4, background_threshold=6)
    with pytest.raises(ValueError, match="sum to 1"):
        DatasetConfig(fractions=(0.9, 0.2, 0.1))
    tiles, offsets = tiles_of(np.full((1, 64, 256), 1e6, dtype=np.float32), DatasetConfig())
    assert tiles.max() == 10_000 and offsets.tolist() == [0, 64, 96, 128, 192]  # clamped


def test_spectrograms_go_stale_when_the_selection_changes(sim_frames, isolated_home):
    """Dagster marks spectrograms stale when the data version they were computed from (recorded on their
    materialization) differs from the selection's current one: a re-aggregation with the same result keeps it."""
    run = sim_run(sim_frames)
    key = "2024-05-17T16:55"

    def data_version(asset: str) -> str:
        return instance.get_latest_materialization_event(dg.AssetKey(["SIM", asset])).asset_materialization.tags[DATA_VERSION_TAG]

    def used_by_spectrograms() -> str:
        tags = instance.get_latest_materialization_event(dg.AssetKey(["SIM", SPECTROGRAMS])).asset_materialization.tags
        return tags[f"{INPUT_VERSION_TAG}SIM/{SELECTION}"]

    def select(defs) -> None:
        assert defs.resolve_job_def("SIM_selection").execute_in_process(instance=instance).success

    defs = build_definitions({"SIM": run})
    with dg.instance_for_test() as instance:
        outcome = materialize_span(defs, "SIM", [key], instance, through=SPLIT)
        assert outcome.success and all(e.passed for e in outcome.last(SPLIT).result.get_asset_check_evaluations())
        for step in outcome.steps:  # recorded as the UI's launches are: on the timeline and the job's Runs tab
            recorded = instance.get_run_by_id(step.result.run_id)
            assert recorded.remote_job_origin.location_name == CODE_LOCATION and recorded.job_name == step.job
            assert recorded.tags[STAGE_TAG] == step.job.removeprefix("SIM_")
            assert recorded.tags.get(WINDOWS_TAG) == (f"{key} to {key}" if step.partitions else None)
        by_job = instance.get_runs(dg.RunsFilter(job_name="SIM_ingest", tags={".dagster/repository": f"__repository__@{CODE_LOCATION}"}))
        assert [r.run_id for r in by_job] == [outcome.steps[0].result.run_id]
        first = data_version(SELECTION)
        assert used_by_spectrograms() == first
        select(defs)  # same selection again: nothing to recompute
        assert data_version(SELECTION) == first == used_by_spectrograms()
        select(build_definitions({"SIM": dataclasses.replace(run, annalisa={**run.annalisa, "significance_threshold": 1e9})}))
        assert data_version(SELECTION) != used_by_spectrograms()  # now nothing is selected: spectrograms are stale
