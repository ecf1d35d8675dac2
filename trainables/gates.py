"""Multiplicative gates on every attention head and FFN block (Michel et al. 2019; METHODS.md section 1).

A gate ξ multiplies one unit's output: head ``h`` of layer ``l`` scales its slice of the context vector
before the attention output projection, and FFN block ``l`` scales the FFN's output before the residual
connection. With all ξ = 1 the model is unchanged; ξ = 0 removes the unit exactly (its contribution is
0, whatever its weights). Gradients of the loss with respect to ξ give the head/FFN importance scores.
"""

from __future__ import annotations

import torch
from torch import nn

from trainables.model import encoder_layers, encoder_shape, submodule


class UnitGates:
    """Gates on the heads and FFN blocks of a loaded model, attached with forward hooks.

    Attributes:
        head: shape ``(num_layers, num_heads)``, float, one gate per attention head.
        ffn: shape ``(num_layers,)``, float, one gate per FFN block.

    Use ``set(head_mask, ffn_mask)`` to apply a 0/1 ticket mask, ``track_gradients()`` to make the gates
    leaf tensors whose gradients an importance pass reads, and ``remove()`` to detach the hooks.
    """

    def __init__(self, model: nn.Module):
        shape = encoder_shape(model.config)
        device = next(model.parameters()).device
        self.head = torch.ones(shape.num_layers, shape.num_heads, device=device)
        self.ffn = torch.ones(shape.num_layers, device=device)
        # Per layer: may the hook skip the multiplication? Decided when gates change, never in the forward
        # pass (reading a GPU tensor there would synchronise the device on every layer of every step).
        self._skip_heads = [True] * shape.num_layers
        self._skip_ffn = [True] * shape.num_layers
        layout, layers = encoder_layers(model)
        if len(layers) != shape.num_layers:
            raise ValueError(f"config says {shape.num_layers} layers, the model has {len(layers)}")
        self._handles = []
        for index, layer in enumerate(layers):
            projection = submodule(layer, layout.head_projection)
            ffn_output = submodule(layer, layout.ffn_output)
            self._handles.append(projection.register_forward_pre_hook(self._gate_heads(index)))
            self._handles.append(ffn_output.register_forward_hook(self._gate_ffn(index)))

    def _gate_heads(self, layer: int):
        def hook(module, inputs):
            context = inputs[0]  # (batch, seq, heads * head_dim)
            if self._skip_heads[layer]:
                return None
            gate = self.head[layer]
            batch, seq, width = context.shape
            heads = gate.shape[0]
            gated = context.view(batch, seq, heads, width // heads) * gate.view(1, 1, heads, 1).to(context.dtype)
            return (gated.view(batch, seq, width), *inputs[1:])

        return hook

    def _gate_ffn(self, layer: int):
        def hook(module, inputs, output):
            if self._skip_ffn[layer]:
                return None
            return output * self.ffn[layer].to(output.dtype)

        return hook

    def set(self, head_mask: torch.Tensor, ffn_mask: torch.Tensor) -> None:
        """Set the gates: ``head_mask`` ``(num_layers, num_heads)`` and ``ffn_mask`` ``(num_layers,)``; a 0/1 ticket
        mask (1 = kept) or any real values. Boolean masks become float32; floating ones keep their dtype.

        Raises:
            ValueError: the shapes differ from the model's.
        """
        if head_mask.shape != self.head.shape or ffn_mask.shape != self.ffn.shape:
            raise ValueError(f"mask shapes {tuple(head_mask.shape)}, {tuple(ffn_mask.shape)} do not match the "
                             f"model's {tuple(self.head.shape)}, {tuple(self.ffn.shape)}")

        def as_gate(mask):
            dtype = mask.dtype if mask.is_floating_point() else torch.float32
            return mask.detach().to(self.head.device, dtype).clone()

        self.head, self.ffn = as_gate(head_mask), as_gate(ffn_mask)
        self._skip_heads = (self.head == 1).all(dim=1).tolist()
        self._skip_ffn = (self.ffn == 1).tolist()

    def track_gradients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Make fresh leaf gates (same values) that require grad, and return ``(head, ffn)``.

        A new leaf each time avoids the stale-gradient pitfall of transformers#3895.
        """
        self.head = self.head.detach().clone().requires_grad_(True)
        self.ffn = self.ffn.detach().clone().requires_grad_(True)
        self._skip_heads = [False] * len(self._skip_heads)  # the gradient flows through the multiplication
        self._skip_ffn = [False] * len(self._skip_ffn)
        return self.head, self.ffn

    def remove(self) -> None:
        """Detach every hook: the model runs ungated again."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
