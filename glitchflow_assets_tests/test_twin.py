"""The time-domain twin's core, without Dagster: re-colouring, GWF round trips, the Wiener filter on a coupling it must
learn (and the gate refusing filters that predict nothing or NaN), cleaning that touches nothing outside its gates,
and injection into simulated frames that the event search then finds at the injected GPS times."""

import dataclasses
import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.signal import butter, sosfilt

from glitchflow_assets.cli import main
from glitchflow_assets.core.artifacts.glitch_waveforms import read_waveform_set, write_waveform_set
from glitchflow_assets.core.io.decoder import read_file
from glitchflow_assets.core.io.frames import ChannelData, FrameError
from glitchflow_assets.core.io.gwf_writer import write_gwf
from glitchflow_assets.core.signal.dsp import colour, psd_median, whiten
from glitchflow_assets.core.signal.events import find_events
from glitchflow_assets.core.signal.resample import resample
from glitchflow_assets.core.sim import VIRGO_SCENARIO, load_truth, simulate
from glitchflow_assets.core.sim.truth import StrainTruth
from glitchflow_assets.core.sim.waveforms import sine_gaussian
from glitchflow_assets.core.twin.cleaning import changed_spans, compare_events, subtract_glitches
from glitchflow_assets.core.twin.convnet import ConvNetConfig, ConvNetTwin, GlitchUNet, TrainedNetwork, train_convnet
from glitchflow_assets.core.twin.event_segments import EventSegments
from glitchflow_assets.core.twin.injection import CATALOGUE
from glitchflow_assets.core.twin.pipeline import TwinConfig, TwinFit, load_twin
from glitchflow_assets.core.twin.prediction import TwinModel, predict
from glitchflow_assets.core.twin.scoring import WaveformScores, mismatch
from glitchflow_assets.core.twin.wiener import WienerAccumulator, WienerFilter

RATE = 4096
CONVNET_EPOCHS = 25


def test_colour_inverts_whiten_in_band(sim_frames):
    """A glitch whitened by a strain PSD and re-coloured comes back (in band, where the strain ASD holds it)."""
    strain = read_file(sorted(sim_frames.glob("*.gwf"))[1], ["V1:Hrec_hoft_16384Hz"])["V1:Hrec_hoft_16384Hz"]
    data = torch.as_tensor(resample(strain.data, strain.sample_rate, RATE))
    psd = psd_median(data, RATE, 4.0)
    t = np.arange(8 * RATE) / RATE - 4.0
    glitch = 1e-21 * sine_gaussian(t, 120.0, 6.0)
    white = whiten(torch.as_tensor(glitch)[None, None], RATE, psd=psd[None, None])[0, 0]
    back = colour(white, psd, RATE).numpy()
    # the whitening FIR is truncated to 2 s, so the inverse is close, not exact; far below the twin's 0.05 goal
    assert mismatch(back[None], glitch[None])[0] < 0.01
    assert np.sqrt(np.sum((back - glitch) ** 2) / np.sum(glitch**2)) < 0.1


def test_gwf_round_trip_through_gwpy(tmp_path):
    rng = np.random.default_rng(0)
    series = [ChannelData("V1:GLITCHFLOW_SYNTH", rng.standard_normal(4 * RATE) * 1e-21, 1400000118, RATE, "strain")]
    path = write_gwf(tmp_path / "V-GLITCHFLOW_SYNTH-1400000118-4.gwf", series)
    (back,) = read_file(path).values()
    assert back.name == "V1:GLITCHFLOW_SYNTH" and back.t0 == 1400000118 and back.sample_rate == RATE
    np.testing.assert_array_equal(back.data, series[0].data)


def _coupled_events(n: int, seed: int, switched: bool = False) -> EventSegments:
    """Whitened segments where the strain glitch is a fixed band-pass + 5 ms delay of the witness glitch ``W``: the
    coupling a Wiener filter exists to learn. Unit white noise everywhere, glitches of random frequency, Q and SNR.

    ``switched``: a second witness ``F`` fires for every other glitch, and the glitches it does not see reach the
    strain with the opposite sign 8 ms later: one family seen by a shared witness (as DARM sees all) but coupled in
    two ways. No single linear filter from W and F predicts both."""
    rng = np.random.default_rng(seed)
    size = 4 * RATE
    t = np.arange(size) / RATE - 2.0
    sos = butter(2, (20.0, 300.0 if switched else 400.0), btype="bandpass", fs=RATE, output="sos")
    flag = sine_gaussian(t, 300.0, 6.0)
    witness, strain, truth = (np.zeros((n, 2 if switched else 1, size)), np.zeros((n, size)), np.zeros((n, size)))
    for e in range(n):
        source = sine_gaussian(t, rng.uniform(40, 150 if switched else 200), rng.uniform(4, 9), rng.uniform(0, 2 * np.pi))
        other_way = switched and e % 2 == 1
        coupled = (-1 if other_way else 1) * np.roll(sosfilt(sos, source), int((0.013 if other_way else 0.005) * RATE))
        witness[e, 0] = 40 * source / np.linalg.norm(source) + rng.standard_normal(size)
        if switched:
            witness[e, 1] = (0 if other_way else 30 * flag / np.linalg.norm(flag)) + rng.standard_normal(size)
        truth[e] = rng.uniform(15, 40) * coupled / np.linalg.norm(coupled)
        strain[e] = truth[e] + rng.standard_normal(size)
    gate = (np.abs(t) < 0.5).astype(float)[None].repeat(n, 0)
    channels = ["W", "F"] if switched else ["W"]
    meta = (np.arange(n, dtype=float), t[0] + np.zeros(n), ["w"] * n, np.full(n, 10.0))
    return EventSegments(*meta, witness, strain, gate, np.ones((n, 5)), channels, RATE, truth)


def _fit(train: EventSegments, validation: EventSegments, model: TwinModel) -> TwinFit:
    v = model.predict(validation)
    scores = WaveformScores.of(v, validation.strain, validation.gate, validation.truth)
    return TwinFit(model, scores, validation, predict(model, validation), scores, [])


def test_the_wiener_twin_learns_a_linear_coupling_and_the_gate_refuses_what_predicts_nothing(tmp_path):
    train, held = _coupled_events(60, 1), _coupled_events(20, 2)
    accumulator = WienerAccumulator(["W"], RATE, train.witness.shape[-1])
    accumulator.add(train)
    model = accumulator.solve()
    scores = WaveformScores.of(model.predict(held), held.strain, held.gate, held.truth)
    assert scores.table.mismatch.median() < 0.05
    assert (scores.table.snr_removed / scores.table.true_snr).median() > 0.7
    assert _fit(train, held, model).verdict(TwinConfig())[0]
    # stored without pickle, reloaded identical
    model.save(tmp_path / "f.h5", {"run": "TEST"})
    np.testing.assert_array_equal(WienerFilter.load(tmp_path / "f.h5").predict(held), model.predict(held))
    # a filter that predicts nothing, or NaN, fails the gate
    zero = dataclasses.replace(model, h=np.zeros_like(model.h))
    nan = dataclasses.replace(model, h=np.full_like(model.h, np.nan))
    assert not _fit(train, held, zero).verdict(TwinConfig())[0]
    assert not _fit(train, held, nan).verdict(TwinConfig())[0]


def test_the_learned_twin_improves_on_the_wiener_filter_where_the_coupling_is_not_linear(tmp_path):
    train, validation, held = _coupled_events(96, 6, True), _coupled_events(24, 7, True), _coupled_events(24, 8, True)
    accumulator = WienerAccumulator(["W", "F"], RATE, train.witness.shape[-1])
    accumulator.add(train)
    wiener = accumulator.solve()
    config = ConvNetConfig(epochs=CONVNET_EPOCHS, early_stopping_patience=CONVNET_EPOCHS, time_budget_s=600, members=2)
    learned = train_convnet(wiener, train, validation, config)
    # before any training the networks add nothing: the twin starts from the Wiener prediction exactly
    untrained = ConvNetTwin(wiener, [TrainedNetwork(GlitchUNet(4, config.widths, config.kernel))], config)
    np.testing.assert_allclose(untrained.predict(held), wiener.predict(held), atol=1e-6)
    wiener_mismatch = np.median(mismatch(wiener.predict(held), held.truth))
    learned_mismatch = np.median(mismatch(learned.predict(held), held.truth))
    assert len(learned.members) == 2 and all(m.best_epoch > 0 for m in learned.members)
    assert learned_mismatch < 0.5 * wiener_mismatch, (learned_mismatch, wiener_mismatch)
    # the ensemble predicts the mean of its members' corrections
    alone = [ConvNetTwin(wiener, [m], config).predict(held) for m in learned.members]
    np.testing.assert_allclose(learned.predict(held), np.mean(alone, axis=0), atol=1e-6)
    # seeded: the same training gives the same networks, another seed others; stored without pickle, reloaded identical
    short = dataclasses.replace(config, epochs=2, early_stopping_patience=2)
    again, twice = (train_convnet(wiener, train, validation, short) for _ in range(2))
    np.testing.assert_array_equal(again.predict(held), twice.predict(held))
    other = train_convnet(wiener, train, validation, dataclasses.replace(short, seed=7))
    assert not np.array_equal(again.predict(held), other.predict(held))
    learned.save(tmp_path / "c.h5", {"run": "TEST"})
    reloaded = load_twin(tmp_path / "c.h5")
    assert isinstance(reloaded, ConvNetTwin) and [m.best_epoch for m in reloaded.members] == [m.best_epoch for m in learned.members]
    np.testing.assert_array_equal(reloaded.predict(held), learned.predict(held))
    # a file of schema version 1 (one network, its weights directly under weights/) is still read
    single = ConvNetTwin(wiener, learned.members[:1], dataclasses.replace(config, members=1))
    _as_schema_version_1(single, tmp_path / "v1.h5")
    np.testing.assert_array_equal(load_twin(tmp_path / "v1.h5").predict(held), single.predict(held))
    # a NaN network fails the gate
    with torch.no_grad():
        for p in learned.members[1].network.parameters():
            p.fill_(float("nan"))
    assert not _fit(train, held, learned).verdict(TwinConfig())[0]


def _as_schema_version_1(twin: ConvNetTwin, path) -> None:
    """``twin`` stored as the first release of the learned twin stored it."""
    twin.save(path, {"run": "TEST"})
    with h5py.File(path, "r+") as f:
        for name in list(f["weights/0"]):
            f.move(f"weights/0/{name}", f"weights/{name}")
        del f["weights/0"]
        config = json.loads(f.attrs["config"])
        del config["members"]
        config["gradient_clip"], config["patience"] = config.pop("grad_clip"), config.pop("early_stopping_patience")  # names then
        f.attrs.update({"schema_version": 1, "config": json.dumps(config), "epochs_trained": 2, "best_epoch": 1})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_the_learned_twin_trains_on_cuda_and_predicts_on_the_cpu():
    train, validation = _coupled_events(32, 6, True), _coupled_events(8, 7, True)
    accumulator = WienerAccumulator(["W", "F"], RATE, train.witness.shape[-1])
    accumulator.add(train)
    config = ConvNetConfig(epochs=3, early_stopping_patience=3)
    learned = train_convnet(accumulator.solve(), train, validation, config, device=torch.device("cuda"))
    cpu = train_convnet(accumulator.solve(), train, validation, config, device=torch.device("cpu"))
    assert all(next(m.network.parameters()).device.type == "cpu" and m.best_epoch > 0 for m in learned.members)
    # the same training on either device: the same predictions up to the devices' float32 rounding
    assert np.median(mismatch(learned.predict(validation), cpu.predict(validation))) < 1e-3


def test_cleaning_changes_nothing_where_no_glitch_is_predicted():
    held = _coupled_events(6, 3)
    accumulator = WienerAccumulator(["W"], RATE, held.witness.shape[-1])
    accumulator.add(_coupled_events(40, 4))
    prediction = predict(accumulator.solve(), held)
    assert np.all(prediction.strain[held.gate == 0] == 0)
    rng = np.random.default_rng(5)
    data = rng.standard_normal(60 * RATE)
    starts = 1000.0 + np.arange(6) * 9.0
    cleaned, synthetic = subtract_glitches(data, 1000.0, RATE, prediction.glitches(), starts)
    touched = synthetic != 0
    assert touched.any()
    np.testing.assert_array_equal(cleaned[~touched], data[~touched])
    # an event with amplitude 0 (nothing predicted) subtracts nothing at all
    quiet = dataclasses.replace(prediction, amplitude=np.zeros(6))
    np.testing.assert_array_equal(subtract_glitches(data, 1000.0, RATE, quiet.glitches(), starts)[0], data)


def test_event_comparison_by_extent():
    before = pd.DataFrame({"gps": [10.0, 20.0], "snr": [9.0, 12.0], "start": [9.9, 19.0], "end": [10.1, 21.0]})
    after = pd.DataFrame({"gps": [20.6, 30.0], "snr": [6.0, 7.0], "start": [20.5, 29.9], "end": [20.7, 30.1]})
    c = compare_events(before, after)
    assert c.table.removed.tolist() == [True, False] and c.table.snr_after.tolist() == [0.0, 6.0]
    assert c.new.gps.tolist() == [30.0]
    # an unmatched event where cleaning changed nothing is counted apart; one where it changed the strain is new
    synthetic = np.zeros(40 * RATE)
    synthetic[int(9.5 * RATE) : int(10.5 * RATE)] = 1.0
    spans = changed_spans(synthetic, 0.0, RATE)
    assert spans.start.tolist() == [9.5] and spans.end.tolist() == [10.5]
    c = compare_events(before, after, spans)
    assert c.new.empty and c.elsewhere.gps.tolist() == [30.0]
    far = pd.DataFrame({"gps": [10.5], "snr": [6.0], "start": [10.45], "end": [10.55]})
    assert compare_events(before.iloc[1:], far, spans).new.gps.tolist() == [10.5]


def _quiet_strain_frames(directory, gps: int, seconds: int):
    """Strain-only simulated frames without glitches: what an injection goes into."""
    scenario = dataclasses.replace(
        VIRGO_SCENARIO, channels=VIRGO_SCENARIO.channels[:1], self_glitches=(), glitch_rate_per_min=1e-9, scripted=()
    )
    return simulate(directory, gps, seconds, frame_length=32, seed=11, scenario=scenario)


def test_injected_glitches_are_found_at_their_gps_times(tmp_path):
    gps0 = 1400000118
    _quiet_strain_frames(tmp_path / "frames", gps0, 64)
    strain = read_file(tmp_path / "frames" / f"V-V1SIM-{gps0}-32.gwf")["V1:Hrec_hoft_16384Hz"]
    psd = psd_median(torch.as_tensor(resample(strain.data, strain.sample_rate, RATE)), RATE, 4.0)
    t = np.arange(4 * RATE) / RATE - 2.0
    times = np.array([gps0 + 20.3, gps0 + 45.7])
    whitened = np.stack([sine_gaussian(t, f, 8.0) for f in (90.0, 250.0)])
    whitened *= 25.0 / np.linalg.norm(whitened, axis=1, keepdims=True)  # whitened SNR 25
    coloured = colour(torch.as_tensor(whitened), psd, RATE).numpy()
    write_waveform_set(
        tmp_path / "set.h5",
        gps=times,
        t0=times - 2.0,
        window=["w", "w"],
        split=["test", "test"],
        whitened=whitened,
        strain=coloured,
        amplitude=np.ones(2),
        scores=pd.DataFrame({"predicted_snr": [25.0, 25.0]}),
        truth_whitened=None,
        attrs={"run": "SIM", "sample_rate": RATE, "strain_channel": "V1:Hrec_hoft_16384Hz", "channels": "[]", "method": "test"},
    )
    assert read_waveform_set(tmp_path / "set.h5").glitches().shape == (2, 4 * RATE)
    assert main(["inject", "--glitches", str(tmp_path / "set.h5"), "--into", str(tmp_path / "frames"), "--out", str(tmp_path / "out")]) == 0
    catalogue = pd.read_csv(tmp_path / "out" / CATALOGUE)
    assert sorted(catalogue.injected_gps) == pytest.approx(times)
    for directory, expect in (("frames", 0), ("out", 2)):
        data = np.concatenate(
            [read_file(tmp_path / directory / f"V-V1SIM-{g}-32.gwf")["V1:Hrec_hoft_16384Hz"].data for g in (gps0, gps0 + 32)]
        )
        events, _ = find_events(resample(data, 16384, RATE), gps0, RATE, [(gps0, gps0 + 64)])
        found = [g for g in times if len(events) and np.min(np.abs(events.gps - g)) < 0.05]
        assert len(found) == expect, (directory, events[["gps", "snr"]])
    assert len(read_file(tmp_path / "out" / f"V-V1SIM-{gps0}-32.gwf")) == 1  # every channel copied, nothing else added


def test_strain_truth_is_the_glitch_in_the_frames(sim_frames):
    """Subtracting the rendered truth from the frames' strain leaves noise: a loud glitch's excess power goes away."""
    table = load_truth(sim_frames)
    loud = table[table.role == "strain"].sort_values("snr").iloc[-1]
    frames = sorted(sim_frames.glob("*.gwf"))
    strains = [read_file(p, ["V1:Hrec_hoft_16384Hz"])["V1:Hrec_hoft_16384Hz"] for p in frames]
    data = resample(np.concatenate([s.data for s in strains]), 16384, RATE)
    t0 = strains[0].t0
    start = int(np.floor(loud.gps)) - 8
    i0 = int((start - t0) * RATE)
    segment = data[i0 : i0 + 16 * RATE]
    glitch = StrainTruth(sim_frames).glitch(start, 16 * RATE, RATE)
    psd = psd_median(torch.as_tensor(data), RATE, 4.0)[None, None]
    w = lambda x: whiten(torch.as_tensor(x)[None, None], RATE, psd=psd)[0, 0].numpy()  # noqa: E731
    before, after = w(segment), w(segment - glitch)
    centre = slice(6 * RATE, 10 * RATE)
    assert np.sum(before[centre] ** 2) - 4 * RATE > 0.5 * loud.snr**2
    assert abs(np.sum(after[centre] ** 2) / (4 * RATE) - 1) < 0.1


def test_a_truncated_frame_is_refused_before_gwpy_reads_it(tmp_path):
    """inject reads other people's frames: a cut file must be an error naming it, not a crash."""
    path = write_gwf(tmp_path / "V-X-1400000118-1.gwf", [ChannelData("V1:X", np.zeros(RATE), 1400000118, RATE, "")])
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(FrameError, match="V-X-1400000118-1.gwf"):
        read_file(path)
