"""Held-out evaluation and synthetic glitch sets: the model streamed over a split, batch by batch.

Everything here is in physical units (strain SNR^2). Every report scores the model beside three baselines by the
same code (:mod:`glitchflow_assets.core.ml.scoring`): an all-zero tile, the training split's mean strain tile (what
ignoring the witnesses gets at best) and the linear witness regression (what a classical method gets from them).
The ``model_evaluation`` file's format: :mod:`glitchflow_assets.core.artifacts.model_evaluation`.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from glitchflow_assets.core.artifacts.dataset_split import TileBatch, iter_split, read_info
from glitchflow_assets.core.ml.baselines import Generator, MeanTile, ZeroTile, fit_linear_witness, mean_strain_tile
from glitchflow_assets.core.ml.bundle import MODEL, GlitchModel
from glitchflow_assets.core.ml.metrics import REPORT_THRESHOLD, THRESHOLDS, accuracy_curves, cluster_flags, tile_residuals, veto_table
from glitchflow_assets.core.ml.scoring import Interval, choose_threshold, event_counts, roc_auc, roc_curve, tile_scores, with_intervals
from glitchflow_assets.core.signal.glitch_classes import shown

# per glitch class: how often the generated tile flags the glitch, how loud and how alike it is
PER_CLASS = ["recall", "loudness_ratio", "log_correlation", "l1_glitch", "ssim_glitch"]


class UnsoundModel(ValueError):
    """A model whose outputs cannot be trusted at all (non-finite, or witness-blind): never registered or evaluated."""


def generated_batches(
    model: GlitchModel, dataset: str | Path, split: str, device: torch.device, batch_size: int = 64
) -> Iterator[tuple[TileBatch, np.ndarray]]:
    """(stored batch, generated strain ``[batch, freq, time]`` in SNR^2) over one split, in stored order."""
    check_channels(model, dataset)
    for batch in iter_split(dataset, split, batch_size):
        yield batch, model.generate(batch.tiles, device, batch_size)


def check_channels(model: GlitchModel, dataset: str | Path) -> None:
    """Refuse (ValueError) a dataset whose channels, in order and strain first, are not those the model was trained on."""
    channels = tuple(read_info(dataset).channels)
    if channels != model.normalisation.channels:
        raise ValueError(f"{dataset} has channels {list(channels)}, the model was trained on {list(model.normalisation.channels)}")


def baselines(dataset: str | Path) -> list[Generator]:
    """The three baselines of every report, fitted on the training split."""
    return [ZeroTile(), MeanTile(mean_strain_tile(dataset)), fit_linear_witness(dataset)]


@dataclass
class Report:
    """Every generator scored on one split: per-tile rows (``generator`` column), detection thresholds (chosen on
    validation), event counts. ``MODEL`` is the model's name in it."""

    split: str
    tiles: pd.DataFrame
    thresholds: dict[str, float]
    intervals: dict[str, dict[str, Interval]] = field(default_factory=dict)
    class_tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def generators(self) -> list[str]:
        return list(dict.fromkeys(self.tiles["generator"]))

    def of(self, generator: str) -> pd.DataFrame:
        return self.tiles[self.tiles["generator"] == generator]

    def counts(self) -> dict[str, int]:
        return event_counts(self.of(self.generators[0]))

    def headline(self, generator: str = MODEL) -> dict[str, Interval]:
        """Headline numbers with bootstrap intervals over events (computed once per generator)."""
        if generator not in self.intervals:
            self.intervals[generator] = with_intervals(self.of(generator), self.thresholds[generator])
        return self.intervals[generator]

    def table(self) -> pd.DataFrame:
        """One row per generator: each headline number with its interval, the threshold and the event counts."""
        rows = []
        for g in self.generators:
            row = {"generator": g, "threshold_snr2": self.thresholds[g], **self.counts()}
            for k, v in self.headline(g).items():
                row.update({k: v.value, f"{k}_low": v.low, f"{k}_high": v.high})
            rows.append(row)
        return pd.DataFrame(rows)

    def per_class(self, generator: str = MODEL) -> pd.DataFrame:
        """One row per glitch class of the split's events (the simulated morphology or the list's label; a last row
        ``all``): its event counts and ``generator``'s :data:`PER_CLASS` numbers with bootstrap intervals over the
        class's events (computed once per generator). Empty where no event has a class."""
        if generator in self.class_tables:
            return self.class_tables[generator]
        tiles = self.of(generator)
        classes = tiles["event_class"].astype(str)
        if not (classes != "").any():
            return pd.DataFrame()
        rows = []
        for name, group in [*tiles.groupby(shown(classes.to_numpy()), sort=True), ("all", tiles)]:
            row = {"class": name, **event_counts(group)}
            numbers = with_intervals(group, self.thresholds[generator])
            for k in PER_CLASS:
                row.update({k: numbers[k].value, f"{k}_low": numbers[k].low, f"{k}_high": numbers[k].high})
            rows.append(row)
        self.class_tables[generator] = pd.DataFrame(rows)
        return self.class_tables[generator]

    def flat(self) -> dict[str, float]:
        """Flat numbers for MLflow and the UI: event counts, the model's headline values with their intervals, the
        baselines' values (``<metric>_<baseline>``) and the model's detection threshold."""
        out = {f"n_{k}": float(v) for k, v in self.counts().items()}
        for k, v in self.headline(MODEL).items():
            out.update({k: v.value, f"{k}_low": v.low, f"{k}_high": v.high})
        for g in self.generators:
            if g != MODEL:
                out.update({f"{k}_{g}": v.value for k, v in self.headline(g).items()})
        out["detection_threshold_snr2"] = self.thresholds[MODEL]
        return out

    def roc_curves(self) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
        """Per generator: ROC of glitch detection from the generated tile maximum, and its area."""
        out = {}
        for g in self.generators:
            t = self.of(g)
            score, label = t["generated_max"].to_numpy(), t["label"].to_numpy()
            out[g] = (*roc_curve(score, label), roc_auc(score, label))
        return out

    def problems(self, generator: str = MODEL) -> list[str]:
        """Why ``generator``'s outputs cannot be trusted at all: non-finite values, or the same tile whatever the
        witnesses say. Empty when sound."""
        tiles = self.of(generator)
        found = []
        if (bad := int(tiles["non_finite"].sum())) or not np.isfinite(tiles["generated_max"]).all():
            found.append(f"{bad} non-finite generated pixels in {int((tiles['non_finite'] > 0).sum())} of {len(tiles)} {self.split} tiles")
        elif np.ptp(tiles["generated_max"]) == 0 and np.ptp(tiles["generated_mean"]) == 0:
            peak = tiles["generated_max"].iloc[0]
            found.append(f"the same tile for all {len(tiles)} {self.split} tiles (maximum {peak:.4g} SNR^2): it ignores the witnesses")
        return found


def score(
    generators: list[Generator],
    dataset: str | Path,
    split: str,
    device: torch.device,
    ssim_range: float,
    thresholds: dict[str, float] | None = None,
    batch_size: int = 64,
    on_generated: Callable[[TileBatch, np.ndarray], None] = lambda batch, generated: None,
) -> Report:
    """Score every generator on one split, streaming it once. Without ``thresholds`` (the validation split) each
    generator's detection threshold is chosen here, to maximise its balanced accuracy. ``on_generated`` sees each
    batch with the first generator's output."""
    rows = []
    for batch in iter_split(dataset, split, batch_size):
        real = batch.tiles[:, 0]
        provenance = {
            "event_gps": batch.event_gps,
            "window": batch.window,
            "tile_offset": batch.tile_offset,
            "label": batch.label,
            "event_class": batch.event_class,
        }
        for g in generators:
            generated = g.generate(batch.tiles, device, batch_size)
            if g is generators[0]:
                on_generated(batch, generated)
            finite = np.isfinite(generated)
            scores = tile_scores(np.where(finite, generated, np.nan), real, ssim_range)
            scores.insert(0, "generator", g.name)
            for k, v in provenance.items():
                scores[k] = v
            scores["non_finite"] = (~finite).reshape(len(generated), -1).sum(axis=1)
            scores["generated_mean"] = np.where(finite, generated, 0).reshape(len(generated), -1).mean(axis=1)
            rows.append(scores)
    if not rows:
        raise ValueError(f"{dataset}: split {split!r} is empty: nothing to evaluate on")
    tiles = pd.concat(rows, ignore_index=True)
    if thresholds is None:
        thresholds = {}
        for g in generators:
            t = tiles[tiles["generator"] == g.name]
            thresholds[g.name] = choose_threshold(t["generated_max"].to_numpy(), t["label"].to_numpy())
    return Report(split, tiles, thresholds)


@dataclass
class Evaluation:
    """The held-out evaluation: the new report (model and baselines) plus the original's curves and veto table."""

    report: Report
    curves: pd.DataFrame  # one row per SNR^2 threshold 1..50 (the original's denoising/veto accuracy)
    vetoes: pd.DataFrame  # one row per event

    def tables(self) -> dict[str, pd.DataFrame]:
        """What the ``model_evaluation`` file stores: ``report``, ``tiles`` (with each tile's ``event_class``, from
        which :meth:`Report.per_class` is recomputed), ``curves`` and ``vetoes``."""
        return {"report": self.report.table(), "tiles": self.report.tiles, "curves": self.curves, "vetoes": self.vetoes}

    def summary(self) -> dict[str, float]:
        """:meth:`Report.flat` plus the original's accuracies at SNR^2 16."""
        at = self.curves.set_index("threshold").loc[REPORT_THRESHOLD]
        return {
            **self.report.flat(),
            f"denoising_accuracy_snr2_{REPORT_THRESHOLD}": float(at["denoising_accuracy"]),
            f"veto_accuracy_snr2_{REPORT_THRESHOLD}": float(at["veto_accuracy"]),
        }


def evaluate(model: GlitchModel, dataset: str | Path, device: torch.device, split: str = "test", batch_size: int = 64) -> Evaluation:
    """The model and the baselines on ``split``, each at its detection threshold chosen on the validation split, plus
    the original's denoising/veto curves and per-event veto table for the model."""
    check_channels(model, dataset)
    generators = [model, *baselines(dataset)]
    thresholds = score(generators, dataset, "validation", device, ssim_range(model), batch_size=batch_size).thresholds
    flags, per_tile = [], []

    def original_metrics(batch: TileBatch, generated: np.ndarray) -> None:
        flags.append(cluster_flags(generated, batch.tiles[:, 0], THRESHOLDS))
        per_tile.append(tile_residuals(generated, batch.tiles[:, 0], batch.event_gps))

    report = score(generators, dataset, split, device, ssim_range(model), thresholds, batch_size, original_metrics)
    if problems := report.problems(MODEL):
        raise UnsoundModel(f"{model.provenance.get('mlflow_run_id', 'model')} on {dataset}: {'; '.join(problems)}")
    merged = {k: np.concatenate([f[k] for f in flags]) for k in flags[0]}
    return Evaluation(report, accuracy_curves(merged, THRESHOLDS), veto_table(pd.concat(per_tile)))


def ssim_range(model: GlitchModel) -> float:
    """SSIM's data range: the strain's training glitch scale (mean glitch-tile maximum, SNR^2)."""
    return float(model.normalisation.scale[0])
