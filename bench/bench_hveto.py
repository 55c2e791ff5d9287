"""hveto beside ANNALISA on the same simulated data, against the simulator's truth (issue 31).

For each configuration - ``sim``: SIM's eleven channels; ``many``: SIM plus ``--aux-extra`` distractor channels
(``V1:SIMX_*``: noise, lines, channels glitching on their own; they witness nothing) - the frames are simulated at 4
glitches a minute (the demo's rate) into ``bench/out/hveto/<config>`` (git-ignored; reused), then window by window:

* **shared**: ``raw_strain_segments`` (``ingest_window``) and the strain's ``glitch_events`` (``window_events``,
  the asset's search and settings);
* **ANNALISA**: ``annalisa_scores`` per window (``score_window_file`` with SIM's registry settings) and the run's
  ``channel_table`` - the pure functions the ``annalisa_scores`` and ``channel_selection`` assets call;
* **hveto**: every auxiliary channel's triggers from the same event search on the channel as the window file holds
  it (``hveto_rounds.window_triggers``), then hveto's rounds (``hveto_rounds.hveto_rounds``: hveto's own
  ``find_max_significance``, ``find_coincidences``, ``veto``, ``veto_all``) with hveto's default settings, once as
  configured out of the box and once with ``V1:LSC_DARM_ERR`` marked unsafe, as a site would mark a strain proxy.

Each method's winners / selection is compared with the simulator's truth (which channels witness which glitch
family: ``VIRGO_SCENARIO.morphologies``), and hveto's vetoes with the true family of each strain trigger
(``truth.true_strain_glitches``). Wall time of each part, same process, one after the other. Prints markdown tables
for bench/RESULTS.md and writes ``results-<config>.json`` under ``bench/out/hveto``.

    .venv/bin/python bench/bench_hveto.py --configs sim --minutes 60   # SIM, an hour
    .venv/bin/python bench/bench_hveto.py --configs many               # the many-channel SIM, 15 min, 95 extra channels
"""

import argparse
import contextlib
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.table import vstack

from glitchflow_assets.core.artifacts.raw_strain_segments import read_strain, read_summary
from glitchflow_assets.core.ingest.assemble import ingest_window
from glitchflow_assets.core.io.frames import scan_frame_dir
from glitchflow_assets.core.runs.registry import load_registry
from glitchflow_assets.core.runs.windows import windows_overlapping
from glitchflow_assets.core.signal.annalisa import channel_table, score_window_file
from glitchflow_assets.core.signal.events import EventSearchConfig, window_events
from glitchflow_assets.core.signal.hveto_rounds import HvetoConfig, HvetoResult, hveto_rounds, trigger_table, window_triggers
from glitchflow_assets.core.sim import VIRGO_SCENARIO, simulate, with_extra_channels
from glitchflow_assets.core.sim.truth import true_strain_glitches

OUT = Path(__file__).resolve().parent / "out" / "hveto"
GLITCHES_PER_MIN = 4.0
DARM = "V1:LSC_DARM_ERR"


def _frames(name: str, minutes: int, extra: int, seed: int) -> tuple[Path, int, int]:
    """Frames of the first ``minutes`` of SIM (plus a minute either side) with ``extra`` distractors; made once."""
    sim = load_registry(follow_frames=False)["SIM"]
    frames = OUT / name / "frames"
    start, duration = sim.gps_start - 60, minutes * 60 + 120
    scenario = with_extra_channels(dataclasses.replace(VIRGO_SCENARIO, glitch_rate_per_min=GLITCHES_PER_MIN), extra, seed=seed)
    if len(scan_frame_dir(frames, ".gwf")[0]) < duration // 60:
        t0 = time.perf_counter()
        simulate(frames, start, duration, frame_length=60, seed=seed, scenario=scenario, workers=2)
        print(f"{name}: simulated {duration} s of {len(scenario.channels)} channels in {time.perf_counter() - t0:.0f} s", flush=True)
    return frames, sim.gps_start, sim.gps_start + minutes * 60


@contextlib.contextmanager
def _timed(seconds: dict[str, list[float]], key: str):
    """Add the block's wall and CPU seconds (this process, every thread: the machine is shared) to ``seconds[key]``."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    seconds[key][0] += time.perf_counter() - wall
    seconds[key][1] += time.process_time() - cpu


def _analyse(name: str, frames: Path, start: int, end: int) -> dict:
    """Both methods on every window of [start, end), timed part by part."""
    sim = load_registry(follow_frames=False)["SIM"]
    run = dataclasses.replace(sim, frames=dataclasses.replace(sim.frames, path=frames))
    annalisa = run.annalisa_config()
    seconds = {k: [0.0, 0.0] for k in ["ingest", "strain_search", "annalisa_scores", "annalisa_selection", "aux_search"]}  # wall, CPU
    primary, auxiliary, scores, searched = [], {}, [], []
    windows = windows_overlapping(start, end, run.cadence)
    for i, window in enumerate(windows):
        path = OUT / name / "windows" / f"{window.gps_start}.h5"
        with _timed(seconds, "ingest"):
            summary = read_summary(path) if path.exists() else ingest_window(run, window, path)
        with _timed(seconds, "strain_search"):
            strain, s0 = read_strain(summary.path)
            events, segs = window_events(strain, s0, summary.sample_rate, summary.strain.segments, summary.window_span, EventSearchConfig())
        with _timed(seconds, "annalisa_scores"):
            scores.append(score_window_file(summary, events["gps"].to_numpy(), annalisa))
        with _timed(seconds, "aux_search"):
            for channel, table in window_triggers(summary).items():
                auxiliary.setdefault(channel, []).append(table)
        primary.append(trigger_table(events, run.strain_channel))
        searched += segs
        print(
            f"{name}: window {i + 1}/{len(windows)} {window.key}: {len(events)} events ({sum(w for w, _ in seconds.values()):.0f} s)",
            flush=True,
        )
    with _timed(seconds, "annalisa_selection"):
        table = channel_table(scores, annalisa)
    primary = vstack(primary)
    auxiliary = {c: vstack(t) for c, t in auxiliary.items()}
    results = {}
    for label, config in [("hveto", HvetoConfig()), ("hveto, DARM unsafe", HvetoConfig(unsafe=(DARM,)))]:
        seconds[f"rounds ({label})"] = [0.0, 0.0]
        with _timed(seconds, f"rounds ({label})"):
            results[label] = hveto_rounds(primary, auxiliary, searched, config)
    return {
        "frames": frames,
        "minutes": (end - start) / 60,
        "channels": len(auxiliary),
        "primary": primary,
        "aux_triggers": sum(len(t) for t in auxiliary.values()),
        "annalisa": table,
        "annalisa_rule": annalisa.rule,
        "hveto": results,
        "seconds": seconds,
    }


def _truth() -> tuple[dict[str, set[str]], set[str]]:
    """Witness channels per glitch family, and all of them."""
    families = {m.name: {c for c, _ in m.witnesses} for m in VIRGO_SCENARIO.morphologies}
    return families, set().union(*families.values())


def _precision_recall(chosen: set[str], truth: set[str]) -> str:
    hits = len(chosen & truth)
    precision = f"{hits}/{len(chosen)}" if chosen else "-"
    return f"precision {precision}, recall {hits}/{len(truth)}"


def _short(channel: str) -> str:
    return channel.removeprefix("V1:")


def _family_efficiency(result: HvetoResult, labels: pd.Series, times: np.ndarray) -> dict[str, str]:
    """Per true family (and noise), the strain triggers hveto's rounds vetoed: 'vetoed/total'."""
    vetoed = np.concatenate([r.vetoed_times for r in result.rounds]) if result.rounds else np.zeros(0)
    hit = np.isin(times, vetoed)
    out = {}
    for family in [*sorted(set(labels) - {""}), ""]:
        mask = (labels == family).to_numpy()
        out[family or "noise (no true glitch)"] = f"{int(hit[mask].sum())}/{int(mask.sum())}"
    return out


def _report(name: str, r: dict, snr: float) -> dict:
    families, witnesses = _truth()
    table = r["annalisa"]
    print(f"\n### {name}: {r['minutes']:.0f} min, {r['channels']} auxiliary channels, {len(r['primary'])} strain triggers\n")
    strain = r["primary"][r["primary"]["snr"] >= snr]
    times = np.asarray(strain["time"], float)
    labels = true_strain_glitches(r["frames"], times, tolerance_s=1.0)["morphology"]  # arches peak up to ~1 s off their centre
    summary = {"minutes": r["minutes"], "channels": r["channels"], "strain_triggers": len(r["primary"]), "aux_triggers": r["aux_triggers"]}
    for label, result in r["hveto"].items():
        print(f"**{label}** ({result.primary} strain triggers at SNR >= {snr:g}, {result.livetime:.0f} s; stop: {result.stop})\n")
        print("| round | winner | significance | SNR threshold | window s | use % | vetoed | deadtime s | true witness of |")
        print("|---|---|---|---|---|---|---|---|---|")
        for rd in result.rounds:
            of = ", ".join(f for f, w in families.items() if rd.channel in w) or "nothing"
            print(
                f"| {rd.n} | {_short(rd.channel)} | {rd.significance:.1f} | {rd.snr:g} | {rd.window:g} | {rd.use_percentage:.0f} "
                f"({rd.coincident}/{rd.used}) | {rd.vetoed} | {rd.deadtime:.1f} | {of} |"
            )
        winners = {rd.channel for rd in result.rounds}
        efficiency = _family_efficiency(result, labels, times)
        dead = sum(rd.deadtime for rd in result.rounds)
        print(
            f"\nwinners vs truth: {_precision_recall(winners, witnesses)}; vetoed per true family: {efficiency}; deadtime {dead:.0f} s "
            f"({100 * dead / result.livetime:.2f} %)\n"
        )
        summary[label] = {"rounds": result.table().to_dict("records"), "stop": result.stop, "efficiency": efficiency, "deadtime_s": dead}
    chosen = set(table.channel[table.selected])
    print(f"**ANNALISA** ({r['annalisa_rule']}): {_precision_recall(chosen, witnesses)}\n")
    print("| channel | selected | significance | mean corr | coincidences (expected) | true witness of |")
    print("|---|---|---|---|---|---|")
    for _, row in table.sort_values("significance", ascending=False).head(max(len(chosen) + 3, 8)).iterrows():
        of = ", ".join(f for f, w in families.items() if row.channel in w) or "nothing"
        print(
            f"| {_short(row.channel)} | {'yes' if row.selected else 'no'} | {row.significance:.1f} | {row.mean_corr:.3f} | "
            f"{row.coincidences} ({row.expected:.1f}) | {of} |"
        )
    print("\nseconds (wall / CPU): " + ", ".join(f"{k} {w:.1f} / {c:.1f}" for k, (w, c) in r["seconds"].items()))
    summary["annalisa"] = {"selected": sorted(chosen), "table": table.to_dict("records")}
    summary["seconds"] = r["seconds"]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["sim", "many"], choices=["sim", "many"])
    parser.add_argument("--minutes", type=int, default=None, help="minutes of SIM (default: 60 for sim, 15 for many)")
    parser.add_argument("--aux-extra", type=int, default=95, help="distractor channels of the many-channel SIM")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.processor() or platform.machine()}")
    out = {}
    for name in args.configs:
        minutes = args.minutes or {"sim": 60, "many": 15}[name]
        frames, start, end = _frames(name, minutes, args.aux_extra if name == "many" else 0, args.seed)
        out[name] = _report(name, _analyse(name, frames, start, end), HvetoConfig().primary_snr)
        (OUT / f"results-{name}.json").write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
