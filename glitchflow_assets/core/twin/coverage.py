"""Witness coverage per glitch class, as iDQ reports it (about 39 % of O3b Omicron glitches flagged from auxiliary
channels): of the strain glitches above SNR 8, the share for which the twin predicts a glitch (it
subtracted something over the event) and the share cleaning removes below the event search's threshold (the search
no longer finds it), per class - the simulator's morphology on SIM, the Gravity Spy label where a run has labels.

A class that no selected witness sees cannot be predicted: it is reported as *not witnessed*, never as a failure of
the twin. Where the simulator's truth says which channels saw each glitch, that decides; elsewhere a class the twin
predicts for not once is reported as not witnessed (no witness found).
"""

import numpy as np
import pandas as pd

MIN_SNR = 8.0
Z95 = 1.959964


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial share (95 % by default); (nan, nan) for no trials."""
    if n == 0:
        return float("nan"), float("nan")
    p, z2 = successes / n, z * z
    centre, half = (p + z2 / (2 * n)) / (1 + z2 / n), z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return float(centre - half), float(centre + half)


def witness_coverage(events: pd.DataFrame, min_snr: float = MIN_SNR) -> pd.DataFrame:
    """Per class, over ``events`` (columns ``class``, ``snr`` (the search's), ``predicted`` and ``removed`` (bool), and
    ``witnessed`` (bool, or NA where unknown)) of SNR >= ``min_snr``: the glitches, the shares predicted and removed
    with their 95 % intervals, the share a selected witness saw (where known), and the status; a last row ``all``."""
    loud = events[events.snr >= min_snr]
    rows = []
    for name, g in [*loud.groupby("class", sort=True), ("all", loud)]:
        n, predicted, removed = len(g), int(g.predicted.sum()), int(g.removed.sum())
        known = g.witnessed.dropna()
        witnessed = float(known.astype(bool).mean()) if len(known) else float("nan")
        unseen = witnessed == 0 if len(known) else predicted == 0
        rows.append(
            {
                "class": name,
                "glitches": n,
                "witnessed_fraction": witnessed,
                "predicted_fraction": predicted / n if n else float("nan"),
                "predicted_95": wilson(predicted, n),
                "removed_fraction": removed / n if n else float("nan"),
                "removed_95": wilson(removed, n),
                "status": "not witnessed" if n and unseen else "witnessed",
            }
        )
    return pd.DataFrame(rows)


def coverage_lines(table: pd.DataFrame) -> list[str]:
    """One line per class: ``blip: 40 glitches, predicted 95 % [83, 99], removed 80 % [65, 90]`` (or not witnessed)."""
    lines = []
    for r in table.to_dict("records"):
        if r["status"] == "not witnessed":
            lines.append(f"{r['class']}: {r['glitches']} glitches, not witnessed (no selected channel sees them)")
        else:
            p, q = 100 * np.array(r["predicted_95"]), 100 * np.array(r["removed_95"])
            lines.append(
                f"{r['class']}: {r['glitches']} glitches, predicted {100 * r['predicted_fraction']:.0f} % [{p[0]:.0f}, {p[1]:.0f}], "
                f"removed {100 * r['removed_fraction']:.0f} % [{q[0]:.0f}, {q[1]:.0f}]"
            )
    return lines
