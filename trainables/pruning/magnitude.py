"""Global magnitude pruning (Chen et al. 2020; Prasanna et al. 2020; METHODS.md section 2).

Rank |w| over all prunable matrices together and remove the ``floor(s * total)`` smallest. The same
ranking with other scores gives the controls (``trainables.pruning.controls``): uniform random scores
(random ticket) or negated magnitudes (bad ticket: the largest weights go). Inside IMP, weights an earlier
round pruned stay pruned, so the masks are nested: each level keeps a subset of the one before.
"""

from __future__ import annotations

import logging
import math

import torch

from trainables.model import load_model
from trainables.pruning.controls import CONTROLS, control_scores
from trainables.pruning.method import PruningMethod
from trainables.pruning.tickets import Ticket, TicketRequest
from trainables.pruning.weights import (PRUNABLE_OPTIONS, UNSTRUCTURED_RANGE, PrunableSet, WeightMask,
                                        masked_weights, prunable_set_basis, prune_count)
from trainables.tasks import get_task

log = logging.getLogger(__name__)

#: A matrix kept below this fraction is named in a warning (a nearly empty matrix cuts the network).
THIN_MATRIX = 0.05


def global_mask(scores: dict[str, torch.Tensor], sparsity: float, within: WeightMask | None = None,
                min_keep: float = 0.0) -> WeightMask:
    """Prune the globally lowest-scoring weights, keeping at least ``min_keep`` of every matrix.

    Args:
        scores: ``{name: tensor}``, one score per weight (e.g. ``|w|``), any shapes.
        sparsity: fraction in [0, 1) of all scored weights to prune; exactly ``floor(sparsity * total)``
            are pruned (ties broken by position, so the result is reproducible).
        within: a mask whose pruned weights must stay pruned (IMP's previous level); its pruned count must
            not exceed the new count.
        min_keep: per-matrix floor, a fraction in [0, 1): the ``ceil(min_keep * size)`` highest-scoring weights
            of each matrix (among those ``within`` keeps) are never pruned, so no matrix is emptied (global
            magnitude with the pooler empties MiniLM's pooler at 50 %). The rest of the count falls on the
            other weights, still by global rank. A matrix kept below 5 % is named in a warning.

    Returns:
        the mask, with the same names and shapes as ``scores``.

    Raises:
        ValueError: ``sparsity`` outside [0, 1), ``within`` prunes more than ``sparsity`` allows, or the floor
            leaves fewer prunable weights than the sparsity needs.
    """
    names = list(scores)
    flat = torch.cat([scores[n].detach().flatten().float().cpu() for n in names])
    n_prune = prune_count(sparsity, flat.numel())
    already = torch.zeros(flat.numel(), dtype=torch.bool)
    if within is not None:
        already = torch.cat([~within.masks[n].flatten() for n in names])
        if int(already.sum()) > n_prune:
            raise ValueError(f"the previous mask prunes {int(already.sum())} weights, more than the "
                             f"{n_prune} of sparsity {sparsity}: levels must grow")
        flat = flat.masked_fill(already, float("-inf"))
    if min_keep > 0:
        flat, protected = _protect_floor(flat, already, [scores[n].numel() for n in names], min_keep)
        if protected > flat.numel() - n_prune:
            raise ValueError(f"sparsity {sparsity} cannot be reached while keeping {min_keep:g} of every matrix: "
                             "lower --min-keep-per-matrix or the sparsity")
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[torch.argsort(flat, stable=True)[:n_prune]] = False
    masks, start = {}, 0
    for n in names:
        size = scores[n].numel()
        masks[n] = keep[start:start + size].view(scores[n].shape)
        start += size
    for name, mask in masks.items():
        kept = int(mask.sum()) / mask.numel()
        if kept < THIN_MATRIX:
            log.warning("global ranking at sparsity %.2f keeps %.1f %% of %s (below %d %%): raise "
                        "--min-keep-per-matrix to keep more of it", sparsity, 100 * kept, name, 100 * THIN_MATRIX)
    return WeightMask(masks)


def _protect_floor(flat: torch.Tensor, already: torch.Tensor, sizes: list[int], min_keep: float
                   ) -> tuple[torch.Tensor, int]:
    """``flat`` with each matrix's ``ceil(min_keep * size)`` best not-yet-pruned scores raised to +inf."""
    flat, start, protected = flat.clone(), 0, 0
    for size in sizes:
        part = flat[start:start + size]
        count = min(math.ceil(min_keep * size), int((~already[start:start + size]).sum()))
        if count:
            top = torch.argsort(part, stable=True, descending=True)[:count]
            part[top] = float("inf")
        protected += count
        start += size
    return flat, protected


def magnitude_mask(weights: dict[str, torch.Tensor], sparsity: float, control: str = "good", seed: int = 0,
                   within: WeightMask | None = None, min_keep: float = 0.0) -> WeightMask:
    """The one-shot global magnitude ticket of ``weights`` at ``sparsity``, or its control.

    Args:
        weights: ``{name: weight}`` of the prunable matrices (fine-tuned weights for Prasanna's and Chen's
            tickets, pre-trained weights for TAMT's initialisation).
        sparsity: fraction in [0, 1) pruned, counted over all of ``weights``.
        control: ``good`` (smallest |w| pruned), ``random`` (as many, uniformly, from ``seed``) or ``bad``
            (as many, the largest |w|).
        seed: seeds the random control.
        within: IMP's previous mask (see ``global_mask``).
        min_keep: per-matrix floor (see ``global_mask``).

    Raises:
        ValueError: unknown control, or see ``global_mask``.
    """
    names = list(weights)
    ranked = control_scores(tuple(weights[n].detach().abs() for n in names), control, seed)
    return global_mask(dict(zip(names, ranked)), sparsity, within, min_keep)


def fine_tuned_weights(request: TicketRequest, which: PrunableSet,
                       state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The prunable weights of a fine-tuned state of ``request``'s model: ``{encoder-relative name: weight}``,
    each ``(out_features, in_features)`` (embeddings ``(vocab, hidden)``), on the CPU.

    Args:
        state: a full state dict (classifier included); default the dense fine-tune of ``request``'s seed
            (IMP passes a fine-tuned level instead).
    """
    model = load_model(request.spec.model, get_task(request.spec.task), request.spec.seed)
    model.load_state_dict(request.dense.weights() if state is None else state)
    return masked_weights(model, which)


def make_ticket(request: TicketRequest) -> Ticket:
    """One-shot global magnitude ticket of the dense fine-tuned weights (Prasanna et al.; Chen et al.'s first
    IMP round), or its control; options ``prune_pooler``/``prune_embeddings`` widen the prunable set."""
    which = PrunableSet.from_options(request.options)
    mask = magnitude_mask(fine_tuned_weights(request, which), request.sparsity, request.control,
                          request.spec.seed, min_keep=which.min_keep)
    if mask.is_dense:
        return Ticket(mask, replay=request.dense.history, replay_weights=request.dense.weights_file)
    return Ticket(mask)


# The method as the registry holds it (trainables.pruning.registry).
METHOD = PruningMethod(
    name="magnitude",
    summary="single weights, global |w| ranking of the fine-tuned Q, K, V, attention-output and FFN matrices",
    units="weights of the prunable matrices",
    build=make_ticket,
    mask_type=WeightMask,
    achieved=prunable_set_basis,
    sparsity=UNSTRUCTURED_RANGE,
    controls=CONTROLS,
    options=PRUNABLE_OPTIONS,
)
