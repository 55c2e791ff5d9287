"""The Dagster UI as a user sees it: pages rendered by headless Chromium (Debian's ``chromium``) after a short run of
SIM through the runner, the way ``glitchflow demo|materialize`` runs it (its window stages in one batched run)."""

import html
import os
import re
import subprocess

import dagster as dg

from glitchflow_assets.core.runs.registry import load_registry
from glitchflow_assets.core.runs.windows import windows_overlapping
from glitchflow_assets.core.sim import simulate
from glitchflow_assets.defs.families import build_definitions
from glitchflow_assets.lib.names import SCORES
from glitchflow_assets.runner import materialize_span
from glitchflow_assets_tests.services import DagsterServices

MINUTES = 15  # three windows, ingested in one run


def rendered_text(url: str, profile: str) -> str:
    """The visible text of ``url`` once the UI has loaded its data (Chromium runs the page's scripts and queries)."""
    command = [
        "chromium",
        "--headless=new",
        "--no-sandbox",  # the tests may run as root
        f"--user-data-dir={profile}",  # its own profile: two tests' browsers at once would share one
        "--window-size=1600,1100",
        "--virtual-time-budget=20000",
        "--dump-dom",
        url,
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=180, check=True).stdout
    visible = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", visible)))


def test_the_ui_shows_each_windows_metadata_and_checks_the_runs_and_no_phantom_window(isolated_home, tmp_path):
    sim = load_registry(follow_frames=False)["SIM"]
    simulate(isolated_home / "frames" / "SIM", sim.gps_start, MINUTES * 60, seed=0, workers=1)
    run = load_registry()["SIM"]  # its span follows the frames: the 15 minutes simulated
    keys = [w.key for w in windows_overlapping(run.gps_start, run.gps_end, run.cadence)]
    assert keys == ["2024-05-17T16:55", "2024-05-17T17:00", "2024-05-17T17:05"]
    with dg.DagsterInstance.get() as instance:  # the one in $DAGSTER_HOME, which the webserver reads
        outcome = materialize_span(build_definitions(), "SIM", keys, instance, through=SCORES)
    assert outcome.success and [len(s.partitions) for s in outcome.steps] == [3]  # one batched run
    run_id = outcome.steps[0].result.run_id

    services = DagsterServices(env=dict(os.environ), logs=tmp_path)
    services.start_webserver()
    try:
        page = lambda path: rendered_text(services.url + path, str(tmp_path / "chromium"))  # noqa: E731

        catalog = page("/assets")
        assert all(name in catalog for name in ("raw_strain_segments", "glitch_events", "annalisa_scores", "cleaned_strain"))

        # a window of the batch: its own span, file, figure; the partition list holds the simulated windows only
        window = page("/assets/SIM/raw_strain_segments?view=partitions&partition=2024-05-17T17%3A00")
        assert "gps_span 1400000418 to 1400000718" in window and "2024-05-17 17:00:00 to 2024-05-17 17:05:00 UTC" in window
        assert "size_mb" in window and "strain_asd" in window and run_id[:8] in window
        assert "Materialized (3)" in window and "Missing (0)" in window

        events = page("/assets/SIM/glitch_events?view=partitions&partition=2024-05-17T17%3A05")
        assert "loudest" in events and "utc" in events and re.search(r"1400000\d{3}\.\d{4} 2024-05-17 17:\d\d:\d\d\.\d{3}", events)

        # every data-quality check passed, filed under a window (not "Skipped" for want of a partition)
        checks = page("/assets/SIM/raw_strain_segments?view=checks")
        assert checks.count("Succeeded") == 5 and "Skipped" not in checks and "Passed" in checks
        assert "measured" in checks and "limit" in checks

        # the run on the Overview timeline and under its job, with its stage and windows
        timeline = page("/overview/activity/timeline")
        assert "SIM_ingest" in timeline and "No runs or scheduled ticks" not in timeline
        runs = page("/locations/glitchflow/jobs/SIM_ingest/runs")
        assert run_id[:8] in runs and "glitchflow/stage: ingest" in runs
        assert "glitchflow/windows: 2024-05-17T16:55 to 2024-05-17T17:05" in runs
    finally:
        services.stop()
