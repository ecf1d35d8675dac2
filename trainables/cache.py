"""The dense fine-tune and its importance scores, computed once per key and reused.

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
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader
from transformers import AutoTokenizer

from trainables.data import DataSettings, collator, load_tokenized
from trainables.finetune import FineTuneRun, FinetuneSettings, evaluate, pick_device, show_progress
from trainables.model import load_model
from trainables.pruning.structured import unit_importance
from trainables.tasks import get_task

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when what is stored, or how it is computed, changes


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
        history: per-epoch dev metrics of the dense model, ``history[e]`` after epoch ``e + 1``.
        head_importance: shape ``(num_layers, num_heads)``, accumulated |dL/dξ| over the training split,
            *not* normalised.
        ffn_importance: shape ``(num_layers,)``.
        reused: True when read from the cache, False when computed by this call.
    """

    directory: Path
    history: list[dict]
    head_importance: torch.Tensor
    ffn_importance: torch.Tensor
    reused: bool

    def weights(self) -> dict[str, torch.Tensor]:
        """The fine-tuned state dict (every parameter and buffer, classifier included)."""
        return load_file(self.directory / "model.safetensors")


def _read(directory: Path, reused: bool) -> DenseResult:
    record = json.loads((directory / "record.json").read_text())
    scores = load_file(directory / "importance.safetensors")
    return DenseResult(directory, record["history"], scores["head"], scores["ffn"], reused)


def _compute(spec: DenseSpec, target: Path) -> None:
    started = time.perf_counter()
    task = get_task(spec.task)
    device = pick_device()
    tokenizer = AutoTokenizer.from_pretrained(spec.model)
    data = load_tokenized(task, tokenizer, spec.data, seed=spec.seed)
    collate = collator(tokenizer)
    model = load_model(spec.model, task, spec.seed)
    run = FineTuneRun(model, data["train"], collate, spec.finetune, spec.seed, device)
    dev = DataLoader(data["validation"], batch_size=spec.finetune.batch_size, collate_fn=collate)
    history = []
    for epoch in range(spec.finetune.epochs):
        loss = run.train_epoch()
        metrics = evaluate(model, dev, task, device)
        history.append({**metrics, "train_loss": loss})
        log.info("dense %s seed %d epoch %d/%d: dev %s %.4f", spec.task, spec.seed, epoch + 1,
                 spec.finetune.epochs, task.primary_metric, metrics["dev_score"])
    train = DataLoader(data["train"], batch_size=spec.finetune.batch_size, collate_fn=collate)
    head, ffn = unit_importance(model, train, device)

    scratch = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  scratch / "model.safetensors")
        save_file({"head": head, "ffn": ffn}, scratch / "importance.safetensors")
        record = {"key": spec.key(), "spec": asdict(spec), "history": history,
                  "seconds": time.perf_counter() - started, "device": str(device),
                  "train_examples": len(data["train"]), "dev_examples": len(data["validation"])}
        (scratch / "record.json").write_text(json.dumps(record, indent=2))
        os.replace(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def ensure_dense(spec: DenseSpec, cache_root: str | os.PathLike) -> DenseResult:
    """The dense fine-tune and importance scores of ``spec``: read from the cache, or computed and stored.

    Args:
        spec: what the dense model depends on.
        cache_root: the study's cache folder (``<storage>/cache``); must be shared by every node of a
            cluster.

    Returns:
        the cached result; ``reused`` says whether it was there already.
    """
    target = Path(cache_root).resolve() / "dense" / spec.key()
    if (target / "record.json").exists():
        return _read(target, reused=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "record.json").exists():  # another trial finished it while we waited
            return _read(target, reused=True)
        log.info("dense fine-tune %s seed %d (key %s): computing once for every trial", spec.task, spec.seed,
                 spec.key())
        _compute(spec, target)
    return _read(target, reused=False)


def prepare_dense(spec: DenseSpec, cache_root: str) -> dict:
    """``ensure_dense`` as a Ray task: logs progress and returns a small summary, not the weights.

    Returns:
        ``{"seed", "key", "reused", "history"}``.
    """
    show_progress()
    result = ensure_dense(spec, cache_root)
    return {"seed": spec.seed, "key": spec.key(), "reused": result.reused, "history": result.history}
