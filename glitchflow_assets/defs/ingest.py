"""The ingest job of one observing run, per time window: ``raw_strain_segments`` (frames read, resampled, checked),
``glitch_events`` found in its strain and the ``annalisa_scores`` of every auxiliary channel on those events."""

import warnings
from collections.abc import Iterator

import dagster as dg
import pandas as pd
from pydantic import Field

from glitchflow_assets.core.artifacts.annalisa_scores import read_scores, write_scores
from glitchflow_assets.core.artifacts.glitch_events import read_events, write_events
from glitchflow_assets.core.artifacts.raw_strain_segments import RawSegmentSummary, read_strain
from glitchflow_assets.core.device import select_device
from glitchflow_assets.core.ingest.assemble import IngestError, IngestOptions, ingest_window
from glitchflow_assets.core.ingest.quality import BLOCKING, assess, check_descriptions
from glitchflow_assets.core.io.omicron import omicron_path, write_omicron_hdf5
from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.core.runs.segments import clip, total
from glitchflow_assets.core.runs.windows import Window
from glitchflow_assets.core.signal.annalisa import AnnalisaConfig, channel_table, score_window_file
from glitchflow_assets.core.signal.event_sources import labelled, source_events, trigger_list
from glitchflow_assets.core.signal.events import EVENT_COLUMNS, EventSearchConfig, window_events
from glitchflow_assets.core.signal.figures import events_png, selection_png, strain_asd_png
from glitchflow_assets.core.signal.glitch_classes import class_counts
from glitchflow_assets.lib.automation import follows_inputs
from glitchflow_assets.lib.factory import run_asset
from glitchflow_assets.lib.gpu import GPU_KINDS
from glitchflow_assets.lib.inputs import Inputs, window_raw
from glitchflow_assets.lib.metadata import CHANNEL_UI_COLUMNS, channels_not_shown, md_image, metadata_table, top_channels
from glitchflow_assets.lib.names import EVENTS, RAW, SCORES, asset_key
from glitchflow_assets.lib.partitions import window_partitions
from glitchflow_assets.lib.resources import GlitchflowStorage
from glitchflow_assets.lib.windowed import WindowEvent, for_each_window

RAW_RANK = ["missing_s", "nonfinite", "longest_flat_s"]  # the channels whose data most need a look come first


def _channel_table(summary: RawSegmentSummary) -> pd.DataFrame:
    window = summary.window_span  # the margins belong to the neighbours
    observing = window[1] - window[0] if summary.observing is None else total(clip(summary.observing, *window))
    return pd.DataFrame(
        [
            {
                "channel": c.name,
                "native_rate_hz": c.native_rate if c.present else float("nan"),
                "valid_s": (valid := total(clip(c.segments, *window))),
                "missing_s": observing - valid,  # of the observing time
                "left_out": "; ".join(filter(None, [c.rate_mismatch, c.absent_from and f"not in {c.absent_from}"])),
                "nonfinite": c.nonfinite_count,
                "longest_flat_s": c.max_flat_seconds,
            }
            for c in summary.channels
        ]
    )


def _channels_metadata(table: pd.DataFrame, rank: str | list[str], file: str, pinned: pd.Series) -> dict:
    """A window's per-channel table for the UI: the ``pinned`` rows and the top-ranked channels, and one line on the rest."""
    shown, rest = top_channels(table, rank, pinned)
    return {"channels": metadata_table(shown), "channels_not_shown": dg.MetadataValue.md(channels_not_shown(rest, rank, file))}


def _metadata(summary: RawSegmentSummary) -> dict:
    a = summary.attrs
    return {
        "path": dg.MetadataValue.path(str(summary.path)),
        "livetime_s": float(a["livetime"]),
        "gap_fraction": float(a["gap_fraction"]),
        "observing_s": float(a["observing_s"]),
        "observing": dg.MetadataValue.md(_observing_text(summary)),
        "sample_rate_hz": int(a["sample_rate"]),
        "scan_rate_hz": int(a["scan_rate"]),
        "n_channels": len(summary.channels),
        "n_frames": len(summary.frames),
        "frames": dg.MetadataValue.md("\n".join(f"- `{f.name}` sha256 `{f.sha256[:16]}…`" for f in summary.frames)),
        **_channels_metadata(table := _channel_table(summary), RAW_RANK, summary.path.name, table["channel"] == summary.strain.name),
        "skipped_files": dg.MetadataValue.md("\n".join(f"- `{n}`: {r}" for n, r in summary.skipped) or "none"),
    }


def _observing_text(summary: RawSegmentSummary) -> str:
    """What the window's observing segments are, for the UI."""
    source = summary.attrs["observing_source"]
    if not source:
        return "every second with data (the run defines no observing segments)"
    if summary.outside_observing:
        return f"outside every observing segment ({source}): nothing to search"
    spans = clip(summary.observing, *summary.window_span)
    return f"{summary.attrs['observing_s']:g} s from {source}: GPS " + ", ".join(f"{s:.2f}-{e:.2f}" for s, e in spans)


class RawSegmentsConfig(dg.Config):
    """Launchpad options of raw_strain_segments."""

    allow_less_data: bool = Field(
        default=IngestOptions.allow_less_data,
        description=(
            "Replace an existing window file even when the new one holds less strain data (frames deleted on purpose). "
            "Off: such a re-ingest fails and the earlier file is kept."
        ),
    )


def _window_check_specs(run: ObservingRun, key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The data-quality checks, partitioned like the asset so every result is filed under its window in the UI.

    Partitioned checks are a Dagster preview (1.13); dagster is pinned exactly (``uv.lock``), so a change in them
    arrives only with a deliberate upgrade, which the asset-check tests then exercise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(name, asset=key, blocking=name in BLOCKING, description=description, partitions_def=window_partitions(run))
            for name, description in check_descriptions().items()
        ]


def raw_of_window(inputs: Inputs, window: Window, options: IngestOptions) -> dg.MaterializeResult:
    """Ingest one window's frames into its file; metadata and data-quality checks for the UI."""
    storage, run = inputs.storage, inputs.run
    try:
        summary = ingest_window(run, window, storage.window_file(run.name, RAW, window), options=options)
    except IngestError as exc:
        raise dg.Failure(description=str(exc), metadata={"gps_start": window.gps_start, "gps_end": window.gps_end}) from exc
    for name, reason in summary.skipped:
        dg.get_dagster_logger().warning(f"skipped {name}: {reason}")
    strain, _ = read_strain(summary.path, window.gps_start, window.gps_end)
    title = f"{run.strain_channel}, window {window.key} UTC"
    return dg.MaterializeResult(
        metadata={
            **_metadata(summary),
            "strain_asd": dg.MetadataValue.md(md_image(strain_asd_png(strain, summary.sample_rate, title), title)),
        },
        data_version=dg.DataVersion(summary.data_version()),
        check_results=[
            dg.AssetCheckResult(
                check_name=name,
                passed=o.passed,
                severity=dg.AssetCheckSeverity(o.severity),
                description=o.description,
                metadata={"measured": o.value, "limit": o.limit, "problems": len(o.messages)},
            )
            for name, o in assess(summary, run).items()
        ],
    )


def raw_strain_segments(run: ObservingRun) -> dg.AssetsDefinition:
    """The run's ``raw_strain_segments`` asset (per window, with its data-quality checks), started by the new-frame sensor, a backfill or
    ``glitchflow materialize``."""

    @run_asset(
        run,
        RAW,
        per_window=True,
        deps=[],
        kinds={"hdf5", "gwpy"},
        automation=None,  # started by the new-frame sensor, a backfill or `glitchflow materialize`
        check_specs=_window_check_specs(run, asset_key(run.name, RAW)),
        metadata={"observing_run": run.name, "frame_source": run.frames.describe(), "strain_channel": run.strain_channel},
        description=(
            f"Strain + auxiliary channels of one {run.cadence.text} window of {run.name}, read from its "
            f"{run.frames.describe()}, resampled to {run.sample_rate} Hz with anti-alias filtering, "
            "gaps and livetime recorded as segments. One HDF5 file per window, written atomically."
            + ("" if run.has_frame_source else f" **No {run.frames.describe()} yet: nothing to ingest.**")
        ),
    )
    def _raw(context: dg.AssetExecutionContext, config: RawSegmentsConfig, storage: GlitchflowStorage) -> Iterator[WindowEvent]:
        options = IngestOptions(allow_less_data=config.allow_less_data)
        yield from for_each_window(context, run, storage, lambda inputs, window: raw_of_window(inputs, window, options))

    return _raw


def events_of_window(inputs: Inputs, window: Window) -> dg.MaterializeResult:
    """Search one window's strain for glitch events and write its event table."""
    storage, run = inputs.storage, inputs.run
    raw, summary = window_raw(inputs, window)
    strain, t0 = read_strain(raw)
    config, source = EventSearchConfig(), run.events
    if source.source == "builtin" or source.mode == "add":
        segments = summary.strain.segments
        found, searched = window_events(strain, t0, summary.sample_rate, segments, summary.window_span, config, select_device())
    else:  # the list replaces the search: the window's valid data are what it covers
        found, searched = pd.DataFrame(columns=EVENT_COLUMNS), clip(summary.strain.segments, *summary.window_span)
    if source.source == "builtin":
        events = labelled(found)
    else:
        listed = trigger_list(source, (run.gps_start, run.gps_end), run.strain_channel.split(":", 1)[0])
        events = source_events(source.mode, found, listed, searched)
    path = storage.window_file(run.name, EVENTS, window)
    write_events(path, run.name, window, events, searched, config)
    # in the run's trigger folder, not the asset's (which holds the window files alone), named as Omicron names its own
    omicron = omicron_path(storage.base() / run.name / "omicron", run.strain_channel, window.gps_start, window.duration)
    write_omicron_hdf5(omicron, events)
    written = read_events(path)
    loudest = events.sort_values("snr", ascending=False).head(10)[["gps", "snr", "frequency", "q", "duration"]]
    title = f"{len(events)} events in window {window.key} UTC"
    return dg.MaterializeResult(
        data_version=dg.DataVersion(written.data_version()),
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "omicron_path": dg.MetadataValue.path(str(omicron)),
            "event_source": source.source if source.source == "builtin" else f"{source.source} ({source.mode}): {source.path}",
            "n_events": len(events),
            "n_events_per_class": dg.MetadataValue.json(class_counts(events.label.to_numpy())),
            "searched_livetime_s": written.livetime,
            "rate_per_hour": len(events) / written.livetime * 3600 if written.livetime else 0.0,
            "loudest": metadata_table(loudest),
            "events": dg.MetadataValue.md(md_image(events_png(events, window.gps_start, window.gps_end, title), title)),
        },
    )


def scores_of_window(inputs: Inputs, window: Window) -> dg.MaterializeResult:
    """Score every auxiliary channel against the strain on one window's events and write the counts."""
    storage, run = inputs.storage, inputs.run
    _, summary = window_raw(inputs, window)
    events = inputs.window(EVENTS, window, read_events).events
    config = run.annalisa_config()
    scores = score_window_file(summary, events["gps"].to_numpy(), config, select_device())
    path = storage.window_file(run.name, SCORES, window)
    write_scores(path, run.name, window, scores, config)
    table = channel_table([scores], config)[CHANNEL_UI_COLUMNS]
    return dg.MaterializeResult(
        data_version=dg.DataVersion(read_scores(path).data_version()),
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "n_events_scored": len(scores.event_gps),
            **_channels_metadata(table, config.statistic, path.name, table["selected"]),
            "plot": dg.MetadataValue.md(md_image(_scores_png(table, config, f"{run.name} window {window.key}"), "ANNALISA scores")),
        },
    )


def _scores_png(table: pd.DataFrame, config: AnnalisaConfig, title: str) -> bytes:
    """The window's top channels on the selection rule's statistics (those that would be selected on it alone in green)."""
    shown, _ = top_channels(table, config.statistic, table["selected"])
    return selection_png(shown, config, title)


def glitch_events(run: ObservingRun) -> dg.AssetsDefinition:
    """The run's ``glitch_events`` asset (per window, on the GPU), following its raw window."""

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
    def _events(context: dg.AssetExecutionContext, storage: GlitchflowStorage) -> Iterator[WindowEvent]:
        yield from for_each_window(context, run, storage, events_of_window)

    return _events


def annalisa_scores(run: ObservingRun) -> dg.AssetsDefinition:
    """The run's ``annalisa_scores`` asset (per window, on the GPU), following its raw window and events."""

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
    def _scores(context: dg.AssetExecutionContext, storage: GlitchflowStorage) -> Iterator[WindowEvent]:
        yield from for_each_window(context, run, storage, scores_of_window)

    return _scores
