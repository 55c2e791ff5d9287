import pytest

from glitchflow_assets.core.runs.registry import RegistryError, load_registry
from glitchflow_assets.core.sim import VIRGO_SCENARIO, with_extra_channels


def test_shipped_registry_has_the_observing_runs_and_sim():
    runs = load_registry()
    assert {"O3a", "O3b", "O4a", "SIM"} <= set(runs)
    assert (runs["O3a"].gps_start, runs["O3a"].gps_end) == (1238166018, 1253977218)
    assert (runs["O3b"].gps_start, runs["O3b"].gps_end) == (1256655618, 1269363618)
    assert (runs["O4a"].gps_start, runs["O4a"].gps_end) == (1368975618, 1389456018)
    assert runs["O3b"].cadence.seconds == 3600 and runs["SIM"].cadence.seconds == 300
    assert runs["SIM"].strain_channel == "V1:Hrec_hoft_16384Hz"


def test_sim_registry_matches_the_simulator():
    sim = load_registry()["SIM"]
    simulated = {c.name: c.sample_rate for c in VIRGO_SCENARIO.channels}
    assert [sim.strain_channel, *sim.resolve_aux_channels(list(simulated))] == list(simulated)
    assert sim.channel_rates == simulated
    assert len(simulated) >= 9 and min(simulated.values()) == 256 and max(simulated.values()) == 16384
    # ``glitchflow simulate --aux-extra N``: the registry picks up the extra channels (by name), after the scenario's own
    extra = [c.name for c in with_extra_channels(VIRGO_SCENARIO, 5).channels[len(simulated) :]]
    assert sim.resolve_aux_channels(sorted([*simulated, *extra])) == [*list(simulated)[1:], *sorted(extra)]


def test_frame_paths_expand_glitchflow_home(isolated_home):
    assert load_registry()["SIM"].frames.path == isolated_home / "frames" / "SIM"


def test_user_file_overrides_and_adds_runs(tmp_path, monkeypatch):
    user = tmp_path / "runs.yaml"
    user.write_text(
        """
runs:
  SIM:
    gps_start: 1400000118
    gps_end: 1400003718
    window: 10min
    strain_channel: V1:Hrec_hoft_16384Hz
    frames: {kind: gwf, path: /data/sim}
  GW150914:
    gps_start: 1126259446
    gps_end: 1126259478
    window: 1min
    strain_channel: H1:GWOSC-4KHZ_R1_STRAIN
    aux_channels: "H1:PEM-*"
    frames: {kind: gwosc-hdf5, path: /data/gwosc}
"""
    )
    monkeypatch.setenv("GLITCHFLOW_RUNS", str(user))
    runs = load_registry()
    assert runs["SIM"].cadence.seconds == 600 and str(runs["SIM"].frames.path) == "/data/sim"
    assert runs["GW150914"].frames.kind == "gwosc-hdf5" and runs["GW150914"].aux_is_pattern()
    assert "O3a" in runs  # shipped runs stay


def test_aux_patterns_resolve_against_the_table_of_contents(tmp_path):
    run = load_registry()["O3b"]
    toc = ["V1:Hrec_hoft_16384Hz", "V1:LSC_DARM", "V1:LSC_MICH", "V1:ENV_CEB_SEIS_V", "V1:SUSP_X", "V1:SBE_A"]
    assert run.resolve_aux_channels(toc) == ["V1:LSC_DARM", "V1:LSC_MICH", "V1:ENV_CEB_SEIS_V", "V1:SBE_A"]


_OK = "gps_start: 1, gps_end: 2, window: 5min, strain_channel: a, frames: {kind: gwf, path: /x}"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("runs: {X: {gps_start: 1, gps_end: 2, window: 5min, strain_channel: a}}", "field frames: Field required"),
        ("runs: {X: {gps_start: 5, gps_end: 2, window: 5min, strain_channel: a, frames: {kind: gwf, path: /x}}}", "must be after"),
        ("runs: {X: {gps_start: 1, gps_end: 2, window: 7min, strain_channel: a, frames: {kind: gwf, path: /x}}}", "N must divide 60"),
        ("runs: {X: {gps_start: 1, gps_end: 2, window: 5min, strain_channel: a, frames: {kind: ftp, path: /x}}}", "field frames.kind"),
        ("runs: {'../evil': {gps_start: 1, gps_end: 2, window: 5min, strain_channel: a, frames: {kind: gwf, path: /x}}}", "run names"),
        (
            "runs: {X: {gps_start: 1, gps_end: 2, window: 5min, sample_rate: 1000, strain_channel: a, frames: {kind: gwf, path: /x}}}",
            "power of two",
        ),
        ("runs: [1, 2]", "top-level 'runs:' mapping"),
        # wrong types once raised bare Python errors that took the whole code location down (SIM included)
        (f"runs: {{X: {{{_OK}, aux_channels: 5}}}}", "field aux_channels"),
        (f"runs: {{X: {{{_OK}, channel_rates: [1, 2]}}}}", "field channel_rates: Input should be a valid dictionary"),
        (f"runs: {{X: {{{_OK}, channel_rates: {{'V1:A': fast}}}}}}", "field channel_rates.V1:A"),
        (f"runs: {{X: {{{_OK}, annalisa: [1]}}}}", "field annalisa"),
        (f"runs: {{X: {{{_OK}, annalisa: {{q: fast}}}}}}", "field annalisa: setting q: Input should be a valid number"),
        (f"runs: {{X: {{{_OK}, annalisa: {{rows: 2.5}}}}}}", "field annalisa: setting rows"),
        (f"runs: {{X: {{{_OK}, annalisa: {{colour: 1}}}}}}", "field annalisa: unknown setting colour (known: q, frange"),
        (f"runs: {{X: {{{_OK}, annalisa: {{selection: best}}}}}}", "annalisa selection 'best'"),
        (f"runs: {{X: {{{_OK}, watch: 'false'}}}}", "field watch: Input should be a valid boolean (got 'false')"),
        (
            "runs: {X: {gps_start: 1, gps_end: 1000000000000, window: 5min, strain_channel: a, frames: {kind: gwf, path: /x}}}",
            "field gps_end",
        ),
        ("runs: {X: {gps_start: 1.5, gps_end: 9, window: 5min, strain_channel: a, frames: {kind: gwf, path: /x}}}", "field gps_start"),
        (f"runs: {{X: {{{_OK}, colour: blue}}}}", "field colour: Extra inputs are not permitted"),
        (f"runs:\n  X: {{{_OK}}}\n  X: {{{_OK}}}\n", "duplicate key 'X'"),
        ("runs: {X: [unclosed", "cannot read run registry"),
    ],
)
def test_bad_registry_names_the_file_and_problem(tmp_path, body, expected):
    user = tmp_path / "bad.yaml"
    user.write_text(body)
    with pytest.raises(RegistryError, match=None) as info:
        load_registry(user)
    assert expected in str(info.value) and str(user) in str(info.value)
