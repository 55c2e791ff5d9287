"""The time-domain twin end to end, without Dagster: fit on the training events of a dataset's split, judge on
validation, predict the held-out test events; clean a window and search it again; write the GWF frames."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from glitchflow_assets.core.artifacts.glitch_waveforms import place
from glitchflow_assets.core.artifacts.storage import open_hdf5
from glitchflow_assets.core.ingest.assemble import WindowChannels
from glitchflow_assets.core.io.frames import ChannelData
from glitchflow_assets.core.io.gwf_writer import frame_file_name, write_gwf
from glitchflow_assets.core.signal.events import EventSearchConfig, window_events
from glitchflow_assets.core.twin.cleaning import EventComparison, changed_spans, compare_events, subtract_glitches
from glitchflow_assets.core.twin.convnet import SCHEMA as CONVNET_SCHEMA
from glitchflow_assets.core.twin.convnet import ConvNetConfig, ConvNetTwin, train_convnet
from glitchflow_assets.core.twin.event_segments import EventSegments, SegmentConfig, TruthFunction, event_segments, merge_overlapping_events
from glitchflow_assets.core.twin.prediction import Prediction, TwinModel, predict
from glitchflow_assets.core.twin.scoring import WaveformScores
from glitchflow_assets.core.twin.wiener import WienerAccumulator, WienerConfig, WienerFilter

SYNTH, CLEAN = "SYNTH", "CLEAN"  # the twin's frame channels: PREFIX:GLITCHFLOW_SYNTH and PREFIX:GLITCHFLOW_CLEAN
METHODS = ("auto", "wiener", "convnet")  # auto: both fitted, the better on validation kept


@dataclass(frozen=True)
class TwinConfig:
    segments: SegmentConfig = field(default_factory=SegmentConfig)
    wiener: WienerConfig = field(default_factory=WienerConfig)
    convnet: ConvNetConfig = field(default_factory=ConvNetConfig)
    method: str = "auto"
    min_validation_events: int = 10

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"twin method {self.method!r} is not one of {METHODS}")


def method_of(model: TwinModel) -> str:
    """The method that fitted a twin: ``convnet`` or ``wiener``."""
    return "convnet" if isinstance(model, ConvNetTwin) else "wiener"


def load_twin(path: Path) -> TwinModel:
    """A fitted twin file, whichever method wrote it (the schema check names the file if it is neither)."""
    with open_hdf5(path) as f:
        learned = f.attrs.get("schema") == CONVNET_SCHEMA
    return ConvNetTwin.load(path) if learned else WienerFilter.load(path)


@dataclass(frozen=True)
class WindowFiles:
    """One window's glitch events (a glitch_events table) and a reader of its strain and the witnesses named
    (``core.ingest.window_channels``)."""

    key: str
    events: pd.DataFrame
    channels: Callable[[list[str]], WindowChannels]


@dataclass
class TwinFit:
    """The kept ``model`` with its validation and test scores, and every method fitted: ``candidates`` maps a method to
    its (validation, test) scores, so the learned model is always reported against the Wiener baseline."""

    model: TwinModel
    validation: WaveformScores
    test_segments: EventSegments
    test_prediction: Prediction
    test: WaveformScores
    skipped: list[tuple[float, str]]
    candidates: dict[str, tuple[WaveformScores, WaveformScores]] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return method_of(self.model)

    def verdict(self, config: TwinConfig) -> tuple[bool, str]:
        """The gate: finite predictions, enough validation events, and cleaning validation events removes power (with truth:
        removes glitch SNR). A filter that predicts nothing, or NaN, fails."""
        v = self.validation.summary()
        finite = bool(np.isfinite(self.validation.table.to_numpy(dtype=float)).all())
        enough = v["events"] >= config.min_validation_events
        removes = v["median_excess_power_after"] < 0.9 * v["median_excess_power_before"]
        truth_ok = v.get("median_snr_removed_fraction", 1.0) > 0
        passed = finite and enough and removes and truth_ok
        text = (
            f"{self.method}: {int(v['events'])} validation events (>= {config.min_validation_events}: {enough}); finite: {finite}; "
            f"median excess power {v['median_excess_power_before']:.1f} -> {v['median_excess_power_after']:.1f} after cleaning "
            f"(< 90 %: {removes})"
        )
        if "median_mismatch" in v:
            text += f"; median mismatch {v['median_mismatch']:.3f}, SNR removed {100 * v['median_snr_removed_fraction']:.0f} %"
        return passed, text


def _events_in(events: pd.DataFrame, gps: np.ndarray) -> pd.DataFrame:
    return events[np.isin(np.round(events.gps.to_numpy(), 6), np.round(gps, 6))]


def validation_score(scores: WaveformScores) -> float:
    """Lower is better: the median mismatch against the truth where the run is simulated, else the median excess power
    left after cleaning."""
    summary = scores.summary()
    return summary.get("median_mismatch", summary["median_excess_power_after"])


def _score_models(
    models: list[TwinModel], validation: EventSegments, test: EventSegments
) -> tuple[dict[str, tuple[WaveformScores, WaveformScores]], dict[str, tuple[TwinModel, Prediction]]]:
    """By method: each model's (validation, test) scores, and the model with its test prediction."""
    candidates, predictions = {}, {}
    for model in models:
        v_pred, t_pred = predict(model, validation), predict(model, test)
        predictions[method_of(model)] = (model, t_pred)
        candidates[method_of(model)] = (
            WaveformScores.of(v_pred.whitened, validation.strain, validation.gate, validation.truth),
            WaveformScores.of(t_pred.whitened, test.strain, test.gate, test.truth),
        )
    return candidates, predictions


def fit_twin(
    windows: Iterable[WindowFiles],
    splits: dict[str, dict[str, np.ndarray]],
    witnesses: list[str],
    config: TwinConfig = TwinConfig(),
    truth: TruthFunction | None = None,
    on_epoch: Callable[[dict], None] = lambda metrics: None,
    witness_rates: dict[str, float] | None = None,
) -> TwinFit:
    """Fit the twin on the ``train`` events of ``splits`` (``{split: {window key: gps}}``, from the dataset), score it on
    ``validation`` and predict ``test``. Windows are read one at a time; the Wiener filter sums their training spectra,
    the learned model (``config.method`` convnet or auto) keeps the training segments. ``auto`` keeps the method of
    the lower :func:`validation_score`. ``witness_rates`` (the selection's native rates) keep out windows holding a
    witness at another rate; the fitted twin records them and applies itself only where they hold."""
    accumulator: WienerAccumulator | None = None
    learned = config.method != "wiener"
    held: dict[str, list[EventSegments]] = {"train": [], "validation": [], "test": []}
    skipped: list[tuple[float, str]] = []
    for w in windows:
        wanted = np.concatenate([splits[s].get(w.key, np.zeros(0)) for s in splits])
        events = _events_in(w.events, wanted)
        segments, left_out = event_segments(w.channels(witnesses), w.key, events, config.segments, truth, witness_rates)
        skipped += left_out
        if segments is None:
            continue
        in_split = {s: np.isin(np.round(segments.gps, 6), np.round(splits[s].get(w.key, np.zeros(0)), 6)) for s in splits}
        if in_split["train"].any():
            if accumulator is None:
                n = segments.witness.shape[-1]
                accumulator = WienerAccumulator(witnesses, segments.sample_rate, n, config.wiener, witness_rates)
            accumulator.add(segments.subset(in_split["train"]))
        for s in held if learned else ("validation", "test"):
            if in_split[s].any():
                held[s].append(segments.subset(in_split[s]))
    if accumulator is None or not held["validation"] or not held["test"]:
        raise ValueError("the time-domain twin needs train, validation and test events with valid data")
    validation, test = EventSegments.concatenate(held["validation"]), EventSegments.concatenate(held["test"])
    wiener = accumulator.solve()
    models: list[TwinModel] = [] if config.method == "convnet" else [wiener]
    if learned:
        models.append(train_convnet(wiener, EventSegments.concatenate(held["train"]), validation, config.convnet, on_epoch))
    candidates, predictions = _score_models(models, validation, test)
    method = min(candidates, key=lambda m: validation_score(candidates[m][0]))
    model, t_pred = predictions[method]
    return TwinFit(model, candidates[method][0], test, t_pred, candidates[method][1], skipped, candidates)


def twin_channel(strain_channel: str, kind: str) -> str:
    """``V1:Hrec_hoft_16384Hz`` -> ``V1:GLITCHFLOW_SYNTH`` (``kind`` SYNTH or CLEAN)."""
    return f"{strain_channel.split(':')[0]}:GLITCHFLOW_{kind}"


def twin_frame_path(directory: Path, strain_channel: str, kind: str, gps_start: int, duration: int) -> Path:
    """Where the twin's ``kind`` (SYNTH or CLEAN) frame of a span goes in ``directory``: ``OBS-GLITCHFLOW_<kind>-GPS-DUR.gwf``, OBS the
    strain channel's first letter."""
    return directory / frame_file_name(strain_channel[0], f"GLITCHFLOW_{kind}", gps_start, duration)


def write_synthetic_frames(
    directory: Path, strain_channel: str, glitches: np.ndarray, starts: np.ndarray, windows: list[tuple[int, int]], rate: float
) -> list[Path]:
    """One frame per window span ``(gps, duration)`` holding ``PREFIX:GLITCHFLOW_SYNTH``: the glitches in strain units
    at their GPS times, zero elsewhere."""
    paths = []
    for gps, duration in windows:
        data = place(glitches, starts, rate, gps, int(duration * rate))
        series = ChannelData(twin_channel(strain_channel, SYNTH), data, gps, rate, "strain")
        paths.append(write_gwf(twin_frame_path(directory, strain_channel, SYNTH, gps, duration), [series]))
    return paths


@dataclass
class CleanedWindow:
    """``cleaned`` and ``synthetic`` ``[time]`` over the window only (no margins) from GPS ``gps_start``."""

    gps_start: int
    duration: int
    sample_rate: float
    cleaned: np.ndarray
    synthetic: np.ndarray
    comparison: EventComparison
    predicted: int
    skipped: list[tuple[float, str]]


def clean_window(
    channels: WindowChannels,
    events: pd.DataFrame,
    model: TwinModel,
    config: TwinConfig = TwinConfig(),
    search: EventSearchConfig | None = None,
) -> CleanedWindow:
    """Subtract the twin's glitches from a window's strain (only at events where it predicts one) and run the event
    search on the result, over the same data and margins as the original search. ``channels``: the window's strain and
    the twin's witnesses."""
    summary, rate, t0 = channels.summary, channels.sample_rate, channels.t0
    start, end = summary.window_span
    strain = channels.data[0].astype(np.float64)
    one_per_glitch = merge_overlapping_events(events, config.segments)
    segments, skipped = event_segments(channels, "", one_per_glitch, config.segments, witness_rates=model.witness_rates)
    if segments is None:
        cleaned, synthetic, predicted = strain, np.zeros_like(strain), 0
    else:
        prediction = predict(model, segments)
        cleaned, synthetic = subtract_glitches(strain, t0, rate, prediction.glitches(), segments.t0)
        predicted = int((prediction.amplitude > 0).sum())
    after, _ = window_events(cleaned, t0, rate, summary.strain.segments, (start, end), search or EventSearchConfig())
    comparison = compare_events(events, after, changed_spans(synthetic, t0, rate))
    i0, n = int(round((start - t0) * rate)), int(round((end - start) * rate))
    return CleanedWindow(int(start), int(end - start), rate, cleaned[i0 : i0 + n], synthetic[i0 : i0 + n], comparison, predicted, skipped)


def write_cleaned_frame(directory: Path, strain_channel: str, result: CleanedWindow) -> Path:
    """One frame of the window with ``PREFIX:GLITCHFLOW_CLEAN`` (strain minus the twin's glitches) and
    ``PREFIX:GLITCHFLOW_SYNTH`` (what was subtracted)."""
    series = [
        ChannelData(twin_channel(strain_channel, CLEAN), result.cleaned, result.gps_start, result.sample_rate, "strain"),
        ChannelData(twin_channel(strain_channel, SYNTH), result.synthetic, result.gps_start, result.sample_rate, "strain"),
    ]
    return write_gwf(twin_frame_path(directory, strain_channel, CLEAN, result.gps_start, result.duration), series)
