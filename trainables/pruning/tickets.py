"""The one interface every pruning method implements: a ``TicketRequest`` in, a ``Ticket`` out.

A method module (``structured``, ``magnitude``, ``imp``, ``tamt``) exposes ``make_ticket(request)``; its
``PruningMethod`` in ``trainables.pruning.registry.METHODS`` holds it, so a trial never branches on the method.
Controls (``random``/``bad``) are rankings handed to the method's own mask builder
(``trainables.pruning.controls``) and rewinding happens after, in the trial, for every method alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from torch import nn


class Mask(Protocol):
    """What a ticket mask offers (``StructuredMask`` and ``WeightMask`` both do)."""

    @property
    def is_dense(self) -> bool:
        """True when nothing is pruned."""

    def apply(self, model: nn.Module) -> Any:
        """Mask ``model`` in place, for training and evaluation alike."""

    def summary(self) -> dict:
        """Flat counts for MLflow params, always with ``achieved_sparsity`` (a fraction of the weights masked)."""

    def to_dict(self) -> dict:
        """JSON-ready description."""

    def save(self, path: str | Path) -> Path:
        """Write the mask artifact (a file ending in ``suffix``)."""

    suffix: str

    def export(self, model: nn.Module) -> nn.Module:
        """The fine-tuned ticket ``model`` as a model ``save_pretrained`` can write on its own (no hooks, no
        parametrisation): physically smaller for structured masks, zeros baked in for weight masks."""

    @staticmethod
    def describe_kept(facts: dict) -> str:
        """What a ticket kept, in the method's own units, from its ``summary()`` facts (e.g. ``51/72 heads, 5/6
        FFN`` or ``62.9% of weights``): the tables and verdict lines print this, never a method-specific field."""

    @classmethod
    def unit_grid(cls, path: str | Path) -> "UnitGrid | None":
        """The units the mask saved at ``path`` keeps, as a grid to draw (``None`` for masks with no units)."""

    def bitmask_bytes(self, model: nn.Module) -> int | None:
        """Bytes of a bitmask form of the exported ``model`` (fp32 non-zeros of the masked matrices plus one bit
        per weight), or ``None`` where the export is already physically smaller."""

    def switch(self, model: nn.Module) -> "MaskSwitch":
        """Attach this mask to ``model`` switched off (the model runs dense) so it can be switched on and off
        batch by batch; several tasks' switches may share one encoder (Tickets-Share, ``trainables.multitask``)."""


@dataclass(frozen=True)
class UnitGrid:
    """The units a ticket keeps, as Prasanna et al. (2020, fig. 3) draw them.

    Attributes:
        kept: shape ``(layers, columns)``, 1.0 = kept, 0.0 = pruned.
        labels: one label per column ("" leaves a column unlabelled).
        split: the first column of a second kind of unit (a line is drawn before it), or ``None``.
        xlabel: what the columns are.
    """

    kept: Any
    labels: tuple[str, ...]
    split: int | None = None
    xlabel: str = "unit"


class MaskSwitch(Protocol):
    """One task's ticket mask on a shared encoder, switched on for that task's batches only.

    Attributes:
        pruned: parameter -> bool tensor of its shape, True where the ticket removes the weight: what a step on
            this task's batch must leave unchanged (``trainables.finetune.held``).
    """

    pruned: dict

    def on(self) -> None:
        """Mask the encoder with this ticket (for training and evaluation alike)."""

    def off(self) -> None:
        """Unmask: the encoder runs dense again (weights unchanged)."""


@dataclass(frozen=True)
class TicketRequest:
    """What a method needs to build the ticket of one seed.

    Attributes:
        spec: the dense fine-tune's spec (``trainables.cache.DenseSpec``): model, task, seed, settings.
        dense: that fine-tune, cached (``trainables.cache.DenseResult``): weights and importance scores.
        sparsity: the requested sparsity, a fraction in [0, 1).
        control: ``good``, ``random`` or ``bad``.
        rewind: the rewinding point the ticket will be trained from.
        options: the method's options from the trial configuration (e.g. ``imp_rate``).
        cache_dir: the study's cache root (``<storage>/cache``).
    """

    spec: Any
    dense: Any
    sparsity: float
    control: str = "good"
    rewind: str = "pretrained"
    options: dict = field(default_factory=dict)
    cache_dir: str = ""


@dataclass
class Ticket:
    """A method's answer.

    Attributes:
        mask: the ticket's mask.
        replay: the per-epoch dev evaluations (``trainables.report.EpochResult``) of *this* ticket already fine-tuned from the pre-trained weights
            under the study's settings (the dense run for a dense ticket, an IMP level's own fine-tune), or
            ``None``; a trial rewound to ``pretrained`` reports these instead of training again.
        replay_weights: with ``replay``, the file of those fine-tuned weights (a cache entry's safetensors).
        info: extra method facts for MLflow params (e.g. IMP rounds, TAMT's final distillation loss).
        smaller: fine-tune the ticket as ``mask.export`` makes it, physically smaller (a structured ticket with its
            pruned heads and FFN blocks removed), instead of masked inside the full model: the same function and
            the same gradients on every kept weight, at the ticket's own cost (issue 30).
    """

    mask: Mask
    replay: list | None = None
    replay_weights: Path | None = None
    info: dict = field(default_factory=dict)
    smaller: bool = False

    def model_to_train(self, model: nn.Module) -> nn.Module:
        """The model a trial fine-tunes and evaluates, from the rewound ``model``: a physically smaller copy
        (``smaller``; ``model`` itself is left unchanged) or ``model`` masked in place.

        Raises:
            ValueError: the mask does not fit ``model``.
        """
        if self.smaller and not self.mask.is_dense:
            return self.mask.export(model)
        self.mask.apply(model)
        return model
