"""``channel_selection``: the witness channels of one observing run, from the ANNALISA scores of every window."""

import dagster as dg

from glitchflow_assets.core.artifacts.annalisa_scores import read_scores
from glitchflow_assets.core.artifacts.channel_selection import selection_of, write_selection
from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.core.runs.windows import window_for_key
from glitchflow_assets.core.signal.annalisa import channel_table
from glitchflow_assets.core.signal.figures import selection_png
from glitchflow_assets.lib.automation import on_refresh_cron
from glitchflow_assets.lib.factory import run_asset
from glitchflow_assets.lib.inputs import selection_file, step_inputs
from glitchflow_assets.lib.metadata import CHANNEL_UI_COLUMNS, channels_not_shown, md_image, metadata_table, top_channels
from glitchflow_assets.lib.names import SCORES, SELECTION, asset_key
from glitchflow_assets.lib.resources import GlitchflowStorage


def select_channels(context: dg.AssetExecutionContext, storage: GlitchflowStorage, run: ObservingRun) -> dg.MaterializeResult:
    """Aggregate the ANNALISA scores of every materialized window and write the run's selection (+ bar plot)."""
    keys = sorted(context.instance.get_materialized_partitions(asset_key(run.name, SCORES)))
    if not keys:
        raise dg.Failure(description=f"no materialized {run.name}/{SCORES} window to aggregate")
    config = run.annalisa_config()
    inputs = step_inputs(context, storage, run)
    table = channel_table([inputs.window(SCORES, window_for_key(k, run.cadence), read_scores) for k in keys], config)
    selection = selection_of(run.name, table, keys, config)
    path = selection_file(storage, run)
    shown, rest = top_channels(table, config.statistic, table["selected"])
    not_shown = channels_not_shown(rest, config.statistic, path.name)
    png = selection_png(shown, config, run.name, not_shown.replace("`", "") if len(rest) else "")
    write_selection(path, selection, png)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(selection.version),
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "selected": dg.MetadataValue.json(selection.selected),
            "n_selected": len(selection.selected),
            "n_channels": len(table),
            "n_windows": len(keys),
            "channels": metadata_table(shown[CHANNEL_UI_COLUMNS]),
            "channels_not_shown": dg.MetadataValue.md(not_shown),
            "plot": dg.MetadataValue.md(md_image(png, "ANNALISA scores")),
        },
    )


def channel_selection(run: ObservingRun) -> dg.AssetsDefinition:
    """The run's ``channel_selection`` asset, refreshed on the run's cron from the ANNALISA scores of every window."""

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
