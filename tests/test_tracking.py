"""MLflow bookkeeping across an interrupted and resumed study."""

import time

import pytest

from mlflow.tracking import MlflowClient

from search.study.orchestrate import _child_runs, _close_interrupted
from search.records.tracking import experiment_id
from trainables.config import TrialConfig


def test_resume_closes_cut_off_runs_and_prefers_the_resumed_one(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = experiment_id(client, "rte")
    assert experiment_id(client, "rte") == experiment  # one experiment per task, created once
    parent = client.create_run(experiment, run_name="study").info.run_id
    tags = {"mlflow.parentRunId": parent, "ray.trial_id": "t1"}
    done = client.create_run(experiment, tags={**tags, "ray.trial_id": "t0"}).info.run_id
    client.set_terminated(done, status="FINISHED")
    cut_off = client.create_run(experiment, tags=tags).info.run_id  # the process died: left RUNNING

    _close_interrupted(client, experiment, parent)
    assert client.get_run(cut_off).info.status == "KILLED"
    assert client.get_run(cut_off).data.tags["stop_reason"] == "interrupted"
    assert "stop_reason" not in client.get_run(done).data.tags
    assert client.get_run(done).info.status == "FINISHED"

    time.sleep(0.01)
    resumed = client.create_run(experiment, tags=tags).info.run_id
    client.set_terminated(resumed, status="FINISHED")
    children = _child_runs(client, experiment, parent)
    assert children["t1"].info.run_id == resumed and children["t0"].info.run_id == done


def test_resume_command_names_the_study_once():
    from search.cli.study_command import resume_command

    assert resume_command(["--task", "rte", "--study-name", "old", "--resume"], "old") == \
        "python -m search.run --task rte --study-name old --resume"
    assert resume_command(["--task", "rte", "--model", "/a b"], "rte-x") == \
        "python -m search.run --task rte --model '/a b' --study-name rte-x --resume"


def test_stop_reason_tells_a_scheduler_stop_from_a_failure_and_a_divergence():
    from search.records.tracking import stop_reason, trial_status
    from trainables.report import EpochResult, TicketFacts, TrialReport

    current = EpochResult(1, 0.5, {}, 0.7, [])
    partial = TrialReport(0, 1, 2, (0, 1), current, [], [], TicketFacts({"sparsity": 0.3}))
    assert stop_reason(*trial_status(partial, errored=False, stop_reason="racing: cannot be named")) == "scheduler"
    assert stop_reason(*trial_status(partial, errored=False)) == "scheduler"  # ASHA
    assert stop_reason(*trial_status(partial, errored=True)) == "failed"
    diverged = TrialReport(0, 1, 2, (0, 1), current, [], [], TicketFacts({"sparsity": 0.3}), status_reason="diverged")
    assert stop_reason(*trial_status(diverged, errored=True)) == "diverged"
    assert stop_reason(*trial_status(None, errored=True)) == "failed"


def _report(seed, epoch, finished, planned=(0, 1), metrics=None):
    from trainables.report import EpochResult, SeedOutcome, TicketFacts, TrialReport

    metrics = metrics or {"accuracy": 0.8, "f1": 0.85, "dev_score": 0.8}
    current = EpochResult(epoch, metrics["dev_score"], metrics, 0.5, [1, 0])
    done = [SeedOutcome(s, 0.8, [1, 0], 0.75, [1, 1], [0.6, 0.5]) for s in finished]
    return TrialReport(seed, epoch, 2, planned, current, done, [1, 0], TicketFacts({"sparsity": 0.3}))


def test_metrics_are_the_primary_score_the_other_metrics_and_train_loss_never_twice():
    from search.records.tracking import _metrics

    one_seed = _metrics(_report(0, 2, [0], planned=(0,)), [], "accuracy")
    assert {(k, step) for k, _, step in one_seed} == {("dev_score", 2), ("dev_f1", 2), ("train_loss", 2),
                                                      ("paired_difference", 1)}
    mid = _metrics(_report(1, 1, [0]), [{"accuracy": 0.8, "f1": 0.85, "dev_score": 0.8}], "accuracy")
    assert {k for k, _, _ in mid} == {"dev_score_seed1", "train_loss_seed1"}  # per seed while it runs
    seeds = [{"accuracy": 0.8, "f1": 0.8, "dev_score": 0.8}, {"accuracy": 0.7, "f1": 0.9, "dev_score": 0.7}]
    end = {k: (v, step) for k, v, step in _metrics(_report(1, 2, [0, 1]), seeds, "accuracy")}
    assert set(end) == {"dev_score_seed1", "train_loss_seed1", "dev_score", "paired_difference", "dev_f1"}
    assert end["dev_f1"][0] == pytest.approx(0.85) and end["dev_f1"][1] == 2  # the mean over finished seeds, step = seeds done
    assert end["paired_difference"] == (pytest.approx(0.05), 2)


def test_params_are_rounded_and_run_names_lead_with_what_differs():
    from search.records.tracking import param_value

    def name(config):
        return TrialConfig.from_tune(config).run_name

    assert param_value(0.35185185185185186) == "0.3519" and param_value(0.35) == "0.35" and param_value(3) == "3"
    assert param_value(2e-05) == "2e-05" and param_value(float("nan")) == "nan" and param_value("x") == "x"
    assert name({"method": "structured", "control": "good", "sparsity": 0.35, "rewind": "pretrained"}) == \
        "s=0.35 structured good"
    assert name({"method": "imp", "sparsity": 0.5, "rewind": "step:200"}) == "s=0.50 imp good rewind step:200"
    assert name({"method": "structured", "sparsity": 0.0, "rewind": None}) == "dense"
    assert [TrialConfig.from_tune({"sparsity": s, "control": c}).role
            for s, c in ((0.0, "good"), (0.3, "good"), (0.3, "bad"))] == ["dense", "ticket", "control"]


def test_a_trial_config_is_decoded_once_on_the_grid_and_round_trips_through_tune():
    config = TrialConfig.from_tune({"sparsity": 0.05 * 7, "method": "imp", "imp_rate": 0.2, "imp_rate_of": "original"})
    assert config.sparsity == 0.35 and (config.rewind, config.control) == ("pretrained", "good")
    assert config.options_dict == {"imp_rate": 0.2, "imp_rate_of": "original"}
    assert TrialConfig.from_tune(config.to_tune()) == config and hash(config) == hash(TrialConfig.from_tune(config.to_tune()))
    assert config.to_tune() == {"method": "imp", "sparsity": 0.35, "rewind": "pretrained", "control": "good",
                                "imp_rate": 0.2, "imp_rate_of": "original"}


def test_the_verdict_tags_the_runs_it_names(tmp_path):
    from search.verdict.analysis import TicketResult
    from search.records.tracking import tag_verdict

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = experiment_id(client, "rte")
    runs = [client.create_run(experiment).info.run_id for _ in range(3)]
    best, sparsest = (TicketResult(f"t{i}", runs[i], TrialConfig(0.1 * (i + 1)), "FINISHED") for i in range(2))
    tag_verdict(client, {"best_super": best, "sparsest_super": best, "winning": sparsest})
    assert client.get_run(runs[0]).data.tags["verdict"] == "super_ticket"
    assert client.get_run(runs[1]).data.tags["verdict"] == "winning_ticket"
    assert "verdict" not in client.get_run(runs[2]).data.tags
    tag_verdict(client, {"winning": best, "best_super": best})  # a super ticket that is also winning: super
    assert client.get_run(runs[0]).data.tags["verdict"] == "super_ticket"
    assert client.get_experiment(experiment).tags["mlflow.experimentKind"] == "custom_model_development"


def test_the_display_writes_plain_lines_a_csv_and_an_estimate(tmp_path):
    import io
    from types import SimpleNamespace

    from search.study.progress import Plan, StudyDisplay, bar, estimate

    out = io.StringIO()
    display = StudyDisplay(plan=Plan(seeds=3, epochs=2, num_trials=8, slots=1), csv_path=str(tmp_path / "p.csv"),
                           out=out)
    trial = SimpleNamespace(trial_id="abc", config={"method": "structured", "sparsity": 0.35}, last_result=None)
    display.on_trial_start(0, [], trial)
    report = _report(0, 2, [0], planned=(0, 1, 2))
    trial.last_result = report.to_tune()
    display.on_trial_result(0, [], trial, report.to_tune())
    display.on_trial_complete(0, [], trial)
    lines = out.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "trial abc s=0.35 structured good: started",
        "trial abc s=0.35 structured good: seed 0 epoch 2/2 dev 0.8000, train loss 0.5000",
        "trial abc s=0.35 structured good: STOPPED (dev 0.8000 over 1 seed(s), +5.0 points vs dense)"]
    assert "\x1b" not in out.getvalue()
    assert (tmp_path / "p.csv").read_text().splitlines()[1].split(",")[1:6] == ["abc", "s=0.35 structured good", "0",
                                                                                "2", "2"]
    assert bar(3, 12, 12) == "[###---------]"
    # 60 s epochs: dense 3 seeds x 2 epochs one at a time = 6 min; a trial 6 min; 7 more trials one at a time = 42 min
    assert estimate(Plan(3, 2, 8, 1), 60).startswith("estimate: dense fine-tunes 6 min 0 s; a ticket trial up to "
                                                     "6 min 0 s (3 seed(s) x 2 epoch(s)); at most 7 ticket trials, "
                                                     "1 at once: up to 48 min 0 s in all")
