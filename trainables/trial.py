"""One trial: load, prune, rewind, fine-tune, report (a Ray Tune function trainable).

A trial's configuration is a ``trainables.config.TrialConfig`` (method, sparsity, rewinding point, control,
the method's options); what stays fixed for a whole study (model, task, data, fine-tuning, seeds, cache) is a ``TrialContext``. The seeds
run one after another: for each, the trial reads the cached dense fine-tune of that seed, asks the method for
the ticket (``trainables.pruning.registry.METHODS``), rewinds the model, masks it and fine-tunes it, reporting a
``TrialReport`` after every epoch. A scheduler can therefore stop a trial between seeds (seed racing) as well
as between epochs, and a trial stopped after two seeds has paid for two.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from safetensors.torch import save_file

from trainables import mirror, progress
from trainables.cache import DenseSpec, ensure_dense
from trainables.config import TrialConfig
from trainables.data import DataSettings, batches, collator, load_tokenized
from trainables.finetune import FineTuneRun, FinetuneSettings, TrainingDiverged, evaluate, pick_device, show_progress
from trainables.model import load_tokenizer
from trainables.pruning.registry import get_method
from trainables.pruning.tickets import Ticket, TicketRequest
from trainables.pruning.weights import bake
from trainables.report import DIVERGED, NODE_KEY, EpochResult, SeedOutcome, TicketFacts, TrialReport
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
        seeds: seeds of every trial, run in this order.
        cache_dir: absolute path of the study's cache (dense fine-tunes, importance scores).
        threads: torch CPU threads per trial (its CPU share).
        weights_dir: where a good ticket's fine-tuned weights are written per seed (``<study>/weights``); empty:
            not kept. The study logs the dense run's and the named tickets' to MLflow and deletes the others.
        data_workers: data-loader worker processes per fine-tune (``--data-workers``; no effect on results).
        mirror: with a storage URI, the local folder (holding ``cache_dir`` and ``weights_dir``) whose files are
            also kept under the URI (``trainables.mirror``); ``None``: storage is a folder every node sees.
    """

    model: str
    task: str
    data: DataSettings
    finetune: FinetuneSettings
    seeds: tuple[int, ...]
    cache_dir: str
    threads: int = 1
    weights_dir: str = ""
    data_workers: int = 0
    mirror: mirror.Mirror | None = None

    def dense_spec(self, seed: int) -> DenseSpec:
        """The cache key of the dense fine-tune of ``seed`` under this study's settings."""
        return DenseSpec(self.model, self.task, seed, self.finetune, self.data)


def _ticket_key(config: TrialConfig, context: TrialContext) -> str:
    """16 hex digits naming a trial's ticket: its configuration and the dense fine-tunes it starts from."""
    tune = config.to_tune()
    ident = json.dumps({"config": {k: tune[k] for k in sorted(tune)},
                        "dense": [context.dense_spec(s).key() for s in context.seeds]}, sort_keys=True, default=str)
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def _save_weights(model: torch.nn.Module, seed: int, config: TrialConfig, context: TrialContext) -> str:
    """Write one seed's fine-tuned ticket (masks baked in) to ``<weights_dir>/<ticket key>/seed-<seed>.safetensors``
    (written aside, then renamed); returns its path."""
    folder = Path(context.weights_dir) / _ticket_key(config, context)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".partial-seed-{seed}.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in bake(model).state_dict().items()}, str(partial))
    path = partial.replace(folder / f"seed-{seed}.safetensors")
    mirror.push(path)
    return str(path)


def _save_mask(seed: int, ticket: Ticket, config: TrialConfig, context: TrialContext) -> str:
    """Write one seed's mask under ``<cache>/masks/<hash of the trial's ticket>/`` (shared storage on a cluster,
    so the driver can log it to MLflow); returns its path."""
    folder = Path(context.cache_dir) / "masks" / _ticket_key(config, context)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ticket.mask.suffix
    partial = folder / f".partial-seed-{seed}.{suffix}"
    ticket.mask.save(partial)
    path = partial.replace(folder / f"mask-seed-{seed}.{suffix}")
    mirror.push(path)
    return str(path)


class _Data:
    """The tokenizer and tokenised splits, loaded on first use and shared by the trial's seeds (the seed only
    matters when it draws a training subset)."""

    def __init__(self, context: TrialContext, task):
        self.context, self.task, self.tokenizer, self.splits = context, task, None, {}

    def for_seed(self, seed: int):
        if self.tokenizer is None:
            self.tokenizer = load_tokenizer(self.context.model)
        subset_seed = seed if self.context.data.max_train_examples else None
        if subset_seed not in self.splits:
            self.splits[subset_seed] = load_tokenized(self.task, self.tokenizer, self.context.data,
                                                      seed=subset_seed or 0)
        return self.splits[subset_seed], collator(self.tokenizer)


def _seed_epochs(ticket: Ticket, rewind: str, seed: int, dense, context: TrialContext, data: _Data,
                 device, trained: Callable[[torch.nn.Module], None] = lambda model: None) -> Iterator[EpochResult]:
    """The dev evaluation after each epoch of one seed's ticket, as they come.

    A ticket this study already fine-tuned from pre-trained (the dense model, an IMP level) is replayed; a
    ticket with rewinding point ``none`` is evaluated once (epoch 0); any other is rewound, masked and fine-tuned.
    ``trained(model)`` is called with the final model before its last evaluation is yielded (not for a replay).

    Raises:
        TrainingDiverged: the training loss became NaN or infinite.
    """
    if rewind == "pretrained" and ticket.replay is not None:
        yield from ticket.replay
        return
    task = data.task
    split, collate = data.for_seed(seed)
    # Rewind, then mask (or remove): pruned units or weights stay removed for training and evaluation alike.
    model = ticket.model_to_train(rewound_model(rewind, context.model, task, seed, dense).to(device))
    dev = batches(split["validation"], collate, context.finetune.batch_size, device, workers=context.data_workers)
    if rewind == "none":  # pruned, not retrained: one evaluation
        result = evaluate(model, dev, task, device, context.finetune.precision)
        trained(model)
        yield EpochResult(0, result.dev_score, result.metrics, None, result.predictions.tolist())
        return
    run = FineTuneRun(model, split["train"], collate, context.finetune, seed, device, context.data_workers)
    for result in run.epochs(dev, task):
        if result.epoch == context.finetune.epochs:
            trained(run.model)
        yield result


#: Fault injection for the reliability tests: ``SUPERTICKETS_INJECT_FAULT=0.5`` makes every trial at sparsity 0.5
#: raise after reporting its first epoch (the study forwards the variable to its Ray workers).
FAULT_ENV = "SUPERTICKETS_INJECT_FAULT"


class InjectedFault(RuntimeError):
    """The failure ``SUPERTICKETS_INJECT_FAULT`` asked for."""


def _injected_fault(sparsity: float, now: bool) -> None:
    value = os.environ.get(FAULT_ENV)
    if now and value and abs(float(value) - sparsity) < 1e-9:
        raise InjectedFault(f"{FAULT_ENV}={value}: this trial crashes after its first epoch, as asked")


def run_ticket_trial(config: TrialConfig, context: TrialContext, report: Callable[[TrialReport], None]) -> None:
    """Run one trial, seed after seed, and call ``report`` after every epoch of every seed.

    Args:
        config: the trial (method, sparsity as a fraction in [0, 1), rewinding point, control, method options).
        context: the study's fixed settings.
        report: receives a ``TrialReport`` per epoch: the current seed's epoch (dev score, metrics, training
            loss, per-example predictions), every finished seed paired with the dense run of that seed, the dev
            labels and the ticket's facts (counts, ``achieved_sparsity``, per-seed masks and mask files). A
            trial whose training loss becomes NaN or infinite reports once more with ``status_reason``
            ``"diverged"`` and raises.

    Raises:
        ValueError: unknown method, control or rewinding point, sparsity outside [0, 1), or an option the
            method rejects.
        TrainingDiverged: the ticket's (or the dense model's) training loss became NaN or infinite.
    """
    method, sparsity, rewind, control = config.method, config.sparsity, config.rewind, config.control
    options = config.options_dict
    step = rewind_step(rewind)
    torch.set_num_threads(context.threads)
    if context.mirror is not None:
        mirror.share(context.mirror.local, context.mirror.uri)
    task, device = get_task(context.task), pick_device()
    data, facts, finished, labels = _Data(context, task), None, [], []
    planned_epochs = 1 if rewind == "none" else context.finetune.epochs
    seed, epoch = context.seeds[0], 0
    try:
        for seed in context.seeds:
            epoch = 0
            dense = ensure_dense(context.dense_spec(seed), context.cache_dir, (step,) if step else (),
                                 context.data_workers)
            labels = dense.labels
            ticket = get_method(method).make_ticket(TicketRequest(context.dense_spec(seed), dense, sparsity, control,
                                                                  rewind, options, context.cache_dir))
            if facts is None:
                facts = TicketFacts({"sparsity": sparsity, **ticket.mask.summary(), **ticket.info},
                                    replayed=rewind == "pretrained" and ticket.replay is not None,
                                    reused_dense=ticket.mask.is_dense and rewind == "pretrained")
            facts.mask_files.append(_save_mask(seed, ticket, config, context))
            keep = bool(context.weights_dir) and control == "good"  # a control is never a ticket worth keeping
            if keep and rewind == "pretrained" and ticket.replay is not None:
                facts.weight_files[str(seed)] = str(ticket.replay_weights)

            def trained(model, seed=seed):
                if keep:
                    facts.weight_files[str(seed)] = _save_weights(model, seed, config, context)

            losses = []
            for result in _seed_epochs(ticket, rewind, seed, dense, context, data, device, trained):
                epoch = result.epoch
                losses.append(result.train_loss)
                if epoch == planned_epochs or rewind == "none":
                    last = dense.history[-1]
                    finished.append(SeedOutcome(seed, result.dev_score, result.predictions, last.dev_score,
                                                last.predictions, losses))
                log.info("%s ticket %s sparsity %.2f seed %d epoch %d/%d: train loss %s, dev %s %.4f", method,
                         task.name, sparsity, seed, epoch, planned_epochs,
                         "-" if result.train_loss is None else f"{result.train_loss:.4f}", task.primary_metric,
                         result.dev_score)
                report(TrialReport(seed, epoch, planned_epochs, context.seeds, result, list(finished), labels,
                                   facts))
                _injected_fault(sparsity, seed == context.seeds[0] and epoch == 1)
    except TrainingDiverged as err:
        current = EpochResult(err.epoch, math.nan, {}, err.loss, [])
        report(TrialReport(seed, err.epoch, planned_epochs, context.seeds, current, list(finished), labels,
                           facts or TicketFacts({"sparsity": sparsity}), status_reason=DIVERGED))
        raise


def tune_trainable(config: dict, context: TrialContext) -> None:
    """The Ray Tune entry point: ``run_ticket_trial`` reporting through ``ray.tune.report``."""
    from ray import tune

    import ray

    show_progress()
    progress.begin(tune.get_context().get_trial_id())
    node = ray.get_runtime_context().get_node_id()  # which Ray node ran the trial (several share an IP on one host)
    try:
        run_ticket_trial(TrialConfig.from_tune(config), context, lambda report: tune.report({**report.to_tune(), NODE_KEY: node}))
    except TrainingDiverged:
        return  # reported with status_reason "diverged": FAILED by tracking and search, and not worth a restart
