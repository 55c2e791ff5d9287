"""The ``glitchflow`` command for an own run: partitions by GPS, materialize a GPS span through a real instance."""

import shutil

import dagster as dg
import pytest
import yaml

from glitchflow_assets.cli import main
from glitchflow_assets.core.runs.registry import load_registry
from glitchflow_assets.core.runs.windows import window_for_key, window_holding
from glitchflow_assets.runner import window_batches
from glitchflow_assets_tests.conftest import SIM_MINUTES


def test_partitions_by_gps_and_misaligned_keys(capsys):
    sim = load_registry()["SIM"]
    assert main(["partitions", "SIM", "--gps", str(sim.gps_start + 301)]) == 0
    assert "2024-05-17T17:00  GPS 1400000418-1400000718" in capsys.readouterr().out
    assert main(["partitions", "SIM", "--gps", "100"]) == 2
    assert "outside run SIM (GPS 1400000118-1400086518); nearest window 2024-05-17T16:55" in capsys.readouterr().out
    with pytest.raises(ValueError, match="the window holding it is '2024-05-17T16:55' \\(GPS 1400000118-1400000418\\)"):
        window_for_key("2024-05-17T16:57", sim.cadence)
    assert window_holding(1400000417.9, sim.cadence).key == "2024-05-17T16:55"
    assert main(["partitions", "NOPE"]) == 2 and "unknown observing run 'NOPE'; known: O3a, O3b, O4a, SIM" in capsys.readouterr().out


def test_materialize_a_gps_span_through_the_configured_instance(sim_frames, isolated_home, capsys):
    shutil.copytree(sim_frames, isolated_home / "frames" / "SIM")
    sim = load_registry()["SIM"]
    start, end = sim.gps_start, sim.gps_start + SIM_MINUTES * 60
    assert main(["materialize", "SIM", "--gps-start", str(start - 10000), "--gps-end", str(start - 5000)]) == 2
    assert "outside run SIM" in capsys.readouterr().out
    assert main(["materialize", "SIM", "--gps-start", str(start), "--gps-end", str(end), "--through", "nonsense"]) == 2
    assert "SIM has no asset 'nonsense'" in capsys.readouterr().out
    settings = isolated_home.parent / "settings.yaml"
    settings.write_text("raw_strain_segments: {allow_less_data: true}\n")
    assert main(["materialize", "SIM", "--gps-start", str(start), "--gps-end", str(end), "--config", str(settings)]) == 0
    out = capsys.readouterr().out
    # both windows in one run, as a backfill batches them (SIM's backfill_batch is 6)
    assert "[2/2] SIM_ingest windows 2024-05-17T16:55 .. 2024-05-17T17:00 (raw_strain_segments, glitch_events, annalisa_scores): ok" in out
    assert "SIM: 1 run(s) (6 windows at most each): 1 succeeded, 0 failed" in out
    with dg.DagsterInstance.get() as instance:  # $DAGSTER_HOME, as the UI would open it
        for asset in ("raw_strain_segments", "glitch_events", "annalisa_scores"):
            assert instance.get_materialized_partitions(dg.AssetKey(["SIM", asset])) == {"2024-05-17T16:55", "2024-05-17T17:00"}
        assert instance.get_latest_materialization_event(dg.AssetKey(["SIM", "channel_selection"])) is None  # not --through it
        (run,) = instance.get_runs()  # the settings are recorded on the run, as the Launchpad records them
        assert run.run_config["ops"]["SIM__raw_strain_segments"] == {"config": {"allow_less_data": True}}
        assert run.tags["glitchflow/config"] == str(settings) and run.tags["glitchflow/trigger"] == "materialize"


@pytest.mark.parametrize(
    "text, error",
    [
        ("trained_modle: {epochs: 3}\n", "SIM has no asset 'trained_modle'; its assets: annalisa_scores, channel_selection"),
        ("trained_model: {epochz: 3}\n", 'trained_model: Received unexpected config entry "epochz"'),
        ("trained_model: {epochs: many}\n", "trained_model: Invalid scalar at path root:ops:SIM__trained_model:config:epochs"),
        ("glitch_events: {threshold: 6}\n", "glitch_events takes no settings (found threshold)"),
        ("trained_model: 3\n", "trained_model: expected a mapping of fields to values, found 3"),
        ("- trained_model\n", "expected a mapping of asset names to their settings, found list"),
        ("trained_model: {epochs: [\n", "is not YAML"),
        ("ops: {O3a__trained_model: {config: {epochs: 3}}}\n", "op 'O3a__trained_model' is not an asset of SIM"),
        ("ops: {SIM__trained_model: {epochs: 3}}\n", "op SIM__trained_model: expected {config: {...}}"),
    ],
)
def test_stage_settings_are_refused_before_anything_runs_naming_the_asset_and_field(tmp_path, capsys, text, error):
    settings = tmp_path / "settings.yaml"
    settings.write_text(text)
    sim = load_registry()["SIM"]
    span = ["--gps-start", str(sim.gps_start), "--gps-end", str(sim.gps_start + 600)]
    assert main(["materialize", "SIM", *span, "--through", "trained_model", "--config", str(settings)]) == 2
    out = capsys.readouterr().out
    assert f"config file {settings}" in out and error in out, out
    with dg.DagsterInstance.get() as instance:
        assert instance.get_runs() == []  # nothing ran
    assert main(["materialize", "SIM", *span, "--config", str(tmp_path / "missing.yaml")]) == 2
    assert f"config file {tmp_path / 'missing.yaml'} does not exist" in capsys.readouterr().out


def test_launchpad_settings_are_read_as_the_same_per_asset_settings(tmp_path):
    from glitchflow_assets.defs.families import build_definitions
    from glitchflow_assets.stage_config import as_run_config, read_stage_config

    defs = build_definitions()
    launchpad = tmp_path / "launchpad.yaml"
    launchpad.write_text("ops:\n  SIM__trained_model:\n    config: {epochs: 3, min_validation_events: 7}\n")
    by_asset = tmp_path / "by_asset.yaml"
    by_asset.write_text("trained_model: {epochs: 3, min_validation_events: 7}\n")
    assert (
        read_stage_config(launchpad, defs, "SIM")
        == read_stage_config(by_asset, defs, "SIM")
        == {"trained_model": {"epochs": 3, "min_validation_events": 7}}
    )
    assert as_run_config({"trained_model": {"epochs": 3}}, "SIM") == {"ops": {"SIM__trained_model": {"config": {"epochs": 3}}}}


def test_status_names_what_it_cannot_follow(capsys):
    assert main(["status", "../etc"]) == 2
    assert "'../etc' is not a backfill id" in capsys.readouterr().out
    assert main(["status", "abcdefgh"]) == 2
    assert "no backfill abcdefgh on the Dagster instance" in capsys.readouterr().out


def test_windows_are_batched_like_a_backfill_but_never_across_a_window_not_asked_for():
    keys = [f"2024-05-17T{h:02d}:00" for h in range(10)]
    asked = [keys[0], keys[1], keys[2], keys[4], keys[5]]  # keys[3] left out: a range over it would materialize it
    assert window_batches(asked, keys, 2) == [[keys[0], keys[1]], [keys[2]], [keys[4], keys[5]]]
    assert window_batches(asked, keys, 6) == [[keys[0], keys[1], keys[2]], [keys[4], keys[5]]]
    assert window_batches(keys[:3], keys, 1) == [[k] for k in keys[:3]]


def test_simulate_with_extra_auxiliary_channels(tmp_path, capsys):
    """``glitchflow simulate --aux-extra N``: N more channels in every frame, at their own rates, which SIM's registry
    scans after its own; a negative N is refused before anything is written."""
    from glitchflow_assets.core.io.decoder import read_file

    out = tmp_path / "frames"
    assert main(["simulate", "--minutes", "1", "--aux-extra", "8", "--out", str(out)]) == 0
    assert "18 auxiliary channels" in capsys.readouterr().out
    (frame,) = sorted(out.rglob("*.gwf"))
    channels = read_file(frame)
    extra = sorted(c for c in channels if c.startswith("V1:SIMX_"))
    assert len(extra) == 8 and len(channels) == 19
    assert {"QUIET", "LINE", "SELF", "SPORADIC"} <= {name.split("_")[1] for name in extra}
    assert {channels[c].sample_rate for c in extra} <= {256, 512, 1024, 2048, 4096, 8192, 16384}
    sim = load_registry()["SIM"]
    assert sim.resolve_aux_channels(sorted(channels))[-8:] == extra
    with pytest.raises(SystemExit):
        main(["simulate", "--minutes", "1", "--aux-extra", "-1", "--out", str(tmp_path / "refused")])
    assert "--aux-extra: -1 < 0" in capsys.readouterr().err and not (tmp_path / "refused").exists()


def test_simulate_with_locks_writes_the_state_vector(tmp_path, capsys):
    """``glitchflow simulate --locks``: the state vector in every frame; SIM is locked for its first hour (all bits set)."""
    from glitchflow_assets.core.io.decoder import read_file

    assert main(["simulate", "--minutes", "1", "--locks", "--out", str(tmp_path)]) == 0
    assert "locks and unlocks in V1:DQ_ANALYSIS_STATE_VECTOR" in capsys.readouterr().out
    (frame,) = sorted(tmp_path.rglob("*.gwf"))
    bits = read_file(frame, ["V1:DQ_ANALYSIS_STATE_VECTOR"])["V1:DQ_ANALYSIS_STATE_VECTOR"]
    assert bits.sample_rate == 16 and set(bits.data.tolist()) == {0b111}


def test_a_failed_window_stops_only_what_depends_on_it(sim_frames, isolated_home, tmp_path, monkeypatch, capsys):
    """Issue 30: one window's frames unreadable, one run per window: the other window is still ingested, the run-level
    channel_selection (which needs every window) is reported as not run because of it, and the exit status is 1;
    with the frames repaired, the same command materializes what is left and skips what was done."""
    from glitchflow_assets.core.runs.registry import SHIPPED_REGISTRY

    frames = isolated_home / "frames" / "SIM"
    shutil.copytree(sim_frames, frames)
    doc = yaml.safe_load(SHIPPED_REGISTRY.read_text())
    registry = tmp_path / "runs.yaml"
    registry.write_text(yaml.safe_dump({"runs": {"SIM": {**doc["runs"]["SIM"], "backfill_batch": 1}}}))
    monkeypatch.setenv("GLITCHFLOW_RUNS", str(registry))
    sim = load_registry()["SIM"]
    second = window_for_key("2024-05-17T17:00", sim.cadence)
    broken = {p: p.read_bytes() for p in frames.glob("*.gwf") if second.gps_start <= int(p.stem.split("-")[2]) < second.gps_end}
    for path in broken:
        path.write_bytes(b"not a frame")
    span = ["--gps-start", str(sim.gps_start), "--gps-end", str(second.gps_end), "--through", "channel_selection"]
    assert main(["materialize", "SIM", *span]) == 1
    out = capsys.readouterr().out
    assert "[1/2] SIM_ingest window 2024-05-17T16:55 (raw_strain_segments, glitch_events, annalisa_scores): ok" in out
    assert "failed: raw_strain_segments in window 2024-05-17T17:00 (run " in out and "no readable frame file" in out, out
    assert "not run in that run because of it: glitch_events, annalisa_scores" in out
    assert "not run: channel_selection: needs raw_strain_segments, which failed" in out
    with dg.DagsterInstance.get() as instance:
        assert instance.get_materialized_partitions(dg.AssetKey(["SIM", "annalisa_scores"])) == {"2024-05-17T16:55"}
    for path, content in broken.items():
        path.write_bytes(content)
    assert main(["materialize", "SIM", *span]) == 0
    out = capsys.readouterr().out
    assert "1 window(s) 2024-05-17T16:55 .. already materialized and intact on disk, skipped" in out
    assert "[2/2] SIM_ingest window 2024-05-17T17:00" in out and "SIM_selection (channel_selection): ok" in out


def test_a_refused_twin_stops_only_the_cleaning(sim_frames, isolated_home, tmp_path, capsys):
    """Issue 30, every stage of the span: glitch_waveforms' gate refuses, so cleaned_strain and cleaning_evaluation
    (which need it) do not run and say why, while trained_model, model_evaluation and synthetic_glitches (which do not)
    run to the end; the exit status is 1. The settings come from --config."""
    shutil.copytree(sim_frames, isolated_home / "frames" / "SIM")
    settings = tmp_path / "settings.yaml"
    gate = {"min_balanced_accuracy": 0.0, "beat_linear_baseline": False, "min_validation_events": 1}  # 10 minutes: too few to judge by
    settings.write_text(
        yaml.safe_dump(
            {
                "dataset_split": {"train_fraction": 0.6, "validation_fraction": 0.2},
                "trained_model": {"epochs": 2, **gate},
                "glitch_waveforms": {"method": "wiener", "min_validation_events": 10**6},
            }
        )
    )
    sim = load_registry()["SIM"]
    span = ["--gps-start", str(sim.gps_start), "--gps-end", str(sim.gps_start + SIM_MINUTES * 60)]
    assert main(["materialize", "SIM", *span, "--through", "cleaning_evaluation", "--config", str(settings)]) == 1
    out = capsys.readouterr().out
    assert "failed: glitch_waveforms (run " in out and "check waveform_gate: wiener: " in out, out
    assert "SIM_model (model_evaluation, synthetic_glitches): ok" in out
    assert "not run: cleaned_strain in 2 windows 2024-05-17T16:55 .. 2024-05-17T17:00: needs glitch_waveforms, which failed" in out
    assert "not run: cleaning_evaluation: needs glitch_waveforms, which failed" in out
    with dg.DagsterInstance.get() as instance:
        for asset in ("trained_model", "model_evaluation", "synthetic_glitches"):
            assert instance.get_latest_materialization_event(dg.AssetKey(["SIM", asset])) is not None, asset
        for asset in ("cleaned_strain", "cleaning_evaluation"):
            assert instance.get_latest_materialization_event(dg.AssetKey(["SIM", asset])) is None, asset


def test_a_refused_model_leaves_the_cleaning_runnable():
    """The issue's case on the real asset graph: trained_model lost (its gate refused) blocks model_evaluation and
    synthetic_glitches only; glitch_waveforms' cleaning (cleaned_strain, every window) and its evaluation still run."""
    from glitchflow_assets.defs.families import build_definitions
    from glitchflow_assets.runner import _unblocked, stage_groups

    defs = build_definitions()
    graph, windows = defs.resolve_asset_graph(), ["2024-05-17T16:55", "2024-05-17T17:00"]
    trained = dg.AssetKey(["SIM", "trained_model"])
    lost, failed = {trained: set(windows)}, {trained}
    runnable, blocked = {}, {}
    for partitioned, group in stage_groups(defs, "SIM"):
        keys, steps = _unblocked(graph, group, partitioned, windows, lost, failed)
        runnable.update({k.path[-1]: k for k in keys})
        blocked.update({k.path[-1]: s for s in steps for k in s.assets})
    assert {"cleaned_strain", "cleaning_evaluation", "glitch_waveforms"} <= set(runnable)
    assert set(blocked) == {"model_evaluation", "synthetic_glitches"} and all(s.blocked_by == [trained] for s in blocked.values())
    lost = {dg.AssetKey(["SIM", "raw_strain_segments"]): {windows[1]}}  # one window's ingest failed
    keys, (step,) = _unblocked(graph, [dg.AssetKey(["SIM", "spectrograms"])], True, windows, lost, set(lost))
    assert keys and step.partitions == [windows[1]]  # the other window still runs
