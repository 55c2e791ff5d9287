"""Signal-core assets of one observing run: ``glitch_events`` and ``annalisa_scores`` per window, and the
run-level ``channel_selection``."""

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import dagster as dg
import pandas as pd

from glitchflow_assets.core.annalisa import AnnalisaConfig, channel_table, load_scores, save_scores, score_window
from glitchflow_assets.core.device import select_device
from glitchflow_assets.core.events import EventSearchConfig, window_events
from glitchflow_assets.core.plots import pyplot, to_png
from glitchflow_assets.core.raw_segments import RawSegmentSummary, read_data, read_summary
from glitchflow_assets.core.runs import ObservingRun
from glitchflow_assets.core.segments import total
from glitchflow_assets.core.storage import atomic_path
from glitchflow_assets.core.tables import read_table, write_table
from glitchflow_assets.core.windows import Window, window_for_key
from glitchflow_assets.defs.gpu import GPU_KINDS, GPU_OP_TAGS, GPU_POOL
from glitchflow_assets.defs.ingest import ASSET as RAW
from glitchflow_assets.defs.metadata import md_image, metadata_table
from glitchflow_assets.defs.partitions import window_partitions
from glitchflow_assets.defs.resources import GlitchflowStorage
from glitchflow_assets.defs.windowed import for_each_window, window_backfill_policy

EVENTS, SCORES, SELECTION = "glitch_events", "annalisa_scores", "channel_selection"


def gpu_window_asset(run: ObservingRun, name: str, deps: list[str], description: str):
    """Decorator for a GPU-tagged, window-partitioned asset of ``run`` reading its window's upstream files."""
    return dg.asset(
        key=[run.name, name],
        group_name=run.name,
        deps=[dg.AssetKey([run.name, d]) for d in deps],
        partitions_def=window_partitions(run),
        pool=GPU_POOL,
        kinds=GPU_KINDS,
        op_tags=GPU_OP_TAGS,
        tags={"glitchflow/level": "window"},
        backfill_policy=window_backfill_policy(run),
        description=f"{description} One partition per {run.cadence.text} window of {run.name}.",
    )


def window_raw(storage: GlitchflowStorage, run: ObservingRun, window: Window) -> tuple[Path, RawSegmentSummary]:
    """The window's raw_strain_segments file and that file's summary."""
    raw = storage.window_file(run.name, RAW, window)
    return raw, read_summary(raw)


def glitch_events(run: ObservingRun) -> dg.AssetsDefinition:
    @gpu_window_asset(
        run,
        EVENTS,
        [RAW],
        "Excess-power events in the strain of one window (Omicron-like multi-Q tile clustering): "
        "GPS, frequency, SNR, Q, duration, bandwidth.",
    )
    def _events(context: dg.AssetExecutionContext, storage: GlitchflowStorage) -> dg.MaterializeResult:
        def one(window: Window) -> dg.MaterializeResult:
            raw, summary = window_raw(storage, run, window)
            data, _, t0 = read_data(raw, [run.strain_channel])
            config = EventSearchConfig()
            events, searched = window_events(
                data[0], t0, float(summary.attrs["sample_rate"]), summary.strain.segments, summary.window_span, config, select_device()
            )
            livetime = total(searched)
            path = storage.window_file(run.name, EVENTS, window)
            attrs = {
                "schema": "glitchflow.glitch_events",
                "schema_version": 1,
                "run": run.name,
                "window": window.key,
                "gps_start": window.gps_start,
                "gps_end": window.gps_end,
                "searched": json.dumps(searched),
                "searched_livetime": livetime,
                "config": json.dumps(asdict(config)),
            }
            write_table(path, events, attrs)
            loudest = events.sort_values("snr", ascending=False).head(10)[["gps", "frequency", "snr", "q", "duration"]]
            return dg.MaterializeResult(
                metadata={
                    "path": dg.MetadataValue.path(str(path)),
                    "n_events": len(events),
                    "searched_livetime_s": livetime,
                    "rate_per_hour": len(events) / livetime * 3600 if livetime else 0.0,
                    "loudest": metadata_table(loudest),
                }
            )

        return for_each_window(context, run, one)

    return _events


def annalisa_scores(run: ObservingRun) -> dg.AssetsDefinition:
    @gpu_window_asset(
        run,
        SCORES,
        [RAW, EVENTS],
        "ANNALISA peak coincidence of every auxiliary channel with the strain on this window's glitch events (per event and channel).",
    )
    def _scores(context: dg.AssetExecutionContext, storage: GlitchflowStorage) -> dg.MaterializeResult:
        def one(window: Window) -> dg.MaterializeResult:
            raw, summary = window_raw(storage, run, window)
            data, channels, t0 = read_data(raw)
            events, _ = read_table(storage.window_file(run.name, EVENTS, window))
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
            save_scores(
                path,
                scores,
                {
                    "schema": "glitchflow.annalisa_scores",
                    "schema_version": 1,
                    "run": run.name,
                    "window": window.key,
                    "config": json.dumps(asdict(config)),
                },
            )
            table = channel_table([scores], config)
            return dg.MaterializeResult(
                metadata={
                    "path": dg.MetadataValue.path(str(path)),
                    "n_events_scored": len(scores.event_gps),
                    "channels": metadata_table(table),
                }
            )

        return for_each_window(context, run, one)

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
    """The run's channel-selection JSON (``selected``, ``version``, per-channel table, windows used)."""
    return storage.run_file(run.name, SELECTION, ".json")


def channel_selection(run: ObservingRun) -> dg.AssetsDefinition:
    scores_key = dg.AssetKey([run.name, SCORES])

    @dg.asset(
        key=[run.name, SELECTION],
        group_name=run.name,
        deps=[scores_key],
        kinds={"python", "json"},
        tags={"glitchflow/level": "run"},
        description=f"Witness channels of {run.name}: ANNALISA scores of every materialized window aggregated per channel, "
        f"selected by {AnnalisaConfig.from_mapping(run.annalisa).rule}.",
    )
    def _selection(context: dg.AssetExecutionContext, storage: GlitchflowStorage) -> dg.MaterializeResult:
        keys = sorted(context.instance.get_materialized_partitions(scores_key))
        if not keys:
            raise dg.Failure(description=f"no materialized {run.name}/{SCORES} window to aggregate")
        windows = [window_for_key(k, run.cadence) for k in keys]
        config = AnnalisaConfig.from_mapping(run.annalisa)
        table = channel_table([load_scores(storage.window_file(run.name, SCORES, w)) for w in windows], config)
        selected = table.loc[table.selected, "channel"].tolist()
        # Downstream spectrograms go stale only when the selection itself changes, not on every re-aggregation.
        version = hashlib.sha256(json.dumps([selected, asdict(config)]).encode()).hexdigest()[:24]
        png = _bar_plot(table, config, run.name)
        with atomic_path(storage.run_file(run.name, SELECTION, ".png")) as tmp:
            tmp.write_bytes(png)
        result = {
            "run": run.name,
            "selected": selected,
            "version": version,
            "windows": keys,
            "config": asdict(config),
            "channels": table.to_dict("records"),
        }
        with atomic_path(selection_file(storage, run)) as tmp:
            tmp.write_text(json.dumps(result, indent=2))
        return dg.MaterializeResult(
            data_version=dg.DataVersion(version),
            metadata={
                "path": dg.MetadataValue.path(str(selection_file(storage, run))),
                "selected": dg.MetadataValue.json(selected),
                "n_selected": len(selected),
                "n_windows": len(keys),
                "channels": metadata_table(table),
                "plot": dg.MetadataValue.md(md_image(png, "ANNALISA scores")),
            },
        )

    return _selection
