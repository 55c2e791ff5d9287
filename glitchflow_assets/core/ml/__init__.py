"""Model, data, losses, metrics, training, tracking and generation (pure torch / MLflow; no Dagster)."""
