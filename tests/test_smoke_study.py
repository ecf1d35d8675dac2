"""A smoke study through Ray Tune, Optuna and MLflow, on the shared model and real RTE data."""

import json

import pytest
from mlflow.tracking import MlflowClient

from search.run import main


@pytest.fixture(scope="module")
def studies(tmp_path_factory, model_dir, glue_dir):
    """Studies sharing one storage path (so one cache): a 3-trial structured grid, a magnitude grid comparing the
    good, random and bad tickets at sparsity 0.5 (plus the dense point), the default verdict search on the same
    settings, and one whose training diverges. On 64 RTE pairs the dense model learns nothing, so the pipeline
    studies use ``--search grid`` (every point, whatever the verdict) and the verdict search stops at the dense
    trial."""
    root = tmp_path_factory.mktemp("studies")
    uri = f"sqlite:///{root}/mlflow.db"
    common = ["--task", "rte", "--budget", "smoke", "--model", model_dir, "--glue-dir", glue_dir,
              "--storage-path", str(root / "results"), "--mlflow-uri", uri, "--max-train-examples", "64",
              "--max-dev-examples", "64", "--max-seq-length", "48", "--epochs", "2", "--seeds", "1",
              "--cpus-per-trial", "1"]
    assert main([*common, "--num-trials", "3", "--study-name", "first", "--search", "grid"]) == 0
    dense_dirs = sorted((root / "results" / "cache" / "dense").glob("*/record.json"))
    stamps = [p.stat().st_mtime_ns for p in dense_dirs]
    assert main([*common, "--num-trials", "4", "--study-name", "second", "--method", "magnitude", "--control",
                 "good,random,bad", "--sparsity-min", "0.5", "--sparsity-max", "0.5", "--search", "grid"]) == 0
    assert main([*common, "--num-trials", "3", "--study-name", "guarded"]) == 0
    assert main([*common, "--num-trials", "3", "--study-name", "diverged", "--learning-rate", "1e6"]) == 0
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
    assert all(c.info.status == "FINISHED" for c in children)  # one seed: no scheduler stops a trial
    for child in children:
        params = child.data.params
        assert {"task", "method", "sparsity", "rewind", "seeds", "heads_kept", "ffn_kept"} <= set(params)
        for key in ("dev_score_seed0", "train_loss_seed0"):  # per epoch of the seed
            assert sorted(m.step for m in client.get_metric_history(child.info.run_id, key)) == [1, 2]
        assert [m.step for m in client.get_metric_history(child.info.run_id, "dev_score")] == [1]  # per seed
        predictions = json.loads(open(client.download_artifacts(child.info.run_id, "predictions.json")).read())
        assert len(predictions["labels"]) == 64 and len(predictions["seeds"][0]["predictions"]) == 64
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
    verdict = summary["verdict"]
    assert parent.data.tags["verdict"] == verdict["kind"] and verdict["lines"][0].startswith(
        parent.data.tags["verdict.line"][:60])
    for role in ("best_super", "sparsest_super", "winning"):
        if summary[role] is not None:
            assert parent.data.tags[f"{role}.run_id"] in by_run
            assert summary[role]["difference"]["low"] >= -verdict["tolerance"]
    if verdict["kind"] == "dense_not_learned":  # 64 training pairs: the guard speaks instead of naming tickets
        assert "did not learn this task" in verdict["lines"][0] and summary["winning"] is None
    assert (root / "results" / "first" / "phase_transition.png").stat().st_size > 10_000
    assert "phase_transition.png" in [a.path for a in client.list_artifacts(parent.info.run_id)]


def test_second_study_reuses_the_dense_cache(studies):
    root, client, dense_dirs, stamps = studies
    assert len(dense_dirs) == 1  # one seed, one key, one dense fine-tune for every trial of the first study
    assert [p.stat().st_mtime_ns for p in dense_dirs] == stamps
    assert len(list((root / "results" / "cache" / "dense").glob("*/record.json"))) == 2  # + the diverged study's
    parent, children = _runs(client, "second")
    dense = [c for c in children if float(c.data.params["sparsity"]) == 0.0]
    assert len(dense) == 1 and dense[0].data.params["reused_dense_finetune"] == "True"
    first_parent, _ = _runs(client, "first")
    assert parent.data.tags["dense.dev_score"] == first_parent.data.tags["dense.dev_score"]


def test_a_study_compares_magnitude_controls_with_exact_counts_and_mask_files(studies):
    root, client, _, _ = studies
    parent, children = _runs(client, "second")
    pruned = {c.data.params["control"]: c for c in children if float(c.data.params["sparsity"]) == 0.5}
    assert set(pruned) == {"good", "random", "bad"}  # the grid runs every control at every sparsity
    kept = {c.data.params["weights_kept"] for c in pruned.values()}
    total = 6 * (4 * 384 * 384 + 2 * 384 * 1536)
    assert kept == {str(total - total // 2)}  # random and bad keep exactly the good ticket's count
    for child in pruned.values():
        assert child.data.params["method"] == "magnitude"
        assert child.data.metrics["achieved_sparsity"] == pytest.approx(0.5, abs=1e-6)
        files = [a.path for a in client.list_artifacts(child.info.run_id, "mask")]
        assert files == ["mask/mask-seed-0.safetensors"]
    summary = json.loads((root / "results" / "second" / "summary.json").read_text())
    assert {(t["method"], t["control"]) for t in summary["trials"] if t["sparsity"] == 0.5} == \
        {("magnitude", "good"), ("magnitude", "random"), ("magnitude", "bad")}


def test_compare_puts_both_studies_in_one_table_with_one_dense_row(studies, tmp_path):
    from search.compare import main as compare

    root, _, _, _ = studies
    assert compare(["first", "second", "--storage-path", str(root / "results"), "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "comparison.json").read_text())["rows"]
    assert [r["ticket"] for r in rows].count("dense") == 1 and rows[0]["ticket"] == "dense"
    assert {r["ticket"] for r in rows} >= {"magnitude good", "magnitude random", "magnitude bad", "structured good"}
    assert all(r["dev accuracy"] is not None for r in rows if r["status"] == "FINISHED")
    for row in rows:  # a control is paired with its own study's good ticket; a good ticket with dense only
        control = row["ticket"].split()[-1] in ("random", "bad")
        assert (row["control vs good [CI] (points)"] is not None) == control, row
        assert (row["vs dense [CI] (points)"] is None) == (row["ticket"] == "dense"), row
    assert (tmp_path / "comparison.png").stat().st_size > 10_000
    assert compare(["no-such-study", "--storage-path", str(root / "results"), "--out", str(tmp_path)]) == 2


def test_a_diverged_training_fails_with_reason_diverged_and_names_no_ticket(studies, capsys):
    root, client, _, _ = studies
    parent, children = _runs(client, "diverged")
    assert parent.data.tags["verdict"] == "dense_failed"
    assert len(children) == 1  # nothing can be compared with a diverged dense model: the search stops
    (dense,) = children
    assert dense.info.status == "FAILED" and dense.data.tags["supertickets.status_reason"] == "diverged"
    assert dense.data.tags["stop_reason"] == "diverged"
    summary = json.loads((root / "results" / "diverged" / "summary.json").read_text())
    assert summary["verdict"]["lines"][0].startswith("No verdict: the dense model's trial diverged")
    assert summary["trials"][0]["status"] == "FAILED" and summary["trials"][0]["status_reason"] == "diverged"
    record = next((root / "results" / "cache" / "dense").glob("*/record.json"), None)
    assert record is not None
    recorded = [json.loads(p.read_text()) for p in (root / "results" / "cache" / "dense").glob("*/record.json")]
    assert any("diverged" in r and r["spec"]["finetune"]["learning_rate"] == 1e6 for r in recorded)


def test_the_verdict_search_stops_at_a_dense_model_that_learned_nothing(studies):
    root, client, dense_dirs, _ = studies
    parent, children = _runs(client, "guarded")
    assert parent.data.tags["verdict"] == "dense_not_learned"
    assert len(children) == 1 and float(children[0].data.params["sparsity"]) == 0.0  # no ticket was trained
    summary = json.loads((root / "results" / "guarded" / "summary.json").read_text())
    assert summary["verdict"]["lines"][0].startswith("The dense model did not learn this task under these settings")
