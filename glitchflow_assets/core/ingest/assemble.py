"""Ingest one analysis window: read its frames through gwpy, bring the strain to the analysis rate and every
auxiliary channel to the scan rate, record gaps and livetime, and write one self-describing HDF5 file atomically.
Later stages read the few channels they need at the analysis rate (the selected witnesses) from the same frames
again, through :func:`window_channels`.

Bad input never corrupts output: files are chosen on what they hold (their tables of contents, read in
a child process that a damaged file may crash), so an unreadable, empty, misnamed, checksum-damaged or
overlapping file is skipped with its reason recorded in the output (``/skipped``) and logged, and never
displaces a good file; non-finite samples are zeroed and cut out of the valid segments. A window with no
readable data or no valid strain, or a re-ingest that would hold less strain data than the existing file,
raises :class:`IngestError` naming the window, files and channel, and leaves the earlier file untouched.

For a run with observing segments (registry ``segments:``, :mod:`glitchflow_assets.core.runs.observing`), data
outside them are cut out of every channel's valid segments as bad samples are (zeroed, the resampling filter's edge
included), the data-quality statistics count only observing data, and a window outside every segment is written
(with no valid data, ``observing_s`` 0) rather than failed: later stages find nothing in it to search.
"""

import dataclasses
import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glitchflow_assets.core.artifacts.raw_strain_segments import (
    MARGIN_S,
    ChannelStats,
    FrameRecord,
    RawSegmentSummary,
    RawSegmentWriter,
    next_window_read_start,
    read_strain,
    read_summary,
    window_data_span,
    window_read_span,
)
from glitchflow_assets.core.artifacts.storage import sha256sum
from glitchflow_assets.core.io import decoder
from glitchflow_assets.core.io.decoded_cache import DecodedFrames
from glitchflow_assets.core.io.decoder import FrameContents
from glitchflow_assets.core.io.discovery import find_frames
from glitchflow_assets.core.io.frames import ChannelData, FrameError, FrameFile, frames_overlapping, gwosc_bit_names, parse_frame_name
from glitchflow_assets.core.runs.observing import SegmentError, drop_short, read_segment_file, state_vector_segments
from glitchflow_assets.core.runs.registry import ObservingRun
from glitchflow_assets.core.runs.segments import Segments, clip, coalesce, covers, index_runs, subtract, total
from glitchflow_assets.core.runs.windows import Window
from glitchflow_assets.core.signal.resample import edge_seconds, resample
from glitchflow_assets.core.types import ChannelSeries

log = logging.getLogger(__name__)
# Frames decoded for one window that the next one reads too (its margins): kept for the process, bounded in bytes.
DECODED = DecodedFrames(decoder.read, parallel=None)
RESAMPLERS = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="glitchflow-resample")


def frame_checksum(path: Path) -> str:
    """SHA-256 of a frame file, hashed once per process while the file keeps its inode, size and modification time
    (a window's edge frames are read by both windows, and every later read of its witnesses checks them again)."""
    stat = path.stat()
    return _checksum(str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _checksum(path: str, inode: int, size: int, mtime_ns: int) -> str:
    return sha256sum(path)


class IngestError(RuntimeError):
    """A window cannot be ingested; the message names the run, window, GPS span, files and channel."""


@dataclass(frozen=True)
class IngestOptions:
    channel_batch: int = 16  # channels held in memory at once (bounds peak memory for wide runs)
    allow_less_data: bool = False  # replace an existing window file even if the new one holds less strain data


def _inside(piece: ChannelData, observing: Segments | None) -> np.ndarray | None:
    """Which samples ``[time]`` of ``piece`` lie inside the observing segments; None when all of them do."""
    end = piece.t0 + piece.data.size / piece.sample_rate
    if observing is None or covers(observing, piece.t0, end):
        return None
    inside = np.zeros(piece.data.size, dtype=bool)
    for s, e in clip(observing, piece.t0, end):
        inside[round((s - piece.t0) * piece.sample_rate) : round((e - piece.t0) * piece.sample_rate)] = True
    return inside


def _inspect_piece(piece: ChannelData, stats: ChannelStats, observing: Segments | None = None) -> tuple[Segments, ChannelData]:
    """Update flat-line / non-finite statistics from native samples inside ``observing`` (all of them for None); return
    the bad spans and the piece with its non-finite samples zeroed wherever they are (a copy: the samples served may be
    the decoded-frame cache's, read again later)."""
    x, rate = piece.data, piece.sample_rate
    inside = _inside(piece, observing)
    if x.size > 1:
        repeats = x[1:] == x[:-1]
        if inside is not None:
            repeats &= inside[1:] & inside[:-1]
        flat = index_runs(repeats) if repeats.any() else []  # one pass where no sample repeats (most channels)
        if flat:
            start, stop = max(flat, key=lambda r: r[1] - r[0])
            seconds = (stop - start + 1) / rate
            if seconds > stats.max_flat_seconds:
                stats.max_flat_seconds, stats.first_flat_gps = seconds, piece.t0 + start / rate
    if np.isfinite(x.sum()):  # one pass, no temporary, where every sample is finite (a sum of finite float32 may overflow)
        return [], piece
    bad = ~np.isfinite(x)
    if not bad.any():
        return [], piece
    runs = index_runs(bad)
    counted = bad if inside is None else bad & inside
    if counted.any() and not stats.nonfinite_count:
        stats.first_nonfinite_gps = piece.t0 + int(np.argmax(counted)) / rate
    stats.nonfinite_count += int(counted.sum())
    cleaned = dataclasses.replace(piece, data=np.where(bad, 0, x).astype(x.dtype))
    return [(piece.t0 + a / rate, piece.t0 + b / rate) for a, b in runs], cleaned


def _reference_rate(pieces: list[tuple[str, ChannelData]], expected: float | None) -> float:
    """The one native rate a channel's data are kept at in a window: the registry's, else the rate holding the
    most seconds (the earliest on a tie). Pieces at any other rate are left out, never mixed in."""
    if expected:
        return expected
    seconds: dict[float, float] = {}
    for _, p in pieces:
        seconds[p.sample_rate] = seconds.get(p.sample_rate, 0.0) + p.data.size / p.sample_rate
    return max(seconds, key=lambda rate: seconds[rate])  # dicts keep insertion order: the earliest wins a tie


def _rate_problems(pieces: list[tuple[str, ChannelData]], reference: float, expected: float | None, is_strain: bool, fs: int) -> str:
    """Why pieces of a channel were left out for their rate (and a strain below the analysis rate), empty when none."""
    problems = []
    for name, p in pieces:
        if p.sample_rate != reference:
            why = f"the registry expects {expected:g} Hz" if expected else f"{reference:g} Hz elsewhere in the window"
            problems.append(f"{p.sample_rate:g} Hz in {name} at GPS {p.t0:.0f} ({why}): {p.data.size / p.sample_rate:g} s left out")
        elif is_strain and p.sample_rate < fs:
            problems.append(f"strain at {p.sample_rate:g} Hz in {name} is below the analysis rate {fs} Hz")
    return "; ".join(dict.fromkeys(problems))


def _contiguous(pieces: list[ChannelData]) -> list[list[ChannelData]]:
    """Time-ordered ``pieces`` grouped into stretches of contiguous data."""
    stretches: list[list[ChannelData]] = []
    for p in pieces:
        last = stretches[-1][-1] if stretches else None
        if last and abs(p.t0 - (last.t0 + last.data.size / last.sample_rate)) < 0.5 / p.sample_rate:
            stretches[-1].append(p)
        else:
            stretches.append([p])
    return stretches


def _resample_onto(
    out: np.ndarray, kept: list[tuple[str, ChannelData]], reference: float, fs: int, span: tuple[int, int], where: str
) -> Segments:
    """Resample ``kept`` (at rate ``reference``) onto ``out``, the ``fs`` grid of GPS ``span``; return the spans
    they cover, less the resampler's edges."""
    valid: Segments = []
    # Merge pieces that are contiguous, then resample each stretch once.
    for stretch in _contiguous([p for _, p in kept]):
        t0 = stretch[0].t0
        try:
            data = resample(np.concatenate([p.data for p in stretch]), reference, fs)
        except ValueError as exc:  # a rate with no exact ratio to the analysis rate
            files = sorted(n for n, _ in kept)
            raise IngestError(f"{where}, {reference:g} Hz in {', '.join(files)}: {exc}") from exc
        offset = (t0 - span[0]) * fs
        if abs(offset - round(offset)) > 1e-3:
            raise IngestError(f"{where}: data at GPS {t0} is not on the {fs} Hz grid of the window")
        i0 = round(offset)
        lo, hi = max(i0, 0), min(i0 + data.size, out.size)
        if lo < hi:
            out[lo:hi] = data[lo - i0 : hi - i0]
        edge = edge_seconds(reference, fs)
        valid.append((t0 + edge, t0 + data.size / fs - edge))
    return valid


def _assemble(
    pieces: list[tuple[str, ChannelData]],
    stats: ChannelStats,
    run: ObservingRun,
    span: tuple[int, int],
    fs: int,
    is_strain: bool,
    where: str,
    observing: Segments | None = None,
) -> np.ndarray:
    """Place a channel's pieces (file name, native data) on the ``fs`` grid ``[time]`` of the GPS ``span`` (the analysis
    rate for the strain and the witnesses later stages read, the scan rate for the window file's auxiliary channels).

    Only pieces at the channel's reference rate (:func:`_reference_rate`) are used: a channel whose rate changes
    inside the window keeps the stretch at that rate and the rest becomes a gap, said in ``stats.rate_mismatch``.
    Data outside ``observing`` (None: none) are cut out as bad samples are."""
    out = np.zeros((span[1] - span[0]) * fs, dtype=np.float32)
    if not pieces:
        return out
    pieces.sort(key=lambda p: p[1].t0)
    expected = run.channel_rates.get(stats.name)
    reference = _reference_rate(pieces, expected)
    stats.rate_mismatch = _rate_problems(pieces, reference, expected, is_strain, fs)
    kept = [(n, p) for n, p in pieces if p.sample_rate == reference]
    stats.present, stats.unit = True, pieces[0][1].unit
    stats.native_rate = reference if kept else pieces[0][1].sample_rate
    if not kept:
        return out
    bad: Segments = [] if observing is None else subtract([span], observing)
    for k, (name, piece) in enumerate(kept):
        spans, cleaned = _inspect_piece(piece, stats, observing)
        bad, kept[k] = bad + spans, (name, cleaned)
    valid = _resample_onto(out, kept, reference, fs, span, where)
    widen = edge_seconds(reference, fs)
    bad = [(s - widen, e + widen) for s, e in bad]
    stats.segments = clip(subtract(coalesce(valid), bad), *span)
    # Zero everything outside valid data so no filter transient or bad sample survives.
    keep = np.zeros(out.size, dtype=bool)
    for s, e in stats.segments:
        keep[round((s - span[0]) * fs) : round((e - span[0]) * fs)] = True
    out[~keep] = 0.0
    return out


class _UnreadableFile(Exception):
    """A chosen file failed while its samples were read: choose again without it."""

    def __init__(self, frame: FrameFile, reason: str):
        super().__init__(reason)
        self.frame, self.reason = frame, reason


def _probe_all(frames: list[FrameFile], run: ObservingRun) -> tuple[dict[FrameFile, FrameContents], list[tuple[str, str]]]:
    """The table of contents of every file that can be read and holds what its name declares."""
    contents, skipped = {}, []
    for f in frames:
        try:
            toc = decoder.probe(f, run.frames.format, run.strain_channel)
        except FrameError as exc:
            skipped.append((f.name, str(exc)))
            continue
        if why := toc.disagreement(f):
            skipped.append((f.name, why))
        else:
            contents[f] = toc
    return contents, skipped


def _resolve_overlaps(contents: dict[FrameFile, FrameContents], strain: str) -> tuple[list[FrameFile], list[tuple[str, str]]]:
    """Where readable files overlap, keep one: the earliest, then one holding the strain, then the most channels.

    Decided on what the files hold (their tables of contents), so an empty, damaged or misnamed file
    (already rejected by :func:`_probe_all`) can never displace a good one."""
    order = sorted(contents, key=lambda f: (contents[f].gps_start, strain not in contents[f].channels, -len(contents[f].channels), f.name))
    kept: list[FrameFile] = []
    skipped = []
    for f in order:
        clash = next((k for k in kept if contents[k].gps_start < contents[f].gps_end and contents[f].gps_start < contents[k].gps_end), None)
        if clash:
            skipped.append((f.name, f"overlaps {clash.name} (GPS {clash.gps_start}-{clash.gps_end}), which was kept"))
        else:
            kept.append(f)
    return sorted(kept, key=lambda f: f.gps_start), skipped


def ingest_window(
    run: ObservingRun,
    window: Window,
    out_path: str | Path,
    frame_files: list[FrameFile] | None = None,
    options: IngestOptions = IngestOptions(),
) -> RawSegmentSummary:
    """Ingest ``window`` of ``run`` into ``out_path`` and return the written file's summary.

    ``frame_files`` defaults to a scan of the run's frame directory. Channels are processed in batches of
    ``options.channel_batch`` so that peak memory does not grow with the number of channels. A file that
    fails while its samples are read is dropped and the window is assembled again from the others (an
    overlapping copy it displaced may then serve).
    """
    where = f"run {run.name} window {window.key} (GPS {window.gps_start}-{window.gps_end})"
    skipped: list[tuple[str, str]] = []
    if frame_files is None:
        try:
            found, bad_names = find_frames(run.frames, *window_read_span(window))
        except FrameError as exc:
            raise IngestError(f"{where}: {exc}") from exc
        frame_files = [f for f, _ in found]
        skipped += [(s.path.name, s.reason) for s in bad_names]
    span = window_read_span(window)
    contents, rejected = _probe_all(frames_overlapping(frame_files, *span), run)
    skipped += rejected
    while True:
        kept, displaced = _resolve_overlaps(contents, run.strain_channel)
        try:
            return _assemble_window(run, window, Path(out_path), {f: contents[f] for f in kept}, skipped + displaced, options, where)
        except _UnreadableFile as exc:
            skipped.append((exc.frame.name, exc.reason))
            del contents[exc.frame]


@dataclass(frozen=True)
class WindowChannels:
    """Channels of one window on the analysis grid of its file's span (window and margins)."""

    names: list[str]  # the strain first
    data: ChannelSeries  # [channel, time] float32 at sample_rate from t0; 0 outside each channel's segments
    t0: float
    sample_rate: int
    segments: dict[str, Segments]  # valid GPS spans per channel; none for a channel the frames lack
    summary: RawSegmentSummary  # of the window's file: what ingest learned of every channel


def window_channels(run: ObservingRun, window: Window, summary: RawSegmentSummary, witnesses: list[str]) -> WindowChannels:
    """The strain (from the window's file) and ``witnesses`` (from the frame files the file was made from, assembled
    as ingest assembles the strain: same filters, same valid segments) of ``window`` at the analysis rate.

    The frame files are found by name in the run's frame directory and must still have the checksum the window file
    recorded: a file gone or changed since raises :class:`IngestError` naming it and the asset to materialize again."""
    where = f"run {run.name} window {window.key} (GPS {window.gps_start}-{window.gps_end})"
    strain, t0 = read_strain(summary.path)
    names = [summary.strain.name, *witnesses]
    data = np.zeros((len(names), strain.size), np.float32)
    data[0] = strain
    segments = {names[0]: summary.strain.segments}
    if witnesses:
        contents = _recorded_frames(run, summary, where)
        span = window_data_span(window)
        pieces = _read_batch(contents, names, range(1, len(names)), run, window)
        for i in range(1, len(names)):
            stats = ChannelStats(names[i])
            data[i] = _assemble(
                pieces[i],
                stats,
                run,
                span,
                run.sample_rate,
                is_strain=False,
                where=f"{where}, channel {names[i]}",
                observing=summary.observing,
            )
            segments[names[i]] = stats.segments
    return WindowChannels(names, data, t0, run.sample_rate, segments, summary)


def _recorded_path(path: Path, root: Path | None) -> str:
    """``path`` relative to the run's frame directory ``root``, or absolute where it lies outside it (or the run's frames
    come from a list or a server)."""
    return os.path.relpath(path, root) if root and path.resolve().is_relative_to(root.resolve()) else str(path.resolve())


def _recorded_frames(run: ObservingRun, summary: RawSegmentSummary, where: str) -> dict[FrameFile, FrameContents]:
    """The tables of contents of the frame files ``summary`` records, at their recorded paths."""
    again = f"materialize {run.name}/raw_strain_segments of the window again"
    contents = {}
    for record in summary.frames:
        if ".." in Path(record.path).parts:  # the window file names its frames; it never leads outside their directory
            raise IngestError(f"{where}: frame path {record.path!r} recorded in {summary.path} leaves the frame directory")
        try:
            frame = parse_frame_name((run.frames.directory or Path("/")) / record.path)
        except ValueError as exc:
            raise IngestError(f"{where}: frame path {record.path!r} recorded in {summary.path}: {exc}") from exc
        if not frame.path.is_file():
            raise IngestError(f"{where}: frame file {frame.path}, which the window's file was made from, is gone; {again}")
        if frame_checksum(frame.path) != record.sha256:
            raise IngestError(f"{where}: frame file {frame.path} changed since the window's file was made from it; {again}")
        try:
            contents[frame] = decoder.probe(frame, run.frames.format, run.strain_channel)
        except FrameError as exc:
            raise IngestError(f"{where}: frame file {frame.path}: {exc}") from exc
    return contents


def _assemble_window(
    run: ObservingRun,
    window: Window,
    out_path: Path,
    contents: dict[FrameFile, FrameContents],
    skipped: list[tuple[str, str]],
    options: IngestOptions,
    where: str,
) -> RawSegmentSummary:
    for name, reason in skipped:
        log.warning("%s: skipping %s: %s", where, name, reason)
    if not frames_overlapping(list(contents), window.gps_start, window.gps_end):
        raise IngestError(f"{where}: no readable frame file in {run.frames.describe()}" + (f"; skipped: {skipped}" if skipped else ""))
    available = sorted(set().union(*(c.channels for c in contents.values())))
    if run.strain_channel not in available:
        raise IngestError(f"{where}: strain channel {run.strain_channel} is in none of {sorted(f.name for f in contents)}")
    channels = [run.strain_channel] + (run.resolve_aux_channels(available) if run.aux_is_pattern() else list(run.aux_channels))
    stats = [ChannelStats(c, absent_from=_files_lacking(c, contents)) for c in channels]
    data_span = window_data_span(window)
    observing = _observing(run, window, contents, where)
    seconds, scan_rate = data_span[1] - data_span[0], run.annalisa_config().scan_rate(run.sample_rate)
    batches = [range(b0, min(b0 + options.channel_batch, len(channels))) for b0 in range(0, len(channels), options.channel_batch)]
    # In the background: the frames' checksums, and the next batch decoded while this one is resampled (two batches in
    # memory at most), so the decoder processes and the resampling threads share the cores instead of taking turns.
    with (
        RawSegmentWriter(out_path, seconds * run.sample_rate, len(channels) - 1, seconds * scan_rate) as writer,
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="glitchflow-ingest") as background,
    ):
        checksums = {f: background.submit(frame_checksum, f.path) for f in contents}
        reading = background.submit(_read_batch, contents, channels, batches[0], run, window)
        for k, batch in enumerate(batches):
            pieces = reading.result()
            if k + 1 < len(batches):
                reading = background.submit(_read_batch, contents, channels, batches[k + 1], run, window)
            # resampling (numpy/scipy, GIL released) runs on every core; the writes stay in order in this thread
            assembled = RESAMPLERS.map(
                lambda i, pieces=pieces: _assemble(
                    pieces[i],
                    stats[i],
                    run,
                    data_span,
                    run.sample_rate if i == 0 else scan_rate,
                    is_strain=i == 0,
                    where=f"{where}, channel {channels[i]}",
                    observing=observing,
                ),
                batch,
            )
            for i, samples in zip(batch, assembled, strict=True):
                writer.write_channel(i, samples)
        in_run = (max(window.gps_start, run.gps_start), min(window.gps_end, run.gps_end))
        livetime = total(clip(stats[0].segments, *in_run))
        observing_s = in_run[1] - in_run[0] if observing is None else total(clip(observing, *in_run))
        if livetime == 0 and observing_s > 0:
            why = f" ({stats[0].rate_mismatch})" if stats[0].rate_mismatch else ""
            raise IngestError(
                f"{where}: no valid strain ({run.strain_channel}) data in the window{why}; files: {sorted(f.name for f in contents)}"
            )
        _refuse_less_data(out_path, livetime, observing, options, where)
        attrs = _window_attrs(run, window, data_span, in_run, livetime, observing_s) | {"scan_rate": scan_rate}
        records = [
            FrameRecord(
                f.name, f.gps_start, f.duration, checksums[f].result(), f.path.stat().st_size, _recorded_path(f.path, run.frames.directory)
            )
            for f in contents
        ]
        writer.finish(attrs, stats, records, skipped, observing)
    return read_summary(out_path)


def _observing(run: ObservingRun, window: Window, contents: dict[FrameFile, FrameContents], where: str) -> Segments | None:
    """The run's observing segments over the data span of ``window`` (None for a run that defines none): from its
    segment file, or from its state-vector channel in the window's frames (data missing from it count as not observing).
    Raises :class:`IngestError` for a bad segment file or state vector, or a state vector in none of the frames."""
    source = run.segments
    if source is None:
        return None
    span = window_data_span(window)
    try:
        if source.file is not None:
            segments = read_segment_file(source.file, source.flag, (run.gps_start, run.gps_end))
            return clip(drop_short(segments, source.min_length, (-np.inf, np.inf)), *span)
        if not any(source.channel in toc.channels for toc in contents.values()):
            raise IngestError(f"{where}: state-vector channel {source.channel} is in none of {sorted(f.name for f in contents)}")
        pieces = _read_batch(contents, [source.channel], range(1), run, window)[0]
        own = gwosc_bit_names(next(iter(contents)).path) if run.frames.format == "gwosc-hdf5" and not source.bit_names else ()
        mask = source.mask(own)
        found = [s for _, p in pieces for s in state_vector_segments(p.data, p.t0, p.sample_rate, mask, source.channel, span)]
        return drop_short(found, source.min_length, span)
    except SegmentError as exc:
        raise IngestError(f"{where}: {exc}") from exc


def _read_batch(
    contents: dict[FrameFile, FrameContents], channels: list[str], batch: range, run: ObservingRun, window: Window
) -> dict[int, list[tuple[str, ChannelData]]]:
    """The pieces (file name, native data) of each channel of ``batch``, from every file holding it, over the read span
    of ``window``; what the next window reads too is kept for it."""
    pieces: dict[int, list[tuple[str, ChannelData]]] = {i: [] for i in batch}
    reads = [(f, [channels[i] for i in batch if channels[i] in toc.channels]) for f, toc in contents.items()]
    reads = [(f, wanted) for f, wanted in reads if wanted]
    got_each = DECODED.read_each(reads, run.frames.format, *window_read_span(window), keep_from=next_window_read_start(window))
    for (f, _), got in zip(reads, got_each, strict=True):
        if isinstance(got, FrameError):
            raise _UnreadableFile(f, str(got)) from got
        for i in batch:
            if channels[i] in got:
                pieces[i].append((f.name, got[channels[i]]))
    return pieces


def _window_attrs(
    run: ObservingRun, window: Window, data_span: tuple[int, int], in_run: tuple[int, int], livetime: float, observing_s: float
) -> dict:
    """The window file's attributes: livetime and gap fraction count against the observing time of the part inside the run."""
    return {
        "run": run.name,
        "window": window.key,
        "gps_start": window.gps_start,
        "gps_end": window.gps_end,
        "data_gps_start": data_span[0],
        "margin_s": MARGIN_S,
        "in_run_duration": in_run[1] - in_run[0],
        "sample_rate": run.sample_rate,
        "strain_channel": run.strain_channel,
        "livetime": livetime,
        "gap_fraction": 1.0 - livetime / observing_s if observing_s else 0.0,
        "observing_s": observing_s,
        "observing_source": run.segments.describe() if run.segments else "",
    }


def _files_lacking(channel: str, contents: dict[FrameFile, FrameContents]) -> str:
    """The window's files whose table of contents lacks ``channel`` ("name (GPS start-end), ..."), empty if none."""
    return ", ".join(f"{f.name} (GPS {f.gps_start}-{f.gps_end})" for f, toc in contents.items() if channel not in toc.channels)


def _refuse_less_data(out_path: Path, livetime: float, observing: Segments | None, options: IngestOptions, where: str) -> None:
    """Never let a re-ingest with fewer usable files replace a window file that holds more strain data (with the same
    observing segments: new segments change what counts)."""
    if options.allow_less_data or not out_path.exists():
        return
    try:
        before = read_summary(out_path)
    except (OSError, ValueError, KeyError):
        return  # an unreadable earlier file holds nothing worth keeping
    if before.observing != observing:
        return
    had = float(before.attrs["livetime"])
    if livetime < had - 1e-6:
        files = ", ".join(f.name for f in before.frames)
        raise IngestError(
            f"{where}: re-ingest would replace {had:g} s of strain data with {livetime:g} s (frames missing or unreadable "
            f"now; the existing file was made from {files}); kept {out_path}. Set allow_less_data to replace it anyway."
        )
