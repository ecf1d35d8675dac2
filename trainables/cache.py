"""The dense fine-tune of each seed, computed once per key and reused.

Key: (model, task, seed, fine-tuning settings, data settings, cache version), hashed. Every trial and every
later study with the same key reads ``<cache_root>/dense/<key>/`` instead of fine-tuning again (as
open_lth's runner skips any step whose output exists). A file lock makes concurrent trials wait for the
one computing it; the folder appears only when complete (written aside, then renamed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file

from trainables.data import DataSettings, batches, collator, load_tokenized
from trainables import mirror, progress
from trainables.finetune import FineTuneRun, FinetuneSettings, TrainingDiverged, pick_device, show_progress
from trainables.model import load_model, load_tokenizer
from trainables.report import EpochResult
from trainables.store import compute_once
from trainables.tasks import get_task

log = logging.getLogger(__name__)

CACHE_VERSION = 4  # bump when what is stored, or how it is computed, changes


@dataclass(frozen=True)
class DenseSpec:
    """Everything the dense fine-tune of one seed depends on.

    Attributes:
        model: hub id, or absolute path of a local Hugging Face directory.
        task: GLUE task name.
        seed: seeds the classifier initialisation, data order and dropout.
        finetune: fine-tuning hyper-parameters.
        data: how much data and which sequence length.
    """

    model: str
    task: str
    seed: int
    finetune: FinetuneSettings
    data: DataSettings

    def key(self) -> str:
        """16 hex digits of SHA-256 over the spec and ``CACHE_VERSION``."""
        payload = json.dumps({"version": CACHE_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class DenseResult:
    """A cached dense fine-tune.

    Attributes:
        directory: where it is stored.
        history: per-epoch dev evaluations of the dense model, ``history[e]`` after epoch ``e + 1``.
        labels: the gold dev labels, in dev order, shape ``(n_dev,)``.
        reused: True when read from the cache, False when computed by this call.
    """

    directory: Path
    history: list[EpochResult]
    labels: list
    reused: bool

    @property
    def weights_file(self) -> Path:
        """The file of the fine-tuned state dict."""
        return self.directory / "model.safetensors"

    def weights(self) -> dict[str, torch.Tensor]:
        """The fine-tuned state dict (every parameter and buffer, classifier included)."""
        return load_file(self.weights_file)

    def step_weights(self, step: int) -> dict[str, torch.Tensor]:
        """The state dict after ``step`` optimiser steps (saved by ``ensure_dense``/``ensure_step``).

        Raises:
            FileNotFoundError: that step was never saved.
        """
        return load_file(self.directory / "steps" / f"step-{step}.safetensors")


def _read(directory: Path, reused: bool) -> DenseResult:
    record = json.loads((directory / "record.json").read_text())
    if "diverged" in record:  # recorded once, so every trial of every study fails fast with the same reason
        raise TrainingDiverged(**record["diverged"])
    history = [EpochResult.from_dict(e) for e in record["history"]]
    return DenseResult(directory, history, record["dev_labels"], reused)


def fine_tune(spec: DenseSpec, model: torch.nn.Module, on_step=None, stop_after: int | None = None,
              label: str = "dense", workers: int = 0) -> tuple[list[EpochResult], dict]:
    """Fine-tune ``model`` on ``spec``'s task, data and settings with ``spec.seed`` (data order, dropout), through
    ``FineTuneRun.epochs`` (the loop every ticket's fine-tune uses too).

    The dense fine-tune, IMP's level fine-tunes and the replay up to a rewinding step all go through here,
    so the same spec always gives the same sequence of optimiser steps.

    Args:
        spec: task, data, fine-tuning settings and seed.
        model: the model to train (already masked if it is a ticket); trained in place.
        on_step: ``on_step(step, model)`` after every optimiser step.
        stop_after: stop after this many optimiser steps (no evaluation then).
        label: names the run in the progress lines.
        workers: data-loader worker processes (``--data-workers``; no effect on the result).

    Returns:
        ``(history, info)``: per-epoch dev evaluations (``EpochResult``: metrics, mean training loss,
        per-example predictions; empty when stopped early), and ``info`` = the sizes of the train and dev
        splits, the gold ``dev_labels`` and the ``device``; ``{}`` when stopped early.

    Raises:
        TrainingDiverged: the training loss became NaN or infinite.
    """
    task = get_task(spec.task)
    device = pick_device()
    tokenizer = load_tokenizer(spec.model)
    data = load_tokenized(task, tokenizer, spec.data, seed=spec.seed)
    collate = collator(tokenizer)
    run = FineTuneRun(model, data["train"], collate, spec.finetune, spec.seed, device, workers)
    dev = batches(data["validation"], collate, spec.finetune.batch_size, device, workers=workers)
    history = []
    for result in run.epochs(dev, task, on_step, stop_after):
        history.append(result)
        log.info("%s %s seed %d epoch %d/%d: train loss %.4f, dev %s %.4f", label, spec.task, spec.seed,
                 result.epoch, spec.finetune.epochs, result.train_loss, task.primary_metric, result.dev_score)
    if stop_after is not None and run.step >= stop_after:
        return [], {}
    return history, {"train_examples": len(data["train"]), "dev_examples": len(data["validation"]),
                     "dev_labels": list(data["validation"].with_format(None)["labels"]), "device": device}


def _save_step(directory: Path, step: int, model: torch.nn.Module) -> None:
    """Write the weights after ``step`` optimiser steps to ``directory/steps/step-<step>.safetensors``."""
    folder = directory / "steps"
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".partial-step-{step}.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, partial)
    os.replace(partial, folder / f"step-{step}.safetensors")


def _compute(spec: DenseSpec, scratch: Path, steps: tuple[int, ...] = (), workers: int = 0) -> None:
    """Fine-tune, score and write the dense entry of ``spec`` into ``scratch``."""
    started = time.perf_counter()
    model = load_model(spec.model, get_task(spec.task), spec.seed)

    def on_step(step, trained):
        if step in steps:
            _save_step(scratch, step, trained)

    try:
        history, info = fine_tune(spec, model, on_step, workers=workers)
    except TrainingDiverged as err:
        log.warning("dense fine-tune %s seed %d diverged: %s", spec.task, spec.seed, err)
        diverged = {"seed": err.seed, "epoch": err.epoch, "step": err.step, "loss": err.loss}
        (scratch / "record.json").write_text(json.dumps({"key": spec.key(), "spec": asdict(spec),
                                                         "diverged": diverged}, indent=2))
        return
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, scratch / "model.safetensors")
    record = {"key": spec.key(), "spec": asdict(spec), "history": [asdict(e) for e in history],
              "dev_labels": info["dev_labels"],
              "seconds": time.perf_counter() - started, "device": str(info["device"]),
              "train_examples": info["train_examples"], "dev_examples": info["dev_examples"]}
    (scratch / "record.json").write_text(json.dumps(record, indent=2))


def dense_entry(spec: DenseSpec, cache_root: str | os.PathLike) -> Path:
    """The cache folder of ``spec``'s dense fine-tune under ``cache_root`` (it may not exist yet)."""
    return Path(cache_root).resolve() / "dense" / spec.key()


def ensure_dense(spec: DenseSpec, cache_root: str | os.PathLike, steps: tuple[int, ...] = (),
                 workers: int = 0) -> DenseResult:
    """The dense fine-tune of ``spec``: read from the cache, or computed and stored.

    Args:
        spec: what the dense model depends on.
        cache_root: the study's cache folder (``<storage>/cache``); must be shared by every node of a
            cluster.
        steps: optimiser steps whose weights a study rewinds to (``step:K``); saved during the fine-tune, or,
            when the fine-tune is cached already without them, by replaying it up to each step.
        workers: data-loader worker processes while fine-tuning (no effect on the result).

    Returns:
        the cached result; ``reused`` says whether it was there already.

    Raises:
        TrainingDiverged: the dense fine-tune diverged (recorded in the cache, so it is not tried again).
    """
    target = dense_entry(spec, cache_root)

    def write(scratch: Path) -> None:
        log.info("dense fine-tune %s seed %d (key %s): computing once for every trial", spec.task, spec.seed,
                 spec.key())
        _compute(spec, scratch, tuple(steps), workers)

    computed = compute_once(target, write)
    result = _read(target, reused=not computed)
    for step in steps:
        ensure_step(spec, result, step)
    return result


def ensure_step(spec: DenseSpec, dense: DenseResult, step: int) -> Path:
    """The weights of ``spec``'s dense fine-tune after ``step`` optimiser steps (rewinding point ``step:K``).

    Saved by the dense fine-tune when the study asked for the step; otherwise computed here once by
    replaying the fine-tune from the same seed up to ``step`` (the same data order, dropout and schedule,
    so on a CPU the weights are identical; on a GPU only up to its non-deterministic kernels).

    Returns:
        the path of ``<dense>/steps/step-<step>.safetensors``.

    Raises:
        ValueError: ``step`` is not in ``1 .. total steps of the fine-tune``.
    """
    path = dense.directory / "steps" / f"step-{step}.safetensors"
    if path.exists():
        return path
    with FileLock(str(dense.directory / "steps.lock")):
        if path.exists():
            return path
        partial = path.with_name(f".partial-{path.name}")
        if mirror.pull(path, into=partial):  # replayed on another node: downloaded from the storage URI
            os.replace(partial, path)
            return path
        record = json.loads((dense.directory / "record.json").read_text())
        batches = -(-record["train_examples"] // spec.finetune.batch_size)
        total = spec.finetune.epochs * batches
        if not 1 <= step <= total:
            raise ValueError(f"rewinding step {step} is outside the dense fine-tune's 1..{total} steps: pass "
                             f"--rewind step:K with K in that range")
        log.info("replaying the dense fine-tune %s seed %d up to step %d (rewinding checkpoint)", spec.task,
                 spec.seed, step)
        model = load_model(spec.model, get_task(spec.task), spec.seed)
        fine_tune(spec, model, stop_after=step, label="replay")
        _save_step(dense.directory, step, model)
        mirror.push(path)
    return path


def prepare_dense(spec: DenseSpec, cache_root: str, steps: tuple[int, ...] = (), workers: int = 0,
                  shared: mirror.Mirror | None = None) -> dict:
    """``ensure_dense`` as a Ray task: logs progress and returns a small summary, not the weights. With
    ``shared`` (a storage URI) the entry is looked for, and stored, under the URI too (``trainables.mirror``).

    Returns:
        ``{"seed", "key", "reused", "dev_score", "train_loss", "diverged"}``: the last epoch's primary dev
        score and training loss, or ``diverged`` (the error message, the scores ``None``) when the fine-tune
        diverged.
    """
    show_progress()
    if shared is not None:
        mirror.share(shared.local, shared.uri)
    progress.begin(progress.dense_job(spec.seed))
    try:
        result = ensure_dense(spec, cache_root, steps, workers)
    except TrainingDiverged as err:
        return {"seed": spec.seed, "key": spec.key(), "reused": False, "dev_score": None, "train_loss": None,
                "diverged": str(err)}
    last = result.history[-1]
    return {"seed": spec.seed, "key": spec.key(), "reused": result.reused, "dev_score": last.dev_score,
            "train_loss": last.train_loss, "diverged": None}
