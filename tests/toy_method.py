"""A pruning method that is not part of the project: one module, registered by one line.

``toy-rows`` prunes, in every prunable matrix, the first ``floor(s * rows)`` output rows (whole rows, as a row
mask over single weights). It brings its own mask type, whose ``summary`` and ``describe_kept`` speak in rows, and
one fact of its own (``toy_rule``), so a test can check that a new method's facts reach MLflow, the trial table
and the verdict without any edit to ``search/``. Registered with ``$SUPERTICKETS_METHODS=<this file>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from trainables.pruning.magnitude import fine_tuned_weights
from trainables.pruning.method import PruningMethod
from trainables.pruning.tickets import Ticket, TicketRequest
from trainables.pruning.weights import PrunableSet, WeightMask


@dataclass(frozen=True)
class RowMask(WeightMask):
    """A weight mask that prunes whole output rows; counts and describes itself in rows."""

    def summary(self) -> dict:
        rows = {name: m.all(dim=1) for name, m in self.masks.items()}
        return {**super().summary(), "rows_kept": sum(int(r.sum()) for r in rows.values()),
                "total_rows": sum(r.numel() for r in rows.values())}

    @staticmethod
    def describe_kept(facts: dict) -> str:
        return f"{facts['rows_kept']}/{facts['total_rows']} rows"


def rows_to_prune(sparsity: float, rows: int) -> int:
    """Rows a matrix of ``rows`` output rows loses at ``sparsity`` (a fraction)."""
    return math.floor(sparsity * rows)


def make_ticket(request: TicketRequest) -> Ticket:
    """Prune the first ``floor(sparsity * rows)`` rows of every prunable matrix."""
    masks = {}
    for name, weight in fine_tuned_weights(request, PrunableSet.from_options(request.options)).items():
        mask = torch.ones_like(weight, dtype=torch.bool)
        mask[:rows_to_prune(request.sparsity, weight.shape[0])] = False
        masks[name] = mask
    return Ticket(RowMask(masks), info={"toy_rule": "first rows"})


METHOD = PruningMethod(name="toy-rows", summary="the first rows of every prunable matrix (a test's own method)",
                       units="output rows of the prunable matrices", build=make_ticket, mask_type=RowMask,
                       sparsity={None: (0.0, 0.5, 0.25)})
