"""The time-domain twin on the README main job's data: accuracy against the simulator's truth and throughput.

Reads what ``glitchflow demo`` left under ``GLITCHFLOW_HOME`` (2 h of SIM at 4 glitches/min: raw segments, events,
channel selection, dataset split), fits both methods on the train events exactly as ``glitch_waveforms`` does (the
Wiener filter and the network correcting it, the better on validation kept), and reports on the held-out test events
of true SNR >= 8, for each method and for the one kept:

* **median mismatch** ``1 - <p, t>/(|p||t|)`` (whitened) between the witness-only prediction and the true glitch,
  overall and per glitch class (the simulated morphologies in Gravity Spy's names); **SNR removed**
  ``(|t| - |t - alpha p|) / |t|``; the mismatch of the gated truth (what the gates alone would cost);
* **cleaning** with the kept twin: every window cleaned and searched again; the fraction of the held-out loud glitches
  the search no longer finds, the new events where cleaning changed the strain (the goals: >= 90 % and 0) and the
  threshold crossings in untouched samples;
* **throughput** on this machine: the fit (every window read, segments whitened, spectra summed, the network trained),
  glitches per second predicted from extracted segments, windows per second cleaned (segments, prediction,
  subtraction and the second event search).

    GLITCHFLOW_HOME=~/.glitchflow .venv/bin/python bench/bench_twin.py
"""

import json
import os
import platform
import time

import numpy as np
import pandas as pd
import torch

from glitchflow_assets.core.artifacts.channel_selection import read_selection
from glitchflow_assets.core.artifacts.dataset_split import dataset_events
from glitchflow_assets.core.runs.registry import load_registry
from glitchflow_assets.core.signal.glitch_classes import event_classes
from glitchflow_assets.core.sim.truth import StrainTruth
from glitchflow_assets.core.twin.cleaning import cleaning_headline
from glitchflow_assets.core.twin.pipeline import TwinConfig, clean_window, fit_twin
from glitchflow_assets.core.twin.prediction import predict
from glitchflow_assets.core.twin.scoring import mismatch, per_class
from glitchflow_assets.defs.twin import window_files
from glitchflow_assets.lib.inputs import Inputs, selection_file
from glitchflow_assets.lib.names import SPLIT
from glitchflow_assets.lib.resources import GlitchflowStorage


def main() -> None:
    run, storage = load_registry()["SIM"], GlitchflowStorage()
    splits = dataset_events(storage.run_file("SIM", SPLIT))
    witnesses = read_selection(selection_file(storage, run)).selected
    keys = sorted(set().union(*(set(d) for d in splits.values())))
    files = {w.key: w for w in window_files(Inputs(storage, run, None), keys)}  # the files glitch_waveforms reads, found as it finds them

    truth = StrainTruth(run.frames.path).glitch
    t = time.perf_counter()
    fit = fit_twin(files.values(), splits, witnesses, TwinConfig(), truth, on_epoch=lambda m: print(m, flush=True))
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    predict(fit.model, fit.test_segments)
    predict_s = time.perf_counter() - t
    table = fit.test.table
    classes = event_classes(pd.DataFrame({"gps": fit.test_segments.gps}), run.frames.path)  # the simulated morphologies
    methods = {
        method: {
            "validation_median_mismatch": round(validation.summary()["median_mismatch"], 4),
            "test_median_mismatch": round(test.summary()["median_mismatch"], 4),
            "test_median_snr_removed": round(test.summary()["median_snr_removed_fraction"], 3),
            "per_class": per_class(test.table, classes).to_dict("records"),
        }
        for method, (validation, test) in fit.candidates.items()
    }
    loud = table[table.true_snr >= 8]
    segments = fit.test_segments
    gate_floor = mismatch(segments.truth * segments.gate, segments.truth)
    t = time.perf_counter()
    comparisons = [clean_window(w.channels(list(fit.model.channels)), w.events, fit.model).comparison for w in files.values()]
    clean_s = time.perf_counter() - t
    cleaned = cleaning_headline(fit.test_segments.gps, fit.test.table, comparisons)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, CPU",
        "windows": len(keys),
        "method": fit.method,
        "methods": methods,
        "train_events": fit.model.training_events,
        "test_events": len(table),
        "test_loud_events": len(loud),
        "median_mismatch": round(float(loud.mismatch.median()), 4),
        # the best any prediction confined to the gates can do: the true glitch gated
        "gate_limited_median_mismatch": round(float(np.median(gate_floor[loud.index])), 4),
        "mismatch_quartiles": [round(float(q), 3) for q in loud.mismatch.quantile([0.25, 0.75])],
        "median_snr_removed": round(float((loud.snr_removed / loud.true_snr).median()), 3),
        "median_residual_snr": round(float(loud.residual_snr.median()), 2),
        "per_class": per_class(table, classes).to_dict("records"),
        "removed_by_cleaning": round(cleaned["held_out_removed_fraction"], 3),
        "removed_events": cleaned["held_out_events"],
        "new_events": cleaned["new_events"],
        "new_events_elsewhere": cleaned["new_events_elsewhere"],
        "fit_s": round(fit_s, 1),
        "predict_glitches_per_s": round(len(table) / predict_s, 1),
        "clean_windows_per_s": round(len(keys) / clean_s, 3),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
