"""One trial: load, prune, rewind, fine-tune, report (a Ray Tune function trainable).

A trial's configuration is ``{"method", "sparsity", "rewind", "control"}`` plus the method's options; what
stays fixed for a whole study (model, task, data, fine-tuning, seeds, cache) is a ``TrialContext``. For
every seed the trial reads the cached dense fine-tune of that seed, asks the method for the ticket
(``trainables.pruning.registry``), rewinds the model, masks it and fine-tunes it; after each epoch it reports
the mean dev score over the seeds.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import AutoTokenizer

from trainables.cache import DenseSpec, ensure_dense
from trainables.data import DataSettings, collator, load_tokenized
from trainables.finetune import FineTuneRun, FinetuneSettings, evaluate, pick_device, show_progress
from trainables.pruning.registry import make_ticket
from trainables.pruning.structured import StructuredMask
from trainables.pruning.tickets import Ticket, TicketRequest
from trainables.rewinding import rewind_step, rewound_model
from trainables.tasks import get_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a study shares.

    Attributes:
        model: hub id or absolute path of the pre-trained checkpoint.
        task: GLUE task name.
        data: data settings.
        finetune: fine-tuning settings (the same for the dense run and for the tickets).
        seeds: seeds of every trial; the reported dev score is their mean.
        cache_dir: absolute path of the study's cache (dense fine-tunes, importance scores).
        threads: torch CPU threads per trial (its CPU share).
    """

    model: str
    task: str
    data: DataSettings
    finetune: FinetuneSettings
    seeds: tuple[int, ...]
    cache_dir: str
    threads: int = 1

    def dense_spec(self, seed: int) -> DenseSpec:
        """The cache key of the dense fine-tune of ``seed`` under this study's settings."""
        return DenseSpec(self.model, self.task, seed, self.finetune, self.data)


#: The keys of a trial configuration every method shares; any other key is a method option (``imp_rate``, ...).
TRIAL_KEYS = ("method", "sparsity", "rewind", "control")


def _mean_report(per_seed: list[dict], seeds: tuple[int, ...]) -> dict:
    report = {k: float(np.mean([m[k] for m in per_seed])) for k in per_seed[0] if k != "train_loss"}
    report["dev_score_std"] = float(np.std([m["dev_score"] for m in per_seed]))
    for seed, metrics in zip(seeds, per_seed):
        report[f"dev_score_seed{seed}"] = metrics["dev_score"]
    return report


def _save_masks(tickets: dict[int, Ticket], config: dict, context: TrialContext) -> list[str]:
    """Write each seed's mask under ``<cache>/masks/<hash of the trial's ticket>/`` (shared storage on a
    cluster, so the driver can log it to MLflow); returns the paths."""
    ident = json.dumps({"config": {k: config[k] for k in sorted(config)},
                        "dense": [context.dense_spec(s).key() for s in context.seeds]}, sort_keys=True, default=str)
    folder = Path(context.cache_dir) / "masks" / hashlib.sha256(ident.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed, ticket in tickets.items():
        suffix = "json" if isinstance(ticket.mask, StructuredMask) else "safetensors"
        partial = folder / f".partial-seed-{seed}.{suffix}"
        ticket.mask.save(partial)
        paths.append(str(partial.replace(folder / f"mask-seed-{seed}.{suffix}")))
    return paths


def run_ticket_trial(config: dict, context: TrialContext, report: Callable[[dict], None]) -> None:
    """Run one trial and call ``report(metrics)`` after every epoch.

    Args:
        config: ``{"method": structured|magnitude|imp|tamt, "sparsity": fraction in [0, 1), "rewind":
            pretrained|step:K|none, "control": good|random|bad}`` plus the method's options (any other key,
            e.g. ``imp_rate``); ``method`` defaults to ``structured``, ``control`` to ``good``.
        context: the study's fixed settings.
        report: receives, per epoch, ``dev_score`` (mean over seeds of the primary metric), its std,
            ``dev_score_seed<k>``, every metric's mean, ``epoch``, ``planned_epochs``, the ticket's counts
            (``achieved_sparsity``: fraction of the prunable weights masked; structured: heads and FFN
            blocks kept), ``mask`` (JSON description per seed) and ``mask_files`` (JSON list of paths).

    Raises:
        ValueError: unknown method, control or rewinding point, sparsity outside [0, 1), or an option the
            method rejects.
    """
    method, sparsity = config.get("method", "structured"), float(config["sparsity"])
    rewind, control = config.get("rewind", "pretrained"), config.get("control", "good")
    options = {k: v for k, v in config.items() if k not in TRIAL_KEYS}
    step = rewind_step(rewind)
    torch.set_num_threads(context.threads)
    task, device = get_task(context.task), pick_device()

    # Prune: one ticket per seed, from that seed's dense fine-tune (cached once per study key).
    dense = {seed: ensure_dense(context.dense_spec(seed), context.cache_dir, (step,) if step else ())
             for seed in context.seeds}
    tickets = {seed: make_ticket(method, TicketRequest(context.dense_spec(seed), dense[seed], sparsity, control,
                                                       rewind, options, context.cache_dir))
               for seed in context.seeds}
    first = tickets[context.seeds[0]]
    described = {"sparsity": sparsity, **first.mask.summary(), **first.info,
                 "mask": json.dumps({str(s): t.mask.to_dict() for s, t in tickets.items()}),
                 "mask_files": json.dumps(_save_masks(tickets, config, context))}

    # A ticket this study already fine-tuned from pre-trained (the dense model; an IMP level): replay it.
    if rewind == "pretrained" and all(t.replay is not None for t in tickets.values()):
        epochs = len(first.replay)
        for epoch in range(epochs):
            per_seed = [tickets[s].replay[epoch] for s in context.seeds]
            report({**_mean_report(per_seed, context.seeds), **described, "epoch": epoch + 1,
                    "planned_epochs": epochs, "reused_dense": first.mask.is_dense, "replayed": True})
        return

    tokenizer = AutoTokenizer.from_pretrained(context.model)
    collate = collator(tokenizer)
    models = []  # (seed, model, tokenised data, dev loader)
    splits = {}  # the seed only matters when it draws a training subset
    for seed in context.seeds:
        subset_seed = seed if context.data.max_train_examples else None
        if subset_seed not in splits:
            splits[subset_seed] = load_tokenized(task, tokenizer, context.data, seed=subset_seed or 0)
        data = splits[subset_seed]
        # Rewind, then mask: pruned units or weights stay removed for training and evaluation alike.
        model = rewound_model(rewind, context.model, task, seed, dense[seed]).to(device)
        tickets[seed].mask.apply(model)
        dev = DataLoader(data["validation"], batch_size=context.finetune.batch_size, collate_fn=collate)
        models.append((seed, model, data, dev))

    if rewind == "none":  # pruned, not retrained: one evaluation
        per_seed = [evaluate(model, dev, task, device) for _, model, _, dev in models]
        report({**_mean_report(per_seed, context.seeds), **described, "epoch": 0, "planned_epochs": 1,
                "reused_dense": False, "replayed": False})
        return

    runs = [(FineTuneRun(model, data["train"], collate, context.finetune, seed, device), dev)
            for seed, model, data, dev in models]
    for epoch in range(context.finetune.epochs):
        per_seed = []
        for run, dev in runs:
            run.train_epoch()
            per_seed.append(evaluate(run.model, dev, task, device))
        mean = _mean_report(per_seed, context.seeds)
        log.info("%s ticket %s sparsity %.2f epoch %d/%d: dev %s %.4f (mean of %d seeds)", method, task.name,
                 sparsity, epoch + 1, context.finetune.epochs, task.primary_metric, mean["dev_score"], len(runs))
        report({**mean, **described, "epoch": epoch + 1, "planned_epochs": context.finetune.epochs,
                "reused_dense": False, "replayed": False})


def tune_trainable(config: dict, context: TrialContext) -> None:
    """The Ray Tune entry point: ``run_ticket_trial`` reporting through ``ray.tune.report``."""
    from ray import tune

    show_progress()
    run_ticket_trial(config, context, tune.report)
