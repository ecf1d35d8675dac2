"""A BERT whose layers keep different numbers of attention heads and FFN units: a structured lottery ticket
exported by supertickets (https://github.com/ -- see the project README, "Take a ticket home").

Stock ``BertForSequenceClassification`` builds every layer with ``num_attention_heads`` heads and
``intermediate_size`` FFN units, so it cannot hold a ticket that pruned heads unevenly; this class builds layer
``l`` with ``config.heads_per_layer[l]`` heads (each of the original head size) and ``config.intermediate_per_layer[l]`` FFN
units (0: the FFN block was pruned; its output bias is then 0 as well), and is otherwise the stock model.
Load it with::

    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)

Without ``trust_remote_code`` the stock class refuses the checkpoint (its shapes do not match). Only ``torch``
and ``transformers`` are imported: this file travels with the weights.
"""

import warnings

from torch import nn
from transformers import BertConfig, BertForSequenceClassification


class TicketBertForSequenceClassification(BertForSequenceClassification):
    """``BertForSequenceClassification`` with the per-layer widths of its config.

    The config is a stock ``BertConfig`` (``model_type`` ``bert``, so tokenizers and tools read it as usual) with
    two more keys: ``heads_per_layer`` (attention heads kept in each layer) and ``intermediate_per_layer`` (FFN
    units kept in each layer, ``intermediate_size`` or 0). Without them the model is stock BERT.
    """

    config_class = BertConfig

    def __init__(self, config):
        super().__init__(config)
        hidden, layers = config.hidden_size, config.num_hidden_layers
        head_dim = hidden // config.num_attention_heads
        heads_per_layer = getattr(config, "heads_per_layer", None) or [config.num_attention_heads] * layers
        intermediate_per_layer = getattr(config, "intermediate_per_layer", None) or [config.intermediate_size] * layers
        for layer, heads, inner in zip(self.bert.encoder.layer, heads_per_layer, intermediate_per_layer):
            attention, width = layer.attention.self, heads * head_dim
            attention.query, attention.key, attention.value = (nn.Linear(hidden, width) for _ in range(3))
            attention.num_attention_heads, attention.all_head_size = heads, width  # head size is unchanged
            layer.attention.output.dense = nn.Linear(width, hidden)
            with warnings.catch_warnings():  # a pruned FFN block has 0 units: its matrices are empty
                warnings.filterwarnings("ignore", "Initializing zero-element tensors")
                layer.intermediate.dense = nn.Linear(hidden, inner)
                layer.output.dense = nn.Linear(inner, hidden)
        self.post_init()
