"""``python -m search.multitask``: Tickets-Share, multi-task fine-tuning through each task's super ticket (Liang et
al. 2021, section 5), against the same multi-task model without masks and against the tasks' single-task studies.

    python -m search.multitask --tasks rte,mrpc,stsb                   # the tasks' latest finished studies
    python -m search.multitask --tasks rte,mrpc --study rte=rte-structured-0412 --budget smoke

Every (arm, seed) is a Ray Tune trial; the study is resumable (``--resume --name NAME``), its runs go to the MLflow
experiment ``supertickets-multitask`` (a parent run, a child per arm) and its table, bar plot and summary beside
it under ``<storage>/multitask/<name>``. Bad input: one line, exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from search.errors import OneLineParser, UsageError

DESCRIPTION = """\
Tickets-Share (Liang et al. 2021, section 5): one shared encoder, one head per task, trained on a mix of the tasks'
training sets; every batch runs through its own task's super ticket (masks read from the task's study in MLflow),
so a shared weight is updated only by the tasks whose ticket keeps it. A task whose study named no super ticket
trains densely (--share winning|best shares another ticket of the verdict instead). Baselines in the same command, same steps, data and seeds: the multi-task model without masks
(MT-DNN), and each task's single-task result from its study. Result: per task and the average of the primary dev
scores with 95% intervals over seeds and dev examples; a table, a bar plot, MLflow runs.

Task sampling: proportional to training-set size (MT-DNN's: every batch of every task once per epoch, mixed), or
temperature-scaled with --sampling-temperature T > 1 (p_t proportional to n_t^(1/T)).
"""

EPILOG = """\
examples:
  python -m search.multitask --tasks rte,mrpc,stsb                      # the paper's settings (meant for GPUs)
  python -m search.multitask --tasks rte,sst2 --budget smoke            # on 2 CPU cores in minutes
  python -m search.multitask --tasks rte,mrpc --study mrpc=mrpc-magnitude-0412 --seeds 5
  python -m search.multitask --name mt-0412 --resume --tasks rte,mrpc   # continue an interrupted one
"""

#: Budgets: ``paper`` is MT-DNN's fine-tuning as Liang et al. use it (Adamax, lr 5e-5, batch 32, 5 epochs over the
#: mixed data, 5 seeds, max length 128 as in the studies); ``smoke`` runs on 2 CPU cores in minutes.
BUDGETS = {
    "paper": dict(epochs=5, seeds=5, learning_rate=5e-5, batch_size=32, optimizer="adamax", max_seq_length=128,
                  max_train_examples=None, max_dev_examples=None),
    "smoke": dict(epochs=2, seeds=3, learning_rate=1e-4, batch_size=16, optimizer="adamw", max_seq_length=64,
                  max_train_examples=500, max_dev_examples=None),
}


def parser(prog: str = "python -m search.multitask") -> argparse.ArgumentParser:
    """The command line: every flag with its default and units."""
    p = OneLineParser(prog=prog, description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", required=True, help="comma-separated GLUE tasks, at least 2 (rte,mrpc,stsb,cola,sst2)")
    p.add_argument("--study", action="append", default=[], metavar="TASK=NAME",
                   help="the study whose super ticket TASK shares (repeatable; default: the latest finished study of "
                        "the task with the same --model in the MLflow store)")
    p.add_argument("--model", help="pre-trained checkpoint (default as a study: $SUPERTICKETS_MODEL, "
                                   "supertickets.toml, bert-base-uncased)")
    p.add_argument("--glue-dir", help="classic GLUE directory (default as a study: $GLUE_DIR, supertickets.toml, hub)")
    p.add_argument("--budget", choices=sorted(BUDGETS), default="paper",
                   help="paper (default): Adamax lr 5e-5, batch 32, 5 epochs, 5 seeds, full data; smoke: AdamW lr "
                        "1e-4, batch 16, 2 epochs, 3 seeds, 500 training examples per task, max length 64")
    p.add_argument("--seeds", type=int, help="seeds per arm, 0..N-1 (default: the budget's); seed s uses the mask "
                                             "of the study's seed s (else its lowest seed's)")
    p.add_argument("--epochs", type=int, help="passes over the mixed training data (default: the budget's)")
    p.add_argument("--learning-rate", type=float, help="peak learning rate (default: the budget's)")
    p.add_argument("--batch-size", type=int, help="examples per step, one task per batch (default: the budget's)")
    p.add_argument("--max-seq-length", type=int, help="tokens per example (default: the budget's)")
    p.add_argument("--max-train-examples", type=int, help="training examples per task, a seeded subset "
                                                          "(default: the budget's; paper: all)")
    p.add_argument("--max-dev-examples", type=int, help="first dev examples per task (default: all)")
    p.add_argument("--share", choices=("super", "winning", "best"), default="super",
                   help="which ticket of each study's verdict a task shares: super (default, as Liang et al.: a task "
                        "whose verdict names none trains densely), winning (the sparsest winning ticket), or best (the "
                        "ticket with the largest mean difference from the dense model even where its interval does "
                        "not support it: for budgets too small to name super tickets; the report says so)")
    p.add_argument("--sampling-temperature", type=float, default=1.0,
                   help="1 (default): tasks proportional to training-set size; T > 1: p_t ~ n_t^(1/T)")
    p.add_argument("--arms", default="tickets-share,multitask-dense",
                   help="which arms to run (default both: tickets-share,multitask-dense)")
    p.add_argument("--name", help="this multi-task study's name (default multitask-<tasks>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted study --name")
    p.add_argument("--storage-path", default="supertickets_results",
                   help="folder of studies (default supertickets_results); this one goes to <it>/multitask/<name>")
    p.add_argument("--mlflow-uri", help="MLflow tracking URI, where the tasks' studies are (default "
                                        "$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    p.add_argument("--cpus-per-trial", type=float, default=2.0, help="CPUs per trial (default 2)")
    p.add_argument("--gpus-per-trial", type=float, default=None,
                   help="GPUs per trial, fractions allowed (default 1 where the Ray cluster has GPUs, else 0)")
    p.add_argument("--data-workers", type=int, default=0, help="data-loader worker processes per task (default 0)")
    return p


@dataclass(frozen=True)
class MultiTaskSettings:
    """A validated multi-task study.

    Attributes:
        tasks: task names, in order. studies: task -> study named by ``--study`` (absent: the latest).
        share: which ticket of each study's verdict is shared (``--share``: super, winning, best).
        arms: the arms to run. seeds: seeds ``0..n-1``.
        folder: ``<storage>/multitask/<name>`` (absolute). tune_path: Tune's experiment folder inside it.
    """

    tasks: tuple
    studies: dict
    share: str
    model: str
    glue_dir: str | None
    budget: str
    seeds: tuple
    finetune: object
    data: object
    temperature: float
    arms: tuple
    name: str
    resume: bool
    folder: Path
    mlflow_uri: str
    cpus_per_trial: float
    gpus_per_trial: float | None
    data_workers: int

    def params(self) -> dict:
        """Flat parameters for the MLflow parent run."""
        flat = {"tasks": ",".join(self.tasks), "model": self.model, "glue_dir": self.glue_dir, "budget": self.budget,
                "seeds": ",".join(map(str, self.seeds)), "sampling_temperature": self.temperature, "share": self.share,
                "arms": ",".join(self.arms)}
        flat.update({f"finetune.{k}": v for k, v in asdict(self.finetune).items()})
        flat.update({f"data.{k}": v for k, v in asdict(self.data).items() if k != "glue_dir"})
        flat.update({f"study.{t}": n for t, n in self.studies.items()})
        return flat


def build_settings(args) -> MultiTaskSettings:
    """Validate the flags (one line per problem, ``UsageError``)."""
    from search.cli.defaults import resolve_glue_dir, resolve_model
    from search.cli.preflight import check_model_dir, check_study_name, check_task_data
    from search.cli.settings import _check_model
    from search.records.tracking import check_tracking_uri, resolve_tracking_uri
    from trainables.data import DataSettings
    from trainables.finetune import FinetuneSettings
    from trainables.multitask import ARMS
    from trainables.tasks import TASKS

    tasks = tuple(t.strip().lower() for t in args.tasks.split(",") if t.strip())
    for task in tasks:
        if task not in TASKS:
            raise UsageError(f"unknown task {task!r} in --tasks: choose among {', '.join(TASKS)}")
    if len(tasks) < 2 or len(set(tasks)) != len(tasks):
        raise UsageError(f"--tasks {args.tasks}: name at least two different tasks (e.g. --tasks rte,mrpc)")
    studies = {}
    for item in args.study:
        task, _, name = item.partition("=")
        if not name or task not in tasks:
            raise UsageError(f"--study {item}: write TASK=NAME with TASK one of --tasks ({','.join(tasks)})")
        studies[task] = name
    arms = tuple(a.strip() for a in args.arms.split(",") if a.strip())
    if not arms or any(a not in ARMS for a in arms):
        raise UsageError(f"--arms {args.arms}: choose among {', '.join(ARMS)}")
    budget = BUDGETS[args.budget]

    def pick(flag, key, minimum=1):
        value = budget[key] if flag is None else flag
        if value is not None and value < minimum:
            raise UsageError(f"--{key.replace('_', '-')} {value} must be at least {minimum}")
        return value

    if args.learning_rate is not None and not args.learning_rate > 0:
        raise UsageError(f"--learning-rate {args.learning_rate} must be positive")
    if not args.sampling_temperature >= 1.0:
        raise UsageError(f"--sampling-temperature {args.sampling_temperature} must be at least 1 (1 = proportional)")
    if args.cpus_per_trial <= 0 or (args.gpus_per_trial is not None and args.gpus_per_trial < 0):
        raise UsageError("--cpus-per-trial must be positive and --gpus-per-trial not negative")
    if args.data_workers < 0:
        raise UsageError(f"--data-workers {args.data_workers} must be 0 or more")
    if args.resume and not args.name:
        raise UsageError("--resume needs --name of the multi-task study to resume")
    name = args.name or f"multitask-{'-'.join(tasks)}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_study_name(name, "--name")
    model = _check_model(resolve_model(args.model).value)
    check_model_dir(model)
    glue = resolve_glue_dir(args.glue_dir).value
    if glue is not None:
        glue = str(Path(glue).expanduser().resolve())
        for task in tasks:
            check_task_data(task, glue)
    if "://" in args.storage_path:
        raise UsageError(f"--storage-path {args.storage_path}: a multi-task study takes a folder (every node must see "
                         "it); a bucket URI is not supported here yet")
    uri = resolve_tracking_uri(args.mlflow_uri)
    try:
        check_tracking_uri(uri)
    except ValueError as err:
        raise UsageError(str(err)) from None
    folder = Path(args.storage_path).expanduser().resolve() / "multitask" / name
    finetune = FinetuneSettings(learning_rate=pick(args.learning_rate, "learning_rate", 0), epochs=pick(args.epochs, "epochs"),
                                batch_size=pick(args.batch_size, "batch_size"), optimizer=budget["optimizer"])
    data = DataSettings(glue, pick(args.max_seq_length, "max_seq_length", 8),
                        pick(args.max_train_examples, "max_train_examples", 2),
                        pick(args.max_dev_examples, "max_dev_examples", 2))
    settings = MultiTaskSettings(tasks, studies, args.share, model, glue, args.budget,
                                 tuple(range(pick(args.seeds, "seeds"))),
                                 finetune, data, args.sampling_temperature, arms, name, args.resume, folder, uri,
                                 args.cpus_per_trial, args.gpus_per_trial, args.data_workers)
    state = folder / STATE_FILE
    if args.resume and not state.exists():
        raise UsageError(f"no multi-task study {name} to resume under {folder.parent}: check --name and --storage-path")
    if not args.resume and state.exists():
        raise UsageError(f"multi-task study {name} exists under {folder.parent}: add --resume to continue it, or "
                         "choose another --name")
    return settings


#: The study's state file in its folder: parent run id, settings and the tickets it shares.
STATE_FILE = "multitask.json"


def find_tickets(settings: MultiTaskSettings, client) -> tuple[dict, dict]:
    """Each task's ticket (masks downloaded into the study's folder) and single-task result, from MLflow.

    Raises:
        UsageError: a task has no finished study (the message names the study command to run first).
    """
    from search.multitask.shared_tickets import find_study, read_ticket

    parents = {t: find_study(client, t, settings.model, settings.studies.get(t), settings.mlflow_uri)
               for t in settings.tasks}  # every task checked before anything is downloaded
    tickets, singles = {}, {}
    for task, parent in parents.items():
        tickets[task], singles[task] = read_ticket(client, parent, settings.folder / "masks", settings.share)
    return tickets, singles


def _results(grid, settings: MultiTaskSettings):
    """Tune's results as ``ArmResult`` per arm and the dev labels per task."""
    from search.multitask.report import ArmResult

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


def run(settings: MultiTaskSettings, typed: str) -> str:
    """Run (or resume) the multi-task study, report it; returns the printed report.

    Raises:
        UsageError: a task has no finished study, or no seed finished in both arms.
    """
    import ray
    from ray import tune

    from mlflow.tracking import MlflowClient

    from search.study.progress import MultiTaskLines, ScalarCSVLogger
    from search.multitask.shared_tickets import SingleTaskResult
    from search.records.tracking import log_params, open_experiment, source_tags
    from trainables.multitask import MultiTaskContext, TaskSampling, TaskTicket, tune_multitask

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
    started = not ray.is_initialized()
    if started:
        if not os.environ.get("RAY_ADDRESS"):
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        env = {k: os.environ[k] for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME") if k in os.environ}
        ray.init(address=os.environ.get("RAY_ADDRESS"), runtime_env={"env_vars": env}, include_dashboard=False,
                 configure_logging=False, log_to_driver=False)
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
        return text
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        client.set_terminated(parent, status=status)
        if started:
            ray.shutdown()


def _describe(ticket) -> str:
    from search.multitask.shared_tickets import ROLE_WORDS

    return f"dense (its study named no {ROLE_WORDS[ticket.role]})" if ticket.dense else \
        f"{ticket.method} {ROLE_WORDS[ticket.role]} s={ticket.sparsity:.2f} (run {ticket.run_id[:8]})"


def _report(settings: MultiTaskSettings, arms: dict, labels: dict, tickets: dict, singles: dict, client,
            parent: str, experiment: str) -> str:
    """Analyse, then print and record: child run per arm, table/plot/summary on the parent and in the folder."""
    from search.multitask import report as report
    from search.verdict.report import markdown_table
    from search.records.tracking import log_params
    from trainables.multitask import TaskSampling

    try:
        result = report.analyse(arms, labels)
    except ValueError as err:
        raise UsageError(f"{err}: see the trials' errors in {settings.folder / 'tune'}") from None
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


def main(argv: list[str] | None = None, prog: str = "python -m search.multitask") -> int:
    """Run the CLI; returns the exit code (0 done, 2 bad input, 130 interrupted)."""
    given = sys.argv[1:] if argv is None else argv
    try:
        settings = build_settings(parser(prog).parse_args(given))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per downloaded mask otherwise
    if os.path.isdir(settings.model) and settings.glue_dir is not None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("mlflow", "alembic", "ray"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    print(f"multi-task study {settings.name}: tasks {','.join(settings.tasks)}, arms {','.join(settings.arms)}, "
          f"{len(settings.seeds)} seeds, budget {settings.budget} ({settings.finetune.epochs} epoch(s) over the mixed data)")
    try:
        text = run(settings, " ".join([prog, *map(shlex.quote, given)]))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        _remove_unstarted(settings.folder)
        return 2
    except KeyboardInterrupt:
        print(f"\nInterrupted; finished trials are kept. Resume with: {prog} --name {settings.name} --resume "
              f"--tasks {','.join(settings.tasks)}", file=sys.stderr)
        return 130
    print()
    print(text)
    return 0


def _remove_unstarted(folder: Path) -> None:
    """Leave nothing half-written: remove the study folder when a failed start left only downloads in it."""
    import shutil

    if folder.exists() and not (folder / STATE_FILE).exists():
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
