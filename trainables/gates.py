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
        self._unit_shape = (shape.num_layers, shape.num_heads)
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
            gate = self.head[layer]  # (heads,), (batch, heads) or (batch, seq, heads)
            batch, seq, width = context.shape
            heads = gate.shape[-1]
            shape = {1: (1, 1, heads, 1), 2: (batch, 1, heads, 1), 3: (batch, seq, heads, 1)}[gate.dim()]
            gated = context.view(batch, seq, heads, width // heads) * gate.view(shape).to(context.dtype)
            return (gated.view(batch, seq, width), *inputs[1:])

        return hook

    def _gate_ffn(self, layer: int):
        def hook(module, inputs, output):  # output: (batch, seq, hidden)
            if self._skip_ffn[layer]:
                return None
            gate = self.ffn[layer]  # (), (batch,) or (batch, seq)
            batch, seq, _ = output.shape
            shape = {0: (), 1: (batch, 1, 1), 2: (batch, seq, 1)}[gate.dim()]
            return output * gate.reshape(shape).to(output.dtype)

        return hook

    def set(self, head_mask: torch.Tensor, ffn_mask: torch.Tensor) -> None:
        """Set the gates: ``head_mask`` ``(num_layers, num_heads)`` and ``ffn_mask`` ``(num_layers,)``; a 0/1 ticket
        mask (1 = kept) or any real values. Boolean masks become float32; floating ones keep their dtype.

        Raises:
            ValueError: the shapes differ from the model's.
        """
        layers, heads = self._unit_shape
        if tuple(head_mask.shape) != (layers, heads) or tuple(ffn_mask.shape) != (layers,):
            raise ValueError(f"mask shapes {tuple(head_mask.shape)}, {tuple(ffn_mask.shape)} do not match the "
                             f"model's {(layers, heads)}, {(layers,)}")

        def as_gate(mask):
            dtype = mask.dtype if mask.is_floating_point() else torch.float32
            return mask.detach().to(self.head.device, dtype).clone()

        self.head, self.ffn = as_gate(head_mask), as_gate(ffn_mask)
        self._skip_heads = (self.head == 1).all(dim=1).tolist()
        self._skip_ffn = (self.ffn == 1).tolist()

    def track_gradients(self, batch: int | None = None, seq: int | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Make fresh leaf gates that require grad, all ones, and return ``(head, ffn)``.

        Args:
            batch: give every example of a batch of this size its own gates, so the gradient of the
                summed loss with respect to them is each example's own gradient (Michel et al.'s
                per-example form); ``None``: one gate per unit for the whole batch.
            seq: with ``batch``, also one gate per token position (Liang et al.'s per-token form).

        Returns:
            ``head`` of shape ``(layers, heads)``, ``(layers, batch, heads)`` or ``(layers, batch, seq, heads)``
            and ``ffn`` of shape ``(layers,)``, ``(layers, batch)`` or ``(layers, batch, seq)``.

        A new leaf each time avoids the stale-gradient pitfall of transformers#3895. The gates start at one
        whatever mask was set before: importance is always taken on the unpruned model.
        """
        layers, heads = self._unit_shape
        inner = () if batch is None else (batch,) if seq is None else (batch, seq)
        device = self.head.device
        self.head = torch.ones(layers, *inner, heads, device=device, requires_grad=True)
        self.ffn = torch.ones(layers, *inner, device=device, requires_grad=True)
        self._skip_heads = [False] * layers  # the gradient flows through the multiplication
        self._skip_ffn = [False] * layers
        return self.head, self.ffn

    def remove(self) -> None:
        """Detach every hook: the model runs ungated again."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
