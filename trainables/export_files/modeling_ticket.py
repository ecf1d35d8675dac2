"""A structured lottery ticket with its pruned attention heads and FFN blocks physically removed, for any encoder
family supertickets supports (BERT, RoBERTa, XLM-R, CamemBERT, ELECTRA, DistilBERT, DeBERTa-v2/v3, MPNet,
ModernBERT). Written by supertickets' export beside the weights; see the project README, "Take a ticket home".

A stock model class builds every layer with the config's number of heads and FFN units, so it cannot hold a
ticket that pruned layers unevenly. This file rebuilds the stock model and slices it to the kept units recorded
in ``config.json`` under ``ticket`` (``heads``: the kept head indices of each layer; ``ffn``: 1/0 per layer;
``layout``: where the family keeps the maps to slice). The model returned *is* the stock class (pipelines and
tools treat it as such), with narrower linear maps. Load it with::

    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)

Without ``trust_remote_code`` the stock class refuses the checkpoint (its shapes do not match); ``model.onnx``
in the same folder runs in ONNX Runtime with no code at all. Only ``torch``, ``safetensors`` and
``transformers`` are imported: this file travels with the weights, and supertickets itself loads and trains
tickets with this same code (``trainables.pruning.shrink``).
"""

import json
import operator
import os

import torch
from torch import nn


def head_rows(keep, head_dim: int, heads: int, blocks: int = 1) -> torch.Tensor:
    """Row indices, in a map of ``blocks`` stacked blocks of ``heads * head_dim`` rows, of the heads ``keep`` selects.

    Args:
        keep: kept head indices (ascending), or a bool tensor of shape ``(heads,)``, True = kept.
        head_dim: size of one head.
        heads: heads the map was built with.
        blocks: stacked blocks (3: one fused QKV map).

    Returns:
        shape ``(blocks * kept * head_dim,)``, int64, ascending.
    """
    keep = torch.as_tensor(keep)
    index = torch.nonzero(keep).flatten() if keep.dtype == torch.bool else keep.long()
    one = (index[:, None] * head_dim + torch.arange(head_dim)[None, :]).flatten()
    return torch.cat([one + block * heads * head_dim for block in range(blocks)])


def _slice(linear: nn.Linear, rows=None, columns=None, drop_bias: bool = False) -> None:
    """Keep ``rows`` (output features) and ``columns`` (input features) of ``linear``, in place: the module keeps its
    identity (hooks stay), its parameters are replaced."""
    with torch.no_grad():
        weight = linear.weight
        if rows is not None:
            weight = weight[rows.to(weight.device)]
            if linear.bias is not None:
                linear.bias = nn.Parameter(linear.bias[rows.to(weight.device)].clone())
        if columns is not None:
            weight = weight[:, columns.to(weight.device)]
        linear.weight = nn.Parameter(weight.clone().contiguous())
        if drop_bias:  # its output is then exactly 0, and stays 0 when trained (a bias of 0 would learn)
            linear.register_parameter("bias", None)
    linear.out_features, linear.in_features = linear.weight.shape


def _bias_slicer(index: torch.Tensor, argument: int):
    def hook(module, args, kwargs):
        if len(args) > argument and args[argument] is not None:  # (batch, heads, query, key)
            bias = args[argument]
            return (*args[:argument], bias.index_select(1, index.to(bias.device)), *args[argument + 1:]), kwargs
        return None

    return hook


def remove_units(model: nn.Module, layout: dict, heads: list, ffn: list) -> nn.Module:
    """Remove, in place, the heads and FFN blocks a structured ticket pruned (METHODS.md section 1).

    For a pruned head ``h`` of a layer: its rows of every attention-input map (each of its ``qkv_blocks``) and
    its columns of the attention output. For a pruned FFN block: every FFN unit (rows of the FFN input map,
    columns of the output map) and the output map's bias, removed (a closed gate multiplied the FFN output *with*
    its bias, so the block adds exactly 0, also while a ticket is fine-tuned). The model computes what the gated
    ticket computes, and trains what it trains.

    Args:
        model: a stock encoder or sequence classifier of the family ``layout`` describes, unpruned.
        layout: ``EncoderLayout.to_dict()`` of its family.
        heads: per layer, the kept head indices (ascending, at least one).
        ffn: per layer, 1 if the FFN block is kept.

    Returns:
        ``model``.

    Raises:
        ValueError: ``heads``/``ffn`` do not have one entry per layer, or a layer keeps no head.
    """
    config = model.config
    layers = list(operator.attrgetter(layout["layers"])(model.base_model))
    if len(heads) != len(layers) or len(ffn) != len(layers):
        raise ValueError(f"a ticket of {len(heads)} head lists and {len(ffn)} FFN flags does not fit a model of "
                         f"{len(layers)} layers")
    full = config.num_attention_heads
    for layer, kept, ffn_kept in zip(layers, heads, ffn):
        if not kept:
            raise ValueError("every layer must keep at least one head")
        projection = operator.attrgetter(layout["head_projection"])(layer)
        head_dim = projection.in_features // full
        index = torch.tensor(sorted(kept), dtype=torch.long)
        if len(kept) < full:
            rows = head_rows(index, head_dim, full, layout["qkv_blocks"])
            for path in layout["attention_inputs"]:
                _slice(operator.attrgetter(path)(layer), rows=rows)
            for path in layout["optional_attention_inputs"]:
                try:
                    _slice(operator.attrgetter(path)(layer), rows=head_rows(index, head_dim, full))
                except AttributeError:
                    pass  # the config did not build this map
            _slice(projection, columns=head_rows(index, head_dim, full))
            for path, name in layout["head_counts"]:
                setattr(operator.attrgetter(path)(layer) if path else layer, name, len(kept))
            for path, name in layout["head_widths"]:
                setattr(operator.attrgetter(path)(layer) if path else layer, name, len(kept) * head_dim)
            if layout.get("head_bias"):
                path, argument = layout["head_bias"]
                operator.attrgetter(path)(layer).register_forward_pre_hook(_bias_slicer(index, argument),
                                                                           with_kwargs=True)
        if not ffn_kept:
            nothing = torch.zeros(0, dtype=torch.long)
            _slice(operator.attrgetter(layout["ffn_input"])(layer), rows=nothing)
            _slice(operator.attrgetter(layout["ffn_output"])(layer), columns=nothing, drop_bias=True)
    return model


class TicketForSequenceClassification:
    """Loads a structured ticket exported by supertickets as its family's stock sequence classifier, narrowed to
    the kept units (``remove_units``). Not a model class itself: ``from_pretrained`` returns the stock model."""

    @classmethod
    def register_for_auto_class(cls, auto_class="AutoModelForSequenceClassification"):
        """Nothing to register: the object ``from_pretrained`` returns is the stock class."""

    @classmethod
    def from_pretrained(cls, folder, *args, config=None, **kwargs):
        """The ticket in ``folder`` (a local export folder), in eval mode.

        Raises:
            ValueError: the folder's config has no ``ticket`` entry, or its weights do not fit it.
        """
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModelForSequenceClassification

        if config is None:
            config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
        ticket = getattr(config, "ticket", None)
        if not ticket:
            raise ValueError(f"{folder} is not a structured ticket exported by supertickets (no 'ticket' in its config)")
        model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=False)
        remove_units(model, ticket["layout"], ticket["heads"], ticket["ffn"])
        state = load_file(os.path.join(folder, "model.safetensors"))
        missing, unexpected = model.load_state_dict(state, strict=False)
        tied = set(getattr(model, "all_tied_weights_keys", None) or {})
        if unexpected or [name for name in missing if name not in tied]:
            raise ValueError(f"the weights in {folder} do not fit its ticket: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}")
        if tied:
            model.tie_weights()
        return model.eval()


def read_ticket(folder) -> dict:
    """The ``ticket`` entry of an export folder's ``config.json`` (empty when it has none)."""
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as handle:
        return json.load(handle).get("ticket") or {}
