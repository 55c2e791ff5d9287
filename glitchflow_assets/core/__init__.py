"""Pure-Python science and I/O core. Nothing in this package imports Dagster."""
