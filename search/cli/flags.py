"""Every flag of a study, declared once: the parser, its help texts, the budget defaults and the range checks are
all made from ``STUDY_FLAGS`` (and the method options from ``trainables.pruning.registry``).

A ``Flag`` names its settings key (``num_trials`` is ``--num-trials``), its type, its default or the budget field
that supplies it (``spaces.budgets.Budget``), its allowed range, and a help text; the help texts read defaults and
budget values from the declaration, so ``--help`` cannot drift from what a study does. ``search.multitask`` and
``search.importance_check`` take the flags they share with a study from here, and every command that reads or writes
studies takes ``--storage-path`` and ``--mlflow-uri`` through ``add_store_flags`` and resolves them with
``resolve_storage`` and ``resolve_mlflow_uri``, as a study does. Only light modules are imported, so
``--help`` does not wait for torch.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from search.errors import UsageError
from spaces.budgets import BUDGETS, Budget

#: Help groups, in the order ``--help`` shows them.
GROUPS = {"what": "what to search", "options": "method options ([methods] each applies to)",
          "budget": "budget (defaults come from --budget; any flag here overrides it)",
          "decide": "how the search decides", "run": "where it runs and where results go"}


@dataclass(frozen=True)
class Flag:
    """One command-line flag.

    Attributes:
        name: the settings key (``args.<name>``); the flag is ``--<name with dashes>``.
        group: its ``GROUPS`` key.
        help: what it does, with units; ``{default}`` is replaced by the default, and a flag whose help does not
            name it gets ``(default ...)`` appended (the budget's values for a budget flag).
        type: the value's type (``bool`` with ``action`` ``store_true`` is an on/off flag).
        default: the value when the flag is not given and no budget supplies one.
        budget: the ``Budget`` field that supplies the default (``epochs``: per task), or ``None``.
        choices: the allowed values, if a closed set.
        minimum: the smallest allowed value (checked after the budget's default is applied), with ``why`` added
            to the message.
        check: ``check(value)`` -> the end of an error message (``"must be ..."``) for a value out of range, or
            ``None``; for ranges ``minimum`` cannot state.
        required: the flag must be given.
        action: an argparse action instead of a typed value (``store_true``).
        metavar: argparse's metavar.
    """

    name: str
    group: str
    help: str
    type: type = str
    default: Any = None
    budget: str | None = None
    choices: tuple | None = None
    minimum: float | None = None
    why: str = ""
    check: Callable[[Any], str | None] | None = None
    required: bool = False
    action: str | None = None
    metavar: str | None = None

    @property
    def flag(self) -> str:
        """The command-line spelling."""
        return "--" + self.name.replace("_", "-")

    def help_text(self) -> str:
        """The help with its default: the declared one, or each budget's value."""
        if self.budget is not None:
            return f"{self.help} (default: the budget's: {budget_values(self.budget)})"
        if "{default}" in self.help:
            return self.help.replace("{default}", _show(self.default))
        if self.default is None or self.action == "store_true" or self.required:
            return self.help
        return f"{self.help} (default {_show(self.default)})"

    def add_to(self, parser) -> None:
        """Add this flag to an argparse parser or group."""
        kwargs = {"dest": self.name, "help": self.help_text().replace("%", "%%")}
        if self.action:
            kwargs["action"] = self.action
        else:
            kwargs.update(type=self.type, default=self.default if self.budget is None else None)
            if self.choices:
                kwargs["choices"] = list(self.choices)
            if self.metavar:
                kwargs["metavar"] = self.metavar
        if self.required:
            kwargs["required"] = True
        parser.add_argument(self.flag, **kwargs)

    def validate(self, value) -> None:
        """Raise ``UsageError`` naming the flag, the value and the allowed range when ``value`` is outside it."""
        if value is None:
            return
        if self.minimum is not None and value < self.minimum:
            raise UsageError(f"{self.flag} {_show(value)} must be at least {_show(self.minimum)}"
                             + (f" ({self.why})" if self.why else ""))
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise UsageError(f"{self.flag} {_show(value)} {problem}")


def _show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _per_task(epochs: dict) -> str:
    other = epochs[None]
    special = {}
    for task, value in epochs.items():
        if task is not None and value != other:
            special.setdefault(value, []).append(task)
    return f"{other}" + "".join(f" ({value} on {', '.join(tasks)})" for value, tasks in special.items())


def budget_values(field: str) -> str:
    """Each budget's value of ``field``, e.g. ``smoke 500, paper all``."""
    def show(budget: Budget) -> str:
        value = getattr(budget, field)
        if isinstance(value, dict):
            return _per_task(value)
        return "all" if value is None else _show(value)
    return ", ".join(f"{name} {show(budget)}" for name, budget in BUDGETS.items())


def budget_summary(budget: Budget, epochs: str = "epochs") -> str:
    """One budget in words, from its fields: data, length, optimiser, epochs (the ``epochs`` field named), seeds,
    and for a study (``epochs="epochs"``) its trials."""
    data = "full data" if budget.max_train_examples is None else f"{budget.max_train_examples} training examples"
    runs = _per_task(budget.epochs) if epochs == "epochs" else str(getattr(budget, epochs))
    trials = f", at most {budget.num_trials} trials" if epochs == "epochs" else ""
    return (f"{data}, length {budget.max_seq_length}, {budget.optimizer} lr {_show(budget.learning_rate)}, batch "
            f"{budget.batch_size}, {runs} epochs, {budget.seeds} seeds{trials}")


def _fraction(low: float, high: float, example: str, closed_low: bool = True) -> Callable[[float], str | None]:
    """A check: the value is a fraction in [low, high) (or (low, high))."""
    def check(value):
        ok = (low <= value if closed_low else low < value) and value < high
        return None if ok else (f"must be a fraction in {'[' if closed_low else '('}{_show(low)}, {_show(high)}), "
                                f"e.g. {example} (not percent)")
    return check


def _positive(example: str) -> Callable[[float], str | None]:
    def check(value):  # no upper bound: a huge rate is how the divergence guard is tested
        return None if 0 < value < float("inf") else f"must be a positive number, e.g. {example}"
    return check


STUDY_FLAGS: tuple[Flag, ...] = (
    # what to search
    Flag("task", "what", "GLUE task: {tasks}", required=True),
    Flag("method", "what", "pruning method(s): {methods}; comma-separate several to compare them in one study",
         default="structured"),
    Flag("control", "what", "good: prune the least important units or smallest weights; random: as many, chosen "
         "uniformly (seeded); bad: as many, the most important units or largest weights (Prasanna et al.; methods "
         "with controls: {controlled}); comma-separate several to compare them", default="good"),
    Flag("rewind", "what", "rewinding point(s): pretrained (re-fine-tune the ticket from the pre-trained weights), "
         "step:K (the dense fine-tune's weights after K optimiser steps), none (the fine-tuned weights, pruned, "
         "evaluated once); comma-separate several to let Optuna choose", default="pretrained"),
    Flag("sparsity_min", "what", "lowest sparsity searched, a fraction in [0, 1) (default: the method's: {low})",
         type=float),
    Flag("sparsity_max", "what", "highest sparsity searched, a fraction in [0, 1) (default: the method's: {high})",
         type=float),
    Flag("sparsity_step", "what", "sparsity grid step, a fraction (default: the method's: {step})", type=float),
    Flag("model", "what", "hub id or local Hugging Face directory of a BERT-family encoder (default "
         "$SUPERTICKETS_MODEL, then ./supertickets.toml, then bert-base-uncased)"),
    Flag("glue_dir", "what", "classic GLUE directory (default $GLUE_DIR, then ./supertickets.toml, then the hub's "
         "nyu-mll/glue)"),
    Flag("trust_remote_code", "what", "run the Python a model folder or hub repository ships (its config's "
         "auto_map), as transformers' trust_remote_code; off: such a model is refused. Only for code you trust",
         type=bool, action="store_true"),
    # budget
    Flag("budget", "budget", "{budgets}", choices=tuple(BUDGETS), default="paper"),
    Flag("num_trials", "budget", "at most this many trials, the dense one included (the verdict search usually "
         "stops sooner)", type=int, budget="num_trials", minimum=1),
    Flag("seeds", "budget", "seeds per trial, run one after another; each is paired with the dense model of the "
         "same seed", type=int, budget="seeds", minimum=1),
    Flag("epochs", "budget", "fine-tuning epochs of the dense model and of each ticket", type=int, budget="epochs",
         minimum=1),
    Flag("learning_rate", "budget", "peak learning rate", type=float, budget="learning_rate",
         check=_positive("2e-5")),
    Flag("batch_size", "budget", "examples per step", type=int, budget="batch_size", minimum=1),
    Flag("optimizer", "budget", "adamw or adamax", budget="optimizer"),
    Flag("max_seq_length", "budget", "tokens per example", type=int, budget="max_seq_length", minimum=1),
    Flag("precision", "budget", "auto: bf16 autocast on GPUs that support it, fp16 with loss scaling on other "
         "GPUs, fp32 on CPUs; or force bf16, fp16 or fp32 (weights and optimiser stay fp32)",
         choices=("auto", "bf16", "fp16", "fp32"), default="auto"),  # trainables.finetune.PRECISIONS
    Flag("max_train_examples", "budget", "train on a seeded subset of this size (0: all)", type=int,
         budget="max_train_examples", minimum=0, why="0: all examples"),
    Flag("max_dev_examples", "budget", "evaluate on the first N dev examples (0: all)", type=int,
         budget="max_dev_examples", minimum=0, why="0: all examples"),
    Flag("grace_period", "budget", "reports (epochs of the first seed) before ASHA may stop a trial (with "
         "--scheduler asha)", type=int, budget="grace_period", minimum=1,
         why="reports before ASHA may stop a trial"),
    # how the search decides
    Flag("search", "decide", "verdict: test the winning sequence in its own order (least sparse first, until a "
         "ticket fails), then screen every point past its end for super tickets (with --scheduler race a point "
         "that cannot be one stops after one or two seeds), run controls, and stop once the verdict is settled; "
         "bisect: bisection for the end of the sequence, then the best super ticket's neighbours (cheaper, blind "
         "to super tickets it does not meet); tpe / random: Optuna's TPE or random sampler for --num-trials "
         "trials; grid: every grid point", choices=("verdict", "bisect", "tpe", "random", "grid"),
         default="verdict"),
    Flag("scheduler", "decide", "race (default with several seeds): stop a ticket between seeds once its interval "
         "shows it cannot be named even if the remaining seeds go its way (a futility test); asha: ASHA on the "
         "reports (epochs); none (default with one seed): every trial runs every seed and epoch",
         choices=("race", "asha", "none")),
    Flag("confidence", "decide", "confidence level of every interval, a fraction", type=float, default=0.95,
         check=_fraction(0.5, 1, "0.95")),
    Flag("match_tolerance", "decide", "a winning ticket is shown no worse than dense by more than this, in "
         "dev-score units (default {default} = 1 point): its interval's lower bound is at least -tolerance, and so "
         "is every less sparse ticket tested on its curve", type=float, default=0.01,
         check=lambda v: None if 0 <= v < 1 else "must be a fraction in [0, 1) of the dev score, e.g. 0.01 for 1 "
         "point (not percent)"),
    # where it runs
    Flag("concurrent_trials", "run", "trials at once (default: as many as the Ray cluster's CPUs and GPUs hold when "
         "the study starts; none is queued, so each new point is chosen knowing the results so far)", type=int,
         minimum=1),
    Flag("cpus_per_trial", "run", "CPUs per trial, also the torch threads of its fine-tune (less its data "
         "workers)", type=float, default=2.0, check=lambda v: None if v > 0 else "must be above 0"),
    Flag("max_failures", "run", "times a trial is restarted, from its first epoch under a new MLflow run, after "
         "its worker or node died or it raised (a diverged trial is not restarted: it is FAILED)", type=int,
         default=2, minimum=0, why="0: a failed trial is not restarted"),
    Flag("keep_weights", "run", "fine-tuned weights kept and logged to the child runs (for python -m "
         "search.export): named (the dense model and the tickets the verdict names), all (every good ticket's, "
         "logged to its run) or none. Each trial writes its weights while the study runs (one model per good "
         "trial and seed on disk at most)", choices=("named", "all", "none"), default="named"),
    Flag("data_workers", "run", "data-loader worker processes per fine-tune, collating batches into pinned memory "
         "beside the training loop (no effect on results): a number, or auto (one per CPU of the trial beyond "
         "the first, at most 4, on a trial with a GPU; 0 on the CPU, where they would take cores from training)",
         default="auto"),
    Flag("gpus_per_trial", "run", "GPUs per trial, fractions allowed (0.25 packs 4 trials on a GPU); default 1 if "
         "CUDA is visible, else 0", type=float,
         check=lambda v: "must be at least 0" if v < 0 else (
             "Ray takes a fraction of one GPU or whole GPUs: pass e.g. 0.5, 1 or 2"
             if v > 1 and not float(v).is_integer() else None)),
    Flag("search_seed", "run", "seed of the Optuna sampler", type=int, default=0, minimum=0),
    Flag("storage_path", "run", "where studies and the caches are stored: a folder (on a cluster, one every node "
         "mounts) or a URI Ray Tune accepts (s3://bucket/prefix, gs://..., "
         "s3://...?endpoint_override=host:port&scheme=http for MinIO), which every node reads and writes",
         default="supertickets_results"),
    Flag("local_dir", "run", "with a storage URI: the local folder, the same path on every node, where the caches "
         "and the study's files are kept before they are uploaded (default "
         "~/.cache/supertickets/<bucket and prefix>)"),
    Flag("study_name", "run", "name of the study (default <task>-<method>-<date>-<time>)"),
    Flag("resume", "run", "resume the interrupted study --study-name", action="store_true"),
    Flag("mlflow_uri", "run", "MLflow tracking URI: sqlite:////absolute/path/mlflow.db (a relative path is made "
         "absolute) or http(s)://host:port (default {mlflow_default})"),
    Flag("optuna_storage", "run", "Optuna RDB storage of the search, for optuna-dashboard (default: optuna.db "
         "beside the MLflow SQLite database, else in --storage-path)"),
)

FLAGS: dict[str, Flag] = {flag.name: flag for flag in STUDY_FLAGS}

#: Where ``--mlflow-uri`` points when it is not given (``search.records.tracking.resolve_tracking_uri``).
MLFLOW_DEFAULT = "$MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db"
#: The flags that say where studies are, which every command that reads or writes studies takes (``add_store_flags``).
STORE_FLAGS = ("storage_path", "mlflow_uri")


def budget_default(flag: Flag, budget: Budget, task: str):
    """The value ``budget`` gives ``flag`` on ``task`` (``epochs`` per task)."""
    return budget.epochs_for(task) if flag.budget == "epochs" else getattr(budget, flag.budget)


def value(args: argparse.Namespace, flag: Flag | str, budget: Budget | None = None, task: str = ""):
    """The value of ``flag`` (a ``Flag`` or a name in ``FLAGS``): as given, else the budget's, else the declared
    default; checked against its declared range.

    Raises:
        UsageError: the value is outside the flag's range.
    """
    flag = FLAGS[flag] if isinstance(flag, str) else flag
    given = getattr(args, flag.name, None)
    if given is None and flag.budget is not None and budget is not None:
        given = budget_default(flag, budget, task)
    flag.validate(given)
    return given


class _Unfilled(dict):
    def __missing__(self, key):  # placeholders filled later (``{default}``) or by another caller stay as they are
        return "{" + key + "}"


def add_flags(parser, names, groups: bool = True, **texts) -> None:
    """Add the study flags ``names`` to ``parser``, in their help groups (or all in ``parser`` itself), with
    ``texts`` filling the placeholders of their help (``{tasks}``, ``{methods}``, ...; ``{mlflow_default}`` is
    ``MLFLOW_DEFAULT`` unless given)."""
    texts.setdefault("mlflow_default", MLFLOW_DEFAULT)
    made = {}
    for name in names:
        flag = FLAGS[name]
        if "{" in flag.help:
            flag = replace(flag, help=flag.help.format_map(_Unfilled(texts)))
        target = parser
        if groups:
            if flag.group not in made:
                made[flag.group] = parser.add_argument_group(GROUPS[flag.group])
            target = made[flag.group]
        flag.add_to(target)


def add_store_flags(parser, storage: str = "", mlflow: str = "", mlflow_default: str = MLFLOW_DEFAULT) -> None:
    """Add ``--storage-path`` and ``--mlflow-uri`` to ``parser`` (or a group) as a study declares them
    (``STUDY_FLAGS``): the same default and help, for every command that reads or writes studies (compare,
    multitask, export). Read them back with ``resolve_storage`` and ``resolve_mlflow_uri``.

    Args:
        storage: a sentence added to ``--storage-path``'s help: what this command does with it.
        mlflow: the same for ``--mlflow-uri``.
        mlflow_default: the default ``--mlflow-uri``'s help names, where this command's differs from a study's.
    """
    for name, note in zip(STORE_FLAGS, (storage, mlflow)):
        flag = FLAGS[name]
        text = flag.help.format_map(_Unfilled(mlflow_default=mlflow_default))
        replace(flag, help=f"{text}; {note}" if note else text).add_to(parser)


def resolve_storage(storage_path: str, local_dir: str | None = None) -> tuple[str, str]:
    """``--storage-path`` (and ``--local-dir``) as a study resolves them: ``(storage, local)``, the storage folder
    made absolute (``~`` expanded) and also the local folder; or the storage URI as given (no trailing ``/``) with
    ``--local-dir`` (default ``~/.cache/supertickets/<bucket and prefix>``) made absolute. Nothing is checked or
    created: ``search.cli.preflight.check_storage_path`` checks a folder.

    Raises:
        UsageError: an empty ``--storage-path`` or ``--local-dir`` (``Path("")`` would be the working folder).
    """
    for named, given in (("--storage-path", storage_path), ("--local-dir", local_dir)):
        if given is not None and not given.strip():
            raise UsageError(f"{named} is empty: pass a folder, or leave the flag out for its default")
    if "://" not in storage_path:  # trainables.mirror.is_uri
        folder = str(Path(storage_path).expanduser().resolve())
        return folder, folder
    uri = storage_path.rstrip("/")
    split = urlsplit(uri)
    default = Path("~/.cache/supertickets") / re.sub(r"[^A-Za-z0-9._-]+", "_", f"{split.scheme}-{split.netloc}{split.path}")
    return uri, str(Path(local_dir or default).expanduser().resolve())


def resolve_mlflow_uri(flag: str | None, existing: bool = False,
                       fix: str = "pass the --mlflow-uri the studies ran with (or set MLFLOW_TRACKING_URI)") -> str:
    """``--mlflow-uri`` as a study resolves it: the flag, else ``$MLFLOW_TRACKING_URI``, else
    ``sqlite:///<cwd>/mlflow.db``, a relative SQLite path made absolute (``search.records.tracking.
    resolve_tracking_uri``), then checked (``search.cli.preflight.check_mlflow_uri``: a known scheme, a writable
    SQLite file, a server that answers; with ``existing``, for a command that reads studies, a SQLite file must be
    an MLflow database already, else the message ends with ``fix``). Imports MLflow: call it after parsing.

    Raises:
        UsageError: the problem and the fix, in one line.
    """
    from search.cli.preflight import check_mlflow_uri

    return check_mlflow_uri(flag, existing=existing, fix=fix)
