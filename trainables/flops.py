"""FLOPs per example of an encoder whose layers keep some of their heads and FFN blocks: what a structured ticket
trained (or run) physically smaller costs relative to the dense model.

At sequence length L, hidden size H, head size d and FFN width I (a multiply-add is 2 FLOPs), a layer with h kept
heads and its FFN block kept (f = 1) or pruned (f = 0) costs
    Q, K, V and attention output    4 * 2 * L * H * (h * d)
    scores and weighted values      2 * 2 * L * L * (h * d)
    FFN                             f * 2 * 2 * L * H * I * (1 + g / 2)
where g = 1 for a gated FFN (ModernBERT's, whose input map is twice as wide), else 0; plus the pooler and the
classifier, 2 * H * H + 2 * H * labels. Embedding look-ups, LayerNorms, softmax and activations are left out: the
matrix products dominate. Training costs about three times the forward pass for every model alike, so the ratio
of two models' forward FLOPs is the ratio of their training FLOPs too.
"""

from __future__ import annotations


def encoder_flops(shape, length: int, heads_per_layer: list[int], ffn_per_layer: list[int], labels: int = 2) -> int:
    """Forward FLOPs of one example of ``length`` tokens.

    Args:
        shape: the model's ``trainables.model.EncoderShape``.
        length: tokens per example.
        heads_per_layer: kept heads of each layer.
        ffn_per_layer: 1 if the layer's FFN block is kept, else 0.
        labels: classifier outputs.
    """
    hidden, head_dim = shape.hidden, shape.head_dim
    ffn = 2 * 2 * length * hidden * shape.ffn_size * (1 + (shape.ffn_input_blocks - 1) / 2)
    total = 0
    for heads, kept in zip(heads_per_layer, ffn_per_layer):
        width = heads * head_dim
        total += 8 * length * hidden * width + 4 * length * length * width + (ffn if kept else 0)
    return int(total + 2 * hidden * hidden + 2 * hidden * labels)


def kept_fraction(shape, heads_kept: int, ffn_kept: int, length: int = 128) -> float:
    """A structured ticket's forward FLOPs over the dense model's, from its kept head and FFN-block counts (the
    formula is linear in each layer's counts, so where they sit does not matter)."""
    layers = shape.num_layers
    dense = encoder_flops(shape, length, [shape.num_heads] * layers, [1] * layers)
    heads = [heads_kept // layers + (1 if i < heads_kept % layers else 0) for i in range(layers)]
    ffn = [1 if i < ffn_kept else 0 for i in range(layers)]
    return encoder_flops(shape, length, heads, ffn) / dense
