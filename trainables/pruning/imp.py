"""Iterative magnitude pruning, IMP (Chen et al. 2020; Prasanna et al. 2020; METHODS.md section 2).

Fine-tune -> prune a fraction of the weights by global magnitude -> rewind the survivors to the pre-trained
weights -> fine-tune again -> ... Level 0 is the dense fine-tune (from the dense cache). Level ``k`` prunes
the fine-tuned level ``k - 1`` ticket, keeping every weight an earlier level pruned pruned, so the masks are
nested. Rate per round: ``rate`` of the *original* weights (Chen et al., the default: levels 10 %, 20 %, ...)
or of the *remaining* ones (Prasanna et al.: 1 - 0.9^k). A target sparsity off the ladder takes the ladder
levels below it and one last, smaller round to the exact target.

Levels are cached per (dense fine-tune, schedule, prunable set) under ``<cache>/imp/``, each behind a file
lock and written aside then renamed: a trial at 0.5 reuses the levels a trial at 0.3 computed, and a level
is computed once even when concurrent trials need it. A level's own fine-tune (from pre-trained) is kept
too: it is both the next level's input and the result of a trial rewound to ``pretrained`` at that level.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from safetensors.torch import load_file, save_file

from trainables.cache import CACHE_VERSION, fine_tune
from trainables.model import load_model
from trainables.pruning.magnitude import fine_tuned_weights, magnitude_mask
from trainables.pruning.tickets import Ticket, TicketRequest
from trainables.report import EpochResult
from trainables.pruning.method import Option, PruningMethod
from trainables.pruning.weights import (PRUNABLE_OPTIONS, UNSTRUCTURED_RANGE, PrunableSet, WeightMask, bake,
                                        prunable_set_basis)
from trainables.store import compute_once
from trainables.tasks import get_task

log = logging.getLogger(__name__)

RATE_OF = ("original", "remaining")


@dataclass(frozen=True)
class ImpSchedule:
    """How much each IMP round prunes.

    Attributes:
        rate: fraction pruned per round, in (0, 1).
        of: ``original`` (``rate`` of all prunable weights per round: level k has sparsity k * rate) or
            ``remaining`` (``rate`` of the weights left: level k has sparsity 1 - (1 - rate)^k).
    """

    rate: float = 0.1
    of: str = "original"

    @classmethod
    def from_options(cls, options: dict) -> "ImpSchedule":
        """From a trial's ``imp_rate`` / ``imp_rate_of`` options (absent: Chen et al.'s 10 % of original)."""
        return cls(float(options.get("imp_rate", 0.1)), str(options.get("imp_rate_of", "original")))

    def validate(self) -> None:
        """Raises ``ValueError`` naming the problem when the rate or its basis is invalid."""
        if not 0.0 < self.rate < 1.0:
            raise ValueError(f"IMP rate {self.rate} must be a fraction in (0, 1), e.g. 0.1")
        if self.of not in RATE_OF:
            raise ValueError(f"IMP rate basis {self.of!r} unknown: choose {' or '.join(RATE_OF)}")

    def level(self, k: int) -> float:
        """Sparsity (fraction) after ``k`` rounds."""
        value = k * self.rate if self.of == "original" else 1.0 - (1.0 - self.rate) ** k
        return round(value, 6)

    def levels_to(self, sparsity: float) -> list[float]:
        """The sparsity of every round needed to reach ``sparsity``: the ladder below it, then ``sparsity``
        itself (so ``len`` is the number of rounds, ~log(1 - s) / log(1 - p) for ``remaining``)."""
        target, levels, k = round(sparsity, 6), [], 1
        while self.level(k) < target:
            levels.append(self.level(k))
            k += 1
        return levels + [target] if target > 0 else []


def _chain_dir(request: TicketRequest, schedule: ImpSchedule, which: PrunableSet) -> Path:
    key = json.dumps({"version": CACHE_VERSION, "schedule": asdict(schedule), "prunable": asdict(which)},
                     sort_keys=True)
    return (Path(request.cache_dir).resolve() / "imp" / request.dense.directory.name
            / hashlib.sha256(key.encode()).hexdigest()[:12])


def _level_mask(folder: Path, level: float, parent_weights, within: WeightMask | None, min_keep: float
                ) -> WeightMask:
    """The mask of one level, from the cache or by pruning ``parent_weights()`` (the fine-tuned previous level)."""
    def write(scratch: Path) -> None:
        magnitude_mask(parent_weights(), level, within=within, min_keep=min_keep).save(scratch / "mask.safetensors")

    compute_once(folder / "mask", write, marker="mask.safetensors")
    return WeightMask.load(folder / "mask" / "mask.safetensors")


def _trained_level(folder: Path, level: float, mask: WeightMask, request: TicketRequest) -> dict:
    """The level's ticket fine-tuned from the pre-trained weights (cached): ``{"history", "weights"}``."""
    def write(scratch: Path) -> None:
        started, spec = time.perf_counter(), request.spec
        model = load_model(spec.model, get_task(spec.task), spec.seed)
        mask.apply(model)
        history, _ = fine_tune(spec, model, label=f"IMP level {level:.4f}")
        save_file({k: v.detach().cpu().contiguous() for k, v in bake(model).state_dict().items()},
                  scratch / "model.safetensors")
        (scratch / "record.json").write_text(json.dumps(
            {"level": level, "history": [asdict(e) for e in history], "seconds": time.perf_counter() - started}))

    compute_once(folder / "trained", write)
    record = json.loads((folder / "trained" / "record.json").read_text())
    return {"history": [EpochResult.from_dict(e) for e in record["history"]], "weights": folder / "trained" / "model.safetensors"}


def make_ticket(request: TicketRequest) -> Ticket:
    """The IMP ticket at ``request.sparsity``: every level up to it, from the cache or computed once.

    Options: ``imp_rate``, ``imp_rate_of`` (``ImpSchedule``), ``prune_pooler``, ``prune_embeddings``. When the
    trial rewinds to ``pretrained`` the last level's own fine-tune is its result (``Ticket.replay``).

    Raises:
        ValueError: a bad schedule. (IMP has no control tickets: ``METHOD`` below refuses them.)
    """
    schedule, which = ImpSchedule.from_options(request.options), PrunableSet.from_options(request.options)
    schedule.validate()
    levels = schedule.levels_to(request.sparsity)
    if not levels:  # sparsity 0: the dense model
        mask = magnitude_mask(fine_tuned_weights(request, which), 0.0)
        return Ticket(mask, replay=request.dense.history, replay_weights=request.dense.weights_file,
                      info={"imp_rounds": 0})
    chain = _chain_dir(request, schedule, which)
    mask, parent = None, (lambda: fine_tuned_weights(request, which))
    for index, level in enumerate(levels):
        folder = chain / f"level-{level:.6f}"
        mask = _level_mask(folder, level, parent, mask, which.min_keep)
        last = index == len(levels) - 1
        if not last or request.rewind == "pretrained":
            trained = _trained_level(folder, level, mask, request)
            parent = (lambda path=trained["weights"]: fine_tuned_weights(request, which, load_file(path)))
    info = {"imp_rounds": len(levels), "imp_levels": ",".join(f"{level:g}" for level in levels)}
    if request.rewind != "pretrained":
        return Ticket(mask, info=info)
    return Ticket(mask, replay=trained["history"], replay_weights=trained["weights"], info=info)


# The method as the registry holds it (trainables.pruning.registry).
METHOD = PruningMethod(
    name="imp",
    summary="iterative magnitude pruning: fine-tune, prune by global |w|, rewind, repeat (levels cached, nested)",
    units="weights of the prunable matrices",
    build=make_ticket,
    mask_type=WeightMask,
    achieved=prunable_set_basis,
    sparsity=UNSTRUCTURED_RANGE,
    options=(
        Option("imp_rate", float, ImpSchedule.rate, f"fraction pruned per IMP round, in (0, 1) (default {ImpSchedule.rate:g})"),
        Option("imp_rate_of", str, ImpSchedule.of, "the rate is a fraction of the original weights (Chen et al., "
               "default) or of the remaining ones (Prasanna et al.)", choices=RATE_OF),
        *PRUNABLE_OPTIONS,
    ),
    check=lambda options, model: ImpSchedule.from_options(options).validate(),
)
