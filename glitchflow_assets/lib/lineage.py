"""What links a run-level asset to its inputs and to MLflow: lineage tags, recorded data versions, UI links."""

import dagster as dg

from glitchflow_assets.core import settings
from glitchflow_assets.core.ml.tracking import DAGSTER_RUN_TAG, ModelVersionRef, Tracker
from glitchflow_assets.core.runs.registry import ObservingRun

# MLflow 3's UI opens in its GenAI view (traces, tokens) unless the link asks for the model-training one
MODEL_TRAINING_VIEW = "?workflowType=machine_learning"


def mlflow_links(tracker: Tracker, run_id: str, ref: ModelVersionRef | None = None) -> dict[str, dg.MetadataValue]:
    """Links from the Dagster UI into MLflow: the tracking server itself, or for the embedded store the
    ``mlflow ui`` the README starts (``$GLITCHFLOW_MLFLOW_UI_URL``, default http://127.0.0.1:5000)."""
    web = tracker.uri.startswith(("http://", "https://"))
    base = (tracker.uri if web else settings.mlflow_ui_url()).rstrip("/")
    experiment = tracker.client.get_run(run_id).info.experiment_id
    links = {"mlflow_run": dg.MetadataValue.url(f"{base}/#/experiments/{experiment}/runs/{run_id}{MODEL_TRAINING_VIEW}")}
    if ref is not None:
        links["mlflow_model_version"] = dg.MetadataValue.url(f"{base}/#/models/{ref.name}/versions/{ref.version}{MODEL_TRAINING_VIEW}")
    return links


def lineage_tags(context: dg.AssetExecutionContext, run: ObservingRun, dataset_version: str) -> dict[str, str]:
    """MLflow tags tying a run-level step's MLflow run and model version to its Dagster run (with a link to it in the
    Dagster UI, also as the run's description), asset, observing run and dataset version."""
    url = f"{settings.dagster_ui_url().rstrip('/')}/runs/{context.run.run_id}"
    asset = context.asset_key.to_user_string()
    return {
        DAGSTER_RUN_TAG: context.run.run_id,
        "dagster_run_url": url,
        "mlflow.note.content": f"Materialized `{asset}` in Dagster run [{context.run.run_id[:8]}]({url}) (job {context.run.job_name}).",
        "dagster_asset_key": asset,
        "dagster_partition": run.name,  # run-level assets: one asset family per observing run
        "dataset_version": dataset_version,
    }


def data_version_of(context: dg.AssetExecutionContext, key: dg.AssetKey) -> str:
    """The data version of ``key``'s latest materialization (its Dagster run ID where none was recorded); a Failure when it has none."""
    event = context.instance.get_latest_materialization_event(key)
    if event is None:
        raise dg.Failure(description=f"{key.to_user_string()} has never been materialized")
    return str(event.asset_materialization.tags.get("dagster/data_version", event.run_id))
