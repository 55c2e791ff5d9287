"""Glitchflow: a Dagster asset platform that is a digital twin of transient noise in GW detectors."""

__version__ = "0.1.0"
