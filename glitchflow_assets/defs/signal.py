"""Signal-core assets of one observing run: ``glitch_events`` and ``annalisa_scores`` per window, and the
run-level ``channel_selection``."""

from pathlib import Path

import dagster as dg
import pandas as pd

from glitchflow_assets.core.artifacts.annalisa_scores import read_scores, write_scores
from glitchflow_assets.core.artifacts.channel_selection import ChannelSelection, read_selection, selection_of, write_selection
from glitchflow_assets.core.artifacts.glitch_events import read_events, write_events
from glitchflow_assets.core.artifacts.raw_strain_segments import RawSegmentSummary, read_data, read_summary
from glitchflow_assets.core.artifacts.storage import atomic_path
from glitchflow_assets.core.device import select_device
from glitchflow_assets.core.plots import pyplot, to_png
from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.core.runs.windows import Window, window_for_key
from glitchflow_assets.core.signal.annalisa import AnnalisaConfig, channel_table, score_window
from glitchflow_assets.core.signal.events import EventSearchConfig, window_events
from glitchflow_assets.defs.automation import follows_inputs, on_refresh_cron
from glitchflow_assets.defs.factory import run_asset
from glitchflow_assets.defs.gpu import GPU_KINDS
from glitchflow_assets.defs.inputs import Inputs, step_inputs
from glitchflow_assets.defs.metadata import md_image, metadata_table
from glitchflow_assets.defs.names import EVENTS, RAW, SCORES, SELECTION, asset_key
from glitchflow_assets.defs.resources import GlitchflowStorage
from glitchflow_assets.defs.windowed import for_each_window


def window_raw(inputs: Inputs, window: Window) -> tuple[Path, RawSegmentSummary]:
    """The window's raw_strain_segments file and that file's summary (checked against the instance's record)."""
    summary = inputs.window(RAW, window, read_summary)
    return inputs.storage.window_file(inputs.run.name, RAW, window), summary


def events_of_window(inputs: Inputs, window: Window) -> dg.MaterializeResult:
    """Search one window's strain for glitch events and write its event table."""
    storage, run = inputs.storage, inputs.run
    raw, summary = window_raw(inputs, window)
    data, _, t0 = read_data(raw, [run.strain_channel])
    config = EventSearchConfig()
    events, searched = window_events(
        data[0], t0, float(summary.attrs["sample_rate"]), summary.strain.segments, summary.window_span, config, select_device()
    )
    path = storage.window_file(run.name, EVENTS, window)
    write_events(path, run.name, window, events, searched, config)
    written = read_events(path)
    loudest = events.sort_values("snr", ascending=False).head(10)[["gps", "frequency", "snr", "q", "duration"]]
    return dg.MaterializeResult(
        data_version=dg.DataVersion(written.data_version()),
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "n_events": len(events),
            "searched_livetime_s": written.livetime,
            "rate_per_hour": len(events) / written.livetime * 3600 if written.livetime else 0.0,
            "loudest": metadata_table(loudest),
        },
    )


def scores_of_window(inputs: Inputs, window: Window) -> dg.MaterializeResult:
    """Score every auxiliary channel against the strain on one window's events and write the counts."""
    storage, run = inputs.storage, inputs.run
    raw, summary = window_raw(inputs, window)
    data, channels, t0 = read_data(raw)
    events = inputs.window(EVENTS, window, read_events).events
    config = AnnalisaConfig.from_mapping(run.annalisa)
    scores = score_window(
        data,
        t0,
        float(summary.attrs["sample_rate"]),
        channels,
        [c.segments for c in summary.channels],
        [c.native_rate for c in summary.channels],
        events["gps"].to_numpy(),
        config,
        select_device(),
    )
    path = storage.window_file(run.name, SCORES, window)
    write_scores(path, run.name, window, scores, config)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(read_scores(path).data_version()),
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "n_events_scored": len(scores.event_gps),
            "channels": metadata_table(channel_table([scores], config)),
        },
    )


def glitch_events(run: ObservingRun) -> dg.AssetsDefinition:
    @run_asset(
        run,
        EVENTS,
        per_window=True,
        deps=[RAW],
        kinds=GPU_KINDS,
        gpu=True,
        automation=follows_inputs(),
        description="Excess-power events in the strain of one window (Omicron-like multi-Q tile clustering): "
        "GPS, frequency, SNR, Q, duration, bandwidth.",
    )
    def _events(context: dg.AssetExecutionContext, storage: GlitchflowStorage) -> dg.MaterializeResult:
        return for_each_window(context, run, storage, events_of_window)

    return _events


def annalisa_scores(run: ObservingRun) -> dg.AssetsDefinition:
    @run_asset(
        run,
        SCORES,
        per_window=True,
        deps=[RAW, EVENTS],
        kinds=GPU_KINDS,
        gpu=True,
        automation=follows_inputs(),
        description="ANNALISA peak coincidence of every auxiliary channel with the strain on this window's glitch events "
        "(per event and channel).",
    )
    def _scores(context: dg.AssetExecutionContext, storage: GlitchflowStorage) -> dg.MaterializeResult:
        return for_each_window(context, run, storage, scores_of_window)

    return _scores


def _bar_plot(table: pd.DataFrame, config: AnnalisaConfig, run: str) -> bytes:
    """The two statistics the run's selection rule uses, each with its threshold; selected channels in green."""
    if config.selection == "significance":
        panels = [("significance", "coincidence significance  -log10 p", config.significance_threshold), ("mean_corr", "mean corr", None)]
    else:
        panels = [
            ("mean_corr", "mean corr (fraction of strain peaks witnessed)", config.corr_threshold),
            ("mean_iou", "mean IoU", config.iou_threshold),
        ]
    fig, axes = pyplot().subplots(1, 2, figsize=(12, 0.4 * len(table) + 2), sharey=True, layout="constrained")
    colours = ["tab:green" if s else "tab:grey" for s in table["selected"]]
    for ax, (column, label, threshold) in zip(axes, panels, strict=True):
        ax.barh(table["channel"], table[column], color=colours)
        ax.set_xlabel(label)
        if threshold is not None:
            ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
            ax.legend(loc="lower right")
    axes[0].invert_yaxis()
    fig.suptitle(f"{run} witness selection (green): {config.rule}")
    return to_png(fig)


def selection_file(storage: GlitchflowStorage, run: ObservingRun) -> Path:
    """The run's channel-selection JSON (:mod:`glitchflow_assets.core.artifacts.channel_selection`)."""
    return storage.run_file(run.name, SELECTION, ".json")


def read_run_selection(inputs: Inputs) -> ChannelSelection:
    """The run's channel selection, checked against the instance's record of it."""
    return inputs.run_level(SELECTION, read_selection, lambda selection: selection.version, ".json")


def select_channels(context: dg.AssetExecutionContext, storage: GlitchflowStorage, run: ObservingRun) -> dg.MaterializeResult:
    """Aggregate the ANNALISA scores of every materialized window and write the run's selection (+ bar plot)."""
    keys = sorted(context.instance.get_materialized_partitions(asset_key(run.name, SCORES)))
    if not keys:
        raise dg.Failure(description=f"no materialized {run.name}/{SCORES} window to aggregate")
    config = AnnalisaConfig.from_mapping(run.annalisa)
    inputs = step_inputs(context, storage, run)
    table = channel_table([inputs.window(SCORES, window_for_key(k, run.cadence), read_scores) for k in keys], config)
    selection = selection_of(run.name, table, keys, config)
    png = _bar_plot(table, config, run.name)
    with atomic_path(storage.run_file(run.name, SELECTION, ".png")) as tmp:
        tmp.write_bytes(png)
    write_selection(selection_file(storage, run), selection)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(selection.version),
        metadata={
            "path": dg.MetadataValue.path(str(selection_file(storage, run))),
            "selected": dg.MetadataValue.json(selection.selected),
            "n_selected": len(selection.selected),
            "n_windows": len(keys),
            "channels": metadata_table(table),
            "plot": dg.MetadataValue.md(md_image(png, "ANNALISA scores")),
        },
    )


def channel_selection(run: ObservingRun) -> dg.AssetsDefinition:
    @run_asset(
        run,
        SELECTION,
        per_window=False,
        deps=[SCORES],
        kinds={"python", "json"},
        automation=on_refresh_cron(run),
        description=f"Witness channels of {run.name}: ANNALISA scores of every materialized window aggregated per channel, "
        f"selected by {AnnalisaConfig.from_mapping(run.annalisa).rule}.",
    )
    def _selection(context: dg.AssetExecutionContext, storage: GlitchflowStorage) -> dg.MaterializeResult:
        return select_channels(context, storage, run)

    return _selection
