"""Pre-flight: is there disk space for what a study will write?

A study writes, per seed, the dense fine-tune (and one snapshot per ``step:K`` rewinding point) into the cache under
the storage path, unless the cache holds it already; each running trial writes one model beside its Tune state;
the weights kept for export (``--keep-weights``) go to the MLflow artifact store, which for a local SQLite
tracking URI is the experiment's ``artifact_location`` (MLflow's default for a new one: ``./mlruns``). Every such
file is as large as the model's weights; IMP's per-level weights are not counted. The estimate is an upper bound of these files plus 10 % for the small ones
(masks, scores, plots, logs); a disk that cannot hold it is refused before anything is written. A hub model's
size is not known before it is downloaded, so its study is not checked.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from search.errors import UsageError
from search.records import sqlite_uri
from search.records.tracking import resolve_tracking_uri
from search.study.settings import StudySettings

#: Named tickets whose weights ``--keep-weights named`` keeps per seed, besides the dense model's: the super
#: ticket, the sparsest super ticket and the winning ticket (``search.verdict.analysis.Verdict.named``).
NAMED_ROLES = 3
#: Room for what is small beside the weights (masks, importance scores, plots, logs, databases).
MARGIN = 1.1


def weight_bytes(model: str) -> int | None:
    """Bytes of a local model folder's weights (a sharded checkpoint's shards summed), ``None`` for a hub id."""
    folder = Path(model)
    if not folder.is_dir():
        return None
    for pattern in ("model*.safetensors", "pytorch_model*.bin"):
        files = list(folder.glob(pattern))
        if files:
            return sum(f.stat().st_size for f in files)
    return None


def _device(path: Path) -> tuple[int, Path]:
    """The filesystem (``st_dev``) and the nearest existing folder of ``path`` (which may not exist yet)."""
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return os.stat(existing).st_dev, existing


def artifact_folder(settings: StudySettings) -> Path | None:
    """Where MLflow will write the study's artifacts on this machine: the ``artifact_location`` of the task's
    experiment when a local SQLite store holds it already, else MLflow's default for a new one (``./mlruns``);
    ``None`` for a tracking server (its artifacts are stored elsewhere)."""
    import sqlite3
    from contextlib import closing
    from urllib.parse import unquote, urlparse

    from search.records.tracking import EXPERIMENT_PREFIX

    uri = resolve_tracking_uri(settings.mlflow_uri)
    if not uri.startswith(sqlite_uri.PREFIX):
        return None
    database = sqlite_uri.path_of(uri)
    if database.is_file():
        try:
            with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
                row = db.execute("SELECT artifact_location FROM experiments WHERE name = ?",
                                 (f"{EXPERIMENT_PREFIX}-{settings.task}",)).fetchone()
        except sqlite3.Error:
            row = None  # not an MLflow database yet: the tracking check reports what matters
        if row and row[0]:
            location = urlparse(row[0])
            return Path(unquote(location.path)) if location.scheme in ("", "file") else None
    return Path.cwd() / "mlruns"


def running_trials(settings: StudySettings) -> int:
    """Trials at once on this machine: ``--concurrent-trials``, else as many as its CPUs and GPUs hold (as
    ``search.study.orchestrate.concurrent_trials`` counts a local Ray instance)."""
    import torch

    from search.study.checks import local_cpus, trial_slots

    return trial_slots(settings, local_cpus(), torch.cuda.device_count())


def planned_bytes(settings: StudySettings, model: int) -> dict[tuple[int, Path], int]:
    """Bytes the study will write per filesystem, for weights of ``model`` bytes: ``{(st_dev, folder): bytes}``.
    A resumed study counts only what is still to come: the dense fine-tunes not cached yet and its running
    trials (its kept weights were counted when it started)."""
    from trainables.cache import DenseSpec, dense_entry

    seeds = [s for s in settings.seeds if not dense_entry(
        DenseSpec(settings.model, settings.task, s, settings.finetune, settings.data), settings.cache_dir).exists()]
    storage = (len(seeds) * (1 + len(settings.rewind_steps)) + min(running_trials(settings), settings.num_trials)) \
        * model
    where = _device(settings.root)
    plan: dict[tuple[int, Path], int] = {where: storage}
    artifacts = artifact_folder(settings)
    if artifacts is not None and not settings.resume:
        kept = {"none": 0, "named": 1 + NAMED_ROLES, "all": settings.num_trials}[settings.keep_weights]
        store = _device(artifacts)
        store = where if store[0] == where[0] else store
        plan[store] = plan.get(store, 0) + kept * len(settings.seeds) * model
    return plan


def check_disk_space(settings: StudySettings) -> None:
    """Each disk the study writes to has room for what it will write (``planned_bytes``, plus ``MARGIN``).

    Raises:
        UsageError: a disk that cannot hold it, with the space free, the space needed and what to change.
    """
    model = weight_bytes(settings.model)
    if model is None:  # a hub model's size is unknown before it is downloaded
        return
    for (_, folder), needed in planned_bytes(settings, model).items():
        needed = int(needed * MARGIN)
        free = shutil.disk_usage(folder).free
        if free < needed:
            raise UsageError(f"{folder} has {_size(free)} free, but the study will write about {_size(needed)} "
                             f"there (dense fine-tunes, trial and kept weights of {_size(model)} each): free space, "
                             f"pass another --storage-path or --mlflow-uri, or keep fewer weights (--keep-weights none)")


def _size(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.0f} MB"
