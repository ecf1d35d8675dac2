"""Control tickets (Prasanna et al. 2020, METHODS.md section 3), applicable to any score-ranked method.

A control is a different ranking handed to the same mask builder, so it prunes exactly as many units as the good
ticket, under the same constraints (for structured tickets: one head kept per layer):

- ``good``: the method's own scores (prune the least important units);
- ``random``: scores drawn uniformly at random from ``seed`` (the public code sampled with replacement and
  pruned fewer units than intended; here the count is exact);
- ``bad``: the negated scores (prune the most important units, the good ranking reversed).
"""

from __future__ import annotations

import torch

CONTROLS = ("good", "random", "bad")


def control_scores(scores: tuple[torch.Tensor, ...], control: str, seed: int) -> tuple[torch.Tensor, ...]:
    """The scores a ``control`` ticket is ranked by (lowest pruned first).

    Args:
        scores: the method's importance scores, any shapes (e.g. heads ``(layers, heads)`` and FFN ``(layers,)``).
        control: ``good``, ``random`` or ``bad``.
        seed: seeds the random control, so the same seed always gives the same ticket.

    Returns:
        tensors of the same shapes as ``scores``.

    Raises:
        ValueError: unknown control.
    """
    if control == "good":
        return scores
    if control == "bad":
        return tuple(-s for s in scores)
    if control == "random":
        generator = torch.Generator().manual_seed(seed)
        return tuple(torch.rand(s.shape, generator=generator) for s in scores)
    raise ValueError(f"unknown control {control!r}: choose one of {', '.join(CONTROLS)}")
