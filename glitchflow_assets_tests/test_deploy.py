"""deploy/ validated offline: Kubernetes manifests and the pods our Helm values and GPU op tags produce, against
the Kubernetes API schemas (kubernetes-validate, strict: unknown fields fail); no credentials anywhere in deploy/.

The official chart (and helm) cannot be installed here, so the chart's part is played by dagster-k8s itself: the
``K8sRunLauncher`` config the chart renders from ``runLauncher`` (validated by dagster's config schema), and the
container context the code server hands to launched runs (``includeConfigInLaunchedRuns``), go through
dagster-k8s's own ``K8sRunLauncher`` and ``k8s_job_executor`` step handler, which build the run and step Jobs."""

import json
import re
import urllib.parse
from types import SimpleNamespace
from unittest.mock import MagicMock

import dagster_k8s.launcher
import kubernetes
import kubernetes_validate
import pytest
import yaml
from dagster import DagsterInstance
from dagster._config import process_config
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.storage.dagster_run import DagsterRun
from dagster_k8s import K8sRunLauncher, k8s_job_executor
from dagster_k8s.job import construct_dagster_k8s_job
from kubernetes.utils import parse_quantity

from glitchflow_assets.lib.gpu import GPU_OP_TAGS
from glitchflow_assets_tests.services import REPO

K8S_VERSION = "1.31"
DEPLOY = REPO / "deploy"
VALUES = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
USER_CODE = VALUES["dagster-user-deployments"]["deployments"][0]
# `helm upgrade --install glitchflow dagster/dagster -n glitchflow` (deploy/README.md): the chart's names follow.
RELEASE = NAMESPACE = "glitchflow"
FULLNAME = f"{RELEASE}-dagster"
IMAGE = f"{USER_CODE['image']['repository']}:{USER_CODE['image']['tag']}"
# What the chart sets in the daemon's environment, read by the run launcher config it renders (``{env: ...}``).
CHART_ENV = {
    "DAGSTER_HOME": "/opt/dagster/dagster_home",
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP": f"{FULLNAME}-instance",
    "DAGSTER_K8S_PG_PASSWORD_SECRET": VALUES["global"]["postgresqlSecretName"],
    "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": f"{FULLNAME}-pipeline-env",
}


def _valid(manifest: dict) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def _documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _deploy_objects(kind: str) -> dict[tuple[str, str], dict]:
    """Every object of ``kind`` that deploy/ defines, by (name, namespace)."""
    found = {}
    for path in sorted(DEPLOY.rglob("*.yaml")):
        if "helm" in path.parts or path.name.startswith("dagster"):
            continue
        for doc in _documents(str(path.relative_to(DEPLOY))):
            if doc.get("kind") == kind:
                found[(doc["metadata"]["name"], doc["metadata"].get("namespace", NAMESPACE))] = doc
    return found


def _service_for(host: str, port: int) -> dict:
    """The deploy/ Service that cluster DNS resolves ``host`` (``name``, ``name.ns``, ``name.ns.svc[.cluster.local]``) to,
    listening on ``port``: a renamed or moved Service, or a changed port, fails here."""
    name, _, rest = host.partition(".")
    namespace = rest.split(".")[0] if rest else NAMESPACE
    assert rest in ("", namespace, f"{namespace}.svc", f"{namespace}.svc.cluster.local"), f"{host} is not a Service name"
    services = _deploy_objects("Service")
    assert (name, namespace) in services, f"{host}: no Service {namespace}/{name} in deploy/ (have {sorted(services)})"
    service = services[(name, namespace)]
    assert port in [p["port"] for p in service["spec"]["ports"]], f"{host}:{port}: Service {name} does not listen there"
    return service


def _frames_read_only(pod: dict) -> None:
    """The frames volume (the read-only claim k8s-storage.yaml defines) is mounted, read-only, in the pod's container."""
    (claim,) = [
        name for (name, _), pvc in _deploy_objects("PersistentVolumeClaim").items() if pvc["spec"]["accessModes"] == ["ReadOnlyMany"]
    ]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["frames"]["persistentVolumeClaim"] == {"claimName": claim, "readOnly": True}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["frames"].get("readOnly") is True, f"frames mounted writable: {mounts['frames']}"


def _mlflow_env(container: dict) -> str:
    """The container's MLFLOW_TRACKING_URI, checked against the MLflow Service and the server's --allowed-hosts."""
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    url = urllib.parse.urlsplit(env["MLFLOW_TRACKING_URI"])
    _service_for(url.hostname, url.port or 80)
    (server,) = [
        c for d in _documents("mlflow/mlflow.yaml") if d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]
    ]
    allowed = next(a for a in server["args"] if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    assert url.netloc in allowed, f"the MLflow server refuses Host {url.netloc} (--allowed-hosts={allowed})"
    return env["MLFLOW_TRACKING_URI"]


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _chart_run_launcher_config() -> dict:
    """``run_launcher.config`` of the instance ConfigMap the chart renders from ``runLauncher.config.k8sRunLauncher``
    (template ``dagsterYaml.runLauncher.k8s``): camelCase values to dagster's snake_case keys, chart defaults for the rest."""
    k8s = VALUES["runLauncher"]["config"]["k8sRunLauncher"]
    known = {"image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile", "envConfigMaps", "envSecrets", "envVars"}
    known |= {"volumeMounts", "volumes", "labels", "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig"}
    assert set(k8s) <= known, f"keys the chart's schema refuses: {set(k8s) - known}"
    config = {
        "load_incluster_config": k8s.get("loadInclusterConfig", True),
        "job_namespace": k8s.get("jobNamespace") or NAMESPACE,
        "image_pull_policy": k8s["imagePullPolicy"],
        "service_account_name": FULLNAME,
        "dagster_home": {"env": "DAGSTER_HOME"},
        "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}, *(c["name"] for c in k8s.get("envConfigMaps", []))],
        "env_secrets": [s["name"] for s in k8s.get("envSecrets", [])],
        "run_k8s_config": {_snake(key): value for key, value in k8s.get("runK8sConfig", {}).items()},
    }
    for key in ("envVars", "volumeMounts", "volumes", "labels", "failPodOnRunFailure", "resources", "schedulerName", "securityContext"):
        if k8s.get(key) is not None:
            config[_snake(key)] = k8s[key]
    return config


def _chart_code_server_container_context() -> dict | None:
    """``DAGSTER_CLI_API_GRPC_CONTAINER_CONTEXT`` the chart gives the code server when ``includeConfigInLaunchedRuns``
    is on (template ``dagsterUserDeployments.k8sContainerContext``): what its runs and their steps inherit."""
    if not USER_CODE.get("includeConfigInLaunchedRuns", {}).get("enabled"):
        return None
    k8s = {
        "image_pull_policy": USER_CODE["image"]["pullPolicy"],
        "env_config_maps": [
            f"{RELEASE}-dagster-user-deployments-{USER_CODE['name']}-user-env",
            *(c["name"] for c in USER_CODE.get("envConfigMaps", [])),
        ],
        "env_secrets": [s["name"] for s in USER_CODE.get("envSecrets", [])],
        "volume_mounts": USER_CODE.get("volumeMounts"),
        "volumes": USER_CODE.get("volumes"),
        "labels": USER_CODE.get("labels"),
        "resources": USER_CODE.get("resources"),
        "namespace": NAMESPACE,
        "service_account_name": f"{FULLNAME}-user-deployments",
        "env": USER_CODE["env"] if isinstance(USER_CODE.get("env"), list) else None,
        "run_k8s_config": {"pod_spec_config": {"automount_service_account_token": True}},
    }
    return {"k8s": {key: value for key, value in k8s.items() if value}}


def _run(job_name: str) -> DagsterRun:
    """A run of ``job_name`` launched from the code server (its origin carries the code server's container context)."""
    repository = RepositoryPythonOrigin(
        executable_path="/usr/local/bin/python",
        code_pointer=ModuleCodePointer("glitchflow_assets.definitions", "defs", working_directory="/opt/glitchflow"),
        container_image=IMAGE,
        entry_point=None,
        container_context=_chart_code_server_container_context(),
    )
    return DagsterRun(
        job_name=job_name, run_id="0123abcd-0000-4000-8000-000000000000", job_code_origin=JobPythonOrigin(job_name, repository)
    )


@pytest.fixture
def run_launcher(monkeypatch):
    """dagster-k8s's ``K8sRunLauncher`` from the chart-rendered config, its Kubernetes client replaced by a recorder."""
    for name, value in CHART_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(dagster_k8s.launcher, "load_kubernetes_config", lambda **_: None)
    monkeypatch.setattr(kubernetes.config, "load_incluster_config", lambda *_, **__: None)
    processed = process_config(K8sRunLauncher.config_type(), _chart_run_launcher_config())
    assert processed.success, processed.errors
    launcher = K8sRunLauncher.from_config_value(None, processed.value)
    launcher._api_client = MagicMock()
    instance = MagicMock(spec=DagsterInstance)
    launcher.register_instance(instance)
    yield launcher
    del instance


def _sanitized(job) -> dict:
    return kubernetes.client.ApiClient().sanitize_for_serialization(job)


def _run_pod_job(launcher: K8sRunLauncher) -> dict:
    launcher._launch_k8s_job_with_args("dagster-run-0123abcd", ["dagster", "api", "execute_run", "{}"], _run("O3b_ingest"))
    return _sanitized(launcher._api_client.create_namespaced_job_with_retries.call_args.kwargs["body"])


def _step_pod_job(launcher: K8sRunLauncher, step_key: str, op_tags: dict) -> dict:
    """What ``k8s_job_executor`` (with the executor config we run it with: none) submits for one step of a run."""
    processed = process_config(k8s_job_executor.config_schema.config_type, {})
    assert processed.success, processed.errors
    executor = k8s_job_executor.executor_creation_fn(
        SimpleNamespace(instance=SimpleNamespace(run_launcher=launcher), executor_config=processed.value)
    )
    handler = executor._step_handler
    run = _run("O3b_model")
    context = SimpleNamespace(
        execute_step_args=SimpleNamespace(step_keys_to_execute=[step_key]),
        dagster_run=run,
        instance=SimpleNamespace(run_launcher=launcher),
        step_tags={step_key: {key: json.dumps(value) for key, value in op_tags.items()}},
        get_step_context=lambda key: SimpleNamespace(step=SimpleNamespace(op_name=key)),
    )
    container_context = handler._get_container_context(context)
    job_config = container_context.get_k8s_job_config(handler._executor_image, launcher)
    job_config = job_config if job_config.job_image else job_config.with_image(run.job_code_origin.repository_origin.container_image)
    job = construct_dagster_k8s_job(
        job_config=job_config,
        args=["dagster", "api", "execute_step"],
        job_name=f"dagster-step-{step_key}",
        pod_name=f"dagster-step-{step_key}",
        component="step_worker",
        user_defined_k8s_config=container_context.run_k8s_config,
        labels={"dagster/job": run.job_name, "dagster/op": step_key, "dagster/run-id": run.run_id},
        env_vars=[{"name": "DAGSTER_RUN_STEP_KEY", "value": step_key}],
    )
    return _sanitized(job)


@pytest.mark.parametrize("name", ["mlflow/mlflow.yaml", "k8s-storage.yaml", "postgres.yaml"])
def test_manifests_are_valid_kubernetes(name):
    documents = _documents(name)
    assert documents
    for doc in documents:
        _valid(doc)


def test_user_code_deployment_from_the_helm_values_is_valid():
    """The pod the chart renders from our user-deployment values (the fields it passes through verbatim): the code
    server, where the sensors read the frames."""
    container = {
        "name": USER_CODE["name"],
        "image": IMAGE,
        "imagePullPolicy": USER_CODE["image"]["pullPolicy"],
        "args": ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", str(USER_CODE["port"]), *USER_CODE["dagsterApiGrpcArgs"]],
        "env": USER_CODE["env"],
        "envFrom": [{"secretRef": s} for s in USER_CODE["envSecrets"]] + [{"configMapRef": c} for c in USER_CODE["envConfigMaps"]],
        "volumeMounts": USER_CODE["volumeMounts"],
        "resources": USER_CODE["resources"],
        "securityContext": USER_CODE["securityContext"],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "glitchflow-user-code"},
        "spec": {
            "selector": {"matchLabels": {"app": "glitchflow"}},
            "template": {
                "metadata": {"labels": {"app": "glitchflow"}},
                "spec": {"containers": [container], "volumes": USER_CODE["volumes"]},
            },
        },
    }
    _valid(deployment)
    _frames_read_only(deployment["spec"]["template"]["spec"])
    _mlflow_env(container)
    assert {"name": "GLITCHFLOW_EXECUTOR", "value": "k8s"} in USER_CODE["env"]


def test_run_launcher_config_rendered_by_the_chart_is_valid_dagster_config(monkeypatch):
    """``runLauncher`` as the chart renders it passes dagster-k8s's own config schema (the run_launcher block of the
    instance); run and step Jobs go to the namespace deploy/ creates."""
    for name, value in CHART_ENV.items():
        monkeypatch.setenv(name, value)
    processed = process_config(K8sRunLauncher.config_type(), _chart_run_launcher_config())
    assert processed.success, processed.errors
    assert (processed.value["job_namespace"], NAMESPACE) in _deploy_objects("Namespace")


def _pod(job: dict) -> dict:
    """The Job's pod spec, after kubernetes-validate and the API server's own check that no container requests more
    than its limit (the schema does not see that; the merged run/step resources must still satisfy it)."""
    _valid(job)
    pod = job["spec"]["template"]["spec"]
    for container in pod["containers"]:
        requests, limits = container["resources"].get("requests", {}), container["resources"].get("limits", {})
        for resource in requests.keys() & limits.keys():
            assert parse_quantity(requests[resource]) <= parse_quantity(limits[resource]), f"{resource}: {requests} > {limits}"
    return pod


def test_run_pod_built_by_k8s_run_launcher_is_valid_mounts_frames_read_only_and_reaches_mlflow(run_launcher):
    """The run worker: dagster-k8s's ``K8sRunLauncher`` with the chart's config and the code server's container context."""
    pod = _pod(_run_pod_job(run_launcher))
    (container,) = pod["containers"]
    _frames_read_only(pod)
    _mlflow_env(container)
    assert {"secretRef": {"name": "glitchflow-mlflow-client"}} in container["envFrom"]
    assert {"configMapRef": {"name": "glitchflow-env"}} in container["envFrom"]
    assert "nvidia.com/gpu" not in json.dumps(container["resources"])  # the run worker only orchestrates its steps


@pytest.mark.parametrize("gpu", [False, True], ids=["cpu-step", "gpu-step"])
def test_step_pods_built_by_k8s_job_executor_are_valid_mount_frames_read_only_and_request_gpus(run_launcher, gpu):
    """Every step its own pod (``GLITCHFLOW_EXECUTOR=k8s``): dagster-k8s's step handler, from the run's container
    context and the op's tags (``GPU_OP_TAGS`` on GPU assets, none on the others)."""
    pod = _pod(_step_pod_job(run_launcher, "trained_model" if gpu else "raw_strain_segments", GPU_OP_TAGS if gpu else {}))
    (container,) = pod["containers"]
    _frames_read_only(pod)
    _mlflow_env(container)
    resources = container["resources"]
    if gpu:
        assert resources["limits"]["nvidia.com/gpu"] == "1" and resources["requests"]["nvidia.com/gpu"] == "1"
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    else:
        assert "nvidia.com/gpu" not in json.dumps(resources) and "nodeSelector" not in pod


def test_postgresql_is_reached_by_the_service_name_deploy_defines():
    """Dagster (the chart's ``postgresql.postgresqlHost``) and MLflow (its backend store URI, created in the README) both
    name the PostgreSQL Service that deploy/postgres.yaml defines, on its port."""
    postgresql = VALUES["postgresql"]
    assert postgresql["enabled"] is False
    _service_for(postgresql["postgresqlHost"], postgresql["service"]["port"])
    readme = (DEPLOY / "README.md").read_text()
    (uri,) = re.findall(r"MLFLOW_BACKEND_STORE_URI=\"(postgresql\+psycopg2://[^\"]+)\"", readme)
    url = urllib.parse.urlsplit(uri)
    _service_for(url.hostname, url.port)


def test_queue_and_monitoring_in_the_helm_values_match_dagster_yaml():
    """The chart renders the run queue and run monitoring from the values; dagster.yaml (outside Kubernetes, CI) has
    the same limits, so what CI proves about them holds on the cluster."""
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    daemon = VALUES["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == instance["concurrency"]["runs"]["tag_concurrency_limits"]
    monitoring = {_snake(key): value for key, value in daemon["runMonitoring"].items() if key != "maxResumeRunAttempts"}
    assert monitoring.items() <= instance["run_monitoring"].items()
    assert daemon["runRetries"]["maxRetries"] == instance["run_retries"]["max_retries"]


SECRET_LIKE = re.compile(r"(password|secret_access_key|token)\s*[:=]\s*['\"]?(?!\{env)[A-Za-z0-9/+_-]{6,}", re.IGNORECASE)


def test_no_credentials_in_deploy():
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            hits = [m.group(0) for m in SECRET_LIKE.finditer(path.read_text())]
            assert not hits, f"{path}: {hits}"
    storage = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["storage"]["postgres"]["postgres_db"]
    assert all(isinstance(storage[k], dict) and "env" in storage[k] for k in ("username", "password", "hostname"))
