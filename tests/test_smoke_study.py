"""A smoke study through Ray Tune, Optuna and MLflow, on the shared model and real RTE data."""

import json

import pytest
from mlflow.tracking import MlflowClient

from search.run import main


@pytest.fixture(scope="module")
def studies(tmp_path_factory, model_dir, glue_dir):
    """Two studies sharing one storage path (so one cache): a 3-trial search, then a dense-only one."""
    root = tmp_path_factory.mktemp("studies")
    uri = f"sqlite:///{root}/mlflow.db"
    common = ["--task", "rte", "--budget", "smoke", "--model", model_dir, "--glue-dir", glue_dir,
              "--storage-path", str(root / "results"), "--mlflow-uri", uri, "--max-train-examples", "64",
              "--max-dev-examples", "64", "--max-seq-length", "48", "--epochs", "2", "--cpus-per-trial", "1"]
    assert main([*common, "--num-trials", "3", "--study-name", "first"]) == 0
    dense_dirs = sorted((root / "results" / "cache" / "dense").glob("*/record.json"))
    stamps = [p.stat().st_mtime_ns for p in dense_dirs]
    assert main([*common, "--num-trials", "1", "--study-name", "second"]) == 0
    return root, MlflowClient(uri), dense_dirs, stamps


def _runs(client, study):
    experiment = client.get_experiment_by_name("supertickets-rte")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("supertickets.study") == study)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children


def test_parent_and_child_runs_with_final_statuses(studies):
    root, client, _, _ = studies
    parent, children = _runs(client, "first")
    assert parent.info.status == "FINISHED"
    assert len(children) == 3
    assert all(c.info.status in ("FINISHED", "KILLED") for c in children)
    for child in children:
        params = child.data.params
        assert {"task", "method", "sparsity", "rewind", "seeds", "heads_kept", "ffn_kept"} <= set(params)
        history = client.get_metric_history(child.info.run_id, "dev_score")
        expected_steps = [1, 2] if child.info.status == "FINISHED" else [1]
        assert sorted(m.step for m in history) == expected_steps
        mask = json.loads(open(client.download_artifacts(child.info.run_id, "mask.json")).read())
        assert sum(map(sum, mask["0"]["head"])) == int(params["heads_kept"])
    assert sorted(float(c.data.params["sparsity"]) for c in children)[0] == 0.0  # the dense point is evaluated


def test_summary_agrees_with_the_child_runs(studies):
    root, client, _, _ = studies
    parent, children = _runs(client, "first")
    summary = json.loads(open(client.download_artifacts(parent.info.run_id, "summary.json")).read())
    by_run = {c.info.run_id: c for c in children}
    assert len(summary["trials"]) == 3
    for trial in summary["trials"]:
        child = by_run[trial["run_id"]]
        assert trial["status"] == child.info.status
        assert trial["dev_score"] == pytest.approx(child.data.metrics["dev_score"])
        assert trial["heads_kept"] == int(child.data.params["heads_kept"])
    dense = summary["dense"]
    assert dense["heads_kept"] == 72 and dense["ffn_kept"] == 6
    assert parent.data.tags["dense.dev_score"] == f"{dense['dev_score']:.4f}"
    for name in ("super_ticket", "winning_ticket"):
        if summary[name] is not None:
            assert parent.data.tags[f"{name}.run_id"] in by_run
            assert summary[name]["dev_score"] >= dense["dev_score"] - dense["dev_std"]
    assert (root / "results" / "first" / "phase_transition.png").stat().st_size > 10_000
    assert "phase_transition.png" in [a.path for a in client.list_artifacts(parent.info.run_id)]


def test_second_study_reuses_the_dense_cache(studies):
    root, client, dense_dirs, stamps = studies
    assert len(dense_dirs) == 1  # one seed, one key, one dense fine-tune for every trial of the first study
    assert [p.stat().st_mtime_ns for p in dense_dirs] == stamps
    assert len(list((root / "results" / "cache" / "dense").glob("*/record.json"))) == 1
    parent, children = _runs(client, "second")
    assert len(children) == 1 and children[0].data.params["reused_dense_finetune"] == "True"
    first_parent, _ = _runs(client, "first")
    assert parent.data.tags["dense.dev_score"] == first_parent.data.tags["dense.dev_score"]
