"""Fine-tuning and evaluation of a (possibly gated) model on one GLUE task: the one training loop of the project.

One ``FineTuneRun`` owns a model, its optimizer and its data order for one seed. ``FineTuneRun.epochs`` trains
epoch by epoch and yields each dev evaluation as it comes: the dense fine-tune, IMP's level fine-tunes, the
replay up to a rewinding step and every ticket's fine-tune all go through it, so the same settings and seed
give the same sequence of optimiser steps wherever they run.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from trainables import progress
from trainables.data import batches
from trainables.metrics import compute_metrics, predictions_from_logits
from trainables.report import EpochResult
from trainables.tasks import GlueTask

log = logging.getLogger(__name__)


def show_progress() -> None:
    """Send this package's INFO lines (epochs, scores) to stdout, which Ray forwards to the driver.

    ``logging.basicConfig`` is not enough inside a Ray worker: its root logger already has handlers.
    """
    package = logging.getLogger("trainables")
    package.setLevel(logging.INFO)
    if not package.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        package.addHandler(handler)
        package.propagate = False


OPTIMIZERS = {"adamw": torch.optim.AdamW, "adamax": torch.optim.Adamax}


def make_optimizer(params: list[nn.Parameter], settings: FinetuneSettings, device: torch.device) -> torch.optim.Optimizer:
    """The optimiser ``settings.optimizer`` names over ``params``: AdamW (Loshchilov & Hutter 2019, decoupled weight
    decay) as PyTorch's fused kernel where the device has one (CPU and CUDA), the same update in one pass over each
    tensor; Adamax (Kingma & Ba 2015, section 7.1) as PyTorch's default form.

    Why fused: the step over every parameter, the word embeddings included (half of a MiniLM), costs a ticket
    trained physically smaller what it costs the dense model; an AdamW step of MiniLM on 2 CPU cores takes 14 ms
    fused instead of 79 ms (``python -m benchmarks.optimizer_step``). Adamax has no fused kernel, and its for-each
    form is slower than the loop on the CPU.

    Args:
        params: the parameters to train (each once, all on ``device``).
        settings: ``optimizer``, ``learning_rate`` (peak, per step) and ``weight_decay``.
        device: where the parameters live.

    Raises:
        KeyError: an optimiser not in ``OPTIMIZERS`` (the command line checks it first).
    """
    options = {"lr": settings.learning_rate, "weight_decay": settings.weight_decay}
    if settings.optimizer == "adamw" and device.type in ("cpu", "cuda"):
        options["fused"] = True
    return OPTIMIZERS[settings.optimizer](params, **options)


@dataclass(frozen=True)
class FinetuneSettings:
    """Hyper-parameters of one fine-tune.

    Attributes:
        learning_rate: peak learning rate (linear warm-up, then linear decay to 0).
        epochs: passes over the training split.
        batch_size: examples per optimiser step (and per evaluation batch).
        optimizer: ``adamw`` or ``adamax`` (Liang et al. use Adamax, Prasanna et al. Adam).
        warmup_ratio: fraction of all steps spent warming up.
        weight_decay: decoupled weight decay (AdamW) or L2 (Adamax).
        max_grad_norm: gradient clipping threshold.
        precision: ``auto`` (bf16 autocast on a GPU that supports it, else fp16 with a gradient scaler; fp32 on
            the CPU), ``bf16``, ``fp16`` or ``fp32``; the weights and the optimiser stay fp32 (autocast).
    """

    learning_rate: float
    epochs: int
    batch_size: int
    optimizer: str = "adamax"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    precision: str = "auto"


#: ``--precision`` values.
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (``None``: plain fp32). ``auto``: bf16 on a CUDA GPU
    that supports it, else fp16 there; fp32 on the CPU (CPU autocast is slower than fp32 for these models).

    Raises:
        ValueError: an unknown precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]


def pick_device() -> torch.device:
    """The first CUDA device when one is visible (Ray sets ``CUDA_VISIBLE_DEVICES`` per trial), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite: the run stopped at that step.

    Attributes:
        seed: the run's seed.
        epoch: 1-based epoch in which it happened.
        step: optimiser steps taken before the non-finite loss (over the whole run).
        loss: the non-finite loss value.
    """

    def __init__(self, seed: int, epoch: int, step: int, loss: float):
        super().__init__(f"training loss became {loss} at seed {seed}, epoch {epoch}, step {step + 1}: the run "
                         "diverged (lower --learning-rate, or check the data)")
        self.seed, self.epoch, self.step, self.loss = seed, epoch, step, loss

    def __reduce__(self):
        # Ray re-raises a worker's exception on the driver by pickling it: rebuild it from its own fields
        return type(self), (self.seed, self.epoch, self.step, self.loss)


@dataclass
class Evaluation:
    """A dev evaluation.

    Attributes:
        metrics: every dev metric of the task plus ``dev_score`` (the primary one), fractions or correlations.
        predictions: shape ``(n_dev,)``: class ids or regression scores, in dev order.
        labels: shape ``(n_dev,)``: gold labels, in dev order.
    """

    metrics: dict[str, float]
    predictions: np.ndarray
    labels: np.ndarray

    @property
    def dev_score(self) -> float:
        """The task's primary dev metric."""
        return self.metrics["dev_score"]


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, task: GlueTask, device: torch.device,
             precision: str = "fp32") -> Evaluation:
    """Every dev metric of ``task`` on ``loader`` (eval mode, autocast as ``precision`` says), with the per-example
    predictions."""
    model.eval()
    logits, labels = [], []
    dtype = autocast_dtype(precision, device)
    for batch in loader:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits.append(model(**batch).logits.float().cpu().numpy())
        labels.append(batch["labels"].cpu().numpy())
    predictions, gold = predictions_from_logits(np.concatenate(logits), task), np.concatenate(labels)
    return Evaluation(compute_metrics(task, predictions, gold), predictions, gold)


def check_finite(loss: torch.Tensor, seed: int, epoch: int, step: int) -> None:
    """Raise ``TrainingDiverged`` when ``loss`` (a scalar) is NaN or infinite: one scalar read per step, so a
    diverged run stops at once, before the optimiser applies the step (``epoch`` 0-based, ``step`` taken so far)."""
    if not torch.isfinite(loss):
        raise TrainingDiverged(seed, epoch + 1, step, loss.item())


@contextmanager
def held(optimizer: torch.optim.Optimizer, hold: dict[nn.Parameter, torch.Tensor]):
    """Keep chosen elements of some parameters, and their optimiser state, exactly as they are through the
    optimiser steps taken inside the block.

    A zero gradient is not enough to leave a weight alone: Adam's and Adamax's moments (built up by earlier
    batches) and decoupled weight decay still move it. Tickets-Share (Liang et al. 2021, section 5) updates a
    shared weight only with the batches of tasks whose ticket keeps it, so a batch of a task whose ticket prunes
    it must change neither the weight nor its moments: they are restored after the step (state the step created
    is reset to its initial zeros).

    Args:
        optimizer: the optimiser about to step.
        hold: parameter -> bool tensor of its shape, True = keep this element fixed.
    """
    saved = []
    for param, where in hold.items():
        state = optimizer.state.get(param, {})
        before = {key: value[where].clone() for key, value in state.items()
                  if torch.is_tensor(value) and value.shape == param.shape}
        saved.append((param, where, param.data[where].clone(), before))
    yield
    with torch.no_grad():
        for param, where, values, before in saved:
            param.data[where] = values
            for key, value in optimizer.state.get(param, {}).items():
                if torch.is_tensor(value) and value.shape == param.shape:
                    value[where] = before[key] if key in before else 0


class Optimisation:
    """The optimiser, learning-rate schedule (linear warm-up, linear decay to 0) and gradient scaler of one run,
    and its step: every fine-tune of the project steps through it.

    Args:
        params: the parameters to train (each once).
        settings: learning rate, optimiser, warm-up, weight decay, clipping, precision.
        total_steps: optimiser steps of the whole run (the schedule's length).
        device: where the model lives (picks the autocast dtype of ``settings.precision``).
    """

    def __init__(self, params: list[nn.Parameter], settings: FinetuneSettings, total_steps: int,
                 device: torch.device):
        self.params, self.max_grad_norm = params, settings.max_grad_norm
        self.dtype = autocast_dtype(settings.precision, device)
        # fp16 needs loss scaling (its range is narrow); bf16 and fp32 do not
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.optimizer = make_optimizer(params, settings, device)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, int(settings.warmup_ratio * total_steps),
                                                         total_steps)

    def step(self, loss: torch.Tensor, hold: dict[nn.Parameter, torch.Tensor] | None = None) -> None:
        """Back-propagate ``loss``, clip the gradients' global norm, step and advance the schedule.

        Args:
            hold: elements left exactly unchanged by this step, weights and optimiser state (see ``held``).
        """
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)  # clip the true gradients
        torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        with held(self.optimizer, hold or {}):
            self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)


class FineTuneRun:
    """Fine-tune one model for one seed, one epoch at a time.

    Args:
        model: the model to train (already masked through its gates, if it is a ticket).
        train_set: the tokenised training split (unpadded).
        collate: pads a list of examples into a batch (dynamic padding).
        settings: the hyper-parameters.
        seed: seeds the data order and dropout of this run.
        device: where the model lives.
        workers: data-loader worker processes (``trainables.data.batches``); the result does not depend on it.
    """

    def __init__(self, model: nn.Module, train_set, collate, settings: FinetuneSettings, seed: int,
                 device: torch.device, workers: int = 0):
        self.model, self.settings, self.device, self.seed = model.to(device), settings, device, seed
        self.loader = batches(train_set, collate, settings.batch_size, device, shuffle_seed=seed, workers=workers)
        self.epoch = 0
        self.step = 0  # optimiser steps taken so far, over all epochs
        self.optimisation = Optimisation([p for p in model.parameters() if p.requires_grad], settings,
                                         settings.epochs * len(self.loader), device)
        self.dtype = self.optimisation.dtype

    @property
    def total_steps(self) -> int:
        """Optimiser steps of the whole fine-tune (``epochs * batches per epoch``)."""
        return self.settings.epochs * len(self.loader)

    def train_epoch(self, on_step: Callable[[int, nn.Module], None] | None = None,
                    stop_after: int | None = None) -> float:
        """One pass over the training split; returns the mean training loss.

        Raises:
            TrainingDiverged: the loss of a step was NaN or infinite (checked at every step, before the
                optimiser applies it, so a diverged run stops at once).

        Args:
            on_step: called as ``on_step(step, model)`` after every optimiser step (``step`` counts from 1
                over the whole run); the dense fine-tune saves its rewinding checkpoints there.
            stop_after: end the epoch early once the run has taken this many optimiser steps in all (used to
                replay a fine-tune up to a rewinding point).
        """
        self.model.train()
        torch.manual_seed(self.seed * 1000 + self.epoch)  # dropout
        losses = []
        started = time.perf_counter()
        steps = len(self.loader) if stop_after is None else min(len(self.loader), stop_after - self.step)
        for batch in self.loader:
            if stop_after is not None and self.step >= stop_after:
                break
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
                loss = self.model(**batch).loss
            check_finite(loss, self.seed, self.epoch, self.step)
            self.optimisation.step(loss)
            self.step += 1
            losses.append(loss.detach())
            if on_step is not None:
                on_step(self.step, self.model)
            progress.step(self.seed, self.epoch + 1, self.settings.epochs, len(losses), steps,
                          time.perf_counter() - started)
        progress.step(self.seed, self.epoch + 1, self.settings.epochs, len(losses), steps,
                      time.perf_counter() - started, epoch_ended=True)
        self.epoch += 1
        mean_loss = torch.stack(losses).mean().item() if losses else float("nan")
        log.info("seed %d epoch %d/%d: train loss %.4f (%.0f s)", self.seed, self.epoch, self.settings.epochs,
                 mean_loss, time.perf_counter() - started)
        return mean_loss

    def epochs(self, dev: DataLoader, task: GlueTask, on_step: Callable[[int, nn.Module], None] | None = None,
               stop_after: int | None = None) -> Iterator[EpochResult]:
        """Train the remaining epochs of the run, yielding the dev evaluation after each one as it comes.

        Args:
            dev: the dev split, batched and in dev order.
            task: which metrics to compute.
            on_step: passed to ``train_epoch`` (called after every optimiser step).
            stop_after: stop once the run has taken this many optimiser steps in all, without evaluating the
                epoch cut short (replaying a fine-tune up to a rewinding point).

        Yields:
            ``EpochResult`` after each epoch ``e`` (1-based): primary dev score, every dev metric, mean training
            loss, per-example predictions in dev order. The model is the trained one when the last is yielded.

        Raises:
            TrainingDiverged: the training loss became NaN or infinite.
        """
        while self.epoch < self.settings.epochs:
            loss = self.train_epoch(on_step, stop_after)
            if stop_after is not None and self.step >= stop_after:
                return
            result = evaluate(self.model, dev, task, self.device, self.settings.precision)
            yield EpochResult(self.epoch, result.dev_score, result.metrics, loss, result.predictions.tolist())
