"""Pre-flight: everything a study will read or need, checked before any file, MLflow run or Ray instance exists.

``build_settings`` has checked the flags one by one; this module checks them against the world: the study name
and storage folder, the MLflow store, the GLUE files (every row), the model's weights and tokenizer, the
resources a trial asks for, the rewinding steps against the steps the dense fine-tune will take, and, for
``--resume``, that the study exists and the flags would not change it. Each failure is one ``UsageError``.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from pyarrow.fs import FileType

from search.errors import UsageError
from search.cli.settings import StudySettings
from search.study.state import STATE_FILE, StudyState, stringify, studies_under
from search.records.optuna_storage import check_optuna_storage
from search.records.tracking import check_tracking_uri, resolve_tracking_uri
from trainables import mirror
from trainables.data import DataFileError, check_classic_split
from trainables.mirror import open_uri
from trainables.model import UnsupportedModelError, check_local_model
from trainables.tasks import get_task

#: A study name is one folder name: letters, digits and ``._+-``, starting with a letter or digit.
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
#: Settings a resumed study may change: they decide how fast it runs, never what it finds.
MAY_CHANGE_ON_RESUME = frozenset({"resume", "concurrent_trials", "local_dir", "model_source", "glue_source", "max_failures",
                                  "data_workers"})
#: Settings added after some studies were stored: absent from an older state file, they are not compared (such a
#: study resumes with what it had, e.g. its Optuna study in the searcher's saved state rather than in optuna.db).
ADDED_SINCE = frozenset({"optuna_storage"})


def check_before_start(settings: StudySettings) -> None:
    """Run every pre-flight check on ``settings`` (see the module docstring), cheapest first.

    Raises:
        UsageError: the first problem, naming it and the fix.
    """
    check_study_name(settings.study_name)
    check_storage(settings)
    check_resume(settings)
    try:
        check_tracking_uri(resolve_tracking_uri(settings.mlflow_uri))
        if settings.optuna_storage:
            check_optuna_storage(settings.optuna_storage, settings.study_name, settings.resume)
    except ValueError as err:
        raise UsageError(str(err)) from None
    check_local_resources(settings)
    check_fault_injection()
    train_examples = check_data(settings)
    check_rewind_steps(settings, train_examples)
    check_model(settings)


def check_model(settings: StudySettings) -> None:
    """A local model directory has intact weights and a tokenizer (a hub id was checked by its config)."""
    check_model_dir(settings.model)


def check_model_dir(model: str) -> None:
    """``model``, when a local directory, has intact weights and a loadable tokenizer.

    Raises:
        UsageError: what is missing or corrupt.
    """
    if os.path.isdir(model):
        try:
            check_local_model(model)
        except UnsupportedModelError as err:
            raise UsageError(str(err)) from None


def check_fault_injection() -> None:
    """``$SUPERTICKETS_INJECT_FAULT`` (the fault tests' hook), when set, is a sparsity every trial can parse.

    Raises:
        UsageError: it is not a number in [0, 1).
    """
    from trainables.trial import FAULT_ENV

    value = os.environ.get(FAULT_ENV)
    try:
        if value and not 0 <= float(value) < 1:
            raise ValueError
    except ValueError:
        raise UsageError(f"${FAULT_ENV}={value!r} must be a sparsity in [0, 1) (the trial to crash, for tests): "
                         "unset it") from None


def check_study_name(name: str, flag: str = "--study-name") -> None:
    """A study name (given by ``flag``) is one path component of safe characters (it names a folder and an MLflow
    run)."""
    if not STUDY_NAME.fullmatch(name):
        raise UsageError(f"{flag} {name!r} must be one folder name of letters, digits and . _ + - (at most "
                         "128, starting with a letter or digit): choose another")


def check_storage_path(storage: Path) -> None:
    """``storage`` is a writable folder, or can be created as one (nothing is created here)."""
    existing = storage
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--storage-path {storage}: {existing} is a file, not a folder: pass a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--storage-path {storage}: {existing} is not writable: pass a folder you can write")


def check_storage(settings: StudySettings) -> None:
    """The local folder can be written and a storage URI opened; this process then reads and writes the URI's copy
    of the local folder through ``trainables.mirror``."""
    check_storage_path(settings.root)
    if settings.mirror is not None:
        check_storage_uri(settings.storage_path)
        mirror.share(settings.mirror.local, settings.mirror.uri)


def check_storage_uri(uri: str) -> None:
    """``uri`` opens (a scheme ``pyarrow.fs`` knows, credentials found) and can be listed: a bucket that exists."""
    try:
        filesystem, path = open_uri(uri)
        top = path.split("/", 1)[0]
        found = filesystem.get_file_info(top).type != FileType.NotFound
        filesystem.get_file_info(path)
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError and others, by scheme and client
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UsageError(f"--storage-path {uri} cannot be opened ({first}): check the URI, the bucket and the "
                         "credentials (e.g. AWS_ACCESS_KEY_ID), or pass a folder") from None
    if not found:
        raise UsageError(f"--storage-path {uri}: {top} does not exist there: create the bucket first, or pass another "
                         "--storage-path")


def check_resume(settings: StudySettings) -> None:
    """``--resume`` names a study that exists and keeps its settings; a new study does not reuse a name.

    A resumed study continues with the settings it was started with (Tune restores them), so a flag that
    differs would be ignored: that is refused, naming each setting, unless it is in ``MAY_CHANGE_ON_RESUME``.
    """
    storage = settings.root
    mirror.available(settings.study_dir / STATE_FILE)  # started on another machine: its state is under the URI
    state = StudyState.read(settings.study_dir)
    if not settings.resume:
        if state is not None:
            raise UsageError(f"study {settings.study_name} exists under {settings.storage_path}: add --resume to "
                             "continue it, or choose another --study-name")
        return
    if state is None:
        names = studies_under(storage)
        listing = ", ".join(names) if names else "none"
        known = f"studies there: {listing}" if settings.mirror is None else f"studies in {storage}: {listing}"
        raise UsageError(f"no study {settings.study_name} to resume under {settings.storage_path} ({known}): "
                         "pass --study-name of one of them, or --storage-path where it ran")
    if not state.params:
        return  # a study from before settings were stored: nothing to compare
    now = stringify(settings.params())
    changed = [key for key in sorted(set(now) | set(state.params))
               if key not in MAY_CHANGE_ON_RESUME and now.get(key) != state.params.get(key)
               and not (key in ADDED_SINCE and key not in state.params)]
    if changed:
        shown = "; ".join(f"{key} {state.params.get(key, '(unset)')} -> {now.get(key, '(unset)')}" for key in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        how = f"run: {state.command}" if state.command else "give the flags it was started with"
        raise UsageError(f"--resume would change study {settings.study_name}: {shown}{more}; to resume it unchanged, "
                         f"{how}")


def check_local_resources(settings: StudySettings) -> None:
    """What one trial asks for fits on this machine, when the study starts its own Ray instance (a cluster named by
    ``$RAY_ADDRESS`` is checked once joined: ``check_cluster_fits``)."""
    if os.environ.get("RAY_ADDRESS"):
        return
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    check_fits(settings, [(cpus, torch.cuda.device_count())], "this machine (the study's own Ray instance)")


def check_fits(settings: StudySettings, nodes: list[tuple[float, float]], where: str) -> None:
    """``--cpus-per-trial`` and ``--gpus-per-trial`` fit on one of ``nodes`` (``(cpus, gpus)`` each), else Ray
    would wait forever for a node that can run a trial. ``where`` names the biggest node in the message.

    Raises:
        UsageError: what a trial asks for, what the biggest node has, and the flag to change.
    """
    cpus = max((c for c, _ in nodes), default=0)
    gpus = max((g for _, g in nodes), default=0)
    if settings.gpus_per_trial > gpus:
        fix = "pass --gpus-per-trial 0 (CPU)" if gpus == 0 else f"pass --gpus-per-trial {gpus:g} or less"
        raise UsageError(f"--gpus-per-trial {settings.gpus_per_trial:g} does not fit: {where} has {gpus:g} "
                         f"GPU(s): {fix}")
    if not any(c >= settings.cpus_per_trial and g >= settings.gpus_per_trial for c, g in nodes):
        raise UsageError(f"--cpus-per-trial {settings.cpus_per_trial:g} does not fit: {where} has {cpus:g} "
                         f"CPU(s){f' and {gpus:g} GPU(s)' if gpus else ''}: pass --cpus-per-trial "
                         f"{max(1, int(cpus)):d} or less")


def check_data(settings: StudySettings) -> int | None:
    """Parse the task's train and dev files row by row (classic GLUE directory only; the hub's copy is
    not fetched here). Returns the number of training examples a seed trains on, or ``None`` from the hub."""
    if settings.glue_dir is None:
        return None
    train = check_task_data(settings.task, settings.glue_dir)
    limit = settings.data.max_train_examples
    return min(train, limit) if limit else train


def check_task_data(task_name: str, glue_dir: str) -> int:
    """Parse ``task_name``'s classic train and dev files in ``glue_dir`` row by row; returns the training examples.

    Raises:
        UsageError: the first problem in a file (``<path> line <n>: ...``).
    """
    task = get_task(task_name)
    try:
        train = check_classic_split(task, glue_dir, task.classic.train_file)
        check_classic_split(task, glue_dir, task.classic.dev_file)
    except DataFileError as err:
        raise UsageError(str(err)) from None
    return train


def check_rewind_steps(settings: StudySettings, train_examples: int | None) -> None:
    """Every ``step:K`` lies within the dense fine-tune's optimiser steps (epochs x batches per epoch), so a study
    does not fail after its whole dense fine-tune."""
    if train_examples is None or not settings.rewind_steps:
        return
    total = settings.finetune.epochs * math.ceil(train_examples / settings.finetune.batch_size)
    late = [k for k in settings.rewind_steps if k > total]
    if late:
        raise UsageError(f"--rewind step:{late[0]} is past the dense fine-tune's last step ({total} = "
                         f"{settings.finetune.epochs} epochs x {math.ceil(train_examples / settings.finetune.batch_size)}"
                         f" batches of {settings.finetune.batch_size}): pass step:K with K at most {total}")
