"""One trial: load, prune, rewind, fine-tune, report (a Ray Tune function trainable).

A trial's configuration is ``{"method": "structured", "sparsity": s, "rewind": point}``; what stays fixed
for a whole study (model, task, data, fine-tuning, seeds, cache) is a ``TrialContext``. For every seed the
trial reads the cached dense fine-tune and importance scores of that seed, builds the ticket at ``s``,
rewinds it and fine-tunes it; after each epoch it reports the mean dev score over the seeds.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import AutoTokenizer

from trainables.cache import DenseResult, DenseSpec, ensure_dense
from trainables.data import DataSettings, collator, load_tokenized
from trainables.finetune import FineTuneRun, FinetuneSettings, evaluate, pick_device, show_progress
from trainables.gates import UnitGates
from trainables.pruning.controls import control_scores
from trainables.pruning.structured import StructuredMask, normalize_by_layer, structured_mask
from trainables.rewinding import rewound_model
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


def ticket_mask(dense: DenseResult, sparsity: float, control: str = "good", seed: int = 0) -> StructuredMask:
    """The structured ticket of a dense run at ``sparsity`` (heads normalised per layer, global ranking), or its
    ``random``/``bad`` control with the same counts (``trainables.pruning.controls``; ``seed`` seeds ``random``)."""
    scores = (normalize_by_layer(dense.head_importance), dense.ffn_importance)
    return structured_mask(*control_scores(scores, control, seed), sparsity)


def _mean_report(per_seed: list[dict], seeds: tuple[int, ...]) -> dict:
    report = {k: float(np.mean([m[k] for m in per_seed])) for k in per_seed[0] if k != "train_loss"}
    report["dev_score_std"] = float(np.std([m["dev_score"] for m in per_seed]))
    for seed, metrics in zip(seeds, per_seed):
        report[f"dev_score_seed{seed}"] = metrics["dev_score"]
    return report


def run_ticket_trial(config: dict, context: TrialContext, report: Callable[[dict], None]) -> None:
    """Run one trial and call ``report(metrics)`` after every epoch.

    Args:
        config: ``{"method": "structured", "sparsity": fraction in [0, 1), "rewind": "pretrained"|"none",
            "control": "good"|"random"|"bad"}`` (``control`` defaults to ``good``).
        context: the study's fixed settings.
        report: receives, per epoch, ``dev_score`` (mean over seeds of the primary metric), its std,
            ``dev_score_seed<k>``, every metric's mean, ``epoch``, ``planned_epochs`` and the ticket's
            ``heads_kept``, ``ffn_kept``, ``head_sparsity``, ``ffn_sparsity`` and ``mask`` (JSON, per seed).

    Raises:
        ValueError: unknown method, control or rewinding point, or sparsity outside [0, 1).
    """
    if config.get("method", "structured") != "structured":
        raise ValueError(f"unknown method {config['method']!r}: this trainable runs 'structured'")
    sparsity, rewind = float(config["sparsity"]), config.get("rewind", "pretrained")
    control = config.get("control", "good")
    torch.set_num_threads(context.threads)
    task, device = get_task(context.task), pick_device()

    # Prune: one ticket per seed, from that seed's dense fine-tune (cached once per study key).
    dense = {seed: ensure_dense(context.dense_spec(seed), context.cache_dir) for seed in context.seeds}
    masks = {seed: ticket_mask(dense[seed], sparsity, control, seed) for seed in context.seeds}
    first = masks[context.seeds[0]]
    ticket = {"sparsity": sparsity, "heads_kept": first.heads_kept, "ffn_kept": first.ffn_kept,
              "total_heads": first.head.numel(), "total_ffn": first.ffn.numel(),
              "head_sparsity": first.head_sparsity, "ffn_sparsity": first.ffn_sparsity,
              "mask": json.dumps({str(s): m.to_dict() for s, m in masks.items()})}

    # A dense ticket rewound to pre-trained *is* the dense fine-tune: replay its cached epochs.
    if first.is_dense and rewind == "pretrained":
        epochs = len(dense[context.seeds[0]].history)
        for epoch in range(epochs):
            per_seed = [dense[s].history[epoch] for s in context.seeds]
            report({**_mean_report(per_seed, context.seeds), **ticket, "epoch": epoch + 1,
                    "planned_epochs": epochs, "reused_dense": True})
        return

    tokenizer = AutoTokenizer.from_pretrained(context.model)
    collate = collator(tokenizer)
    tickets = []  # (seed, model, tokenised data, dev loader)
    splits = {}  # the seed only matters when it draws a training subset
    for seed in context.seeds:
        subset_seed = seed if context.data.max_train_examples else None
        if subset_seed not in splits:
            splits[subset_seed] = load_tokenized(task, tokenizer, context.data, seed=subset_seed or 0)
        data = splits[subset_seed]
        # Rewind, then mask: the gates zero the pruned units for training and evaluation alike.
        model = rewound_model(rewind, context.model, task, seed, dense[seed]).to(device)
        masks[seed].apply(UnitGates(model))
        dev = DataLoader(data["validation"], batch_size=context.finetune.batch_size, collate_fn=collate)
        tickets.append((seed, model, data, dev))

    if rewind == "none":  # pruned, not retrained: one evaluation
        per_seed = [evaluate(model, dev, task, device) for _, model, _, dev in tickets]
        report({**_mean_report(per_seed, context.seeds), **ticket, "epoch": 0, "planned_epochs": 1,
                "reused_dense": False})
        return

    runs = [(FineTuneRun(model, data["train"], collate, context.finetune, seed, device), dev)
            for seed, model, data, dev in tickets]
    for epoch in range(context.finetune.epochs):
        per_seed = []
        for run, dev in runs:
            run.train_epoch()
            per_seed.append(evaluate(run.model, dev, task, device))
        mean = _mean_report(per_seed, context.seeds)
        log.info("ticket %s sparsity %.2f epoch %d/%d: dev %s %.4f (mean of %d seeds)", task.name, sparsity,
                 epoch + 1, context.finetune.epochs, task.primary_metric, mean["dev_score"], len(runs))
        report({**mean, **ticket, "epoch": epoch + 1, "planned_epochs": context.finetune.epochs,
                "reused_dense": False})


def tune_trainable(config: dict, context: TrialContext) -> None:
    """The Ray Tune entry point: ``run_ticket_trial`` reporting through ``ray.tune.report``."""
    from ray import tune

    show_progress()
    run_ticket_trial(config, context, tune.report)
