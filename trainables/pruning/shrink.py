"""Physically remove the heads and FFN blocks a structured ticket pruned (METHODS.md section 1).

A gated ticket (``trainables.gates``) computes every unit and multiplies the pruned ones by 0, so it costs what
the dense model costs. ``shrink`` builds the same function with the pruned units gone: for a pruned head ``h`` of
layer ``l``, rows ``h * d .. (h + 1) * d - 1`` of Q, K and V (weights and biases, ``d`` = head size) and the same
columns of the attention output projection; for a pruned FFN block, the whole intermediate layer and the FFN
output matrix, whose bias is set to 0 (the gate multiplied the FFN output *with* its bias). The result is a
``TicketBertForSequenceClassification`` (``trainables/export_files/modeling_ticket.py``): stock BERT with a
head count and FFN width per layer, which the stock class cannot hold.
"""

from __future__ import annotations

import torch
from torch import nn

from transformers import BertConfig

from trainables.export_files.modeling_ticket import TicketBertForSequenceClassification

# save_pretrained copies modeling_ticket.py beside the weights and names it in config.json's auto_map
TicketBertForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")


def kept_rows(keep: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Indices of the Q/K/V rows (attention-output columns) of the kept heads.

    Args:
        keep: shape ``(num_heads,)``, bool, True = kept.
        head_dim: size of one head.

    Returns:
        shape ``(kept_heads * head_dim,)``, int64, ascending.
    """
    heads = torch.nonzero(keep).flatten()
    return (heads[:, None] * head_dim + torch.arange(head_dim)[None, :]).flatten()


def shrink(model: nn.Module, head: torch.Tensor, ffn: torch.Tensor) -> TicketBertForSequenceClassification:
    """The structured ticket of ``model`` with its pruned units removed; ``model`` is left unchanged.

    Args:
        model: a fine-tuned ``BertForSequenceClassification`` (gate hooks, if any, are ignored: only its weights
            are read).
        head: shape ``(num_layers, num_heads)``, bool, True = kept; at least one head per layer.
        ffn: shape ``(num_layers,)``, bool, True = kept.

    Returns:
        a model in eval mode whose logits equal the gated model's (to float rounding), with
        ``config.heads_per_layer`` and ``config.intermediate_per_layer`` recording the kept structure.

    Raises:
        ValueError: not a BERT sequence classifier, a layer with no head left, or mask shapes that do not fit.
    """
    config = model.config
    if config.model_type != "bert" or not hasattr(model, "bert"):
        raise ValueError(f"a structured ticket of a {config.model_type!r} model cannot be exported physically "
                         "smaller: only BERT sequence classifiers are supported (export it unstructured instead)")
    layers, heads = config.num_hidden_layers, config.num_attention_heads
    if tuple(head.shape) != (layers, heads) or tuple(ffn.shape) != (layers,):
        raise ValueError(f"mask shapes {tuple(head.shape)}, {tuple(ffn.shape)} do not fit the model's "
                         f"{(layers, heads)}, {(layers,)}")
    if not head.any(dim=1).all():
        raise ValueError("every layer must keep at least one head")
    head_dim = config.hidden_size // heads
    settings = {k: v for k, v in config.to_dict().items() if k not in ("model_type", "architectures", "auto_map",
                                                                     "transformers_version")}
    ticket_config = BertConfig(heads_per_layer=head.sum(dim=1).tolist(),
                                     intermediate_per_layer=[config.intermediate_size if k else 0 for k in ffn.tolist()],
                                     **settings)
    ticket = TicketBertForSequenceClassification(ticket_config)
    source = model.state_dict()
    target = {}
    for name in ticket.state_dict():
        value = source[name]
        parts = name.split(".")
        if parts[:3] == ["bert", "encoder", "layer"]:
            index, local = int(parts[3]), ".".join(parts[4:])
            rows = kept_rows(head[index].cpu(), head_dim)
            if local.startswith(("attention.self.query.", "attention.self.key.", "attention.self.value.")):
                value = value[rows]
            elif local == "attention.output.dense.weight":
                value = value[:, rows]
            elif local.startswith("intermediate.dense.") and not ffn[index]:
                value = value[:0]
            elif local == "output.dense.weight" and not ffn[index]:
                value = value[:, :0]
            elif local == "output.dense.bias" and not ffn[index]:
                value = torch.zeros_like(value)
        target[name] = value.detach().clone().contiguous()
    ticket.load_state_dict(target, strict=True)
    return ticket.eval()
