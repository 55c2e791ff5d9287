"""Dataset assets of one observing run: ``spectrograms`` per window and the run-level ``dataset_split``."""

import hashlib
import json

import dagster as dg
import h5py
import numpy as np

from glitchflow_assets.core.datasets import SPLITS, DatasetConfig, DatasetWriter, example_tiles, verify_dataset
from glitchflow_assets.core.device import select_device
from glitchflow_assets.core.ml.figures import dataset_tiles_png
from glitchflow_assets.core.plots import pyplot, to_png
from glitchflow_assets.core.raw_segments import read_data
from glitchflow_assets.core.runs import ObservingRun
from glitchflow_assets.core.spectrograms import SpectrogramConfig, build_spectrograms, write_spectrograms
from glitchflow_assets.core.tables import read_table
from glitchflow_assets.core.windows import Window, window_for_key
from glitchflow_assets.defs.ingest import ASSET as RAW
from glitchflow_assets.defs.metadata import md_image
from glitchflow_assets.defs.resources import GlitchflowStorage
from glitchflow_assets.defs.signal import EVENTS, SELECTION, gpu_window_asset, selection_file, window_raw
from glitchflow_assets.defs.windowed import for_each_window

SPECTROGRAMS, SPLIT = "spectrograms", "dataset_split"
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


def spectrograms(run: ObservingRun) -> dg.AssetsDefinition:
    @gpu_window_asset(
        run,
        SPECTROGRAMS,
        [RAW, EVENTS, SELECTION],
        "Whitened Q-transform (Q=12, 8-500 Hz, 64 log rows x 256 bins over 6 s) of the strain and the selected witnesses "
        "around every glitch event of the window, with axes, event GPS and the versions of its inputs.",
    )
    def _spectrograms(context: dg.AssetExecutionContext, storage: GlitchflowStorage) -> dg.MaterializeResult:
        def one(window: Window) -> dg.MaterializeResult:
            raw, summary = window_raw(storage, run, window)
            selection = json.loads(selection_file(storage, run).read_text())
            channels = [run.strain_channel, *selection["selected"]]
            data, _, t0 = read_data(raw, channels)
            segments = {c.name: c.segments for c in summary.channels}
            events, _ = read_table(storage.window_file(run.name, EVENTS, window))
            config = SpectrogramConfig()
            rate = float(summary.attrs["sample_rate"])
            spec, freqs, times, kept = build_spectrograms(
                data, t0, rate, [segments[c] for c in channels], events["gps"].to_numpy(), config, select_device()
            )
            snr = events.set_index("gps").loc[kept, "snr"].to_numpy() if len(kept) else np.zeros(0)
            path = storage.window_file(run.name, SPECTROGRAMS, window)
            inputs = {
                "frames_sha256": hashlib.sha256("".join(f.sha256 for f in summary.frames).encode()).hexdigest()[:24],
                "selection": selection["version"],
            }
            write_spectrograms(
                path, spec, freqs, times, kept, snr, channels, config, {"run": run.name, "window": window.key, "inputs": json.dumps(inputs)}
            )
            metadata = {"path": dg.MetadataValue.path(str(path)), "n_events": len(kept), "channels": dg.MetadataValue.json(channels)}
            if len(kept):
                loudest = int(np.argmax(snr))
                metadata["loudest_event"] = dg.MetadataValue.md(
                    _png(spec[loudest], channels, freqs, times, f"GPS {kept[loudest]:.3f}, SNR {snr[loudest]:.1f}")
                )
            return dg.MaterializeResult(metadata=metadata)

        return for_each_window(context, run, one)

    return _spectrograms


class DatasetSplitConfig(dg.Config):
    """Editable in the Launchpad: 5 tiles of 64x64 per event, 60/20/20 by event, seed 42 (the original's), and
    label thresholds above the noise (see :class:`glitchflow_assets.core.datasets.DatasetConfig`)."""

    seed: int = 42
    train_fraction: float = DatasetConfig.fractions[0]
    validation_fraction: float = DatasetConfig.fractions[1]
    block_seconds: float = 0.0
    glitch_threshold: float = 40.0
    background_threshold: float = 25.0

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


def dataset_split(run: ObservingRun) -> dg.AssetsDefinition:
    key = dg.AssetKey([run.name, SPLIT])
    upstream = dg.AssetKey([run.name, SPECTROGRAMS])

    @dg.asset(
        key=key,
        group_name=run.name,
        deps=[upstream],
        kinds={"hdf5", "python"},
        tags={"glitchflow/level": "run"},
        check_specs=[dg.AssetCheckSpec(name, asset=key, blocking=True, description=d) for name, d in SPLIT_CHECKS.items()],
        description=f"Tiles of every materialized {run.name} spectrogram window, labelled glitch/background, split train/validation/test "
        "by event (seeded), with training-only normalisation statistics; built window by window.",
    )
    def _split(context: dg.AssetExecutionContext, config: DatasetSplitConfig, storage: GlitchflowStorage) -> dg.MaterializeResult:
        keys = sorted(context.instance.get_materialized_partitions(upstream))
        if not keys:
            raise dg.Failure(description=f"no materialized {run.name}/{SPECTROGRAMS} window to build a dataset from")
        dataset_config = config.dataset_config()
        path = storage.run_file(run.name, SPLIT)
        writer = None
        try:
            for k in keys:
                with h5py.File(storage.window_file(run.name, SPECTROGRAMS, window_for_key(k, run.cadence)), "r") as f:
                    channels = list(f["channels"].asstr()[()])
                    writer = writer or DatasetWriter(path, channels, dataset_config)
                    if channels != writer.channels:
                        raise dg.Failure(
                            description=f"window {k} has channels {channels}, earlier windows {writer.channels}: rematerialize spectrograms"
                        )
                    writer.set_axes(f["frequencies"][()], f["times"][()])
                    spec, gps = f["spectrograms"][()], f["event_gps"][()]
                    writer.add_window(k, spec, gps)
            summary = writer.close({"run": run.name, "windows": json.dumps(keys)})
        except BaseException as exc:
            if writer:
                writer.abort(exc)
            raise
        outcomes = verify_dataset(path)
        metadata = {
            "path": dg.MetadataValue.path(str(path)),
            "n_windows": len(keys),
            "class_balance": dg.MetadataValue.json(summary["counts"]),
        }
        for split in SPLITS:
            if examples := example_tiles(path, split, EXAMPLES_PER_SPLIT):
                png = dataset_tiles_png(examples, writer.channels, f"{run.name} {split} split: tiles as the model sees them")
                metadata[f"examples_{split}"] = dg.MetadataValue.md(md_image(png, f"{split} tiles"))
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[dg.AssetCheckResult(check_name=n, passed=ok, description=d) for n, (ok, d) in outcomes.items()],
        )

    return _split
