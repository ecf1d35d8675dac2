"""A method registered from outside the project runs through a study and shows its own facts, untouched search/."""

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from search.cli.study_command import main
from trainables.pruning import registry

TOY = Path(__file__).with_name("toy_method.py")


def test_a_method_registered_by_one_line_runs_a_study_and_reports_its_facts(tmp_path, monkeypatch, model_dir,
                                                                             glue_dir):
    monkeypatch.setenv(registry.PLUGINS_ENV, str(TOY))  # the one line: the study forwards it to Ray's workers
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    try:
        assert main(["--task", "rte", "--method", "toy-rows", "--budget", "smoke", "--model", model_dir,
                     "--glue-dir", glue_dir, "--storage-path", str(tmp_path / "results"), "--mlflow-uri", uri,
                     "--max-train-examples", "32", "--max-dev-examples", "32", "--max-seq-length", "32",
                     "--epochs", "1", "--seeds", "1", "--cpus-per-trial", "1", "--search", "grid",
                     "--sparsity-min", "0.25", "--study-name", "toy"]) == 0
    finally:
        registry.METHODS.pop("toy-rows", None)
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("supertickets-rte").experiment_id])
    children = {float(r.data.params["sparsity"]): r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert sorted(children) == [0.0, 0.25, 0.5]  # the method's own default grid (0, 0.5, step 0.25)
    hidden, inner, layers = 384, 1536, 6
    rows = layers * (4 * hidden + inner + hidden)  # output rows of Q, K, V, attention output, FFN in, FFN out
    for sparsity, run in children.items():
        params = run.data.params
        pruned = layers * (4 * int(sparsity * hidden) + int(sparsity * inner) + int(sparsity * hidden))
        assert params["method"] == "toy-rows" and params["toy_rule"] == "first rows"
        assert int(params["rows_kept"]) == rows - pruned and int(params["total_rows"]) == rows
        weights = layers * (4 * hidden * hidden + 2 * hidden * inner)
        pruned_weights = layers * (4 * int(sparsity * hidden) * hidden + int(sparsity * inner) * hidden
                                   + int(sparsity * hidden) * inner)
        assert int(params["weights_kept"]) == weights - pruned_weights
        assert float(params["achieved_sparsity"]) == pytest.approx(pruned_weights / weights, abs=1e-4)
        assert run.info.status == "FINISHED"
    summary = json.loads((tmp_path / "results" / "toy" / "summary.json").read_text())
    by_sparsity = {t["sparsity"]: t for t in summary["trials"]}
    assert by_sparsity[0.5]["rows_kept"] == int(children[0.5].data.params["rows_kept"])
    parent = next(r for r in runs if r.data.tags.get("supertickets.study") == "toy")
    table = Path(client.download_artifacts(parent.info.run_id, "trials.txt", str(tmp_path))).read_text()
    assert f"{by_sparsity[0.5]['rows_kept']}/{rows} rows" in table  # the method's own words in the trial table


def test_a_method_module_that_cannot_be_loaded_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(registry.PLUGINS_ENV, str(tmp_path / "missing_method.py"))
    assert main(["--task", "rte"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SUPERTICKETS_METHODS names" in err and "missing_method.py" in err
    assert list(tmp_path.iterdir()) == []
