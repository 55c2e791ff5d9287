"""What the Dagster UI shows: readable numbers in tables, figures at 150 dpi with 10 pt text and no grid."""

import io

import numpy as np
import pandas as pd
from PIL import Image

from glitchflow_assets.core.ml.figures import dataset_tiles_png
from glitchflow_assets.core.plots import pyplot
from glitchflow_assets.core.signal.annalisa import AnnalisaConfig
from glitchflow_assets.lib.metadata import TOP_CHANNELS, channels_not_shown, metadata_table, top_channels


def test_tables_keep_gps_to_a_tenth_of_a_millisecond_with_utc_beside_and_round_the_rest():
    table = pd.DataFrame(
        {"gps": [1400001234.567891, 1400001300.5], "snr": [12.3456789, 8.0], "rate": [16384.0] * 2, "n_tiles": [7, 3]}
        | {"channel": ["V1:X"] * 2, "selected": [True, False]}
    )
    value = metadata_table(table)
    first, second = (r.data for r in value.records)
    # GPS at one fixed precision (never 1400001300.5 beside 1400001234.5679), its UTC (leap seconds included) next to it;
    # a whole number stays exact: 16384 Hz, not 4 significant digits' 16380
    expected = {"gps": "1400001234.5679", "utc": "2024-05-17 17:13:36.567", "snr": 12.35, "rate": 16384, "n_tiles": 7}
    assert first == expected | {"channel": "V1:X", "selected": True}
    assert second["gps"] == "1400001300.5000" and second["utc"] == "2024-05-17 17:14:42.500"
    assert [c.name for c in value.schema.columns][:3] == ["gps", "utc", "snr"]
    assert [c.type for c in value.schema.columns] == ["string", "string", "float", "float", "int", "string", "bool"]


def test_figures_are_150_dpi_with_10_pt_text_and_no_grid():
    examples = [
        {
            "tile": np.full((2, 8, 8), 30.0),
            "frequencies": np.geomspace(20, 400, 8),
            "times": np.linspace(-1, 1, 8),
            "label": "glitch",
            "split": "test",
            "gps": 1400001234.5,
            "window": "2024-05-17T16:55",
            "offset": 64,
        }
    ]
    png = dataset_tiles_png(examples, ["V1:STRAIN", "V1:WITNESS"], "tiles")
    image = Image.open(io.BytesIO(png))
    assert round(image.info["dpi"][0]) == 150
    plt = pyplot()
    assert plt.rcParams["font.size"] >= 10 and plt.rcParams["xtick.labelsize"] >= 10 and not plt.rcParams["axes.grid"]


def test_the_selection_plot_draws_the_rule_in_use():
    from glitchflow_assets.core.signal.figures import selection_png

    table = pd.DataFrame(
        {"channel": ["A", "B"], "mean_corr": [0.5, 0.1], "mean_iou": [0.2, 0.01], "significance": [9.0, 1.0], "selected": [True, False]}
    )
    assert AnnalisaConfig(selection="significance").rule == "-log10 p >= 5 (p: of any of the channels scored)"
    assert AnnalisaConfig(selection="corr_iou").rule == "mean corr > 0.17 and mean IoU > 0.08"
    for selection in ("corr_iou", "significance"):
        png = selection_png(table, AnnalisaConfig(selection=selection), "SIM")
        assert Image.open(io.BytesIO(png)).size[0] == 1200  # 8 in at 150 dpi: whole on a 1600 px page


def test_a_thousand_channels_show_the_ones_that_matter_and_one_line_on_the_rest():
    """Per-channel tables and the selection plot of a 1,000-channel run: the selected witnesses (however they rank)
    and the top-ranked channels, sorted, with the rest summarised; a raw window ranks its damaged channels first."""
    from glitchflow_assets.core.signal.figures import selection_png

    n, rng = 1000, np.random.default_rng(3)
    table = pd.DataFrame(
        {
            "channel": [f"V1:CH_{i:04d}" for i in range(n)],
            "mean_corr": rng.uniform(0, 0.2, n),
            "mean_iou": rng.uniform(0, 0.1, n),
            "significance": rng.exponential(1.0, n),
            "selected": np.arange(n) == 17,
        }
    )
    table.loc[17, "significance"] = 0.0  # a witness of the corr/IoU rule that ranks last by significance
    shown, rest = top_channels(table, "significance", table["selected"])
    assert len(shown) == TOP_CHANNELS and len(rest) == n - TOP_CHANNELS and "V1:CH_0017" in set(shown["channel"])
    assert shown["significance"].is_monotonic_decreasing and rest["significance"].is_monotonic_decreasing
    assert rest["significance"].max() <= shown["significance"].iloc[-2]  # nothing better than a shown one left out
    line = channels_not_shown(rest, "significance", "SIM-channel_selection.json")
    assert line.startswith(f"{n - TOP_CHANNELS} more channels") and f"to {rest['significance'].max():.3g}" in line
    assert channels_not_shown(rest.iloc[:0], "significance", "x") == "none: the table holds every channel"
    assert len(metadata_table(shown).records) == TOP_CHANNELS
    png = selection_png(shown, AnnalisaConfig(), "SIM", line)
    assert Image.open(io.BytesIO(png)).size[1] <= (0.3 * TOP_CHANNELS + 2) * 150  # as tall as 25 channels, not 1,000

    raw = pd.DataFrame({"channel": ["V1:STRAIN", "V1:A", "V1:B", "V1:C"], "missing_s": [0.0, 0.0, 0.0, 60.0]})
    raw["nonfinite"], raw["longest_flat_s"] = [0, 0, 5, 0], [0.0, 2.0, 0.0, 0.0]
    shown, rest = top_channels(raw, ["missing_s", "nonfinite", "longest_flat_s"], raw["channel"] == "V1:STRAIN", top=3)
    assert list(shown["channel"]) == ["V1:C", "V1:B", "V1:STRAIN"] and list(rest["channel"]) == ["V1:A"]


def test_a_check_names_the_strain_and_ten_channels_and_counts_the_rest():
    """A thousand-channel window where 300 channels are constant: the check's description stays a few lines."""
    from pathlib import Path

    from glitchflow_assets.core.artifacts.raw_strain_segments import ChannelStats, RawSegmentSummary
    from glitchflow_assets.core.ingest.quality import MAX_NAMED, assess
    from glitchflow_assets.core.runs.registry import load_registry

    run = load_registry()["SIM"]
    span = (run.gps_start, run.gps_start + 300)
    channels = [ChannelStats(run.strain_channel, native_rate=16384, present=True, segments=[span])]
    channels += [
        ChannelStats(f"V1:CH_{i:04d}", native_rate=256, present=True, segments=[span], max_flat_seconds=300.0 if i % 3 == 0 else 0.0)
        for i in range(999)
    ]
    attrs = {"window": "2024-05-17T16:55", "gps_start": span[0], "gps_end": span[1]}
    flat = assess(RawSegmentSummary(Path("w.h5"), attrs, channels, [], []), run)["no_flatlined_channels"]
    assert not flat.passed and flat.severity == "WARN" and len(flat.messages) == MAX_NAMED + 1
    assert flat.messages[0].startswith("V1:CH_0000: constant for 300.0 s") and flat.messages[-1].startswith("and 323 more channels")


def test_figures_of_six_channels_fit_a_1600_px_page():
    """The Dagster UI's metadata column is narrower than the page: a figure of a run's strain and five witnesses stays
    within ~1200 px however many panels it has."""
    from glitchflow_assets.core.signal.figures import spectrogram_png

    channels = ["V1:Hrec_hoft_16384Hz", "V1:LSC_DARM_ERR", "V1:ENV_NEB_MAG_N", "V1:LSC_PRCL_ERR", "V1:LSC_MICH_ERR", "V1:SDB2_B1_PD1"]
    frequencies, times = np.geomspace(10, 500, 16), np.linspace(-1.5, 1.5, 32)
    tile = {"frequencies": frequencies, "times": times, "split": "test", "window": "2024-05-17T16:55", "offset": 0}
    examples = [tile | {"tile": np.full((6, 16, 32), 9.0), "label": label, "gps": 1400001234.5} for label in ("glitch", "background")]
    widths = {
        "dataset tiles": Image.open(io.BytesIO(dataset_tiles_png(examples, channels, "tiles"))).size[0],
        "spectrograms": Image.open(io.BytesIO(spectrogram_png(np.ones((6, 16, 32)), channels, frequencies, times, "event"))).size[0],
    }
    assert all(w <= 1250 for w in widths.values()), widths
