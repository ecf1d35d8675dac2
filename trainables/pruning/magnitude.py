"""Global magnitude pruning (Chen et al. 2020; Prasanna et al. 2020; METHODS.md section 2).

Rank |w| over all prunable matrices together and remove the ``floor(s * total)`` smallest. The same
ranking with other scores gives the controls (``trainables.pruning.controls``): uniform random scores
(random ticket) or negated magnitudes (bad ticket: the largest weights go). Inside IMP, weights an earlier
round pruned stay pruned, so the masks are nested: each level keeps a subset of the one before.
"""

from __future__ import annotations

import torch

from trainables.model import load_model
from trainables.pruning.controls import control_scores
from trainables.pruning.tickets import Ticket, TicketRequest
from trainables.pruning.weights import PrunableSet, WeightMask, masked_weights, prune_count
from trainables.tasks import get_task


def global_mask(scores: dict[str, torch.Tensor], sparsity: float, within: WeightMask | None = None) -> WeightMask:
    """Prune the globally lowest-scoring weights.

    Args:
        scores: ``{name: tensor}``, one score per weight (e.g. ``|w|``), any shapes.
        sparsity: fraction in [0, 1) of all scored weights to prune; exactly ``floor(sparsity * total)``
            are pruned (ties broken by position, so the result is reproducible).
        within: a mask whose pruned weights must stay pruned (IMP's previous level); its pruned count must
            not exceed the new count.

    Returns:
        the mask, with the same names and shapes as ``scores``.

    Raises:
        ValueError: ``sparsity`` outside [0, 1), or ``within`` prunes more than ``sparsity`` allows.
    """
    names = list(scores)
    flat = torch.cat([scores[n].detach().flatten().float().cpu() for n in names])
    n_prune = prune_count(sparsity, flat.numel())
    if within is not None:
        already = torch.cat([~within.masks[n].flatten() for n in names])
        if int(already.sum()) > n_prune:
            raise ValueError(f"the previous mask prunes {int(already.sum())} weights, more than the "
                             f"{n_prune} of sparsity {sparsity}: levels must grow")
        flat = flat.masked_fill(already, float("-inf"))
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[torch.argsort(flat, stable=True)[:n_prune]] = False
    masks, start = {}, 0
    for n in names:
        size = scores[n].numel()
        masks[n] = keep[start:start + size].view(scores[n].shape)
        start += size
    return WeightMask(masks)


def magnitude_mask(weights: dict[str, torch.Tensor], sparsity: float, control: str = "good", seed: int = 0,
                   within: WeightMask | None = None) -> WeightMask:
    """The one-shot global magnitude ticket of ``weights`` at ``sparsity``, or its control.

    Args:
        weights: ``{name: weight}`` of the prunable matrices (fine-tuned weights for Prasanna's and Chen's
            tickets, pre-trained weights for TAMT's initialisation).
        sparsity: fraction in [0, 1) pruned, counted over all of ``weights``.
        control: ``good`` (smallest |w| pruned), ``random`` (as many, uniformly, from ``seed``) or ``bad``
            (as many, the largest |w|).
        seed: seeds the random control.
        within: IMP's previous mask (see ``global_mask``).

    Raises:
        ValueError: unknown control, or see ``global_mask``.
    """
    names = list(weights)
    ranked = control_scores(tuple(weights[n].detach().abs() for n in names), control, seed)
    return global_mask(dict(zip(names, ranked)), sparsity, within)


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
                          request.spec.seed)
    return Ticket(mask, replay=request.dense.history if mask.is_dense else None)
