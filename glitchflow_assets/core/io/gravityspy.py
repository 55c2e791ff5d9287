"""Gravity Spy classification lists (CSV, as in the public Gravity Spy releases on Zenodo) as labelled trigger lists.

A release's table has one row per Omicron trigger it classified: ``event_time`` (GPS of the peak; the training set
calls it ``GPStime``), ``ifo``, ``peak_frequency``, ``snr``, ``duration``, the machine-learning class ``ml_label``
with its ``ml_confidence`` (the training set's volunteer ``label`` has no confidence), and where present
``bandwidth`` and ``q_value``. Rows of another interferometer are left out; every label must be a Gravity Spy class.

The simulator's morphologies are named in the same vocabulary (:data:`SIM_CLASSES`), so that a class is one string
from truth to evaluation.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from glitchflow_assets.core.io.triggers import LISTED_COLUMNS, TriggerListError, checked, require_columns, row_error

# The classes of the Gravity Spy models: the 22 of O1/O2 (Zevin et al. 2017) and the two added for O3
# (Blip_Low_Frequency, Fast_Scattering; Glanz et al. 2023).
GRAVITY_SPY_CLASSES = frozenset(
    {
        "1080Lines",
        "1400Ripples",
        "Air_Compressor",
        "Blip",
        "Blip_Low_Frequency",
        "Chirp",
        "Extremely_Loud",
        "Fast_Scattering",
        "Helix",
        "Koi_Fish",
        "Light_Modulation",
        "Low_Frequency_Burst",
        "Low_Frequency_Lines",
        "No_Glitch",
        "None_of_the_Above",
        "Paired_Doves",
        "Power_Line",
        "Repeating_Blips",
        "Scattered_Light",
        "Scratchy",
        "Tomte",
        "Violin_Mode",
        "Wandering_Line",
        "Whistle",
    }
)
SIM_CLASSES = {"blip": "Blip", "scattered_light": "Scattered_Light", "low_frequency_burst": "Low_Frequency_Burst"}

_ALIASES = {"GPStime": "event_time", "label": "ml_label", "peakFreq": "peak_frequency"}  # the training set's names
_REQUIRED = ["event_time", "ifo", "peak_frequency", "snr", "duration", "ml_label"]


def check_classes(names: list[str], where: str) -> None:
    """Raise ValueError naming ``where`` if any of ``names`` is not a Gravity Spy class."""
    unknown = sorted(set(names) - GRAVITY_SPY_CLASSES)
    if unknown:
        raise ValueError(f"{where}: unknown class(es) {', '.join(unknown)} (Gravity Spy classes: {', '.join(sorted(GRAVITY_SPY_CLASSES))})")


def read_gravityspy(path: str | Path, span: tuple[float, float], ifo: str) -> pd.DataFrame:
    """The rows of interferometer ``ifo`` (e.g. ``V1``) of a Gravity Spy CSV as a labelled trigger list
    (LISTED_COLUMNS sorted by GPS; start and end are the peak -/+ half the duration), every row checked:
    a known class, a confidence in [0, 1], and what :func:`triggers.checked` asks. Errors name the file's
    data row (1-based) and column."""
    path = Path(path)
    try:
        raw = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise TriggerListError(f"{path}: cannot read Gravity Spy CSV ({exc})") from exc
    except pd.errors.EmptyDataError:
        raise TriggerListError(f"{path}: no triggers (an empty file)") from None
    raw = raw.rename(columns={k: v for k, v in _ALIASES.items() if v not in raw.columns})
    require_columns(path, list(raw.columns), _REQUIRED)
    raw.index = np.arange(1, len(raw) + 1)  # the file's data rows, for errors after the ifo filter
    labels = raw.ml_label.astype(str)
    for row, label in labels.items():
        if label not in GRAVITY_SPY_CLASSES:
            raise row_error(path, row, "ml_label", f"unknown class {label!r} (not a Gravity Spy class)")
    confidence = pd.to_numeric(raw.get("ml_confidence", pd.Series(np.nan, index=raw.index)), errors="coerce")
    bad = confidence.notna() & ~confidence.between(0.0, 1.0) | confidence.isna() & ("ml_confidence" in raw.columns)
    if bad.any():
        row = int(bad.idxmax())
        raise row_error(path, row, "ml_confidence", f"{raw.ml_confidence[row]} is not a confidence in [0, 1]")
    number = lambda c: pd.to_numeric(raw[c], errors="coerce").to_numpy(dtype=float)  # noqa: E731 - text becomes NaN: caught below
    optional = lambda c: number(c) if c in raw.columns else np.full(len(raw), np.nan)  # noqa: E731
    gps, duration, frequency, bandwidth = number("event_time"), number("duration"), number("peak_frequency"), optional("bandwidth")
    table = pd.DataFrame(
        {
            "gps": gps,
            "frequency": frequency,
            "snr": number("snr"),
            "q": optional("q_value"),
            "start": gps - duration / 2,
            "end": gps + duration / 2,
            "duration": duration,
            "fmin": frequency - bandwidth / 2,
            "fmax": frequency + bandwidth / 2,
            "bandwidth": bandwidth,
            "n_tiles": 0,  # not said by the list
            "label": labels.to_numpy(),
            "confidence": confidence.to_numpy(dtype=float),
        },
        index=raw.index,
    )[LISTED_COLUMNS]
    for column, source in [("gps", "event_time"), ("start", "duration"), ("frequency", "peak_frequency"), ("snr", "snr")]:
        bad = ~np.isfinite(table[column].to_numpy())
        if bad.any():
            row = int(table.index[np.argmax(bad)])
            raise row_error(path, row, source, f"{raw[source][row]} is not a finite number")
    mine = raw.ifo.astype(str).to_numpy() == ifo
    if not mine.any():
        raise TriggerListError(f"{path}: no triggers of {ifo} (ifo column has {', '.join(sorted(set(raw.ifo.astype(str))))})")
    outside = mine & ~((table.gps >= span[0]) & (table.gps < span[1])).to_numpy()
    if outside.any():
        row = int(table.index[np.argmax(outside)])
        raise row_error(path, row, "event_time", f"GPS {table.gps[row]:.3f} is outside the run's span [{span[0]}, {span[1]})")
    return checked(path, table[mine].reset_index(drop=True), span)
