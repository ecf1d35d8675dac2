"""MLflow tracking: one experiment per task, a parent run per study, a child run per trial.

Everything is logged from the Ray driver (a Tune callback), so a SQLite tracking URI works on a cluster
too, and every child run ends with a status: FINISHED, KILLED (stopped early by ASHA) or FAILED.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import json
import math
import os
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from filelock import FileLock

from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient
from ray.tune import Callback

from search.records import sqlite_uri
from trainables.config import TrialConfig
from trainables.report import DIVERGED, NODE_KEY, TrialReport
from trainables import mirror

EXPERIMENT_PREFIX = "supertickets"
#: The tag that says why a run ended before finishing its seeds (``diverged``, the racing test, ``asha``).
REASON_TAG = "supertickets.status_reason"
#: The tag that says, in one word, why a run did not finish: ``scheduler`` (racing or ASHA stopped it),
#: ``interrupted`` (Ctrl-C or a killed driver cut it off), ``failed`` (an error), ``diverged`` (NaN/inf loss) or
#: ``retried`` (an attempt that failed or lost its node, restarted by Tune under a new run).
STOP_TAG = "stop_reason"
#: A child run's role in its study: ``dense`` (the dense baseline), ``ticket`` (a good ticket) or ``control``
#: (a random or bad ticket, compared with its good ticket).
ROLE_TAG = "role"
#: Set on the child runs the verdict names: ``super_ticket`` or ``winning_ticket``.
VERDICT_TAG = "verdict"
#: The Ray node a trial ran on (its node id), on the child run.
NODE_TAG = "ray.node_id"
#: The command line that started the study, on the parent and every child run.
COMMAND_TAG = "supertickets.command"
#: The experiment's kind (``mlflow.experimentKind``, the tag MLflow's own kind selector writes) and primary metric,
#: set when the experiment is created. MLflow 3.17's UI reads the tag only with its workflow-type switch off, and the
#: switch is built in on: a plain experiment address opens on the kind of the ``workflowType`` in the address, else
#: the one the browser last chose (GenAI at first). So every address the study prints carries
#: ``workflowType=machine_learning`` (``CLASSIC``) and the experiment's description links its runs table.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development",
                   "mlflow.experiment.primaryMetric.name": "dev_score",
                   "mlflow.experiment.primaryMetric.greaterIsBetter": "true"}
#: Run colours (MLflow's ``mlflow.runColor`` tag) by what a run is, so charts read at a glance.
RUN_COLORS = {"dense": "#4d4d4d", "ticket": "#1f77b4", "control": "#ff7f0e", "super_ticket": "#2ca02c",
              "winning_ticket": "#17becf"}


def resolve_tracking_uri(flag: str | None) -> str:
    """``--mlflow-uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``; a relative SQLite
    path is made absolute here, in the driver, because trials run in other working directories."""
    # a bare path is a SQLite file: a local file store would need MLFLOW_ALLOW_FILE_STORE
    return sqlite_uri.absolute(flag or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db")


#: Tracking URI schemes MLflow 3 can store runs in (``postgresql+psycopg2://`` counts as ``postgresql``).
KNOWN_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "file")


#: Seconds a tracking server has to answer the pre-flight probe (MLflow's own client retries for minutes).
PROBE_TIMEOUT_S = 5.0


def check_tracking_uri(uri: str) -> None:
    """Refuse a tracking URI MLflow cannot store runs in, before anything is created: an unknown scheme, a
    file store (MLflow 3 refuses it unless ``MLFLOW_ALLOW_FILE_STORE=true``), a SQLite database whose file or
    folder cannot be written, or an ``http(s)`` server that does not answer within ``PROBE_TIMEOUT_S`` seconds.
    ``uri`` is resolved (``resolve_tracking_uri``).

    Raises:
        ValueError: the problem and the fix, in one line.
    """
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    fix = "pass --mlflow-uri (or set MLFLOW_TRACKING_URI) to sqlite:////absolute/path/mlflow.db or http(s)://host:port"
    if scheme not in KNOWN_SCHEMES:
        raise ValueError(f"MLflow tracking URI {uri!r} has an unknown scheme {scheme or '(none)'!r}: {fix}")
    if scheme == "file" and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("true", "1"):
        raise ValueError(f"MLflow tracking URI {uri!r} is a file store, which MLflow 3 refuses: {fix}")
    if scheme == "sqlite":
        sqlite_uri.check_writable(sqlite_uri.path_of(uri), "MLflow database", fix)
    if scheme in ("http", "https"):
        check_server_answers(uri, fix)


def check_server_answers(uri: str, fix: str) -> None:
    """An MLflow tracking server at ``uri`` answers one request for its ``/health`` page within
    ``PROBE_TIMEOUT_S`` seconds, as MLflow's server does: 200, a redirect to a login, or 401/403 behind one. The
    request honours MLflow's TLS settings (``MLFLOW_TRACKING_INSECURE_TLS``, ``MLFLOW_TRACKING_SERVER_CERT_PATH``).

    Raises:
        ValueError: it does not (refused, unknown host, timed out, a TLS failure, another program's answer),
            naming the URI and ``fix``.
    """
    import requests

    try:
        verify: bool | str = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
        if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("true", "1"):
            verify = False
        status = requests.get(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S, allow_redirects=False,
                              verify=verify).status_code
    except requests.RequestException as err:
        kind = {requests.ConnectTimeout: "no answer within", requests.ReadTimeout: "no answer within"}.get(type(err))
        why = f"{kind} {PROBE_TIMEOUT_S:g} s" if kind else _first_cause(err)
        raise ValueError(f"MLflow tracking server {uri} does not answer ({why}): start it (mlflow server --host "
                         f"127.0.0.1 --port PORT), check the address, or {fix}") from None
    if not (200 <= status < 400 or status in (401, 403)):
        raise ValueError(f"{uri} answers HTTP {status} for /health, which an MLflow tracking server does not: check "
                         f"the address and port, or {fix}")


def _first_cause(err: BaseException) -> str:
    """The innermost cause of a requests error, shortened to its reason (``Connection refused``)."""
    while err.__cause__ is not None or (err.__context__ is not None and not err.__suppress_context__):
        err = err.__cause__ or err.__context__
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text.rsplit(": ", 1)[-1][:120]


def _store_lock(uri: str) -> FileLock:
    """A machine-wide lock for the first use of a SQLite tracking store (kept out of the user's folders)."""
    folder = Path(tempfile.gettempdir()) / "supertickets-locks"
    folder.mkdir(exist_ok=True)
    return FileLock(str(folder / f"mlflow-{hashlib.sha256(uri.encode()).hexdigest()[:16]}.lock"))


def open_experiment(uri: str, task: str) -> tuple[MlflowClient, str]:
    """A client of the tracking store ``uri`` and the id of the task's experiment (``supertickets-<task>``,
    created on first use).

    Two studies started at once on a fresh SQLite file would both create MLflow's tables (and the experiment);
    a file lock lets one do it while the other waits, then both find them.
    """
    if not uri.startswith("sqlite:"):
        client = MlflowClient(uri)
        return client, experiment_id(client, task)
    with _store_lock(uri):
        client = MlflowClient(uri)
        return client, experiment_id(client, task)


def param_value(value) -> str:
    """A param as MLflow shows it: floats without binary noise (4 decimals: ``0.3519``, grid points such as
    ``0.35`` unchanged; below 1e-4, 4 significant digits), everything else as ``str``."""
    if isinstance(value, float) and math.isfinite(value):
        return str(round(value, 4)) if abs(value) >= 1e-4 or value == 0 else f"{value:.4g}"
    return str(value)


def log_params(client: MlflowClient, run_id: str, params: dict) -> None:
    """Log ``params`` in one call (MLflow takes at most 100 per batch), floats rounded by ``param_value``."""
    items = [Param(key, param_value(value)) for key, value in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start:start + 100])


#: The experiment tag that MLflow's UI shows as the experiment's description (markdown).
NOTE_TAG = "mlflow.note.content"


def experiment_description(experiment: str) -> str:
    """The experiment's description: a link, relative to the MLflow UI's page, to its runs table in the classic
    (machine-learning) view, for a visitor whose browser opened the experiment on MLflow's GenAI pages."""
    return (f"Lottery-ticket studies: each study is a parent run with one child run per trial. "
            f"[Open the runs table](#/experiments/{experiment}/runs?{CLASSIC}) (or choose **Machine learning** at the top of "
            "the left bar: MLflow 3 opens an experiment on the kind of the last one viewed, GenAI at first).")


def experiment_id(client: MlflowClient, task: str) -> str:
    """The id of the task's experiment (``supertickets-<task>``), created on first use with ``EXPERIMENT_KIND``'s
    tags and ``experiment_description`` (an older experiment gets the tags, and the description unless it has
    one)."""
    name = f"{EXPERIMENT_PREFIX}-{task}"
    found = client.get_experiment_by_name(name)
    if found is None:
        experiment = client.create_experiment(name, tags=EXPERIMENT_KIND)
        client.set_experiment_tag(experiment, NOTE_TAG, experiment_description(experiment))
        return experiment
    for key, value in EXPERIMENT_KIND.items():  # experiments made by older versions, or by MLflow's UI
        if found.tags.get(key) != value:
            client.set_experiment_tag(found.experiment_id, key, value)
    if not found.tags.get(NOTE_TAG):
        client.set_experiment_tag(found.experiment_id, NOTE_TAG, experiment_description(found.experiment_id))
    return found.experiment_id


#: The columns a study's shared runs view opens with, in this order after the run name (MLflow's canonical column
#: keys, which are also its runs table's column ids), with their widths in pixels: the verdict and role first, then
#: the requested and achieved sparsity, the difference from dense with its interval (points) and the dev score;
#: about 1,100 px in all, so the whole view fits a 1,600 px window beside MLflow's left bar.
VIEW_WIDTHS = {"tags.`verdict`": 120, "tags.`role`": 80, "params.`sparsity`": 80, "params.`achieved_sparsity`": 90,
               "metrics.`difference`": 90, "metrics.`difference_low`": 90, "metrics.`difference_high`": 90,
               "metrics.`dev_score`": 90, "params.`method`": 100, "params.`control`": 80, "params.`rewind`": 90,
               "tags.`stop_reason`": 100}
VIEW_COLUMNS = tuple(VIEW_WIDTHS)
#: The experiment tag prefix under which MLflow's UI keeps a shared view of the runs table (its "share view"
#: feature); ``viewStateShareKey=<key>`` in the URL opens it.
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
#: MLflow 3 opens GenAI views unless the URL asks for the classic ones.
CLASSIC = "workflowType=machine_learning"


def share_study_view(client: MlflowClient, experiment: str, study: str, parent_run_id: str) -> None:
    """Store, as MLflow's UI stores a shared view, a runs view of the study's trials: only its child runs, least
    sparse first, with ``VIEW_COLUMNS`` as its columns in that order (verdict and role first) and ``VIEW_WIDTHS``
    as their widths (MLflow has no API for an experiment's default columns; a shared view is how its UI passes a
    layout on: ``selectedColumns``, ``columnOrder`` and ``columnWidths`` of its runs table's state).
    ``study_view_url`` opens it."""
    state = {"selectedColumns": list(VIEW_COLUMNS), "columnOrder": list(VIEW_COLUMNS), "columnWidths": VIEW_WIDTHS,
             "orderByKey": "params.`sparsity`", "orderByAsc": True,
             "searchFilter": f"tags.`mlflow.parentRunId` = '{parent_run_id}'"}
    client.set_experiment_tag(experiment, SHARED_VIEW_PREFIX + study, json.dumps(state))


def study_view_url(ui: str, experiment: str, study: str) -> str:
    """The address, in the MLflow UI served at ``ui`` (``http://127.0.0.1:5000`` for a local ``mlflow ui``), of the
    study's runs view stored by ``share_study_view``."""
    return f"{runs_view_url(ui, experiment)}&viewStateShareKey={quote(study)}"


def runs_view_url(ui: str, experiment: str) -> str:
    """The address of the classic runs table of ``experiment`` in the MLflow UI served at ``ui``."""
    return f"{ui.rstrip('/')}/#/experiments/{experiment}/runs?{CLASSIC}"


def run_url(ui: str, experiment: str, run_id: str) -> str:
    """The address of one run's page in the MLflow UI served at ``ui`` (``""``: a link relative to the UI's page,
    ``#/experiments/...``, for markdown shown inside the UI)."""
    return f"{ui.rstrip('/') + '/' if ui else ''}#/experiments/{experiment}/runs/{run_id}?{CLASSIC}"


def source_tags(command: str) -> dict[str, str]:
    """MLflow's source tags for a run started by ``command``: the user, the source (the command), its type and,
    when this code is a git checkout, the commit (``mlflow.source.git.commit``)."""
    tags = {"mlflow.user": getpass.getuser(), "mlflow.source.name": command.split(" --", 1)[0] or "search.run",
            "mlflow.source.type": "LOCAL", COMMAND_TAG: command[:5000]}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


@functools.cache
def git_commit() -> str | None:
    """The commit of the git checkout this code runs from (``None`` outside one, or without git); asked once per
    process, not at every trial's start."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def ticket_params(facts: dict) -> dict:
    """The MLflow params of a ticket's facts, as its method reports them (``Mask.summary`` and ``Ticket.info``:
    counts of what it kept, ``achieved_sparsity``, IMP rounds, TAMT losses, a new method's own): every scalar
    fact, so a method's facts reach MLflow without a list here; ``sparsity`` is the trial's own param already."""
    return {key: value for key, value in facts.items()
            if key != "sparsity" and isinstance(value, (bool, int, float, str))}


def trial_status(report: TrialReport | None, errored: bool, stop_reason: str | None = None) -> tuple[str, str | None]:
    """The MLflow status of a trial that ended, and why it ended early (``None`` when it finished).

    FAILED (an error, or the report's own reason such as ``diverged``), KILLED (a scheduler stopped it before
    its last seed: the racing decision, else ``asha``) or FINISHED.
    """
    if errored or report is None or report.status_reason is not None:
        return RunStatus.to_string(RunStatus.FAILED), (report.status_reason if report else None) or "error"
    if not report.complete:
        return RunStatus.to_string(RunStatus.KILLED), stop_reason or "asha: stopped early by the scheduler"
    return RunStatus.to_string(RunStatus.FINISHED), None


def stop_reason(status: str, reason: str | None) -> str | None:
    """The ``stop_reason`` tag of a trial that ended with ``status`` and ``reason`` (``trial_status``'s pair):
    ``diverged``, ``failed``, ``scheduler``, or ``None`` for a finished trial. (``interrupted`` is set when a
    resumed or interrupted study closes its cut-off runs.)"""
    if status == RunStatus.to_string(RunStatus.FAILED):
        return DIVERGED if reason == DIVERGED else "failed"
    if status == RunStatus.to_string(RunStatus.KILLED):
        return "scheduler"
    return None


def _metrics(report: TrialReport, seed_metrics: list[dict], primary: str,
             paired: bool = True) -> list[tuple[str, float, int]]:
    """``(key, value, step)`` of one report, only what carries information.

    One seed: ``dev_score`` (the primary metric), ``dev_<metric>`` (the task's other metrics) and ``train_loss``
    per epoch (step = epoch), and ``paired_difference`` (ticket - dense) once. Several seeds: ``dev_score_seed<k>``
    and ``train_loss_seed<k>`` per epoch of seed k (step = epoch), and when a seed has just finished the means over
    the finished seeds (``seed_metrics``, each seed's last-epoch metrics) of ``dev_score``, ``dev_<metric>`` and
    ``paired_difference`` (step = seeds finished). Sparsity figures are params, not metrics. ``paired=False`` (the
    dense run, paired with itself: always 0) leaves ``paired_difference`` out.

    Scores and ``paired_difference`` are fractions of the metric, rounded to what the dev set resolves
    (``round_score``: 4 decimals on RTE, as the terminal shows them); training losses to 4 decimals.
    """
    from trainables.resolution import round_score

    seed, epoch, current = report.seed, report.epoch, report.current
    others = [name for name in current.metrics if name not in ("dev_score", primary)]
    examples = len(report.labels)
    rows = []  # (key, value, step, seeds behind the value; None: a loss)
    if len(report.planned_seeds) == 1:
        rows += [("dev_score", current.dev_score, epoch, 1),
                 *((f"dev_{n}", current.metrics[n], epoch, 1) for n in others)]
        if current.train_loss is not None:
            rows.append(("train_loss", current.train_loss, epoch, None))
        if report.ends_seed and paired:
            rows.append(("paired_difference", report.mean_difference, 1, 1))
    else:
        rows.append((f"dev_score_seed{seed}", current.dev_score, epoch, 1))
        if current.train_loss is not None:
            rows.append((f"train_loss_seed{seed}", current.train_loss, epoch, None))
        if report.ends_seed:
            done = len(report.finished)
            rows += [("dev_score", report.mean_score, done, done),
                     *((f"dev_{n}", sum(m[n] for m in seed_metrics) / len(seed_metrics), done, done) for n in others)]
            if paired:
                rows.append(("paired_difference", report.mean_difference, done, done))
    return [(k, round(float(v), 4) if seeds is None else round_score(float(v), examples, seeds), step)
            for k, v, step, seeds in rows if v is not None and math.isfinite(v)]


class MlflowTrialCallback(Callback):
    """A Tune callback that gives each trial a child run of the study's parent run.

    Args:
        tracking_uri: absolute MLflow tracking URI.
        experiment: experiment id.
        parent_run_id: the study's run.
        trial_params: parameters shared by every trial (task, method, seeds, ...), logged on each child.
        stop_reasons: ``{trial_id: reason}`` filled by the seed-racing scheduler (shared with it).
        primary_metric: the task's primary dev metric (logged as ``dev_score`` only, not twice).
        command: the command line that started the study (source tags).

    Attributes:
        runs: ``{trial_id: {"run_id", "status", "report", "masks", "seed_metrics"}}`` of the trials this process
            has seen.
    """

    #: Defaults for a callback pickled (by Tune, for --resume) before these attributes existed.
    primary_metric, command = "", ""

    def __init__(self, tracking_uri: str, experiment: str, parent_run_id: str, trial_params: dict,
                 stop_reasons: dict | None = None, primary_metric: str = "accuracy", command: str = ""):
        self.tracking_uri, self.experiment, self.parent_run_id = tracking_uri, experiment, parent_run_id
        self.trial_params, self.primary_metric, self.command = trial_params, primary_metric, command
        self.stop_reasons = stop_reasons if stop_reasons is not None else {}
        self.runs: dict[str, dict] = {}
        self._client = None

    @property
    def client(self) -> MlflowClient:
        """A client made on first use (it does not pickle; Tune pickles callbacks)."""
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def __getstate__(self):  # Tune pickles callbacks into its experiment state; the client stays out
        return {**self.__dict__, "_client": None}

    def on_trial_start(self, iteration, trials, trial, **info):
        """Open the trial's child run with its configuration (method, control, sparsity, rewind, method options)
        as params."""
        if trial.trial_id in self.runs:
            return
        config = TrialConfig.from_tune(trial.config)
        role = config.role
        run = self.client.create_run(self.experiment, run_name=config.run_name,
                                     tags={"mlflow.parentRunId": self.parent_run_id, "ray.trial_id": trial.trial_id,
                                           ROLE_TAG: role, "mlflow.runColor": RUN_COLORS[role],
                                           **source_tags(self.command)})
        log_params(self.client, run.info.run_id, {**self.trial_params, **config.to_tune()})
        self.runs[trial.trial_id] = {"run_id": run.info.run_id, "status": "RUNNING", "report": None, "masks": set(),
                                   "seed_metrics": []}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        """Log one seed-epoch (the metrics ``_metrics`` chooses); on the first report the ticket's counts as
        params; each new seed's mask file under ``mask/``."""
        entry, report = self.runs[trial.trial_id], TrialReport.from_tune(result)
        if report is None:
            return
        run_id = entry["run_id"]
        if entry["report"] is None:  # the ticket is fixed for the trial: log it with its first report
            if result.get(NODE_KEY):
                self.client.set_tag(run_id, NODE_TAG, result[NODE_KEY])
            log_params(self.client, run_id, {**ticket_params(report.ticket.counts),
                                             "reused_dense_finetune": report.ticket.reused_dense,
                                             "replayed": report.ticket.replayed})
        for path in report.ticket.mask_files:
            # a trial on another node: under a storage URI it uploaded the mask; on node-local disks it is skipped
            if path not in entry["masks"] and mirror.available(path):
                self.client.log_artifact(run_id, path, "mask")
                entry["masks"].add(path)
        if report.ends_seed:
            entry["seed_metrics"].append(report.current.metrics)
        now = int(time.time() * 1000)
        paired = TrialConfig.from_tune(trial.config).role != "dense"
        rows = _metrics(report, entry["seed_metrics"], self.primary_metric, paired=paired)
        self.client.log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v, step in rows])
        entry["report"] = report

    def _end(self, trial, errored: bool):
        entry = self.runs.get(trial.trial_id)
        if entry is None or entry["status"] != "RUNNING":
            return
        report = entry["report"]
        entry["status"], reason = trial_status(report, errored, self.stop_reasons.get(trial.trial_id))
        run_id = entry["run_id"]
        if reason:
            self.client.set_tag(run_id, REASON_TAG, reason)
        if stop_reason(entry["status"], reason):
            self.client.set_tag(run_id, STOP_TAG, stop_reason(entry["status"], reason))
        if report is not None:
            self.client.log_dict(run_id, {"labels": report.labels, "seeds": [
                {"seed": s.seed, "predictions": s.predictions, "dense_predictions": s.dense_predictions,
                 "dev_score": s.dev_score, "dense_score": s.dense_score, "train_losses": s.train_losses}
                for s in report.finished]}, "predictions.json")
        self.client.set_terminated(run_id, status=entry["status"])

    def on_trial_recover(self, iteration, trials, trial, **info):
        """The trial failed (an error, or its worker or node died) and Tune restarts it from its first epoch: close
        this attempt's run FAILED with ``stop_reason=retried``; the restart gets a new run (the newer one wins)."""
        entry = self.runs.pop(trial.trial_id, None)
        if entry is not None and entry["status"] == "RUNNING":
            self.client.set_tag(entry["run_id"], STOP_TAG, "retried")
            self.client.set_tag(entry["run_id"], REASON_TAG, "restarted by Tune after an error or a lost worker")
            self.client.set_terminated(entry["run_id"], status=RunStatus.to_string(RunStatus.FAILED))

    def on_trial_complete(self, iteration, trials, trial, **info):
        """Close the run FINISHED, or KILLED (with the reason) when a scheduler stopped it before its last seed."""
        self._end(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        """Close the run FAILED (with the reason, e.g. ``diverged``); the other trials go on."""
        self._end(trial, errored=True)


def tag_verdict(client: MlflowClient, named: dict) -> None:
    """Mark the child runs the verdict names: tag ``verdict`` = ``super_ticket`` (roles ``best_super``,
    ``sparsest_super``) or ``winning_ticket`` (role ``winning``), and the matching run colour.

    Args:
        named: ``{role: TicketResult}`` (``Verdict.named``); a ticket without a run id is skipped.
    """
    for role, ticket in sorted(named.items(), key=lambda item: item[0] != "winning"):  # super wins over winning
        if ticket.run_id:
            kind = "winning_ticket" if role == "winning" else "super_ticket"
            client.set_tag(ticket.run_id, VERDICT_TAG, kind)
            client.set_tag(ticket.run_id, "mlflow.runColor", RUN_COLORS[kind])


def log_intervals(client: MlflowClient, tickets: list) -> None:
    """Log on each trial's run the verdict's paired difference from the dense model with its interval, in points
    (100 x dev-score units), as the terminal and the verdict lines give it (``+0.3 points [-0.3, +1.2]``):
    metrics ``difference``, ``difference_low`` and ``difference_high``; for a control, its difference from its good
    ticket as ``versus_good``, ``versus_good_low`` and ``versus_good_high``. Each is rounded to what the dev set
    and seeds resolve (``round_points``: 0.1 point on RTE). The dense run (paired with itself) and trials with no
    finished seed get none.

    Args:
        tickets: ``TicketResult`` s after ``search.verdict.analysis.decide`` (which sets their intervals).
    """
    from trainables.resolution import round_points

    for ticket in tickets:
        if not ticket.run_id or (ticket.is_dense and ticket.control == "good"):
            continue
        rows = []
        for prefix, interval in (("difference", ticket.difference), ("versus_good", ticket.versus_good)):
            if interval is not None:
                rows += [(f"{prefix}{suffix}", round_points(value, interval.examples, interval.seeds))
                         for suffix, value in (("", interval.mean), ("_low", interval.low), ("_high", interval.high))]
        if rows:
            now = int(time.time() * 1000)
            client.log_batch(ticket.run_id, metrics=[Metric(key, value, now, 0) for key, value in rows
                                                     if math.isfinite(value)])
