"""deploy/ validated offline: Kubernetes manifests and the pods our Helm values and GPU op tags produce, against
the Kubernetes API schemas (kubernetes-validate, strict: unknown fields fail); no credentials anywhere in deploy/."""

import json
import re

import kubernetes
import kubernetes_validate
import pytest
import yaml
from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config

from glitchflow_assets.lib.gpu import GPU_OP_TAGS
from glitchflow_assets_tests.services import REPO

K8S_VERSION = "1.31"
DEPLOY = REPO / "deploy"
VALUES = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
USER_CODE = VALUES["dagster-user-deployments"]["deployments"][0]


def _valid(manifest: dict) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


@pytest.mark.parametrize("name", ["mlflow/mlflow.yaml", "k8s-storage.yaml"])
def test_manifests_are_valid_kubernetes(name):
    documents = [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]
    assert documents
    for doc in documents:
        _valid(doc)


def test_user_code_deployment_from_the_helm_values_is_valid():
    """The pod the chart renders from our user-deployment values (the fields it passes through verbatim)."""
    container = {
        "name": USER_CODE["name"],
        "image": f"{USER_CODE['image']['repository']}:{USER_CODE['image']['tag']}",
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
    mounts = {m["name"]: m for m in USER_CODE["volumeMounts"]}
    assert mounts["frames"]["readOnly"] is True  # the sensor's frames: read-only
    assert {"name": "GLITCHFLOW_EXECUTOR", "value": "k8s"} in USER_CODE["env"]


def test_gpu_step_pod_rendered_by_dagster_k8s_is_valid_and_requests_a_gpu():
    """What ``k8s_job_executor`` builds for a GPU-tagged step: dagster-k8s's own job construction from our op tags."""
    launcher = VALUES["runLauncher"]["config"]["k8sRunLauncher"]
    config = DagsterK8sJobConfig(
        job_image="registry.example.org/glitchflow:test",
        dagster_home="/opt/dagster/home",
        image_pull_policy=launcher["imagePullPolicy"],
        instance_config_map="glitchflow-instance",
        env_secrets=[s["name"] for s in USER_CODE["envSecrets"]],
        volumes=USER_CODE["volumes"],
        volume_mounts=USER_CODE["volumeMounts"],
    )
    tags = {k: json.dumps(v) for k, v in GPU_OP_TAGS.items()}
    job = construct_dagster_k8s_job(
        config, ["dagster", "api", "execute_step"], "dagster-step-trained-model", get_user_defined_k8s_config(tags)
    )
    manifest = kubernetes.client.ApiClient().sanitize_for_serialization(job)
    _valid(manifest)
    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1" and container["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


SECRET_LIKE = re.compile(r"(password|secret_access_key|token)\s*[:=]\s*['\"]?(?!\{env)[A-Za-z0-9/+_-]{6,}", re.IGNORECASE)


def test_no_credentials_in_deploy():
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            hits = [m.group(0) for m in SECRET_LIKE.finditer(path.read_text())]
            assert not hits, f"{path}: {hits}"
    storage = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["storage"]["postgres"]["postgres_db"]
    assert all(isinstance(storage[k], dict) and "env" in storage[k] for k in ("username", "password", "hostname"))
