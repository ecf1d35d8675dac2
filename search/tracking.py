"""MLflow tracking: one experiment per task, a parent run per study, a child run per trial.

Everything is logged from the Ray driver (a Tune callback), so a SQLite tracking URI works on a cluster
too, and every child run ends with a status: FINISHED, KILLED (stopped early by ASHA) or FAILED.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import time

from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient
from ray.tune import Callback

from search.optuna_search import stopped_early
from spaces.sparsity import grid_value
from trainables.metrics import METRICS

EXPERIMENT_PREFIX = "supertickets"
#: Facts about a trial's ticket, logged as params with its first report when present (structured counts,
#: unstructured counts, the achieved sparsity counted on the masked weights, IMP rounds, TAMT losses).
TICKET_PARAMS = ("heads_kept", "ffn_kept", "total_heads", "total_ffn", "head_sparsity", "ffn_sparsity",
                 "weights_kept", "total_weights", "achieved_sparsity", "imp_rounds", "imp_levels",
                 "tamt_first_loss", "tamt_last_loss", "tamt_reused", "replayed")


def resolve_tracking_uri(flag: str | None) -> str:
    """``--mlflow-uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``; a relative SQLite
    path is made absolute here, in the driver, because trials run in other working directories."""
    uri = flag or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    elif "://" not in uri:  # a bare path: a local file store would need MLFLOW_ALLOW_FILE_STORE
        uri = "sqlite:///" + str(Path(uri).resolve())
    return uri


def log_params(client: MlflowClient, run_id: str, params: dict) -> None:
    """Log ``params`` in one call (MLflow takes at most 100 per batch)."""
    items = [Param(key, str(value)) for key, value in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start:start + 100])


def experiment_id(client: MlflowClient, task: str) -> str:
    """The id of the task's experiment (``supertickets-<task>``), created on first use."""
    name = f"{EXPERIMENT_PREFIX}-{task}"
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name)


def trial_status(result: dict | None, errored: bool) -> str:
    """FINISHED, KILLED (stopped before its planned epochs) or FAILED."""
    if errored:
        return RunStatus.to_string(RunStatus.FAILED)
    return RunStatus.to_string(RunStatus.KILLED if stopped_early(result) else RunStatus.FINISHED)


def _metrics(result: dict) -> dict[str, float]:
    return {k: float(v) for k, v in result.items()
            if (k.startswith("dev_score") or k in METRICS or k == "achieved_sparsity") and isinstance(v, (int, float))}


class MlflowTrialCallback(Callback):
    """A Tune callback that gives each trial a child run of the study's parent run.

    Args:
        tracking_uri: absolute MLflow tracking URI.
        experiment: experiment id.
        parent_run_id: the study's run.
        trial_params: parameters shared by every trial (task, method, seeds, ...), logged on each child.

    Attributes:
        runs: ``{trial_id: {"run_id", "status", "result"}}`` of the trials this process has seen.
    """

    def __init__(self, tracking_uri: str, experiment: str, parent_run_id: str, trial_params: dict):
        self.tracking_uri, self.experiment, self.parent_run_id = tracking_uri, experiment, parent_run_id
        self.trial_params = trial_params
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
        config = trial.config
        name = (f"{config.get('method', 'structured')}-{config.get('control', 'good')}-s{float(config['sparsity']):.2f}"
                f"-{config.get('rewind')}")
        run = self.client.create_run(self.experiment, run_name=name,
                                     tags={"mlflow.parentRunId": self.parent_run_id, "ray.trial_id": trial.trial_id})
        params = {**self.trial_params, **config, "method": config.get("method", "structured"),
                  "control": config.get("control", "good"), "sparsity": grid_value(config["sparsity"]),
                  "rewind": config.get("rewind")}
        log_params(self.client, run.info.run_id, params)
        self.runs[trial.trial_id] = {"run_id": run.info.run_id, "status": "RUNNING", "result": None}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        """Log one epoch's dev metrics (and the achieved sparsity) at ``step = epoch``; on the first report also
        the ticket's counts as params and its mask as artifacts (``mask.json``, ``mask/<file per seed>``)."""
        entry = self.runs[trial.trial_id]
        run_id = entry["run_id"]
        if entry["result"] is None:  # the ticket is fixed for the trial: log it with its first report
            log_params(self.client, run_id, {**{key: result[key] for key in TICKET_PARAMS if key in result},
                                             "reused_dense_finetune": result.get("reused_dense", False)})
            self.client.log_dict(run_id, json.loads(result["mask"]), "mask.json")
            for path in json.loads(result.get("mask_files", "[]")):
                if os.path.exists(path):  # on shared storage; a node-local path from another node is skipped
                    self.client.log_artifact(run_id, path, "mask")
        step, now = int(result.get("epoch", result.get("training_iteration", 0))), int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(key, value, now, step) for key, value in _metrics(result).items()])
        entry["result"] = result

    def _end(self, trial, errored: bool):
        entry = self.runs.get(trial.trial_id)
        if entry is None or entry["status"] != "RUNNING":
            return
        entry["status"] = trial_status(entry["result"], errored)
        self.client.set_terminated(entry["run_id"], status=entry["status"])

    def on_trial_complete(self, iteration, trials, trial, **info):
        """Close the run FINISHED, or KILLED when ASHA stopped it before its planned epochs."""
        self._end(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        """Close the run FAILED; the other trials go on."""
        self._end(trial, errored=True)
