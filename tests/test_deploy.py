"""The cluster files under deploy/ parse, match Ray's schema and version, and run a command line the CLI accepts."""

import json
import shlex
from pathlib import Path

import jsonschema
import ray
import ray.autoscaler
import yaml

from search.cli.study_command import parser

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_the_ray_cluster_launcher_config_matches_rays_schema():
    config = yaml.safe_load((DEPLOY / "ray-cluster-aws.yaml").read_text())
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)  # what `ray up` checks first
    assert config["head_node_type"] in config["available_node_types"]
    assert config["available_node_types"]["gpu_worker"]["resources"]["GPU"] == 1
    setup = config["setup_commands"]
    assert setup.index("pip install -q torch==2.13.0") < next(i for i, c in enumerate(setup) if ".[cluster]" in c)
    assert {".venv", "supertickets_results", "mlflow.db"} <= set(config["rsync_exclude"])


def test_the_kuberay_job_runs_a_valid_study_on_the_shared_volume():
    job, claim = list(yaml.safe_load_all((DEPLOY / "kuberay-rayjob.yaml").read_text()))
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    words = shlex.split(spec["entrypoint"])
    assert words[:3] == ["python", "-m", "search.run"]
    args = parser().parse_args(words[3:])  # flags the CLI accepts
    assert args.storage_path.startswith("/results/") and args.mlflow_uri.startswith("sqlite:////results/")
    assert spec["rayClusterSpec"]["rayVersion"] == ray.__version__
    pods = [spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"],
            *(group["template"]["spec"] for group in spec["rayClusterSpec"]["workerGroupSpecs"])]
    for pod in pods:  # every pod sees the same storage, where the caches and masks live
        (container,) = pod["containers"]
        assert {"name": "results", "mountPath": "/results"} in container["volumeMounts"]
        assert pod["volumes"] == [{"name": "results", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}]
    assert claim["kind"] == "PersistentVolumeClaim" and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    gpu = spec["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu["nvidia.com/gpu"] == "1" and args.gpus_per_trial == 0.5  # two trials per GPU
