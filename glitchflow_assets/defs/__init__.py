"""Dagster layer: thin wiring of ``glitchflow_assets.core`` into assets, checks, sensors and jobs."""
