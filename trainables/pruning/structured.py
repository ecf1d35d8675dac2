"""Structured head/FFN pruning (Prasanna et al. 2020; Liang et al. 2021; METHODS.md section 1).

Importance of a unit is the accumulated first-order Taylor estimate of the loss change when its gate is
removed (Michel et al. 2019, eq. 2):

    I_head(l, h) = sum over batches |dL/d xi_(l,h)|,      I_ffn(l) = sum over batches |dL/d xi_l|

computed on the fine-tuned dense model in eval mode (no dropout). Head scores are L2-normalised per
layer; heads are ranked globally, FFN blocks are ranked globally, and the lowest are pruned, always
keeping at least one head in every layer.

Rounding: at sparsity ``s`` a ticket prunes ``floor(s * total_heads)`` heads (at most
``total_heads - num_layers``, one head per layer being kept) and ``floor(s * num_layers)`` FFN blocks.
``floor`` reproduces Liang et al.'s masks for BERT-base (30 % of 144 heads -> 43, of 12 FFN blocks -> 3).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from trainables.gates import UnitGates
from trainables.model import load_config
from trainables.pruning.controls import control_scores
from trainables.pruning.tickets import Ticket, TicketRequest

_EPS = 1e-9  # guards floor() against 0.29 * 100 = 28.999999999999996


@dataclass(frozen=True)
class StructuredMask:
    """A structured ticket: which heads and FFN blocks are kept.

    Attributes:
        head: shape ``(num_layers, num_heads)``, bool, True = kept.
        ffn: shape ``(num_layers,)``, bool, True = kept.
    """

    head: torch.Tensor
    ffn: torch.Tensor
    head_weights: int = 0
    ffn_weights: int = 0
    total_weights: int = 0

    def with_sizes(self, config) -> "StructuredMask":
        """This mask with the weight counts of ``config``'s encoder, so ``achieved_sparsity`` counts weights:
        a head disables its rows of Q, K, V and its columns of the attention output (4 * head_dim * hidden),
        an FFN block both FFN matrices (2 * hidden * intermediate); the total is every layer's six matrices."""
        hidden, inner = config.hidden_size, config.intermediate_size
        head_dim = hidden // config.num_attention_heads
        per_layer = 4 * hidden * hidden + 2 * hidden * inner
        return StructuredMask(self.head, self.ffn, 4 * head_dim * hidden, 2 * hidden * inner,
                              per_layer * self.head.shape[0])

    @property
    def heads_kept(self) -> int:
        """Number of heads kept, over all layers."""
        return int(self.head.sum())

    @property
    def ffn_kept(self) -> int:
        """Number of FFN blocks kept (one per layer at most)."""
        return int(self.ffn.sum())

    @property
    def head_sparsity(self) -> float:
        """Fraction (not percent) of heads pruned."""
        return 1.0 - self.heads_kept / self.head.numel()

    @property
    def ffn_sparsity(self) -> float:
        """Fraction (not percent) of FFN blocks pruned."""
        return 1.0 - self.ffn_kept / self.ffn.numel()

    @property
    def is_dense(self) -> bool:
        """True when nothing is pruned."""
        return bool(self.head.all() and self.ffn.all())

    @property
    def achieved_sparsity(self) -> float:
        """Fraction of the encoder's prunable weights the pruned units disable (see ``with_sizes``); the head
        sparsity when the sizes are unknown."""
        if not self.total_weights:
            return self.head_sparsity
        pruned = ((~self.head).sum() * self.head_weights + (~self.ffn).sum() * self.ffn_weights).item()
        return pruned / self.total_weights

    def set_gates(self, gates: UnitGates) -> None:
        """Set ``gates`` to this mask (pruned units get gate 0)."""
        gates.set(self.head.float(), self.ffn.float())

    def apply(self, model: nn.Module) -> UnitGates:
        """Gate ``model``'s heads and FFN blocks with this mask; returns the gates (hooks stay on the model)."""
        gates = UnitGates(model)
        self.set_gates(gates)
        return gates

    def summary(self) -> dict:
        """Flat counts for MLflow: heads and FFN blocks kept and in all, their sparsities, achieved sparsity."""
        return {"heads_kept": self.heads_kept, "total_heads": self.head.numel(), "ffn_kept": self.ffn_kept,
                "total_ffn": self.ffn.numel(), "head_sparsity": self.head_sparsity,
                "ffn_sparsity": self.ffn_sparsity, "achieved_sparsity": self.achieved_sparsity}

    def to_dict(self) -> dict:
        """JSON-ready form: lists of 0/1 per layer, plus the counts."""
        return {"kind": "structured", "head": self.head.int().tolist(), "ffn": self.ffn.int().tolist(),
                **self.summary(), "heads_kept_per_layer": self.head.sum(dim=1).tolist()}

    def save(self, path) -> Path:
        """Write ``to_dict()`` as JSON to ``path``; returns it."""
        Path(path).write_text(json.dumps(self.to_dict()))
        return Path(path)

    @classmethod
    def from_dict(cls, data: dict) -> "StructuredMask":
        """Inverse of ``to_dict`` (reads ``mask.json`` back)."""
        return cls(torch.tensor(data["head"], dtype=torch.bool), torch.tensor(data["ffn"], dtype=torch.bool))


def unit_importance(model: nn.Module, batches: Iterable[dict], device: torch.device | str = "cpu"
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Accumulated |dL/dξ| of every head and FFN block gate (Michel et al. 2019), unnormalised.

    Args:
        model: a fine-tuned sequence-classification model; it is put in eval mode (no dropout) and left
            unchanged (no weight is updated, no hook is left behind).
        batches: padded model inputs with ``labels`` (e.g. a ``DataLoader`` over the training split).
        device: where the batches are sent.

    Returns:
        ``(head, ffn)``: shapes ``(num_layers, num_heads)`` and ``(num_layers,)``, float32 on the CPU,
        summed over batches of the absolute gradient of each batch's mean loss.
    """
    model.eval()
    gates = UnitGates(model)
    head_total = torch.zeros_like(gates.head)
    ffn_total = torch.zeros_like(gates.ffn)
    try:
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            head, ffn = gates.track_gradients()
            loss = model(**batch).loss
            head_grad, ffn_grad = torch.autograd.grad(loss, [head, ffn])
            head_total += head_grad.abs()
            ffn_total += ffn_grad.abs()
    finally:
        gates.remove()
    return head_total.cpu(), ffn_total.cpu()


def normalize_by_layer(head_importance: torch.Tensor) -> torch.Tensor:
    """Divide each layer's head scores by their L2 norm (Michel et al.; Liang's ``--normalize_scores_by_layer``).

    Args:
        head_importance: shape ``(num_layers, num_heads)``, non-negative.

    Returns:
        same shape; each row has unit L2 norm (rows of zeros stay zero).
    """
    norm = head_importance.norm(p=2, dim=1, keepdim=True)
    return head_importance / (norm + 1e-20)


def units_to_prune(sparsity: float, count: int) -> int:
    """``floor(sparsity * count)``: how many of ``count`` units a ticket at ``sparsity`` prunes.

    Raises:
        ValueError: ``sparsity`` is outside [0, 1).
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity {sparsity} must be a fraction in [0, 1)")
    return math.floor(sparsity * count + _EPS)


def structured_mask(head_scores: torch.Tensor, ffn_scores: torch.Tensor, sparsity: float) -> StructuredMask:
    """The structured ticket at ``sparsity``: prune the globally lowest-scoring heads and FFN blocks.

    Args:
        head_scores: shape ``(num_layers, num_heads)``, already normalised per layer if wanted.
        ffn_scores: shape ``(num_layers,)``.
        sparsity: fraction in [0, 1) of heads and of FFN blocks to prune (rounding: module docstring).

    Returns:
        the mask; pruned heads are the lowest scores among those whose layer keeps another head, so every
        layer keeps at least one. Ties break by position (stable sort), so masks are nested in sparsity.

    Raises:
        ValueError: ``sparsity`` is outside [0, 1).
    """
    num_layers, num_heads = head_scores.shape
    n_heads = min(units_to_prune(sparsity, num_layers * num_heads), num_layers * (num_heads - 1))
    n_ffn = units_to_prune(sparsity, num_layers)

    head_keep = torch.ones(num_layers, num_heads, dtype=torch.bool)
    left_in_layer = [num_heads] * num_layers
    pruned = 0
    for flat in torch.argsort(head_scores.flatten(), stable=True).tolist():
        if pruned == n_heads:
            break
        layer, head = divmod(flat, num_heads)  # row-major: divide by heads per layer, not by layers
        if left_in_layer[layer] > 1:
            head_keep[layer, head] = False
            left_in_layer[layer] -= 1
            pruned += 1

    ffn_keep = torch.ones(num_layers, dtype=torch.bool)
    ffn_keep[torch.argsort(ffn_scores, stable=True)[:n_ffn]] = False
    return StructuredMask(head_keep, ffn_keep)


def make_ticket(request: TicketRequest) -> Ticket:
    """The structured ticket of a ``TicketRequest``: the dense run's head scores normalised per layer, its FFN
    scores, ranked by the request's control (``trainables.pruning.controls``), at the requested sparsity.
    A dense ticket replays the dense fine-tune."""
    dense = request.dense
    scores = control_scores((normalize_by_layer(dense.head_importance), dense.ffn_importance), request.control,
                            request.spec.seed)
    mask = structured_mask(*scores, request.sparsity).with_sizes(load_config(request.spec.model))
    return Ticket(mask, replay=dense.history if mask.is_dense else None)
