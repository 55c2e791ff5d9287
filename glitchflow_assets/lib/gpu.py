"""How GPU-heavy steps are tagged: the ``gpu`` pool (cross-run concurrency) and a GPU request for their pod.

The ``dagster-k8s/config`` op tag takes effect under ``k8s_job_executor`` (each step its own pod; switched on
with ``GLITCHFLOW_EXECUTOR=k8s``, as the Helm values do); elsewhere the step runs in-process and picks CUDA at run
time when present, else the CPU.
"""

GPU_POOL = "gpu"
GPU_KINDS = {"pytorch", "hdf5"}
GPU_RUN_TAG = "glitchflow/gpu"  # on runs of the model job: limited by a tag concurrency limit in deploy/
GPU_OP_TAGS = {
    "dagster-k8s/config": {
        # The memory limit too: the step pod inherits the code server's 8Gi limit, and a request above the limit is refused.
        "container_config": {
            "resources": {"limits": {"nvidia.com/gpu": "1", "memory": "16Gi"}, "requests": {"nvidia.com/gpu": "1", "memory": "16Gi"}}
        },
        "pod_spec_config": {
            "node_selector": {"nvidia.com/gpu.present": "true"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }
}
