"""``channel_selection``: the witness channels of one observing run, from the ANNALISA scores of every window."""

import dagster as dg
import pandas as pd

from glitchflow_assets.core.artifacts.annalisa_scores import read_scores
from glitchflow_assets.core.artifacts.channel_selection import selection_of, write_selection
from glitchflow_assets.core.artifacts.storage import write_bytes
from glitchflow_assets.core.plots import pyplot, to_png
from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.core.runs.windows import window_for_key
from glitchflow_assets.core.signal.annalisa import AnnalisaConfig, channel_table
from glitchflow_assets.lib.automation import on_refresh_cron
from glitchflow_assets.lib.factory import run_asset
from glitchflow_assets.lib.inputs import selection_file, step_inputs
from glitchflow_assets.lib.metadata import md_image, metadata_table
from glitchflow_assets.lib.names import SCORES, SELECTION, asset_key
from glitchflow_assets.lib.resources import GlitchflowStorage


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


def select_channels(context: dg.AssetExecutionContext, storage: GlitchflowStorage, run: ObservingRun) -> dg.MaterializeResult:
    """Aggregate the ANNALISA scores of every materialized window and write the run's selection (+ bar plot)."""
    keys = sorted(context.instance.get_materialized_partitions(asset_key(run.name, SCORES)))
    if not keys:
        raise dg.Failure(description=f"no materialized {run.name}/{SCORES} window to aggregate")
    config = run.annalisa_config()
    inputs = step_inputs(context, storage, run)
    table = channel_table([inputs.window(SCORES, window_for_key(k, run.cadence), read_scores) for k in keys], config)
    selection = selection_of(run.name, table, keys, config)
    png = _bar_plot(table, config, run.name)
    write_bytes(storage.run_file(run.name, SELECTION, ".png"), png)
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
        f"selected by {run.annalisa_config().rule}.",
    )
    def _selection(context: dg.AssetExecutionContext, storage: GlitchflowStorage) -> dg.MaterializeResult:
        return select_channels(context, storage, run)

    return _selection
