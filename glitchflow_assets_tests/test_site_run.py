"""A site's run as the README tells a user to describe it: frames from a Virgo FFL list, observing segments from the
state vector, a Gravity Spy list beside the search, processed with one ``glitchflow materialize`` to the dataset. Only
observing data become tiles, and every tile carries its event's class: the list's where it has one."""

import dataclasses

import dagster as dg
import numpy as np
import pytest

from glitchflow_assets.cli import main
from glitchflow_assets.core.artifacts.dataset_split import dataset_classes
from glitchflow_assets.core.io.gravityspy import SIM_CLASSES
from glitchflow_assets.core.sim import VIRGO_SCENARIO, simulate, with_locks
from glitchflow_assets.core.sim.simulator import load_truth
from glitchflow_assets.lib.resources import GlitchflowStorage
from glitchflow_assets_tests.test_io_gravityspy import gravityspy_table

START = 1400000118  # SIM's first window, 2024-05-17T16:55 UTC
WINDOWS = 4  # of 5 minutes: the detector is observing through the first three and has lost lock in the fourth
UNLOCK = (START + 900, START + 1200)
LOCKS = dict(first_lock_s=900.0, unlock_s=(300.0, 300.0), lock_s=(3600.0, 3600.0))
SCENARIO = with_locks(dataclasses.replace(VIRGO_SCENARIO, glitch_rate_per_min=6.0), START, **LOCKS)
AUX = ["V1:LSC_DARM_ERR", "V1:LSC_MICH_ERR", "V1:LSC_PRCL_ERR", "V1:SDB2_B1_PD1", "V1:ENV_NEB_MAG_N", "V1:ENV_CEB_SEIS_V"]
RELABELLED = "Koi_Fish"  # the list calls SIM's blips this: the tiles must carry the list's word, not the simulation's


@pytest.fixture
def site(tmp_path, isolated_home, monkeypatch):
    """Locked SIM frames listed in an FFL file (not a directory the run reads), their Gravity Spy list, the registry."""
    frames = tmp_path / "frames"
    simulate(frames, START - 60, WINDOWS * 300 + 120, frame_length=60, seed=11, scenario=SCENARIO, workers=2)
    ffl = tmp_path / "V1Online.ffl"
    ffl.write_text("".join(f"{p} {p.stem.split('-')[-2]} 60 0 0\n" for p in sorted(frames.rglob("*.gwf"))))
    listed = gravityspy_table(frames)
    listed = listed[(listed.event_time >= START) & (listed.event_time < START + WINDOWS * 300)]  # the simulated margins are not in it
    listed["ml_label"] = listed.ml_label.replace({SIM_CLASSES["blip"]: RELABELLED})
    listed.to_csv(gspy := tmp_path / "gravityspy.csv", index=False)
    aux = "".join(f"      - {c}\n" for c in AUX)
    (registry := tmp_path / "site-runs.yaml").write_text(
        f"runs:\n  SITE:\n    gps_start: {START}\n    gps_end: {START + WINDOWS * 300}\n    window: 5min\n    sample_rate: 4096\n"
        f"    strain_channel: V1:Hrec_hoft_16384Hz\n    aux_channels:\n{aux}"
        f"    frames: {{kind: cache, path: {ffl}}}\n"
        "    segments: {channel: V1:DQ_ANALYSIS_STATE_VECTOR, bits: [SCIENCE, HREC_OK], bit_names: [LOCKED, SCIENCE, HREC_OK]}\n"
        f"    events: {{source: gravityspy, path: {gspy}, mode: add}}\n"
    )
    monkeypatch.setenv("GLITCHFLOW_RUNS", str(registry))
    return frames, listed


def test_one_materialize_processes_a_site_run_from_a_list_with_segments_and_labels(site, isolated_home):
    frames, listed = site
    span = ["--gps-start", str(START), "--gps-end", str(START + WINDOWS * 300)]
    assert main(["materialize", "SITE", *span, "--through", "dataset_split"]) == 0

    classes = dataset_classes(GlitchflowStorage().run_file("SITE", "dataset_split"))
    gps = np.array(sorted(classes))
    assert len(gps) >= 20
    assert not ((gps >= UNLOCK[0]) & (gps < UNLOCK[1])).any()  # nothing searched or tiled while the detector was unlocked
    found = set(classes.values())
    assert RELABELLED in found and SIM_CLASSES["blip"] not in found  # the list's class wins over the simulation's
    assert found <= {*SIM_CLASSES.values(), RELABELLED, ""}
    # every event within 0.1 s of a listed trigger carries that trigger's label
    truth_times = listed[listed.ifo == "V1"].event_time.to_numpy()
    for t, cls in classes.items():
        nearest = int(np.argmin(np.abs(truth_times - t)))
        if abs(truth_times[nearest] - t) <= 0.1:
            assert cls == listed[listed.ifo == "V1"].ml_label.iloc[nearest], t
    # the unlocked window was ingested and marked outside every segment, not failed, though glitches were simulated there
    strain = load_truth(frames).query("role == 'strain'")
    assert ((strain.gps >= UNLOCK[0]) & (strain.gps < UNLOCK[1])).sum() >= 10
    with dg.DagsterInstance.get() as instance:
        for key, outside in (("2024-05-17T17:05", False), ("2024-05-17T17:10", True)):
            (record,) = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(["SITE", "raw_strain_segments"]), asset_partitions=[key]), limit=1
            ).records
            observing = record.asset_materialization.metadata["observing"].value
            assert ("outside every observing segment" in observing) is outside, (key, observing)
