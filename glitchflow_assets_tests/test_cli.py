"""The ``glitchflow`` command for an own run: partitions by GPS, materialize a GPS span through a real instance."""

import shutil

import dagster as dg
import pytest

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
        ("trained_model: {epochs: many}\n", 'trained_model: Invalid scalar at path root:ops:SIM__trained_model:config:epochs'),
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
    assert read_stage_config(launchpad, defs, "SIM") == read_stage_config(by_asset, defs, "SIM") == {
        "trained_model": {"epochs": 3, "min_validation_events": 7}
    }
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
