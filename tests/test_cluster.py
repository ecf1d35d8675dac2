"""A study on a Ray cluster of two nodes on this machine, and fractional GPUs packing trials (issue 12).

The cluster is started with Ray's own tooling (``ray.cluster_utils.Cluster``: a head and a worker node, one CPU
each, their own processes and ports on this host) and torn down even when the test fails.
"""

import json
import threading
import time

import pytest
import ray
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from search.cli.study_command import main


@pytest.fixture
def two_nodes(monkeypatch):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        monkeypatch.setenv("RAY_ADDRESS", cluster.address)
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


def test_a_study_on_a_two_node_cluster_runs_trials_on_both_nodes(two_nodes, tmp_path, model_dir, glue_dir):
    storage, uri = tmp_path / "results", f"sqlite:///{tmp_path}/mlflow.db"
    # Trials long enough to outlast a worker's start: Tune reuses a finished trial's worker (reuse_actors), so a
    # ticket trial shorter than starting a worker on the other node would take the first trial's worker instead.
    argv = ["--task", "rte", "--budget", "smoke", "--model", model_dir, "--glue-dir", glue_dir, "--storage-path",
            str(storage), "--mlflow-uri", uri, "--max-train-examples", "160", "--max-dev-examples", "32",
            "--max-seq-length", "32", "--epochs", "3", "--seeds", "1", "--cpus-per-trial", "1", "--search", "grid",
            "--num-trials", "3", "--study-name", "two-nodes"]
    assert main(argv) == 0
    nodes = {two_nodes.head_node.node_id, *(node.node_id for node in two_nodes.worker_nodes)}
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("supertickets-rte").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 3 and all(r.info.status == "FINISHED" for r in children)  # MLflow got every run
    used = {r.data.tags["ray.node_id"] for r in children}
    per_node = {node[:8]: sorted(r.info.run_name for r in children if r.data.tags["ray.node_id"] == node)
                for node in used}
    print(f"trials per node: {per_node}")  # shown with pytest -s
    assert used == nodes, "the two ticket trials ran at once, one CPU each: one on each node"
    for run in children:  # every trial read the one dense cache and wrote its mask to the shared storage path
        assert run.data.params["reused_dense_finetune"] in ("True", "False")
        mask = json.loads(open(client.download_artifacts(run.info.run_id, "mask/mask-seed-0.json")).read())
        assert sum(map(sum, mask["head"])) == int(run.data.params["heads_kept"])
    assert len(list((storage / "cache" / "dense").glob("*/record.json"))) == 1
    assert len(list((storage / "cache" / "masks").glob("*/mask-seed-0.json"))) == 3


def test_a_study_whose_worker_node_dies_finishes_with_the_trial_restarted_on_the_head(two_nodes, tmp_path, model_dir,
                                                                                      glue_dir):
    """The worker node is killed (no graceful shutdown) while a trial runs on it: Tune restarts that trial
    (``--max-failures``, default 2) on the head, its cut-off run is closed FAILED with ``stop_reason=retried``, and
    the study finishes with every grid point FINISHED and nothing left RUNNING."""
    storage, uri = tmp_path / "results", f"sqlite:///{tmp_path}/mlflow.db"
    argv = ["--task", "rte", "--budget", "smoke", "--model", model_dir, "--glue-dir", glue_dir, "--storage-path",
            str(storage), "--mlflow-uri", uri, "--max-train-examples", "96", "--max-dev-examples", "32",
            "--max-seq-length", "32", "--epochs", "3", "--seeds", "1", "--cpus-per-trial", "1", "--search", "grid",
            "--num-trials", "3", "--study-name", "lost-node"]
    (worker,) = two_nodes.worker_nodes
    killed, done = threading.Event(), threading.Event()

    def kill_the_worker_once_a_trial_runs_there():
        # A ticket trial, not the dense one: the dense trial can be a cache read that reports all its epochs
        # within one poll, so the node died after it had finished and nothing was left to restart.
        client = MlflowClient(uri)
        while not done.is_set():
            try:
                experiment = client.get_experiment_by_name("supertickets-rte")
                busy = experiment and client.search_runs(
                    [experiment.experiment_id],
                    f"tags.`ray.node_id` = '{worker.node_id}' and tags.role = 'ticket' "
                    "and attributes.status = 'RUNNING'")
            except Exception:  # noqa: BLE001 - the store is being created
                busy = None
            if busy:
                two_nodes.remove_node(worker, allow_graceful=False)
                killed.set()
                return
            time.sleep(0.5)

    killer = threading.Thread(target=kill_the_worker_once_a_trial_runs_there)
    killer.start()
    try:
        assert main(argv) == 0
    finally:
        done.set()
        killer.join()
    assert killed.is_set(), "no trial ran on the worker node"
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("supertickets-rte").experiment_id])
    parent = next(r for r in runs if "supertickets.study" in r.data.tags)
    children = sorted((r for r in runs if "mlflow.parentRunId" in r.data.tags), key=lambda r: r.info.start_time)
    assert parent.info.status == "FINISHED" and not any(r.info.status == "RUNNING" for r in runs)
    lost = [r for r in children if r.data.tags.get("stop_reason") == "retried"]
    assert lost and all(r.data.tags["ray.node_id"] == worker.node_id and r.info.status == "FAILED" for r in lost)
    newest = {r.data.tags["ray.trial_id"]: r for r in children}  # later attempts overwrite earlier ones
    assert len(newest) == 3 and all(r.info.status == "FINISHED" for r in newest.values())  # nothing lost
    for run in lost:  # restarted on the head, where it finished
        assert newest[run.data.tags["ray.trial_id"]].data.tags["ray.node_id"] == two_nodes.head_node.node_id
    print(f"attempts: {len(children)} runs for {len(newest)} trials; restarted after the worker died: "
          f"{[r.info.run_name for r in lost]}")


def test_fractional_gpus_pack_four_trials_on_one_declared_gpu(tmp_path):
    """On a CPU machine a Ray instance declared to have 1 GPU runs four 0.25-GPU tasks at once, and the study
    sizes its concurrency the same way (``concurrent_trials``)."""
    import time
    from types import SimpleNamespace

    from search.study.orchestrate import concurrent_trials

    ray.init(num_cpus=4, num_gpus=1, include_dashboard=False)
    try:
        settings = SimpleNamespace(concurrent_trials=None, cpus_per_trial=1.0, gpus_per_trial=0.25)
        assert concurrent_trials(settings) == 4
        assert concurrent_trials(SimpleNamespace(concurrent_trials=None, cpus_per_trial=1.0, gpus_per_trial=0.5)) == 2

        @ray.remote(num_cpus=1, num_gpus=0.25)
        def hold():
            start = time.monotonic()
            time.sleep(3)
            return start, time.monotonic(), ray.get_gpu_ids()

        spans = ray.get([hold.remote() for _ in range(4)])
        latest_start, earliest_end = max(s for s, _, _ in spans), min(e for _, e, _ in spans)
        assert latest_start < earliest_end  # all four held their quarter of the GPU at the same time
        assert all(ids == [0] for _, _, ids in spans)  # the same (declared) GPU
    finally:
        ray.shutdown()
