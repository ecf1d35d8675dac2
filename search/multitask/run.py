"""Run a Tickets-Share study: find each task's ticket in MLflow, train every (arm, seed) as a Ray Tune trial, then
analyse, report and record it (``search.multitask.report``, MLflow, files beside it)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import ray
from ray import tune

from mlflow.tracking import MlflowClient

from search.errors import UsageError
from search.multitask import report
from search.multitask.report import ArmResult
from search.multitask.settings import STATE_FILE, MultiTaskSettings
from search.multitask.shared_tickets import ROLE_WORDS, SingleTaskResult, find_study, read_ticket
from search.records.tracking import log_params, open_experiment, source_tags
from search.study.local_ray import init_ray
from search.study.progress import MultiTaskLines, ScalarCSVLogger
from search.verdict.report import markdown_table
from trainables.model import REMOTE_CODE_ENV
from trainables.multitask import MultiTaskContext, TaskSampling, TaskTicket, tune_multitask


def find_tickets(settings: MultiTaskSettings, client) -> tuple[dict, dict]:
    """Each task's ticket (masks downloaded into the study's folder) and single-task result, from MLflow.

    Raises:
        UsageError: a task has no finished study (the message names the study command to run first).
    """
    parents = {t: find_study(client, t, settings.model, settings.studies.get(t), settings.mlflow_uri)
               for t in settings.tasks}  # every task checked before anything is downloaded
    tickets, singles = {}, {}
    for task, parent in parents.items():
        tickets[task], singles[task] = read_ticket(client, parent, settings.folder / "masks", settings.share)
    return tickets, singles


def _results(grid, settings: MultiTaskSettings):
    """Tune's results as ``ArmResult`` per arm and the dev labels per task."""
    arms = {arm: ArmResult(arm) for arm in settings.arms}
    labels: dict = {}
    for result in grid:
        if result.config is None:
            continue
        arm, seed = arms[result.config["arm"]], int(result.config["seed"])
        if result.error is not None or "predictions" not in result.metrics:
            arm.failed[seed] = str(result.error).splitlines()[0][:300] if result.error else "did not finish"
            continue
        history = result.metrics_dataframe
        arm.curves[seed] = [] if history is None else [
            {k: v for k, v in row.items() if k in ("epoch", "dev_score") or k.endswith(("/dev_score", "/train_loss", "/steps"))}
            for row in history.to_dict("records")]
        for task in settings.tasks:
            arm.predictions.setdefault(task, {})[seed] = result.metrics["predictions"][task]
            arm.scores.setdefault(task, {})[seed] = float(result.metrics[f"{task}/dev_score"])
        labels = result.metrics["labels"]
    return arms, labels


@dataclass(frozen=True)
class MultiTaskOutcome:
    """What a multi-task run printed, and the (arm, seed) trials that failed (``"<arm> seed <s>: <why>"``)."""

    text: str
    failed: tuple[str, ...]


def run(settings: MultiTaskSettings, typed: str) -> MultiTaskOutcome:
    """Run (or resume) the multi-task study, report it.

    Raises:
        UsageError: a task has no finished study.
        RuntimeError: no seed finished in both arms (the trials failed).
    """
    state_file = settings.folder / STATE_FILE
    if not settings.resume:  # every task's study is found before anything is created
        tickets, singles = find_tickets(settings, MlflowClient(settings.mlflow_uri))
    client, experiment = open_experiment(settings.mlflow_uri, "multitask")
    if settings.resume:
        state = json.loads(state_file.read_text())
        tickets = {t: TaskTicket(**v) for t, v in state["tickets"].items()}
        if tuple(tickets) != settings.tasks:
            raise UsageError(f"multi-task study {settings.name} ran --tasks {','.join(tickets)}: resume it with those")
        singles = {t: SingleTaskResult.from_dict(v) for t, v in state["singles"].items()}
        parent = state["parent_run_id"]
        client.update_run(parent, status="RUNNING")
        print(f"resuming multi-task study {settings.name} (parent run {parent})")
    else:
        parent = client.create_run(experiment, run_name=settings.name,
                                   tags={"supertickets.multitask": settings.name, "role": "multitask",
                                         "mlflow.note.content": f"Tickets-Share study {settings.name}: running.",
                                         **source_tags(typed)}).info.run_id
        log_params(client, parent, {**settings.params(), **{f"ticket.{t}": _describe(k) for t, k in tickets.items()}})
        settings.folder.mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps({"parent_run_id": parent, "params": {k: str(v) for k, v in settings.params().items()},
                                          "tickets": {t: asdict(k) for t, k in tickets.items()},
                                          "singles": {t: asdict(s) for t, s in singles.items()}}, indent=2))
    for task in settings.tasks:
        print(f"{task}: {_describe(tickets[task])} from study {tickets[task].study}")
    context = MultiTaskContext(settings.model, tuple(tickets[t] for t in settings.tasks), settings.data,
                               settings.finetune, TaskSampling(settings.temperature),
                               threads=max(1, int(settings.cpus_per_trial)), data_workers=settings.data_workers)
    status = "FAILED"
    started = init_ray({k: os.environ[k] for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME",
                                                   REMOTE_CODE_ENV) if k in os.environ})
    try:
        gpus = settings.gpus_per_trial
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        trainable = tune.with_resources(tune.with_parameters(tune_multitask, context=context),
                                        {"cpu": settings.cpus_per_trial, "gpu": gpus})
        path = str(settings.folder / "tune")
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        if settings.resume and tune.Tuner.can_restore(path):
            tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=True)
        else:
            space = {"arm": tune.grid_search(list(settings.arms)), "seed": tune.grid_search(list(settings.seeds))}
            tuner = tune.Tuner(trainable, param_space=space,
                               tune_config=tune.TuneConfig(metric="dev_score", mode="max"),
                               run_config=tune.RunConfig(name="tune", storage_path=str(settings.folder), verbose=0,
                                                         callbacks=[MultiTaskLines(), ScalarCSVLogger(("predictions", "labels"))],
                                                         failure_config=tune.FailureConfig(max_failures=1)))
        grid = tuner.fit()
        if any(r.config is None for r in grid) or any(
                r.error is None and "predictions" not in r.metrics for r in grid):
            raise KeyboardInterrupt  # Tune returned early on Ctrl-C: its state is saved
        arms, labels = _results(grid, settings)
        text = _report(settings, arms, labels, tickets, singles, client, parent, experiment)
        status = "FINISHED"
        return MultiTaskOutcome(text, tuple(f"{arm.arm} seed {seed}: {why}" for arm in arms.values()
                                            for seed, why in sorted(arm.failed.items())))
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        client.set_terminated(parent, status=status)
        if started:
            ray.shutdown()


def _describe(ticket) -> str:
    return f"dense (its study named no {ROLE_WORDS[ticket.role]})" if ticket.dense else \
        f"{ticket.method} {ROLE_WORDS[ticket.role]} s={ticket.sparsity:.2f} (run {ticket.run_id[:8]})"


def _report(settings: MultiTaskSettings, arms: dict, labels: dict, tickets: dict, singles: dict, client,
            parent: str, experiment: str) -> str:
    """Analyse, then print and record: child run per arm, table/plot/summary on the parent and in the folder."""
    try:
        result = report.analyse(arms, labels)
    except ValueError as err:
        raise RuntimeError(f"{err}: see the trials' errors in {settings.folder / 'tune'}") from None
    frame = report.table(result, singles, tickets)
    text = report.lines(result)
    basis = (f"{len(result.seeds)} seeds; dev examples: " + ", ".join(f"{t} {n}" for t, n in result.examples.items())
             + f"; budget {settings.budget}, {settings.finetune.epochs} epoch(s), sampling "
             + TaskSampling(settings.temperature).describe())
    studies = "; ".join(f"{t}: {s.study} (verdict {s.verdict}, {len(s.dense_scores)} seeds, budget "
                        f"{s.settings.get('budget', '?')})" for t, s in singles.items())
    table_text = (frame.to_string(index=False) + "\nscores in points (100 x primary dev metric), [95% CI over seeds "
                  f"and dev examples]; {basis}\nsingle-task columns: each task's study ({studies})")
    figure = report.bar_plot(result, singles, f"Tickets-Share vs multi-task dense, {os.path.basename(settings.model)} "
                                              f"({len(result.seeds)} seeds)")
    data = report.summary(result, singles, tickets, arms, {k: str(v) for k, v in settings.params().items()}, text)
    for arm, arm_result in arms.items():
        child = client.create_run(experiment, run_name=f"{arm} ({settings.name})",
                                  tags={"mlflow.parentRunId": parent, "role": arm}).info.run_id
        log_params(client, child, {"arm": arm, "seeds": ",".join(map(str, sorted(arm_result.scores.get(settings.tasks[0], {})))),
                                   **{f"ticket.{t}": _describe(k) if arm == "tickets-share" else "dense"
                                      for t, k in tickets.items()}})
        scores = result.scores[arm]
        for key, value in scores.items():
            client.log_metric(child, f"{key}_dev_score", value.mean)
            client.log_metric(child, f"{key}_dev_score_low", value.low)
            client.log_metric(child, f"{key}_dev_score_high", value.high)
        for seed, rows in sorted(arm_result.curves.items()):
            for row in rows:
                for key, value in row.items():
                    if key.endswith(("/dev_score", "/train_loss")) and value == value:
                        client.log_metric(child, f"{key.replace('/', '_')}_seed{seed}", float(value),
                                          step=int(row["epoch"]))
        client.set_terminated(child, status="FINISHED" if not arm_result.failed else "FAILED")
    if result.difference:
        client.log_metric(parent, "tickets_share_minus_dense_average", result.difference["average"].mean)
        client.set_tag(parent, "difference.average", result.difference["average"].describe())
    client.log_figure(parent, figure, "tickets_share.png")
    client.log_dict(parent, data, "summary.json")
    client.log_text(parent, table_text + "\n\n" + "\n".join(text) + "\n", "table.txt")
    client.set_tag(parent, "mlflow.note.content", "\n\n".join(text) + "\n\n" + markdown_table(frame))
    figure.savefig(settings.folder / "tickets_share.png", dpi=120)
    (settings.folder / "summary.json").write_text(json.dumps(data, indent=2))
    (settings.folder / "table.txt").write_text(table_text + "\n\n" + "\n".join(text) + "\n")
    return table_text + "\n\n" + "\n".join(text) + f"\n\nFiles: {settings.folder}; MLflow: {settings.mlflow_uri} " \
        f"(experiment supertickets-multitask, parent run {parent})"


