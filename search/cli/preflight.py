"""Pre-flight: everything a study will read or need, checked before any file, MLflow run or Ray instance exists.

``build_settings`` has checked the flags one by one; this module checks them against the world: the study name
and storage folder, the MLflow store, the GLUE files (every row), the model's weights and tokenizer, the
resources a trial asks for, the rewinding steps against the steps the dense fine-tune will take, and, for
``--resume``, that the study exists and the flags would not change it. Each failure is one ``UsageError``.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sqlite3
from pathlib import Path
from urllib.parse import quote

from pyarrow.fs import FileType

from search.errors import UsageError
from search.cli.disk import check_disk_space
from search.study.checks import check_fits, check_resume, local_cpus
from search.study.settings import StudySettings
from search.records.optuna_storage import check_optuna_storage
from search.records import sqlite_uri
from search.records.tracking import check_tracking_uri, resolve_tracking_uri
from trainables import mirror
from trainables.data import DataFileError, check_classic_split
from trainables.mirror import open_uri
from trainables.model import UnsupportedModelError, check_local_model
from trainables.tasks import get_task

#: A study name is one folder name: letters, digits and ``._+-``, starting with a letter or digit.
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
#: What the project itself creates at the top of a storage path, so no study may be named so (in any case): the
#: shared cache (``StudySettings.cache_dir``), ``search.compare``'s and ``search.multitask``'s folders, and the
#: Optuna database when MLflow is on a server (``resolve_optuna_storage``). ``.locks`` starts with a dot, which
#: ``STUDY_NAME`` refuses already.
RESERVED_NAMES = ("cache", "comparisons", "multitask", "optuna.db")


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
            check_optuna_storage(settings.optuna_storage, settings.study_name, settings.resume, settings.root)
    except ValueError as err:
        raise UsageError(str(err)) from None
    check_local_resources(settings)
    check_fault_injection()
    train_examples = check_data(settings)
    check_rewind_steps(settings, train_examples)
    check_model(settings)
    check_disk_space(settings)


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
    run), and none of the ``RESERVED_NAMES`` the project gives its own files under the storage path.

    Raises:
        UsageError: naming the flag, the name and the rule.
    """
    if not STUDY_NAME.fullmatch(name):
        raise UsageError(f"{flag} {name!r} must be one folder name of letters, digits and . _ + - (at most "
                         "128, starting with a letter or digit): choose another")
    if name.lower() in RESERVED_NAMES:
        raise UsageError(f"{flag} {name!r} is a name the project keeps for its own files under the storage path "
                         f"({', '.join(RESERVED_NAMES)}): choose another")


def _check_creatable(path: Path, flag: str, given: str, what: str) -> None:
    """``path`` (``flag``'s value ``given``) exists as a writable folder or can be created as one: its nearest
    existing ancestor is a writable folder; the message asks for ``what`` instead."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{flag} {given}: {existing} is a file, not a folder: pass {what}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {given}: {existing} is not writable: pass {what} you can write")


def check_folder(folder: str | Path, flag: str) -> None:
    """``folder`` (given by ``flag``) is a writable folder, or can be created as one (nothing is created here). Pass
    the flag's text where there is one: an empty one is refused, not taken as the working folder.

    Raises:
        UsageError: empty, a file or under one, or not writable.
    """
    if not str(folder).strip():
        raise UsageError(f"{flag} is empty: pass a folder, or leave the flag out for its default")
    _check_creatable(Path(folder).expanduser().absolute(), flag, str(folder), "a folder")


def check_storage_path(storage: str | Path, flag: str = "--storage-path") -> None:
    """``storage`` (given by ``flag``) can hold studies: a writable folder, or one that can be created
    (``check_folder``), and not a folder of one (a study's own, or one of the ``RESERVED_NAMES`` beside studies),
    where studies would nest inside another's files. Nothing is created here.

    Raises:
        UsageError: empty, a file or under one, not writable, or a study's or the project's own folder.
    """
    from search.study.state import STATE_FILE, studies_under

    check_folder(storage, flag)
    path = Path(storage).expanduser().absolute()
    if (path / STATE_FILE).is_file():
        raise UsageError(f"{flag} {storage} is a study's folder (it holds {STATE_FILE}): pass the folder it is in, "
                         f"{path.parent}")
    if path.name.lower() in RESERVED_NAMES and studies_under(path.parent):
        raise UsageError(f"{flag} {storage} is the project's own {path.name} folder beside the studies in "
                         f"{path.parent}: pass {path.parent}")


def check_new_file(path: str, flag: str) -> Path:
    """``path`` (given by ``flag``) names a file to write that does not exist yet (nothing is overwritten), in a
    folder that exists or can be created and written; nothing is created here. Returns it absolute.

    Raises:
        UsageError: empty, an existing file or folder, or under a file or an unwritable folder.
    """
    if not path.strip():
        raise UsageError(f"{flag} is empty: pass the path of a new file")
    target = Path(path).expanduser().absolute()
    if target.is_dir():
        raise UsageError(f"{flag} {path} is a folder: pass the path of a new file (e.g. {path.rstrip('/')}/out.json)")
    if target.exists() or target.is_symlink():
        raise UsageError(f"{flag} {path} exists and would be overwritten: pass another path, or move it away first")
    _check_creatable(target.parent, flag, path, "a path in a folder")
    return target


def check_mlflow_uri(flag: str | None, existing: bool = False,
                     fix: str = "pass the --mlflow-uri the studies ran with (or set MLFLOW_TRACKING_URI)") -> str:
    """``--mlflow-uri`` (given as ``flag``; else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``)
    resolved (``resolve_tracking_uri``) and checked (``check_tracking_uri``). With ``existing`` (a tool that reads
    the runs of studies), a SQLite store must be an MLflow database already (MLflow would create an empty one),
    else the message ends with ``fix``. Returns the resolved URI.

    Raises:
        UsageError: the problem and the fix, in one line.
    """
    uri = resolve_tracking_uri(flag)
    if existing and uri.startswith(sqlite_uri.PREFIX):
        path = sqlite_uri.path_of(uri)
        if not path.is_file():
            raise UsageError(f"no MLflow database at {path}: {fix}")
        try:
            with contextlib.closing(sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)) as db:
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as err:
            raise UsageError(f"{path} is not an MLflow database ({err}): {fix}") from None
        if "experiments" not in tables:
            raise UsageError(f"{path} is not an MLflow database (no experiments table): {fix}")
    try:
        check_tracking_uri(uri)
    except ValueError as err:
        raise UsageError(str(err)) from None
    return uri


def check_tasks(text: str, flag: str = "--tasks", at_least: int = 1) -> tuple[str, ...]:
    """The comma-separated GLUE tasks of ``flag`` (``text``), lower-cased: each known and named once, at least
    ``at_least`` of them.

    Raises:
        UsageError: an unknown task, a task named twice, or too few.
    """
    from trainables.tasks import TASKS

    tasks = tuple(t.strip().lower() for t in text.split(",") if t.strip())
    for task in tasks:
        if task not in TASKS:
            raise UsageError(f"unknown task {task!r} in {flag}: choose among {', '.join(TASKS)}")
    twice = next((t for t in tasks if tasks.count(t) > 1), None)
    if twice:
        raise UsageError(f"{flag} {text} names {twice} twice: name each task once")
    if not tasks:
        raise UsageError(f"{flag} {text!r} names no task: pass e.g. {flag} rte")
    if len(tasks) < at_least:
        count = {2: "two", 3: "three"}.get(at_least, str(at_least))
        raise UsageError(f"{flag} {text}: name at least {count} different tasks (e.g. {flag} rte,mrpc)")
    return tasks


def check_model_and_data(model: str, glue_dir: str | None, tasks: tuple[str, ...]) -> str:
    """``model`` (a hub id or local folder) is a supported encoder with intact weights and tokenizer, and each of
    ``tasks`` (known names: ``check_tasks``) has classic GLUE files in ``glue_dir`` that parse row by row (``None``:
    the hub's copy, not fetched here): a study's checks, for the tools and benchmarks that take these flags.
    Returns the model, absolute when local.

    Raises:
        UsageError: a missing or unsupported model, or missing or malformed data (naming the file and line).
    """
    from search.cli.settings import check_model

    model = check_model(model)
    check_model_dir(model)
    if glue_dir is not None:
        for task in tasks:
            check_task_data(task, str(Path(glue_dir).expanduser().resolve()))
    return model


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
    from search.study.local_ray import joins_cluster

    if joins_cluster():
        return
    import torch

    cpus = local_cpus()
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
