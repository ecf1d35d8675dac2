"""MLflow bookkeeping across an interrupted and resumed study."""

import time

from mlflow.tracking import MlflowClient

from search.study import _child_runs, _close_interrupted
from search.tracking import experiment_id


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
    from search.run import resume_command

    assert resume_command(["--task", "rte", "--study-name", "old", "--resume"], "old") == \
        "python -m search.run --task rte --study-name old --resume"
    assert resume_command(["--task", "rte", "--model", "/a b"], "rte-x") == \
        "python -m search.run --task rte --model '/a b' --study-name rte-x --resume"


def test_stop_reason_tells_a_scheduler_stop_from_a_failure_and_a_divergence():
    from search.tracking import stop_reason, trial_status
    from trainables.report import EpochResult, TicketFacts, TrialReport

    current = EpochResult(1, 0.5, {}, 0.7, [])
    partial = TrialReport(0, 1, 2, (0, 1), current, [], [], TicketFacts({"sparsity": 0.3}))
    assert stop_reason(*trial_status(partial, errored=False, stop_reason="racing: cannot be named")) == "scheduler"
    assert stop_reason(*trial_status(partial, errored=False)) == "scheduler"  # ASHA
    assert stop_reason(*trial_status(partial, errored=True)) == "failed"
    diverged = TrialReport(0, 1, 2, (0, 1), current, [], [], TicketFacts({"sparsity": 0.3}), status_reason="diverged")
    assert stop_reason(*trial_status(diverged, errored=True)) == "diverged"
    assert stop_reason(*trial_status(None, errored=True)) == "failed"
