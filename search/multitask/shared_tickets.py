"""Each task's ticket and single-task result for Tickets-Share, read from its study's MLflow runs.

A task's study is the one ``--study TASK=NAME`` names, else the latest FINISHED study of that task with the same
model in the tracking store. Its verdict (the parent run's ``best_super.run_id`` tag) names the super ticket; the
masks are that child run's ``mask/mask-seed-<k>.*`` artefacts, downloaded, never recomputed. A study whose verdict
names no super ticket gives a dense task (Liang et al. share only super tickets). ``share="winning"`` shares the
verdict's sparsest winning ticket instead and ``share="best"`` the candidate with the largest mean difference from
the dense model whether or not its interval supports it (for a budget too small to name super tickets; the report
says which). The single-task figures come from the parent's ``summary.json``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.tracking import MlflowClient

from search.errors import UsageError
from search.multitask.settings import SHARE_CHOICES
from trainables.multitask import TaskTicket


@dataclass(frozen=True)
class SingleTaskResult:
    """A task's own study, as the multi-task report quotes it.

    Attributes:
        task: GLUE task name.
        study: the study's name.
        parent_run_id: its MLflow parent run.
        verdict: the verdict's kind (``super``, ``winning``, ``none``, ...).
        dense_scores: seed -> the dense model's final primary dev score.
        ticket_scores: seed -> the super ticket's (empty when none was named).
        ticket_sparsity: the super ticket's sparsity (fraction), ``None`` without one.
        ticket_difference: the verdict's paired difference of the super ticket, in words (``+1.2 points [...]``).
        settings: the study's settings as stored in its summary (budget, epochs, subsets).
    """

    task: str
    study: str
    parent_run_id: str
    verdict: str
    dense_scores: dict = field(default_factory=dict)
    ticket_scores: dict = field(default_factory=dict)
    ticket_sparsity: float | None = None
    ticket_difference: str = ""
    settings: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> "SingleTaskResult":
        """Inverse of ``dataclasses.asdict`` after a JSON round trip (seed keys back to ``int``)."""
        scores = {key: {int(seed): value for seed, value in data[key].items()}
                  for key in ("dense_scores", "ticket_scores")}
        return cls(**{**data, **scores})


#: ``--share`` choices: which ticket of a study's verdict a task shares -> its key in the study's ``summary.json``.
SHARE_ROLES = dict(zip(SHARE_CHOICES, ("best_super", "winning", "best")))

#: How a shared ticket is named in the report, by ``--share``.
ROLE_WORDS = dict(zip(SHARE_CHOICES, ("super ticket", "winning ticket", "best ticket")))


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def find_study(client: MlflowClient, task: str, model: str, name: str | None, uri: str):
    """The parent run of ``task``'s study: the one called ``name``, else the newest FINISHED study of ``task`` with
    ``model``.

    Raises:
        UsageError: no such study (the message names the study command to run first), or the named one is of
            another task or not finished.
    """
    experiments = [e.experiment_id for e in client.search_experiments()]
    run_first = f"run `python -m search.run --task {task} --model {model}` first"
    if name:
        runs = client.search_runs(experiments, f"tags.`supertickets.study` = '{_quote(name)}' and tags.role = 'study'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
        if not runs:
            raise UsageError(f"no study called {name!r} in {uri}: check --study {task}=NAME, or {run_first}")
        run = runs[0]
        if run.data.params.get("task") != task:
            raise UsageError(f"study {name} is of task {run.data.params.get('task')}, not {task}: fix --study "
                             f"{task}=NAME")
        if run.info.status != "FINISHED":
            raise UsageError(f"study {name} is {run.info.status}, not finished: resume it (python -m search.run "
                             f"--study-name {name} --resume ...), or name another with --study {task}=NAME")
        return run
    runs = client.search_runs(experiments, f"tags.role = 'study' and params.task = '{task}' and params.model = "
                              f"'{_quote(model)}' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise UsageError(f"no finished study of task {task} with model {model} in {uri}: {run_first} (or name one "
                         f"with --study {task}=NAME)")
    return runs[0]


def _summary(client: MlflowClient, parent) -> dict:
    with tempfile.TemporaryDirectory(prefix="supertickets-summary-") as scratch:
        try:
            path = client.download_artifacts(parent.info.run_id, "summary.json", scratch)
        except Exception:  # noqa: BLE001  (MLflow raises several kinds for a missing artefact)
            raise UsageError(f"study {parent.info.run_name} has no summary.json in MLflow: it did not finish its "
                             "report; resume it with --resume") from None
        return json.loads(Path(path).read_text())


def _scores(entry: dict | None) -> dict:
    return {} if not entry else {int(seed): float(score) for seed, score in entry.get("seed_scores", {}).items()}


def read_ticket(client: MlflowClient, parent, masks_dir: Path, share: str = "super") -> tuple[TaskTicket, SingleTaskResult]:
    """The task's shared ticket (the masks of the ticket ``share`` picks, downloaded into ``masks_dir/<task>``, or
    dense when the verdict has none in that role) and the study's single-task result (with that ticket's scores).

    Args:
        share: a ``SHARE_ROLES`` key: ``super`` (Liang et al.), ``winning`` or ``best``.

    Raises:
        UsageError: the study has no summary, or the shared ticket's run has no mask files.
    """
    task, study = parent.data.params["task"], parent.data.tags.get("supertickets.study", parent.info.run_name)
    summary = _summary(client, parent)
    best = summary.get(SHARE_ROLES[share])
    result = SingleTaskResult(task, study, parent.info.run_id, summary["verdict"]["kind"],
                              _scores(summary.get("dense")), _scores(best),
                              None if not best else float(best["sparsity"]),
                              "" if not best or not best.get("difference") else _points(best["difference"]),
                              summary.get("settings", {}))
    run_id = (parent.data.tags.get("best_super.run_id") if share == "super" else None) or (best or {}).get("run_id") or ""
    if not best or not run_id:
        return TaskTicket(task, study, role=share), result
    run = client.get_run(run_id)
    folder = masks_dir / task
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for artifact in client.list_artifacts(run_id, "mask"):
        name = Path(artifact.path).name  # mask-seed-<k>.<suffix>
        if name.startswith("mask-seed-"):
            files[name.split("-")[2].split(".")[0]] = client.download_artifacts(run_id, artifact.path, str(folder))
    if not files:
        raise UsageError(f"study {study}'s {ROLE_WORDS[share]} (run {run_id}) has no mask files in MLflow: run the study "
                         "again with this version, or name another with --study")
    return TaskTicket(task, study, run.data.params["method"], float(run.data.params["sparsity"]), files,
                      run_id, share), result


def _points(difference: dict) -> str:
    return (f"{100 * difference['mean']:+.1f} points [{100 * difference['low']:+.1f}, "
            f"{100 * difference['high']:+.1f}]")
