"""Physically remove the heads and FFN blocks a structured ticket pruned (METHODS.md section 1), for every encoder
family of the layout table (``trainables.model.LAYOUTS``).

A gated ticket (``trainables.gates``) computes every unit and multiplies the pruned ones by 0, so it costs what
the dense model costs. ``shrink`` builds the same function with the pruned units gone: the removal itself is
``remove_units`` of ``trainables/export_files/modeling_ticket.py``, the file an export ships beside its weights,
so the export's loader and the project slice a model with one and the same code, driven by the family's layout.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from trainables.export_files.modeling_ticket import remove_units
from trainables.model import encoder_shape, layout_for


def ticket_entry(model: nn.Module, head: torch.Tensor, ffn: torch.Tensor) -> dict:
    """The ``ticket`` entry of a shrunk model's config: kept head indices per layer, 1/0 per FFN block, the
    family's layout, and per layer the kept head count and FFN width (for readers and FLOP counts).

    Raises:
        ValueError: mask shapes that do not fit the model, or a layer with no head left.
        UnsupportedModelError: a family without a layout.
    """
    config = model.config
    shape = encoder_shape(config)
    if tuple(head.shape) != (shape.num_layers, shape.num_heads) or tuple(ffn.shape) != (shape.num_layers,):
        raise ValueError(f"mask shapes {tuple(head.shape)}, {tuple(ffn.shape)} do not fit the model's "
                         f"{(shape.num_layers, shape.num_heads)}, {(shape.num_layers,)}")
    if not head.any(dim=1).all():
        raise ValueError("every layer must keep at least one head")
    kept = [torch.nonzero(row).flatten().tolist() for row in head.bool().cpu()]
    return {"heads": kept, "ffn": [int(k) for k in ffn.bool().tolist()], "layout": layout_for(config).to_dict(),
            "heads_per_layer": [len(k) for k in kept], "head_dim": shape.head_dim,
            "intermediate_per_layer": [shape.ffn_size if k else 0 for k in ffn.bool().tolist()]}


def shrink(model: nn.Module, head: torch.Tensor, ffn: torch.Tensor) -> nn.Module:
    """The structured ticket of ``model`` with its pruned units removed; ``model`` is left unchanged.

    Args:
        model: a (fine-tuned) sequence classifier or encoder of a supported family (gate hooks, if any, are not
            copied: only its config and weights are).
        head: shape ``(num_layers, num_heads)``, bool, True = kept; at least one head per layer.
        ffn: shape ``(num_layers,)``, bool, True = kept.

    Returns:
        a copy of ``model``, the same stock class, in eval mode, whose logits equal the gated model's (to float
        rounding); ``config.ticket`` (``ticket_entry``) records the kept structure, unless nothing was pruned.

    Raises:
        ValueError: a layer with no head left, or mask shapes that do not fit.
        UnsupportedModelError: a family without a layout.
    """
    entry = ticket_entry(model, head, ffn)
    parameter = next(model.parameters())
    ticket = type(model)(copy.deepcopy(model.config))  # a fresh module tree: the gates' hooks stay on ``model``
    ticket.load_state_dict(model.state_dict())
    ticket.to(parameter.device, parameter.dtype)
    if not (head.all() and ffn.all()):  # a dense ticket stays what the stock class holds: no entry, no remote code
        remove_units(ticket, entry["layout"], entry["heads"], entry["ffn"])
        ticket.config.ticket = entry
    return ticket.eval()
