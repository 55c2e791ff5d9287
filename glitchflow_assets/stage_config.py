"""Per-asset settings from a file (``glitchflow materialize --config FILE``): the config the Launchpad shows for each
asset, validated against the asset's own schema before anything runs.

The file is YAML (or JSON), in either of two shapes::

    trained_model: {epochs: 40, min_validation_events: 20}    # by asset name
    dataset_split: {train_fraction: 0.6}

    ops:                                                     # or what the Launchpad shows, for one run
      SIM__trained_model: {config: {epochs: 40}}
"""

from pathlib import Path

import dagster as dg
import yaml
from dagster._config import ConfigTypeKind

from glitchflow_assets.runner import job_for


def read_stage_config(path: Path, defs: dg.Definitions, run: str) -> dict[str, dict]:
    """``{asset name: config}`` of ``run`` from ``path``; a ValueError naming the file, the asset and the field for
    anything the assets would refuse (an unknown asset or field, a wrong type, an asset that takes no settings)."""
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {path} does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"config file {path} is not YAML: {exc}") from None
    document = {} if document is None else document
    if not isinstance(document, dict):
        raise ValueError(f"config file {path}: expected a mapping of asset names to their settings, found {type(document).__name__}")
    by_asset = _from_launchpad(path, document, run) if "ops" in document else document
    assets = {k.path[-1]: k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] == run}
    for name, config in by_asset.items():
        if name not in assets:
            raise ValueError(f"config file {path}: {run} has no asset {name!r}; its assets: {', '.join(sorted(assets))}")
        if not isinstance(config, dict):
            raise ValueError(f"config file {path}: {name}: expected a mapping of fields to values, found {config!r}")
        key = assets[name]
        if defs.resolve_assets_def(key).op.config_schema.config_type.kind == ConfigTypeKind.ANY:  # no settings declared
            raise ValueError(f"config file {path}: {name} takes no settings (found {', '.join(map(str, config)) or 'an empty mapping'})")
        try:
            dg.validate_run_config(defs.resolve_job_def(job_for(run, [key])), {"ops": {"__".join(key.path): {"config": config}}})
        except dg.DagsterInvalidConfigError as exc:
            raise ValueError(f"config file {path}: {name}: " + "; ".join(e.message for e in exc.errors)) from None
    return by_asset


def _from_launchpad(path: Path, document: dict, run: str) -> dict[str, dict]:
    """``{asset name: config}`` from the Launchpad's ``ops: {RUN__asset: {config: ...}}``."""
    if set(document) != {"ops"} or not isinstance(document["ops"], dict):
        raise ValueError(f"config file {path}: a Launchpad config holds `ops:` only, found {', '.join(map(str, document))}")
    by_asset = {}
    for op, body in document["ops"].items():
        if not str(op).startswith(f"{run}__"):
            raise ValueError(f"config file {path}: op {op!r} is not an asset of {run} (its ops are named {run}__ASSET)")
        if not isinstance(body, dict) or set(body) != {"config"}:
            raise ValueError(f"config file {path}: op {op}: expected {{config: {{...}}}}, found {body!r}")
        by_asset[op.removeprefix(f"{run}__")] = body["config"]
    return by_asset


def as_run_config(config: dict[str, dict], run: str) -> dict:
    """The run config that gives each asset of ``run`` its settings (in a run of any of its jobs: Dagster ignores the
    settings of assets a run does not hold)."""
    return {"ops": {f"{run}__{name}": {"config": settings} for name, settings in config.items()}} if config else {}
