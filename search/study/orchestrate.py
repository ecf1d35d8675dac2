"""Run one study: dense fine-tunes first, then the Ray Tune + Optuna search, then the super-ticket verdict.

Data flows one way: settings -> space -> Tuner (trials in ``trainables``) -> MLflow (``search.records.tracking``)
-> analysis and report. Nothing is created (Ray, MLflow run, folders) before the settings are valid.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import ray
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from ray import tune
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from search.verdict.analysis import TicketResult, Verdict, decide, ticket_from_report
from search.study.progress import Plan, ScalarCSVLogger, StudyDisplay
from search.strategy.racing import SeedRacingScheduler
from search.study.local_ray import init_ray, joins_cluster
from search.verdict.report import (ROLE_NAMES, description, kept_units_heatmap, phase_transition_plot, summary,
                                   trial_table, verdict_lines, verdict_tags)
from search.strategy.searcher import OBJECTIVE_NAME, TicketSearch
from search.errors import UsageError, failure_summary
from search.study.checks import check_fits, check_resume, trial_slots
from search.study.settings import StudySettings
from search.study.state import STATE_FILE, StudyState, stringify
from search.study.weights import KeptWeights, keep_weights
from search.records.optuna_storage import record_verdict
from search.records.tracking import (REASON_TAG, STOP_TAG, MlflowTrialCallback, log_intervals, log_params,
                                     open_experiment, resolve_tracking_uri, run_url, share_study_view, source_tags,
                                     study_view_url, tag_verdict)
from trainables.pruning.registry import PLUGINS_ENV, get_method, plugins_for_workers
from spaces.search_space import TicketSpace
from filelock import FileLock, Timeout

from trainables import mirror
from trainables.cache import prepare_dense
from trainables.config import TrialConfig
from trainables.store import sweep_partials
from trainables.tasks import HUB_DATASET
from trainables.progress import BOARD_ENV, ProgressBoard
from trainables.report import TrialReport
from trainables.model import REMOTE_CODE_ENV, load_config
from trainables.resolution import round_score
from trainables.tasks import get_task
from trainables.trial import TrialContext, tune_trainable

#: Environment the trials need from the driver (offline switches, caches).
FORWARDED_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "HF_DATASETS_CACHE",
                 "SUPERTICKETS_INJECT_FAULT", PLUGINS_ENV, REMOTE_CODE_ENV)


@dataclass
class StudyOutcome:
    """What a study found, with where it was recorded."""

    tickets: list[TicketResult]
    verdict: Verdict
    parent_run_id: str
    tracking_uri: str
    table: str
    line: str
    experiment_id: str = ""
    study_name: str = ""
    optuna_storage: str | None = None
    weights: str = ""

    def ui_hint(self) -> str:
        """How to look at the study: the MLflow UI (the command that serves a local store, the addresses of the
        study's runs view and of its parent run) and, with an Optuna storage, optuna-dashboard."""
        served = self.tracking_uri.startswith(("http://", "https://"))
        ui = self.tracking_uri if served else "http://127.0.0.1:5000"
        lines = [] if served else [f"MLflow:  mlflow ui --backend-store-uri {self.tracking_uri}   then open"]
        lines += [f"  the trials: {study_view_url(ui, self.experiment_id, self.study_name)}",
                  f"  the study:  {run_url(ui, self.experiment_id, self.parent_run_id)}"]
        if self.optuna_storage:
            lines.append(f"Optuna:  optuna-dashboard {self.optuna_storage}")
        if self.weights:
            lines.append(self.weights)
        return "\n".join(lines)


def _start_ray(settings: StudySettings, say) -> bool:
    """Join ``$RAY_ADDRESS`` or start a local instance (on 127.0.0.1 only); returns True when this process started
    it.

    Raises:
        UsageError: a trial's CPUs and GPUs fit on no node of the joined cluster (Ray would wait forever).
    """
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    env[BOARD_ENV] = board_name(settings)
    if PLUGINS_ENV in env:
        env[PLUGINS_ENV] = plugins_for_workers()
    # Workers' own output (Hugging Face's bars, our epoch lines) stays in Ray's log files: the study's display
    # shows what matters, once, from the driver.
    if not init_ray(env):
        return False
    address = os.environ.get("RAY_ADDRESS") if joins_cluster() else None
    nodes = [(n["Resources"].get("CPU", 0), n["Resources"].get("GPU", 0)) for n in ray.nodes() if n.get("Alive")]
    where = f"the biggest node of the Ray cluster at {address}"
    if address:
        try:
            check_fits(settings, nodes, where)
        except UsageError:
            ray.shutdown()
            raise
    say(f"Ray: {'joined ' + address if address else 'local instance'} on {ray.util.get_node_ip_address()}, "
        f"{len(nodes)} node(s), {sum(c for c, _ in nodes):g} CPUs, {sum(g for _, g in nodes):g} GPUs")
    return True


def board_name(settings: StudySettings) -> str:
    """The name of the study's ``ProgressBoard`` actor (workers find it through ``$SUPERTICKETS_PROGRESS_BOARD``)."""
    return f"supertickets-progress-{settings.study_name}"


def _context(settings: StudySettings) -> TrialContext:
    return TrialContext(model=settings.model, task=settings.task, data=settings.data, finetune=settings.finetune,
                        seeds=settings.seeds, cache_dir=str(settings.cache_dir),
                        threads=max(1, int(settings.cpus_per_trial) - settings.data_workers),
                        weights_dir="" if settings.keep_weights == "none" else str(settings.weights_dir),
                        data_workers=settings.data_workers, mirror=settings.mirror)


def _prepare_dense(settings: StudySettings, context: TrialContext, display: StudyDisplay) -> list[dict]:
    """Fine-tune the dense model of every seed (in parallel, as Ray tasks) unless the cache has it, showing their
    progress as they run."""
    task = ray.remote(prepare_dense).options(num_cpus=settings.cpus_per_trial, num_gpus=settings.gpus_per_trial)
    pending = [task.remote(context.dense_spec(seed), context.cache_dir, settings.rewind_steps, context.data_workers,
                           context.mirror) for seed in settings.seeds]
    done = []
    while pending:
        ready, pending = ray.wait(pending, timeout=1.0)
        for item in ray.get(ready):
            done.append(item)
            if item["diverged"]:
                text = f"dense fine-tune seed {item['seed']} (key {item['key']}) DIVERGED: {item['diverged']}"
            else:
                state = "reused from cache" if item["reused"] else "computed"
                text = (f"dense fine-tune seed {item['seed']} (key {item['key']}): {state}; final train loss "
                        f"{item['train_loss']:.4f}, dev score {item['dev_score']:.4f}")
            display.dense_done(item["seed"], text)
        display.poll()
    return sorted(done, key=lambda item: item["seed"])


def _child_runs(client: MlflowClient, experiment: str, parent_run_id: str) -> dict[str, object]:
    """The study's child runs by Ray trial id (MLflow is the record, also across a resume).

    A trial cut off by an interruption and resumed has two runs; the newer one (the resumed trial) wins.
    """
    runs = client.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
                              order_by=["attributes.start_time ASC"])
    return {run.data.tags.get("ray.trial_id"): run for run in runs}


def _close_interrupted(client: MlflowClient, experiment: str, parent_run_id: str, status: str = "KILLED",
                       reason: str | None = None) -> None:
    """Runs left RUNNING by an interrupted study were cut off: close them as ``status`` (KILLED, stop reason
    ``interrupted``; or FAILED, stop reason ``failed`` with ``reason`` when the study itself failed)."""
    for run in _child_runs(client, experiment, parent_run_id).values():
        if run.info.status == "RUNNING":
            client.set_tag(run.info.run_id, STOP_TAG, "interrupted" if status == "KILLED" else "failed")
            if reason:
                client.set_tag(run.info.run_id, REASON_TAG, reason)
            client.set_terminated(run.info.run_id, status=status)


def _interrupted(results, client: MlflowClient, experiment: str, parent_run_id: str) -> bool:
    """True when ``fit()`` returned before every trial ended: a trial never started, or a child run is
    still RUNNING (the callback closes every run whose trial ends, whatever the ending)."""
    if any(result.config is None for result in results):
        return True
    return any(run.info.status == "RUNNING" for run in _child_runs(client, experiment, parent_run_id).values())


def _tickets(results, client: MlflowClient, experiment: str, parent_run_id: str) -> list[TicketResult]:
    """Every started trial as a ``TicketResult``: its last report from Tune, its status and reason from MLflow."""
    children = _child_runs(client, experiment, parent_run_id)
    tickets = []
    for result in results:
        if result.config is None:  # never started
            continue
        trial_id = result.metrics.get("trial_id") or os.path.basename(result.path)
        run = children.get(trial_id)
        status = run.info.status if run else ("FAILED" if result.error else "FINISHED")
        reason = run.data.tags.get(REASON_TAG) if run else None
        tickets.append(ticket_from_report(trial_id, run.info.run_id if run else None, TrialConfig.from_tune(result.config),
                                          TrialReport.from_tune(result.metrics), status, reason))
    return tickets


def _parent_run(settings: StudySettings, client: MlflowClient, experiment: str, tracking_uri: str,
                command: str, typed: str) -> str:
    """The study's MLflow parent run: the stored one when resuming (its cut-off child runs closed as KILLED),
    else a new one in the task's experiment with the settings as params, recorded in the study's state file."""
    state = StudyState.read(settings.study_dir)
    if settings.resume and state is not None:
        client.update_run(state.parent_run_id, status="RUNNING")
        _close_interrupted(client, client.get_run(state.parent_run_id).info.experiment_id, state.parent_run_id)
        return state.parent_run_id
    parent_run_id = client.create_run(experiment, run_name=settings.study_name,
                                      tags={"supertickets.study": settings.study_name, "role": "study",
                                            "mlflow.note.content": f"Study {settings.study_name}: running.",
                                            **source_tags(typed)}).info.run_id
    log_params(client, parent_run_id, settings.params())
    share_study_view(client, experiment, settings.study_name, parent_run_id)
    StudyState(parent_run_id, tracking_uri, stringify(settings.params()), command).write(settings.study_dir)
    mirror.push(settings.study_dir / STATE_FILE)
    return parent_run_id


def study_lock(settings: StudySettings) -> FileLock:
    """The lock that makes one process the only writer of a study (``<storage>/.locks/<study>.lock``).

    An OS file lock: the kernel releases it when its process dies, so a killed study never leaves it stuck.
    """
    folder = settings.root / ".locks"
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / f"{settings.study_name}.lock"))


def ticket_costs(settings: StudySettings) -> tuple[float, ...]:
    """Each ticket trial of the study's space (method x sparsity above 0 x control x rewinding point) as its
    fine-tuning FLOPs over the dense model's (``PruningMethod.training_cost``), for the time estimate."""
    config = load_config(settings.model)
    repeats = len(settings.control) * len(settings.rewind)
    return tuple(cost for name in settings.method for sparsity in settings.sparsity.values() if sparsity > 0
                 for cost in [get_method(name).training_cost(sparsity, config, settings.options)] * repeats)


def study_space(settings: StudySettings) -> TicketSpace:
    """What the study's trials vary: its sparsity grid and the methods, controls and rewinding points."""
    return TicketSpace(settings.sparsity, settings.method, settings.control, settings.rewind, settings.options)


def _scheduler(settings: StudySettings, stop_reasons: dict, searcher: TicketSearch):
    """Seed racing (``race``, told by the searcher what each trial runs for), ASHA on reports (``asha``) or none
    (``none``)."""
    if settings.scheduler == "race":
        return SeedRacingScheduler(get_task(settings.task).primary_metric, settings.confidence,
                                   settings.match_tolerance, stop_reasons, searcher.purpose)
    if settings.scheduler == "asha":
        return ASHAScheduler(time_attr="training_iteration", max_t=len(settings.seeds) * settings.finetune.epochs,
                             grace_period=settings.grace_period, reduction_factor=2)
    return FIFOScheduler()


def concurrent_trials(settings: StudySettings) -> int:
    """Trials at once: ``--concurrent-trials``, else as many as the Ray cluster's CPUs and GPUs hold now.

    Tune would otherwise queue PENDING trials beyond what can run, and the verdict search would choose their
    points before the running trials' results could steer it.
    """
    if settings.concurrent_trials:
        return settings.concurrent_trials
    resources = ray.cluster_resources()
    return trial_slots(settings, resources.get("CPU", 1), resources.get("GPU", 0))


def _new_tuner(settings: StudySettings, trainable, space, callbacks: list, stop_reasons: dict):
    """The study's searcher (``--search``) and scheduler (``--scheduler``) around the trainable."""
    task = get_task(settings.task)
    searcher = TicketSearch(space, settings.search, settings.search_seed, task.primary_metric, settings.confidence,
                            settings.match_tolerance, task.is_regression, settings.optuna_storage,
                            settings.study_name)
    # reuse_actors: a trial runs in the worker process of the one before it, so the 5-15 s of starting a process and
    # importing torch and transformers is paid once per slot, not per trial (nothing of a trial outlives it there:
    # each builds its model, data and optimiser afresh and sets its own threads).
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric="dev_score", mode="max", search_alg=searcher,
                                    scheduler=_scheduler(settings, stop_reasons, searcher),
                                    num_samples=settings.num_trials, max_concurrent_trials=concurrent_trials(settings),
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=settings.study_name, storage_path=settings.storage_path, callbacks=callbacks,
                                  verbose=0, failure_config=tune.FailureConfig(max_failures=settings.max_failures)))


def run_study(settings: StudySettings, display: StudyDisplay | None = None, command: str = "",
              typed_command: str = "") -> StudyOutcome:
    """Run the study described by ``settings`` and record it in MLflow.

    Args:
        settings: validated settings (``search.cli.settings.build_settings``, ``search.cli.preflight``).
        display: shows progress (default: a ``StudyDisplay`` on stdout, writing ``<study>/progress.csv``).
        command: the command line that resumes it (stored for ``--resume``'s checks).
        typed_command: the command line as typed (recorded on the MLflow runs; default ``command``).

    Returns:
        the trials, the verdict and where they were logged. Trials that fail are recorded as FAILED;
        the others still count.

    Raises:
        UsageError: another process is running this study, or a trial fits on no node of the joined cluster.
    """
    lock = study_lock(settings)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UsageError(f"study {settings.study_name} is being run by another process (lock {lock.lock_file}): "
                         "wait for it to end, or choose another --study-name") from None
    try:
        check_resume(settings)  # again, under the lock: a study of this name may have started since the pre-flight
        return _run_locked(settings, display or StudyDisplay(csv_path=str(settings.study_dir / "progress.csv")),
                           command, typed_command or command)
    finally:
        lock.release()


def _run_locked(settings: StudySettings, display: StudyDisplay, command: str, typed: str) -> StudyOutcome:
    task, say = get_task(settings.task), display.say
    say(f"study {settings.study_name}: task {task.name} (dev score = {task.primary_metric}), method "
        f"{','.join(settings.method)} ({','.join(settings.control)} tickets), rewind {','.join(settings.rewind)}, "
        f"budget {settings.budget}")
    say(f"model: {settings.model}  [{settings.model_source}]")
    say(f"data:  {settings.glue_dir or 'hub ' + HUB_DATASET}  [{settings.glue_source}]")
    if os.path.isdir(settings.model) and settings.glue_dir is not None:
        # Nothing comes from the hub: make sure nothing waits on it, here or in the workers.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if settings.budget == "paper" and settings.gpus_per_trial == 0:
        say("note: the paper budget is meant for GPUs; on a few CPU cores it takes many hours "
            "(try --budget smoke, or fewer --seeds/--epochs/--num-trials)")
    for removed in sweep_partials(settings.cache_dir):
        say(f"removed {removed}: left by an interrupted computation")

    started_ray = _start_ray(settings, say)
    try:
        tracking_uri = resolve_tracking_uri(settings.mlflow_uri)
        client, experiment = open_experiment(tracking_uri, task.name)
        parent_run_id = _parent_run(settings, client, experiment, tracking_uri, command, typed)
    except BaseException:
        if started_ray:
            ray.shutdown()
        raise
    say(f"MLflow: {tracking_uri}  (parent run {parent_run_id})")
    experiment = client.get_run(parent_run_id).info.experiment_id

    status = RunStatus.to_string(RunStatus.FAILED)
    try:
        context = _context(settings)
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        board = ray.remote(num_cpus=0)(ProgressBoard).options(  # beside the driver: outlives worker nodes
            name=board_name(settings), get_if_exists=True, scheduling_strategy=here).remote()
        display.attach(board, board_name(settings), Plan(len(settings.seeds), settings.finetune.epochs,
                                                         settings.num_trials, concurrent_trials(settings),
                                                         ticket_costs(settings)))
        _prepare_dense(settings, context, display)
        space = study_space(settings)
        stop_reasons: dict = {}  # the racing scheduler's decisions, recorded by the callback
        callback = MlflowTrialCallback(tracking_uri, experiment, parent_run_id,
                                       {"task": task.name, "seeds": ",".join(map(str, settings.seeds)),
                                        "model": settings.model}, stop_reasons, task.primary_metric, typed)
        trainable = tune.with_resources(tune.with_parameters(tune_trainable, context=context),
                                        {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial})
        path = settings.tune_path
        # Tune saves its state at most every 10 s by default: a driver killed in between loses the trials that ended
        # since, and a resume re-trains them. Every controller step instead (a few KB, after each event).
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
        # Tune's newer console output prints its configuration box and a TensorBoard hint even at verbose=0; the
        # classic one is silent at verbose=0, and the study's own display (search.study.progress) shows the trials.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        if settings.resume and tune.Tuner.can_restore(path):
            say(f"resuming the interrupted study in {path}")
            tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=True)
        else:
            tuner = _new_tuner(settings, trainable, space, [callback, display, ScalarCSVLogger()], stop_reasons)
        results = tuner.fit()
        if _interrupted(results, client, experiment, parent_run_id):
            # Ctrl-C (or SIGUSR1): Tune saved its state and returned early instead of raising.
            _close_interrupted(client, experiment, parent_run_id)
            raise KeyboardInterrupt
        tickets = _tickets(results, client, experiment, parent_run_id)
        outcome = _report(settings, tickets, client, parent_run_id, tracking_uri, typed)
        status = RunStatus.to_string(RunStatus.FINISHED)
        return outcome
    except KeyboardInterrupt:
        status = RunStatus.to_string(RunStatus.KILLED)
        raise
    except Exception as err:  # the runs say why the study failed (the terminal's one line says it too)
        try:
            client.set_tag(parent_run_id, REASON_TAG, failure_summary(err))
            _close_interrupted(client, experiment, parent_run_id, "FAILED", failure_summary(err))
        except Exception:  # noqa: BLE001 - the store itself may be what failed; the original error matters
            pass
        raise
    finally:
        try:
            client.set_terminated(parent_run_id, status=status)
        except Exception:  # noqa: BLE001 - a store that is gone must not hide why the study stopped
            if status == RunStatus.to_string(RunStatus.FINISHED):
                raise
        finally:
            if started_ray:
                ray.shutdown()


def sparsity_basis(settings: StudySettings) -> str:
    """Which weights a study's sparsity counts, in words: every unstructured method of a study prunes the same
    set (its prune options are study-wide); structured tickets count the weights their pruned units disable."""
    methods_of: dict[str, list[str]] = {}
    for name in settings.method:
        methods_of.setdefault(get_method(name).achieved(settings.options), []).append(name)
    return "; ".join(f"{'/'.join(names)}: {basis}" for basis, names in methods_of.items())


def _report(settings: StudySettings, tickets, client: MlflowClient, parent_run_id: str, uri: str,
            command: str = "") -> StudyOutcome:
    """Decide, then show and record: table, verdict lines, plot and summary on the parent run and beside the study;
    the verdict's kind and named tickets as tags on the parent, ``verdict`` tags on the named child runs, each
    child run's interval in points (``log_intervals``), the parent's description (verdict, links to the named runs,
    table), and the verdict in the Optuna study's user attributes and note (``record_verdict``)."""
    task = get_task(settings.task)
    space = study_space(settings)
    verdict = decide(tickets, task.name, settings.confidence, settings.match_tolerance,
                     [space.config(p) for p in space.grid_points()])
    basis = sparsity_basis(settings)
    frame = trial_table(tickets)
    table = frame.to_string(index=False) + f"\nsparsity counts: {basis}"
    lines = verdict_lines(verdict, task.primary_metric)
    figure = phase_transition_plot(tickets, verdict, task.primary_metric,
                                   f"{task.name.upper()}: {', '.join(settings.method)} tickets, "
                                   f"{os.path.basename(settings.model)}", basis)
    data = summary(tickets, verdict, lines, settings.params())
    client.log_figure(parent_run_id, figure, "phase_transition.png")
    client.log_dict(parent_run_id, data, "summary.json")
    client.log_text(parent_run_id, table + "\n\n" + "\n".join(lines) + "\n", "trials.txt")
    figure.savefig(settings.study_dir / "phase_transition.png", dpi=120)
    heatmap = kept_units_heatmap(tickets, f"{task.name.upper()}: heads and FFN blocks each structured ticket keeps, "
                                          f"{os.path.basename(settings.model)}")
    if heatmap is not None:
        client.log_figure(parent_run_id, heatmap, "kept_units.png")
        heatmap.savefig(settings.study_dir / "kept_units.png", dpi=120)
    (settings.study_dir / "summary.json").write_text(json.dumps(data, indent=2))
    tags = verdict_tags(verdict, lines)
    if verdict.dense is not None and verdict.dense.dev_score is not None:
        tags["dense.dev_score"] = f"{verdict.dense.dev_score:.4f}"
        client.log_metric(parent_run_id, "dense_dev_score", round_score(
            verdict.dense.dev_score, len(verdict.dense.labels), len(verdict.dense.seed_scores)))
    for role, ticket in verdict.named.items():
        d = ticket.difference
        tags.update({f"{role}.sparsity": f"{ticket.sparsity:.2f}", f"{role}.run_id": ticket.run_id or "",
                     f"{role}.difference": d.points()})
        client.log_metric(parent_run_id, f"{role}_difference", round_score(d.mean, d.examples, d.seeds))
    experiment = client.get_run(parent_run_id).info.experiment_id
    tags["mlflow.note.content"] = description(verdict, lines, frame, basis,
                                              lambda run_id: run_url("", experiment, run_id), command)
    for key, value in tags.items():
        client.set_tag(parent_run_id, key, value)
    tag_verdict(client, verdict.named)
    log_intervals(client, tickets)
    if settings.optuna_storage:
        record_verdict(settings.optuna_storage, settings.study_name, verdict, lines, ROLE_NAMES, OBJECTIVE_NAME)
    kept = keep_weights(client, verdict, tickets, settings.weights_dir, settings.keep_weights)
    for path in settings.study_dir.iterdir():  # the report's files (the kept weights are uploaded already)
        if path.is_file():
            mirror.push(path)
    return StudyOutcome(tickets, verdict, parent_run_id, uri, table, "\n".join(lines), experiment,
                        settings.study_name, settings.optuna_storage, _weights_line(verdict, kept, settings))


def _weights_line(verdict: Verdict, kept: KeptWeights, settings: StudySettings) -> str:
    """Where the kept weights are and how to export one (empty when none were kept)."""
    if not kept.logged:
        return ""
    names = {t.run_id: t for t in (verdict.dense, *verdict.named.values()) if t is not None}
    runs = ", ".join(f"{'dense' if names[r].is_dense else f's={names[r].sparsity:.2f}'} ({r[:8]})"
                     for r in kept.logged if r in names)
    if len(kept.logged) > len(names):
        runs += f" and {len(kept.logged) - len([r for r in kept.logged if r in names])} other trials"
    freed = f"; {kept.deleted_bytes / 1e6:.0f} MB of other trials' weights deleted" if kept.deleted_bytes else ""
    which = "super" if verdict.best_super else "winning" if "winning" in verdict.named else None
    export = (f"python -m search.export --study {settings.study_name} --ticket {which} --out <folder>" if which
              else "python -m search.export --run-id <run id> --out <folder>")
    return f"Weights: logged to the runs of {runs}{freed}. Export: {export}"
