"""What a trial reports: one typed record, converted to and from Ray Tune's result dict in this module only.

A trial runs its seeds one after another and reports after every epoch of every seed, so the seed is a unit of
fidelity (a scheduler may stop a trial between seeds) as well as the epoch. Each report carries the current
seed's epoch (dev score, every dev metric, mean training loss, per-example dev predictions) and every seed that
has finished, *paired* with the dense model's fine-tune of the same seed (same classifier initialisation, same
data order, same dev examples), so tracking, the analysis and the scheduler can compare ticket and dense
example by example without reading anything else.

Units: scores are fractions (accuracy, F1) or correlations, never percent; ``epoch`` counts from 1 within a
seed (0 = evaluated once without training, rewinding point ``none``); ``training_iteration`` (Tune's) counts
reports over all seeds.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

#: The key of Tune's result dict that holds the whole report as JSON (everything else there is a scalar
#: copy for Tune's own tables, schedulers and loggers).
REPORT_KEY = "supertickets_report"
#: The key of a Tune result that names the Ray node the trial ran on (added by the Tune entry point; several nodes
#: of one host share an IP, so Tune's own ``node_ip`` cannot tell them apart).
NODE_KEY = "node_id"
#: Why a trial ended other than by finishing its seeds.
DIVERGED = "diverged"


@dataclass
class EpochResult:
    """One epoch of one seed's fine-tune, evaluated on the dev set.

    Attributes:
        epoch: 1-based epoch within the seed (0: evaluated without training).
        dev_score: the task's primary dev metric (fraction or correlation).
        metrics: every dev metric of the task, by name.
        train_loss: mean training loss over the epoch's optimiser steps (``None`` when nothing was trained;
            ``nan``/``inf`` when the run diverged).
        predictions: per dev example, in dev order: class ids (int) or regression scores (float).
    """

    epoch: int
    dev_score: float
    metrics: dict[str, float]
    train_loss: float | None
    predictions: list

    @classmethod
    def from_dict(cls, data: dict) -> "EpochResult":
        """The inverse of ``dataclasses.asdict``."""
        return cls(**data)


@dataclass
class SeedOutcome:
    """A seed whose fine-tune finished, paired with the dense model's fine-tune of the same seed.

    Attributes:
        seed: the seed (classifier initialisation, data order, dropout).
        dev_score: the ticket's primary dev metric after its last epoch.
        predictions: the ticket's per-example dev predictions after its last epoch, shape ``(n_dev,)``.
        dense_score: the dense model's primary dev metric after its last epoch, same seed.
        dense_predictions: the dense model's per-example dev predictions, same seed, shape ``(n_dev,)``.
        train_losses: the ticket's mean training loss per epoch.
    """

    seed: int
    dev_score: float
    predictions: list
    dense_score: float
    dense_predictions: list
    train_losses: list

    @property
    def difference(self) -> float:
        """``dev_score - dense_score`` (ticket minus dense, same seed), in dev-score units."""
        return self.dev_score - self.dense_score


@dataclass
class TicketFacts:
    """What stays fixed for a trial's ticket, reported with every result.

    Attributes:
        counts: the mask's flat counts and the method's facts (``achieved_sparsity`` always; ``heads_kept``,
            ``ffn_kept``, ... for structured tickets; ``weights_kept``, ``total_weights`` for unstructured ones;
            IMP rounds, TAMT losses), for MLflow params.
        mask_files: paths of the per-seed mask files written so far (the masks themselves stay in files: a
            structured mask's JSON, an unstructured one's 0/1 safetensors).
        weight_files: ``{seed (str): path}`` of the per-seed fine-tuned weights (safetensors, masks baked in), when
            the study keeps them (``--keep-weights``): a file under ``<study>/weights/`` or, for a replayed ticket, its cache entry.
        replayed: the ticket's fine-tunes were replayed from a cache (the dense run, an IMP level).
        reused_dense: the ticket is the dense model, replayed from the dense-model cache.
    """

    counts: dict
    mask_files: list = field(default_factory=list)
    weight_files: dict = field(default_factory=dict)
    replayed: bool = False
    reused_dense: bool = False


@dataclass
class TrialReport:
    """One report of one trial: the current seed's epoch and every finished seed.

    Attributes:
        seed: the seed the current epoch belongs to.
        epoch: the current epoch of that seed (1-based; 0 = evaluated once, rewinding point ``none``).
        planned_epochs: epochs per seed (1 for rewinding point ``none``).
        planned_seeds: every seed the trial will run, in order.
        current: the current epoch's dev evaluation.
        finished: the seeds that ran all their epochs, in order, each paired with its dense run.
        labels: the gold dev labels, in dev order, shape ``(n_dev,)``.
        ticket: the ticket's fixed facts.
        status_reason: why the trial stopped by itself (``"diverged"``), else ``None``.
    """

    seed: int
    epoch: int
    planned_epochs: int
    planned_seeds: tuple
    current: EpochResult
    finished: list[SeedOutcome]
    labels: list
    ticket: TicketFacts
    status_reason: str | None = None

    @property
    def complete(self) -> bool:
        """True when every planned seed has finished."""
        return len(self.finished) == len(self.planned_seeds)

    @property
    def ends_seed(self) -> bool:
        """True when this report is the last epoch of its seed (the seed has just joined ``finished``)."""
        return bool(self.finished) and self.finished[-1].seed == self.seed and self.status_reason is None

    @property
    def mean_score(self) -> float:
        """Mean primary dev metric over the finished seeds (``nan`` before the first seed finishes)."""
        return _mean([s.dev_score for s in self.finished])

    @property
    def mean_difference(self) -> float:
        """Mean over finished seeds of ticket minus dense (same seed); ``nan`` before the first seed finishes."""
        return _mean([s.difference for s in self.finished])

    @property
    def planned_iterations(self) -> int:
        """Reports the trial makes when nothing stops it: ``len(planned_seeds) * planned_epochs``."""
        return len(self.planned_seeds) * self.planned_epochs

    def to_tune(self) -> dict:
        """Ray Tune's result dict: scalar copies for Tune (``dev_score`` of the current seed-epoch, the
        means over finished seeds, counts) and the whole report as JSON under ``REPORT_KEY``."""
        scalars = {"dev_score": self.current.dev_score, "seed": self.seed, "epoch": self.epoch,
                   "seeds_done": len(self.finished), "planned_seeds": len(self.planned_seeds),
                   "planned_epochs": self.planned_epochs, "mean_dev_score": self.mean_score,
                   "mean_difference": self.mean_difference}
        if self.current.train_loss is not None:
            scalars["train_loss"] = self.current.train_loss
        if "achieved_sparsity" in self.ticket.counts:
            scalars["achieved_sparsity"] = self.ticket.counts["achieved_sparsity"]
        return {**scalars, REPORT_KEY: json.dumps(asdict(self))}

    @classmethod
    def from_tune(cls, result: dict) -> "TrialReport | None":
        """The report inside a Tune result dict; ``None`` when the dict holds none (e.g. Tune's own
        bookkeeping results)."""
        if not result or REPORT_KEY not in result:
            return None
        data = json.loads(result[REPORT_KEY])
        return cls(seed=data["seed"], epoch=data["epoch"], planned_epochs=data["planned_epochs"],
                   planned_seeds=tuple(data["planned_seeds"]), current=EpochResult.from_dict(data["current"]),
                   finished=[SeedOutcome(**s) for s in data["finished"]], labels=data["labels"],
                   ticket=TicketFacts(**data["ticket"]), status_reason=data["status_reason"])


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
