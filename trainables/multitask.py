"""One multi-task trial: Tickets-Share and its dense multi-task baseline (Liang et al. 2021, section 5).

One pre-trained encoder is shared by one classification (or regression) head per task and trained on a mix of the
tasks' training sets. In the ``tickets-share`` arm every batch runs through its own task's ticket mask
(``MaskSwitch``), and the step leaves the weights that ticket prunes, and their optimiser state, exactly as they
are (``trainables.finetune.held``): a shared weight is updated only by the tasks whose ticket keeps it. A task
whose study named no super ticket trains densely, as in the paper. The ``multitask-dense`` arm is the same model,
data, steps and seed without masks (MT-DNN, Liu et al. 2019). Training starts from the pre-trained weights.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from trainables import progress
from trainables.data import DataSettings, batches, collator, load_tokenized
from trainables.finetune import (FinetuneSettings, Optimisation, check_finite, evaluate, pick_device,
                                 show_progress)
from trainables.model import load_model, load_tokenizer
from trainables.pruning.tickets import MaskSwitch
from trainables.tasks import GlueTask, get_task

log = logging.getLogger(__name__)

#: The arms of a multi-task study: masked by each task's super ticket, and the same without masks.
ARMS = ("tickets-share", "multitask-dense")


@dataclass(frozen=True)
class TaskSampling:
    """Which task each optimiser step trains on.

    ``temperature`` 1 (the default) is MT-DNN's scheme, which Liang et al. follow: every epoch goes once through
    every task's batches, mixed in a random order, so a task is drawn in proportion to its training-set size.
    ``temperature`` T > 1 draws the task of every step independently with probability proportional to
    ``n_t ** (1 / T)`` (``n_t``: the task's training examples), which gives small tasks more steps (Arivazhagan
    et al. 2019); an epoch is then as many steps as the proportional one, each task's batches cycling.

    Raises:
        ValueError: a temperature below 1.
    """

    temperature: float = 1.0

    def __post_init__(self):
        if not self.temperature >= 1.0:
            raise ValueError(f"sampling temperature {self.temperature} must be at least 1 (1 = proportional to size)")

    def probabilities(self, sizes: dict[str, int]) -> dict[str, float]:
        """The probability of each task per step, from its training-set size (examples)."""
        weights = {task: n ** (1.0 / self.temperature) for task, n in sizes.items()}
        total = sum(weights.values())
        return {task: w / total for task, w in weights.items()}

    def schedule(self, batches_per_task: dict[str, int], sizes: dict[str, int], seed: int, epoch: int) -> list[str]:
        """The task of every step of one epoch (0-based ``epoch``), drawn from ``seed`` and ``epoch`` alone.

        Args:
            batches_per_task: batches in one pass over each task's training set.
            sizes: training examples of each task.
        """
        rng = np.random.default_rng([seed, epoch])
        tasks = list(batches_per_task)
        steps = sum(batches_per_task.values())
        if self.temperature == 1.0:
            order = [task for task in tasks for _ in range(batches_per_task[task])]
            return [order[i] for i in rng.permutation(steps)]
        p = self.probabilities(sizes)
        return [tasks[i] for i in rng.choice(len(tasks), size=steps, p=[p[t] for t in tasks])]

    def describe(self) -> str:
        """The scheme in words, for reports."""
        if self.temperature == 1.0:
            return "proportional to training-set size (every batch of every task once per epoch, mixed; MT-DNN)"
        return f"temperature-scaled, p_t proportional to n_t^(1/{self.temperature:g})"


def shared_models(model_name_or_path: str, tasks: list[GlueTask], seed: int) -> dict[str, nn.Module]:
    """One sequence-classification model per task, all holding the same encoder object (the first task's).

    Each task's head is initialised from ``seed`` (as the single-task study's ``pretrained`` point of that seed);
    the encoder is the pre-trained one.
    """
    models, encoder = {}, None
    for task in tasks:
        model = load_model(model_name_or_path, task, seed)
        if encoder is None:
            encoder = model.base_model
        else:
            setattr(model, model.base_model_prefix, encoder)
        models[task.name] = model
    return models


@dataclass
class TaskEpoch:
    """One task's dev evaluation after an epoch of multi-task training.

    Attributes:
        dev_score: the task's primary dev metric (a fraction, or a correlation).
        metrics: every dev metric of the task.
        train_loss: mean training loss of the task's batches in the epoch (``nan`` when it drew none).
        steps: the task's optimiser steps in the epoch.
        predictions: shape ``(n_dev,)``: class ids or scores, in dev order.
        labels: shape ``(n_dev,)``: gold labels, in dev order.
    """

    dev_score: float
    metrics: dict
    train_loss: float
    steps: int
    predictions: list = field(repr=False, default_factory=list)
    labels: list = field(repr=False, default_factory=list)


class MultiTaskRun:
    """Train a shared encoder on several tasks at once for one seed, one epoch at a time.

    Args:
        models: task name -> its model (``shared_models``: one encoder).
        train_sets: task name -> tokenised training split.
        collate: pads a batch.
        settings: fine-tuning hyper-parameters (as a single-task fine-tune; epochs over the mixed data).
        seed: seeds the data orders, the task order and dropout.
        device: where the models live.
        sampling: which task each step draws.
        switches: task name -> its ticket's ``MaskSwitch`` on the shared encoder, or ``None`` (dense task).
        workers: data-loader worker processes.
    """

    def __init__(self, models: dict[str, nn.Module], train_sets: dict, collate, settings: FinetuneSettings,
                 seed: int, device: torch.device, sampling: TaskSampling,
                 switches: dict[str, MaskSwitch | None] | None = None, workers: int = 0):
        self.models = nn.ModuleDict(models).to(device)
        self.settings, self.seed, self.device, self.sampling = settings, seed, device, sampling
        self.switches = switches or {}
        self.loaders = {task: batches(split, collate, settings.batch_size, device, shuffle_seed=seed, workers=workers)
                        for task, split in train_sets.items()}
        self.sizes = {task: len(split) for task, split in train_sets.items()}
        self.batches_per_task = {task: len(loader) for task, loader in self.loaders.items()}
        self.steps_per_epoch = sum(self.batches_per_task.values())
        self.optimisation = Optimisation([p for p in self.models.parameters() if p.requires_grad], settings,
                                         settings.epochs * self.steps_per_epoch, device)
        self.epoch, self.step, self.active = 0, 0, None
        self._iterators: dict[str, Iterator] = {}

    def use(self, task: str) -> None:
        """Run the shared encoder through ``task``'s ticket (or dense when it has none)."""
        if self.active == task:
            return
        if self.switches.get(self.active) is not None:
            self.switches[self.active].off()
        if self.switches.get(task) is not None:
            self.switches[task].on()
        self.active = task

    def next_batch(self, task: str) -> dict:
        """``task``'s next training batch (a new shuffled pass when the last one ended)."""
        try:
            return next(self._iterators[task])
        except (KeyError, StopIteration):  # first draw, or the task's pass ended: a new shuffled pass
            self._iterators[task] = iter(self.loaders[task])
            return next(self._iterators[task])

    def train_step(self, task: str, batch: dict) -> torch.Tensor:
        """One optimiser step on ``task``'s ``batch`` through its ticket; returns the loss.

        Raises:
            TrainingDiverged: the loss was NaN or infinite.
        """
        self.use(task)
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        dtype = self.optimisation.dtype
        with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = self.models[task](**batch).loss
        check_finite(loss, self.seed, self.epoch, self.step)
        switch = self.switches.get(task)
        self.optimisation.step(loss, hold=switch.pruned if switch is not None else None)
        self.step += 1
        return loss.detach()

    def train_epoch(self) -> dict[str, tuple[float, int]]:
        """One epoch of mixed steps; returns task -> (mean training loss, steps)."""
        self.models.train()
        torch.manual_seed(self.seed * 1000 + self.epoch)  # dropout
        order = self.sampling.schedule(self.batches_per_task, self.sizes, self.seed, self.epoch)
        losses: dict[str, list] = {task: [] for task in self.loaders}
        started = time.perf_counter()
        for done, task in enumerate(order, 1):
            losses[task].append(self.train_step(task, self.next_batch(task)))
            progress.step(self.seed, self.epoch + 1, self.settings.epochs, done, len(order),
                          time.perf_counter() - started)
        self.epoch += 1
        means = {task: (torch.stack(values).mean().item() if values else math.nan, len(values))
                 for task, values in losses.items()}
        log.info("seed %d epoch %d/%d: train loss %s (%.0f s)", self.seed, self.epoch, self.settings.epochs,
                 ", ".join(f"{task} {loss:.4f}" for task, (loss, _) in means.items()), time.perf_counter() - started)
        return means

    def evaluate(self, devs: dict, tasks: dict[str, GlueTask]):
        """Each task's dev evaluation through its own ticket: task -> ``trainables.finetune.Evaluation``."""
        results = {}
        for name, dev in devs.items():
            self.use(name)
            results[name] = evaluate(self.models[name], dev, tasks[name], self.device, self.settings.precision)
        return results

    def epochs(self, devs: dict, tasks: dict[str, GlueTask]) -> Iterator[dict[str, TaskEpoch]]:
        """Train every epoch, yielding task -> ``TaskEpoch`` after each."""
        while self.epoch < self.settings.epochs:
            losses = self.train_epoch()
            evaluations = self.evaluate(devs, tasks)
            yield {name: TaskEpoch(e.dev_score, e.metrics, losses[name][0], losses[name][1], e.predictions.tolist(),
                                   e.labels.tolist())
                   for name, e in evaluations.items()}


@dataclass(frozen=True)
class TaskTicket:
    """The ticket one task shares, as the multi-task study found it.

    Attributes:
        task: GLUE task name.
        study: the single-task study it comes from.
        method: the pruning method (``trainables.pruning.registry.METHODS`` key) whose mask type reads the files; empty: the
            study named no super ticket, the task trains densely.
        sparsity: the ticket's requested sparsity (fraction), 0 for a dense task.
        mask_files: seed (as a string) -> local path of that seed's mask file.
        run_id: the MLflow child run of the ticket ("" for a dense task).
        role: which ticket of the study's verdict it is: ``super`` (Liang et al.), ``winning`` or ``best`` (the
            largest mean difference, not necessarily supported by its interval); see ``--share``.
    """

    task: str
    study: str
    method: str = ""
    sparsity: float = 0.0
    mask_files: dict = field(default_factory=dict)
    run_id: str = ""
    role: str = "super"

    @property
    def dense(self) -> bool:
        """True when the task trains without a mask."""
        return not self.method

    def mask_file(self, seed: int) -> str:
        """The mask of ``seed``, else of the lowest seed the study has (a ticket is a property of the task)."""
        return self.mask_files.get(str(seed)) or self.mask_files[min(self.mask_files, key=int)]


@dataclass(frozen=True)
class MultiTaskContext:
    """What every trial of a multi-task study shares.

    Attributes:
        model: hub id or absolute path of the pre-trained checkpoint.
        tickets: one per task, in the study's task order.
        data: data settings (the same for every task).
        finetune: fine-tuning settings; ``epochs`` are passes over the mixed data.
        sampling: the task sampling.
        threads: torch CPU threads per trial.
        data_workers: data-loader worker processes per task.
    """

    model: str
    tickets: tuple[TaskTicket, ...]
    data: DataSettings
    finetune: FinetuneSettings
    sampling: TaskSampling = TaskSampling()
    threads: int = 1
    data_workers: int = 0


def switches_for(arm: str, seed: int, context: MultiTaskContext, model: nn.Module) -> dict[str, MaskSwitch | None]:
    """Each task's mask switch on ``model``'s encoder in ``arm`` (none in ``multitask-dense``; none for a task
    without super ticket). The masks are read from the files the study's runs logged, never recomputed."""
    from trainables.pruning.registry import get_method

    if arm == "multitask-dense":
        return {ticket.task: None for ticket in context.tickets}
    switches = {}
    for ticket in context.tickets:
        if ticket.dense:
            switches[ticket.task] = None
            continue
        mask = get_method(ticket.method).mask_type.load(ticket.mask_file(seed))
        switches[ticket.task] = mask.switch(model)
    return switches


def run_multitask_trial(config: dict, context: MultiTaskContext, report: Callable[[dict], None]) -> None:
    """Train one arm (``config["arm"]``) for one seed (``config["seed"]``) and report after every epoch.

    Each report: ``epoch``, ``dev_score`` (mean of the tasks' primary dev scores), ``<task>/dev_score``,
    ``<task>/train_loss``, ``<task>/steps``; the last one also ``predictions`` (task -> dev predictions) and
    ``labels`` (task -> gold dev labels).

    Raises:
        ValueError: an unknown arm.
        TrainingDiverged: the training loss became NaN or infinite.
    """
    arm, seed = config["arm"], int(config["seed"])
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}: choose one of {', '.join(ARMS)}")
    torch.set_num_threads(max(1, context.threads))
    tasks = {t.task: get_task(t.task) for t in context.tickets}
    tokenizer = load_tokenizer(context.model)
    splits = {name: load_tokenized(task, tokenizer, context.data, seed=seed) for name, task in tasks.items()}
    device = pick_device()
    models = shared_models(context.model, list(tasks.values()), seed)
    first = next(iter(models.values())).to(device)
    run = MultiTaskRun(models, {n: s["train"] for n, s in splits.items()}, collator(tokenizer), context.finetune,
                       seed, device, context.sampling, switches_for(arm, seed, context, first), context.data_workers)
    devs = {name: batches(s["validation"], collator(tokenizer), context.finetune.batch_size, device)
            for name, s in splits.items()}
    log.info("%s seed %d: %d steps per epoch (%s)", arm, seed, run.steps_per_epoch,
             ", ".join(f"{t} {n}" for t, n in run.batches_per_task.items()))
    for results in run.epochs(devs, tasks):
        row = {"epoch": run.epoch, "dev_score": float(np.mean([r.dev_score for r in results.values()]))}
        for name, result in results.items():
            row.update({f"{name}/dev_score": result.dev_score, f"{name}/train_loss": result.train_loss,
                        f"{name}/steps": result.steps})
        if run.epoch == context.finetune.epochs:
            row["predictions"] = {name: r.predictions for name, r in results.items()}
            row["labels"] = {name: r.labels for name, r in results.items()}
        report(row)


def tune_multitask(config: dict, context: MultiTaskContext) -> None:
    """Ray Tune function trainable of one multi-task trial (``run_multitask_trial`` reporting to Tune)."""
    from ray import tune

    show_progress()
    run_multitask_trial(config, context, tune.report)
