"""``spectrograms``: whitened Q-transforms of the strain and the selected witnesses around each window's events."""

import json
from collections.abc import Iterator
from dataclasses import asdict

import dagster as dg
import numpy as np

from glitchflow_assets.core.artifacts.glitch_events import read_events
from glitchflow_assets.core.artifacts.spectrograms import read_spectrograms, write_spectrograms
from glitchflow_assets.core.dataset.spectrograms import SpectrogramConfig, build_spectrograms
from glitchflow_assets.core.device import select_device
from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.core.runs.windows import Window
from glitchflow_assets.core.signal.figures import spectrogram_png
from glitchflow_assets.core.signal.glitch_classes import class_counts, event_classes
from glitchflow_assets.lib.automation import follows_inputs
from glitchflow_assets.lib.factory import run_asset
from glitchflow_assets.lib.gpu import GPU_KINDS
from glitchflow_assets.lib.inputs import Inputs, read_run_selection, window_witnesses
from glitchflow_assets.lib.metadata import md_image
from glitchflow_assets.lib.names import EVENTS, RAW, SELECTION, SPECTROGRAMS
from glitchflow_assets.lib.resources import GlitchflowStorage
from glitchflow_assets.lib.windowed import WindowEvent, for_each_window


def spectrograms_of_window(inputs: Inputs, window: Window) -> dg.MaterializeResult:
    """Q-transform the strain and the selected witnesses around each of one window's events and write them."""
    storage, run = inputs.storage, inputs.run
    selection = read_run_selection(inputs)
    held = window_witnesses(inputs, window, selection.selected)
    channels, data, t0, summary = held.names, held.data, held.t0, held.summary
    unusable = summary.unusable(selection.selected, selection.native_rates())
    segments = {c: [] if c in unusable else held.segments[c] for c in channels}
    events = inputs.window(EVENTS, window, read_events).events
    config = SpectrogramConfig()
    rate = summary.sample_rate
    spec, freqs, times, kept = build_spectrograms(
        data, t0, rate, [segments[c] for c in channels], events["gps"].to_numpy(), config, select_device()
    )
    kept_events = events.set_index("gps").loc[kept].reset_index() if len(kept) else events.iloc[:0]
    classes = event_classes(kept_events, run.frames.path)
    path = storage.window_file(run.name, SPECTROGRAMS, window)
    inputs = {"frames_sha256": summary.data_version(), "selection": selection.version}
    write_spectrograms(
        path,
        spec,
        freqs,
        times,
        kept,
        kept_events.snr.to_numpy(),
        classes,
        channels,
        asdict(config),
        {"run": run.name, "window": window.key, "inputs": json.dumps(inputs)},
    )
    written = read_spectrograms(path)
    metadata = {"path": dg.MetadataValue.path(str(path)), "n_events": len(kept), "channels": dg.MetadataValue.json(channels)}
    if (classes != "").any():
        metadata["events_per_class"] = dg.MetadataValue.json(class_counts(classes))
    if unusable:  # every event of the window needs every witness: none is kept, and the UI says why
        metadata["witnesses_left_out"] = dg.MetadataValue.json(unusable)
        dg.get_dagster_logger().warning(f"{run.name}/{SPECTROGRAMS} {window.key}: no events kept: {'; '.join(unusable.values())}")
    if len(kept):
        loudest = int(np.argmax(written.event_snr))
        title = f"GPS {kept[loudest]:.3f}, SNR {written.event_snr[loudest]:.1f}"
        metadata["loudest_event"] = dg.MetadataValue.md(md_image(spectrogram_png(spec[loudest], channels, freqs, times, title), title))
    return dg.MaterializeResult(data_version=dg.DataVersion(written.data_version()), metadata=metadata)


def spectrograms(run: ObservingRun) -> dg.AssetsDefinition:
    """The run's ``spectrograms`` asset (per window, on the GPU), following its raw window, its events and the channel selection."""

    @run_asset(
        run,
        SPECTROGRAMS,
        per_window=True,
        deps=[RAW, EVENTS, SELECTION],
        kinds=GPU_KINDS,
        gpu=True,
        automation=follows_inputs(),
        description=f"Whitened Q-transform ({SpectrogramConfig().describe()}) of the strain and the selected "
        "witnesses around every glitch event of the window, with axes, event GPS and the versions of its inputs.",
    )
    def _spectrograms(context: dg.AssetExecutionContext, storage: GlitchflowStorage) -> Iterator[WindowEvent]:
        yield from for_each_window(context, run, storage, spectrograms_of_window)

    return _spectrograms
