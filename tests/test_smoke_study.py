"""A smoke study through Ray Tune, Optuna and MLflow, on the shared model and real RTE data."""

import io
import json
import shutil
import socket
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from search.cli.study_command import main
from search.records.tracking import SHARED_VIEW_PREFIX, git_commit


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
    terminal = io.StringIO()
    with redirect_stdout(terminal):  # what a user sees with `> log`: plain lines
        assert main([*common, "--num-trials", "3", "--study-name", "first", "--search", "grid",
                     "--keep-weights", "all"]) == 0
    (root / "first.log").write_text(terminal.getvalue())
    dense_dirs = sorted((root / "results" / "cache" / "dense").glob("*/record.json"))
    stamps = [p.stat().st_mtime_ns for p in dense_dirs]
    assert main([*common, "--num-trials", "4", "--study-name", "second", "--method", "magnitude", "--control",
                 "good,random,bad", "--sparsity-min", "0.5", "--sparsity-max", "0.5", "--search", "grid"]) == 0
    assert main([*common, "--num-trials", "3", "--study-name", "guarded"]) == 0
    # the dense model diverges: no verdict, a failure the settings made (exit 1), not the data
    assert main([*common, "--num-trials", "3", "--study-name", "diverged", "--learning-rate", "1e6"]) == 1
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
        for key in ("dev_score", "train_loss"):  # one seed: per epoch
            assert sorted(m.step for m in client.get_metric_history(child.info.run_id, key)) == [1, 2]
        predictions = json.loads(open(client.download_artifacts(child.info.run_id, "predictions.json")).read())
        assert len(predictions["labels"]) == 64 and len(predictions["seeds"][0]["predictions"]) == 64
        mask = json.loads(open(client.download_artifacts(child.info.run_id, "mask/mask-seed-0.json")).read())
        assert sum(map(sum, mask["head"])) == int(params["heads_kept"])
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
        assert trial["dev_score"] == pytest.approx(child.data.metrics["dev_score"], abs=5e-5)  # MLflow's: 4 decimals
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
        assert float(child.data.params["achieved_sparsity"]) == pytest.approx(0.5, abs=1e-4)  # a param, rounded
        files = [a.path for a in client.list_artifacts(child.info.run_id, "mask")]
        assert files == ["mask/mask-seed-0.safetensors"]
    summary = json.loads((root / "results" / "second" / "summary.json").read_text())
    assert {(t["method"], t["control"]) for t in summary["trials"] if t["sparsity"] == 0.5} == \
        {("magnitude", "good"), ("magnitude", "random"), ("magnitude", "bad")}


def test_the_dense_run_keeps_its_weights_and_other_trials_weights_are_deleted(studies):
    root, client, _, _ = studies
    _, children = _runs(client, "second")  # default --keep-weights named; its verdict names no ticket
    with_weights = [c for c in children if c.data.tags.get("weights") == "logged"]
    assert [c.data.tags["role"] for c in with_weights] == ["dense"]
    assert [a.path for a in client.list_artifacts(with_weights[0].info.run_id, "weights")] == \
        ["weights/seed-0.safetensors"]
    assert not any((root / "results" / "second" / "weights").glob("*/*"))  # the good 0.5 ticket's was deleted
    _, children = _runs(client, "first")  # --keep-weights all
    assert all(c.data.tags.get("weights") == "logged" for c in children)


def test_a_studys_ticket_exports_through_its_run_id_and_loads_with_the_tickets_logits(studies, tmp_path):
    from search.tools.export import main as export

    root, client, _, _ = studies
    _, children = _runs(client, "first")
    ticket = max(children, key=lambda c: float(c.data.params["sparsity"]))
    heads_kept = int(ticket.data.params["heads_kept"])
    out = tmp_path / "ticket"
    assert export(["--run-id", ticket.info.run_id, "--out", str(out), "--mlflow-uri", client.tracking_uri]) == 0
    facts = json.loads((out / "ticket.json").read_text())
    assert facts["smaller"] and facts["remote_code"] and facts["checked_examples"] == 64 and facts["max_logit_difference"] < 1e-4
    config = json.loads((out / "config.json").read_text())
    assert sum(config["ticket"]["heads_per_layer"]) == heads_kept
    assert config["id2label"] == {"0": "entailment", "1": "not_entailment"}
    assert facts["onnx_bytes"] > 0 and facts["onnx_max_logit_difference"] < 1e-4  # ONNX Runtime: the same logits
    card = (out / "README.md").read_text()
    assert f"{heads_kept}/72 heads" in card and "supertickets.command" not in card and "python -m search.run" in card
    assert facts["parameters"] < facts["dense_parameters"]
    assert facts["logged_model_uri"].startswith("models:/")
    assert export(["--run-id", ticket.info.run_id, "--out", str(out), "--mlflow-uri", client.tracking_uri]) == 2
    assert export(["--study", "first", "--ticket", "super", "--out", str(tmp_path / "none"), "--mlflow-uri",
                   client.tracking_uri]) == 2  # the dense model learned nothing: no super ticket named
    assert not (tmp_path / "none").exists()


def test_compare_puts_both_studies_in_one_table_with_one_dense_row(studies, tmp_path):
    from search.tools.compare import main as compare

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


def test_child_runs_are_named_by_what_differs_and_tagged_with_role_source_and_command(studies):
    _, client, _, _ = studies
    parent, children = _runs(client, "second")
    roles = {c.info.run_name: c.data.tags["role"] for c in children}
    assert roles == {"dense": "dense", "s=0.50 magnitude good": "ticket", "s=0.50 magnitude random": "control",
                     "s=0.50 magnitude bad": "control"}
    commit = git_commit()
    for run in [parent, *children]:
        tags = run.data.tags
        assert tags["mlflow.source.name"] == "python -m search.run" and tags["mlflow.user"]
        assert tags["supertickets.command"].startswith("python -m search.run --task rte")
        assert "--study-name second" in tags["supertickets.command"]
        assert tags.get("mlflow.source.git.commit") == commit  # None outside a git checkout
    assert parent.data.tags["role"] == "study"


def test_child_runs_log_only_informative_metrics_and_rounded_params(studies):
    _, client, _, _ = studies
    _, children = _runs(client, "second")
    interval = {"difference", "difference_low", "difference_high"}  # the verdict's, in points
    versus_good = {"versus_good", "versus_good_low", "versus_good_high"}  # a control's, when the guard passed
    for child in children:  # RTE (accuracy only), one seed
        role = child.data.tags["role"]
        expected = {"dev_score", "train_loss"} | ({"paired_difference", *interval} if role != "dense" else set())
        extra = versus_good if role == "control" else set()
        assert expected <= set(child.data.metrics) <= expected | extra, child.info.run_name
        for value in child.data.params.values():
            decimals = value.split(".")[1] if value.count(".") == 1 and value.replace(".", "").isdigit() else ""
            assert len(decimals) <= 4, value  # no float noise such as 0.35185185185185186


def test_the_parent_description_holds_the_verdict_table_and_links_and_a_shared_view_is_stored(studies):
    root, client, _, _ = studies
    parent, children = _runs(client, "second")
    summary = json.loads((root / "results" / "second" / "summary.json").read_text())
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("**Verdict.** " + summary["verdict"]["lines"][0])
    experiment = parent.info.experiment_id
    dense = next(c for c in children if c.data.tags["role"] == "dense")
    assert f"(#/experiments/{experiment}/runs/{dense.info.run_id}?workflowType=machine_learning)" in note
    assert "| trial | method | control |" in note
    assert all(f"| {c.data.tags['ray.trial_id']} |" in note for c in children)
    assert "Command: `python -m search.run --task rte" in note
    view = json.loads(client.get_experiment(experiment).tags[SHARED_VIEW_PREFIX + "second"])
    assert view["searchFilter"] == f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    assert "metrics.`dev_score`" in view["selectedColumns"] and "params.`control`" in view["selectedColumns"]
    assert view["columnOrder"][:2] == ["tags.`verdict`", "tags.`role`"]
    assert client.get_experiment(experiment).tags["mlflow.experimentKind"] == "custom_model_development"


def test_the_optuna_storage_holds_one_trial_per_tune_trial_with_its_state(studies):
    root, client, _, _ = studies
    storage = f"sqlite:///{root}/optuna.db"  # beside mlflow.db, the default
    assert set(optuna.study.get_all_study_names(storage)) == {"first", "second", "guarded", "diverged"}
    for name, states in (("first", ["COMPLETE"] * 3), ("guarded", ["COMPLETE"]), ("diverged", ["FAIL"])):
        study = optuna.load_study(study_name=name, storage=storage)
        assert [t.state.name for t in study.trials] == states, name
        _, children = _runs(client, name)
        assert {t.user_attrs["ray_trial_id"] for t in study.trials} == {c.data.tags["ray.trial_id"] for c in children}
        assert study.metric_names == ["paired_difference"]
        assert study.user_attrs["verdict"] == json.loads(
            (root / "results" / name / "summary.json").read_text())["verdict"]["lines"][0]
    first = optuna.load_study(study_name="first", storage=storage)
    for trial in first.trials:  # the dev score after each epoch, as the dashboard's intermediate values
        assert sorted(trial.intermediate_values) == [1, 2]
        assert trial.params["sparsity"] in (0.0, 0.05, 0.1)


def test_the_terminal_shows_plain_event_lines_without_tune_tables_or_masks(studies):
    root, _, _, _ = studies
    log = (root / "first.log").read_text()
    lines = log.splitlines()
    assert "\x1b[" not in log  # no control codes when the output is not a terminal
    assert not any(word in log for word in ("Trial status", "TensorBoard", '"head"', "Configuration for experiment"))
    assert lines[0].endswith("study first: task rte (dev score = accuracy), method structured (good tickets), "
                             "rewind pretrained, budget smoke")
    assert sum("FINISHED (dev" in line for line in lines) == 3  # one line per trial's end
    assert sum(" epoch 2/2 dev " in line for line in lines) == 3
    assert any(line.startswith("MLflow:  mlflow ui --backend-store-uri") for line in lines)
    assert any("viewStateShareKey=first" in line for line in lines)
    assert len(lines) < 40, log
    rows = (root / "results" / "first" / "progress.csv").read_text().splitlines()
    assert rows[0].startswith("time_s,trial,name,seed,epoch") and len(rows) == 1 + 3 * 2  # a row per report
    for trial_csv in (root / "results" / "first").glob("tune_trainable_*/progress.csv"):
        assert "supertickets_report" not in trial_csv.read_text().splitlines()[0]  # Tune's per-trial CSV: scalars


def test_the_structured_study_logs_a_heatmap_of_kept_units(studies):
    _, client, _, _ = studies
    parent, _ = _runs(client, "first")
    assert "kept_units.png" in {a.path for a in client.list_artifacts(parent.info.run_id)}


def test_the_console_script_runs_a_study_or_compare(tmp_path):
    script = Path(sys.executable).with_name("supertickets")
    assert script.exists(), "pip install -e . makes the supertickets console script"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "usage: supertickets" in out.stdout and "--task TASK" in out.stdout
    out = subprocess.run([str(script), "compare", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "usage: supertickets compare" in out.stdout
    out = subprocess.run([str(script), "--task", "nope"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (Debian's chromium package) on this machine")
def test_the_mlflow_ui_shows_the_study_view_and_the_parent_run_in_a_browser(studies, tmp_path):
    """``mlflow ui`` on the smoke studies' store, read by headless Chromium as a user would open it: the study's
    runs view (the URL the study prints) lists the trials by name with their dev score, and the parent run's page
    shows the verdict. Screenshots go to ``tmp_path``."""
    root, client, _, _ = studies
    parent, children = _runs(client, "second")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
                               "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        ui = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(1)
        time.sleep(3)
        from search.records.tracking import run_url, study_view_url

        experiment = parent.info.experiment_id
        pages = {"runs": study_view_url(ui, experiment, "second"), "parent": run_url(ui, experiment,
                                                                                      parent.info.run_id)}
        dom = {}
        for name, url in pages.items():
            flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={tmp_path / name}", "--window-size=1600,1000", "--virtual-time-budget=30000"]
            subprocess.run([CHROMIUM, *flags, f"--screenshot={tmp_path / name}.png", url], capture_output=True,
                           timeout=180)
            dom[name] = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True,
                                       timeout=180).stdout
            assert (tmp_path / f"{name}.png").stat().st_size > 20_000
        assert all(c.info.run_name in dom["runs"] for c in children)
        assert "dev_score" in dom["runs"] and "control" in dom["runs"]
        assert "The dense model did not learn this task" in dom["parent"]
    finally:
        server.terminate()
        server.wait(timeout=30)
