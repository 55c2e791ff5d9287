"""Dataset assets of one observing run: ``spectrograms`` per window and the run-level ``dataset_split``."""

import json

import dagster as dg
import numpy as np
from pydantic import Field

from glitchflow_assets.core.artifacts.glitch_events import read_events
from glitchflow_assets.core.artifacts.raw_strain_segments import read_data
from glitchflow_assets.core.dataset.spectrograms import SpectrogramConfig, build_spectrograms, read_spectrograms, write_spectrograms
from glitchflow_assets.core.dataset.splits import SPLITS, DatasetConfig, DatasetWriter, example_tiles, verify_dataset
from glitchflow_assets.core.device import select_device
from glitchflow_assets.core.ml.figures import dataset_tiles_png
from glitchflow_assets.core.plots import pyplot, to_png
from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.core.runs.windows import Window, window_for_key
from glitchflow_assets.defs.automation import follows_inputs, on_refresh_cron
from glitchflow_assets.defs.factory import run_asset
from glitchflow_assets.defs.gpu import GPU_KINDS
from glitchflow_assets.defs.inputs import Inputs, step_inputs
from glitchflow_assets.defs.metadata import md_image
from glitchflow_assets.defs.names import EVENTS, RAW, SELECTION, SPECTROGRAMS, SPLIT, asset_key
from glitchflow_assets.defs.resources import GlitchflowStorage
from glitchflow_assets.defs.signal import read_run_selection, window_raw
from glitchflow_assets.defs.windowed import for_each_window

EXAMPLES_PER_SPLIT = 2


def _png(spectrogram: np.ndarray, channels: list[str], frequencies: np.ndarray, times: np.ndarray, title: str) -> str:
    """Markdown image of ``spectrogram[channel, freq, time]`` with its true axes and one colour scale for all channels."""
    fig, axes = pyplot().subplots(1, len(channels), figsize=(3.4 * len(channels) + 1, 3.4), squeeze=False, layout="constrained")
    top = max(25.0, float(spectrogram.max()))
    for ax, image, name in zip(axes[0], spectrogram, channels, strict=True):
        mesh = ax.pcolormesh(times, frequencies, image, shading="nearest", vmin=0, vmax=top)
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("time from event [s]")
    axes[0][0].set_ylabel("frequency [Hz]")
    fig.colorbar(mesh, ax=axes[0], shrink=0.9).set_label("normalised energy [SNR$^2$]")
    fig.suptitle(title)
    return md_image(to_png(fig), title)


def spectrograms_of_window(inputs: Inputs, window: Window) -> dg.MaterializeResult:
    """Q-transform the strain and the selected witnesses around each of one window's events and write them."""
    storage, run = inputs.storage, inputs.run
    raw, summary = window_raw(inputs, window)
    selection = read_run_selection(inputs)
    channels = [run.strain_channel, *selection.selected]
    data, _, t0 = read_data(raw, channels)
    unusable = summary.unusable(selection.selected, selection.native_rates())
    segments = {c: [] if c in unusable else summary.segments_of(c) for c in channels}
    events = inputs.window(EVENTS, window, read_events).events
    config = SpectrogramConfig()
    rate = float(summary.attrs["sample_rate"])
    spec, freqs, times, kept = build_spectrograms(
        data, t0, rate, [segments[c] for c in channels], events["gps"].to_numpy(), config, select_device()
    )
    snr = events.set_index("gps").loc[kept, "snr"].to_numpy() if len(kept) else np.zeros(0)
    path = storage.window_file(run.name, SPECTROGRAMS, window)
    inputs = {"frames_sha256": summary.data_version(), "selection": selection.version}
    write_spectrograms(
        path, spec, freqs, times, kept, snr, channels, config, {"run": run.name, "window": window.key, "inputs": json.dumps(inputs)}
    )
    written = read_spectrograms(path)
    metadata = {"path": dg.MetadataValue.path(str(path)), "n_events": len(kept), "channels": dg.MetadataValue.json(channels)}
    if unusable:  # every event of the window needs every witness: none is kept, and the UI says why
        metadata["witnesses_left_out"] = dg.MetadataValue.json(unusable)
        dg.get_dagster_logger().warning(f"{run.name}/{SPECTROGRAMS} {window.key}: no events kept: {'; '.join(unusable.values())}")
    if len(kept):
        loudest = int(np.argmax(snr))
        metadata["loudest_event"] = dg.MetadataValue.md(
            _png(spec[loudest], channels, freqs, times, f"GPS {kept[loudest]:.3f}, SNR {snr[loudest]:.1f}")
        )
    return dg.MaterializeResult(data_version=dg.DataVersion(written.data_version()), metadata=metadata)


def spectrograms(run: ObservingRun) -> dg.AssetsDefinition:
    @run_asset(
        run,
        SPECTROGRAMS,
        per_window=True,
        deps=[RAW, EVENTS, SELECTION],
        kinds=GPU_KINDS,
        gpu=True,
        automation=follows_inputs(),
        description="Whitened Q-transform (Q=12, 8-500 Hz, 64 log rows x 256 bins over 6 s) of the strain and the selected "
        "witnesses around every glitch event of the window, with axes, event GPS and the versions of its inputs.",
    )
    def _spectrograms(context: dg.AssetExecutionContext, storage: GlitchflowStorage) -> dg.MaterializeResult:
        return for_each_window(context, run, storage, spectrograms_of_window)

    return _spectrograms


_DATASET = DatasetConfig()


class DatasetSplitConfig(dg.Config):
    """How spectrograms become labelled tiles and splits (core: DatasetConfig; tiles of 64x64, 5 per event)."""

    seed: int = Field(_DATASET.seed, description="seeds the assignment of events to splits (42: the original's)")
    train_fraction: float = Field(_DATASET.fractions[0], description="share of events in the train split")
    validation_fraction: float = Field(_DATASET.fractions[1], description="share of events in the validation split (test: the rest)")
    block_seconds: float = Field(
        _DATASET.block_seconds, description="> 0: whole blocks of this many seconds go to one split (neighbouring events never leak)"
    )
    glitch_threshold: float = Field(_DATASET.glitch_threshold, description="a tile is a glitch when its strain maximum reaches this SNR^2")
    background_threshold: float = Field(
        _DATASET.background_threshold, description="a tile is background when its strain maximum stays below this SNR^2 (between: dropped)"
    )

    def dataset_config(self) -> DatasetConfig:
        test = 1.0 - self.train_fraction - self.validation_fraction
        return DatasetConfig(
            seed=self.seed,
            fractions=(self.train_fraction, self.validation_fraction, test),
            block_seconds=self.block_seconds,
            glitch_threshold=self.glitch_threshold,
            background_threshold=self.background_threshold,
        )


SPLIT_CHECKS = {
    "no_event_in_two_splits": "Every tile of an event is in one split.",
    "finite_tiles": "No NaN/inf in any tile.",
    "normalisation_stats": "Training normalisation statistics finite and non-zero for every channel.",
}


def build_dataset(
    context: dg.AssetExecutionContext, storage: GlitchflowStorage, run: ObservingRun, config: DatasetConfig
) -> dg.MaterializeResult:
    """Tile every materialized spectrogram window of the run into one split dataset, then verify it."""
    keys = sorted(context.instance.get_materialized_partitions(asset_key(run.name, SPECTROGRAMS)))
    if not keys:
        raise dg.Failure(description=f"no materialized {run.name}/{SPECTROGRAMS} window to build a dataset from")
    path = storage.run_file(run.name, SPLIT)
    inputs = step_inputs(context, storage, run)
    first = inputs.window(SPECTROGRAMS, window_for_key(keys[0], run.cadence), read_spectrograms)
    with DatasetWriter(path, first.channels, config) as writer:
        for k in keys:
            window = inputs.window(SPECTROGRAMS, window_for_key(k, run.cadence), read_spectrograms)
            if window.channels != writer.channels:
                raise dg.Failure(
                    description=f"window {k} has channels {window.channels}, earlier windows {writer.channels}: rematerialize spectrograms"
                )
            writer.set_axes(window.frequencies, window.times)
            writer.add_window(k, window.spectrograms, window.event_gps)
        summary = writer.close({"run": run.name, "windows": json.dumps(keys)})
    metadata = {"path": dg.MetadataValue.path(str(path)), "n_windows": len(keys), "class_balance": dg.MetadataValue.json(summary["counts"])}
    for split in SPLITS:
        if examples := example_tiles(path, split, EXAMPLES_PER_SPLIT):
            png = dataset_tiles_png(examples, writer.channels, f"{run.name} {split} split: tiles as the model sees them")
            metadata[f"examples_{split}"] = dg.MetadataValue.md(md_image(png, f"{split} tiles"))
    return dg.MaterializeResult(
        data_version=dg.DataVersion(summary["data_version"]),
        metadata=metadata,
        check_results=[dg.AssetCheckResult(check_name=n, passed=ok, description=d) for n, (ok, d) in verify_dataset(path).items()],
    )


def dataset_split(run: ObservingRun) -> dg.AssetsDefinition:
    key = asset_key(run.name, SPLIT)

    @run_asset(
        run,
        SPLIT,
        per_window=False,
        deps=[SPECTROGRAMS],
        kinds={"hdf5", "python"},
        automation=on_refresh_cron(run),
        check_specs=[dg.AssetCheckSpec(name, asset=key, blocking=True, description=d) for name, d in SPLIT_CHECKS.items()],
        description=f"Tiles of every materialized {run.name} spectrogram window, labelled glitch/background, split "
        "train/validation/test by event (seeded), with training-only normalisation statistics; built window by window.",
    )
    def _split(context: dg.AssetExecutionContext, config: DatasetSplitConfig, storage: GlitchflowStorage) -> dg.MaterializeResult:
        return build_dataset(context, storage, run, config.dataset_config())

    return _split
