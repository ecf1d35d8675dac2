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
from search.study.checks import check_fits, check_resume
from search.study.settings import StudySettings
from search.records.optuna_storage import check_optuna_storage
from search.records.tracking import check_tracking_uri, resolve_tracking_uri
from trainables import mirror
from trainables.data import DataFileError, check_classic_split
from trainables.mirror import open_uri
from trainables.model import UnsupportedModelError, check_local_model
from trainables.tasks import get_task

#: A study name is one folder name: letters, digits and ``._+-``, starting with a letter or digit.
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


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


def check_local_resources(settings: StudySettings) -> None:
    """What one trial asks for fits on this machine, when the study starts its own Ray instance (a cluster named by
    ``$RAY_ADDRESS`` is checked once joined: ``check_cluster_fits``)."""
    if os.environ.get("RAY_ADDRESS"):
        return
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    check_fits(settings, [(cpus, torch.cuda.device_count())], "this machine (the study's own Ray instance)")


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
