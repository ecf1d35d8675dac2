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
            gate = self.head[layer]
            if not gate.requires_grad and bool(torch.all(gate == 1)):
                return None
            batch, seq, width = context.shape
            heads = gate.shape[0]
            gated = context.view(batch, seq, heads, width // heads) * gate.view(1, 1, heads, 1).to(context.dtype)
            return (gated.view(batch, seq, width), *inputs[1:])

        return hook

    def _gate_ffn(self, layer: int):
        def hook(module, inputs, output):
            gate = self.ffn[layer]
            if not gate.requires_grad and bool(gate == 1):
                return None
            return output * gate.to(output.dtype)

        return hook

    def set(self, head_mask: torch.Tensor, ffn_mask: torch.Tensor) -> None:
        """Apply a ticket mask: ``head_mask`` ``(num_layers, num_heads)`` and ``ffn_mask`` ``(num_layers,)``, 1 = kept."""
        if head_mask.shape != self.head.shape or ffn_mask.shape != self.ffn.shape:
            raise ValueError(f"mask shapes {tuple(head_mask.shape)}, {tuple(ffn_mask.shape)} do not match the "
                             f"model's {tuple(self.head.shape)}, {tuple(self.ffn.shape)}")
        self.head = head_mask.detach().to(self.head.device, torch.float32).clone()
        self.ffn = ffn_mask.detach().to(self.ffn.device, torch.float32).clone()

    def track_gradients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Make fresh leaf gates (same values) that require grad, and return ``(head, ffn)``.

        A new leaf each time avoids the stale-gradient pitfall of transformers#3895.
        """
        self.head = self.head.detach().clone().requires_grad_(True)
        self.ffn = self.ffn.detach().clone().requires_grad_(True)
        return self.head, self.ffn

    def freeze(self) -> None:
        """Stop tracking gradients of the gates (values unchanged)."""
        self.head = self.head.detach()
        self.ffn = self.ffn.detach()

    def remove(self) -> None:
        """Detach every hook: the model runs ungated again."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
