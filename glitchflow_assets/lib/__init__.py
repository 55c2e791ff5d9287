"""Dagster plumbing shared by the asset modules of ``defs/``: names, the asset factory, partitions, automation,
resources, lineage, metadata and reading upstream artifacts. No asset is defined here."""
