"""Unstructured tickets: a 0/1 mask over single weights of the prunable matrices (METHODS.md section 2).

Prunable: the query, key, value, attention-output and both FFN weight matrices of every layer (Chen et al.
2020; Prasanna et al. 2020); the pooler and the word embeddings only when asked (Chen et al. add the pooler,
TAMT both). Biases, LayerNorms and the classifier are never pruned. Sparsity is the fraction of the
prunable weights a mask removes, counted over exactly the matrices it covers.

A mask is applied with ``torch.nn.utils.prune.custom_from_mask``: the module's ``weight`` becomes
``weight_orig * weight_mask`` on every forward pass, so the pruned weights are exactly 0 and get zero
gradient during fine-tuning.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils import prune

from trainables.model import encoder_layers
from trainables.pruning.method import Option

_EPS = 1e-9  # guards floor() against float noise such as 0.29 * 100 = 28.999999999999996


@dataclass(frozen=True)
class PrunableSet:
    """Which matrices count as prunable besides every layer's six (query, key, value, attention output, FFN
    in, FFN out).

    Attributes:
        pooler: also the pooler's dense matrix (Chen et al.).
        embeddings: also the word-embedding table (TAMT).
        min_keep: a global ranking keeps at least this fraction of every matrix (``--min-keep-per-matrix``).
    """

    pooler: bool = False
    embeddings: bool = False
    min_keep: float = 0.0

    @classmethod
    def from_options(cls, options: dict) -> "PrunableSet":
        """From a trial's method options ``prune_pooler`` / ``prune_embeddings`` / ``min_keep_per_matrix``
        (absent: off, 0)."""
        return cls(bool(options.get("prune_pooler", False)), bool(options.get("prune_embeddings", False)),
                   float(options.get("min_keep_per_matrix", 0.0)))

    def describe(self) -> str:
        """Which matrices sparsity counts, in words (for reports)."""
        extra = [name for name, on in (("pooler", self.pooler), ("word embeddings", self.embeddings)) if on]
        return "Q, K, V, attention-output and both FFN matrices of every layer" + "".join(f" + {e}" for e in extra)


def prunable_weights(model: nn.Module, which: PrunableSet = PrunableSet()) -> dict[str, nn.Parameter]:
    """The prunable weight matrices of ``model``, by parameter name (as in ``model.named_parameters()``).

    Works on a sequence-classification model or on a bare encoder (``AutoModel``); names are those of the
    model passed in. Order: layer by layer (query, key, value, attention output, FFN in, FFN out), then the
    pooler, then the word embeddings.

    Raises:
        ValueError: the pooler is asked for and the model has none.
    """
    layout, layers = encoder_layers(model)
    modules = [operator.attrgetter(path)(layer) for layer in layers for path in layout.matrices]
    base = model.base_model
    if which.pooler:
        pooler = operator.attrgetter(layout.pooler)(base) if layout.pooler and getattr(base, "pooler", None) else None
        if pooler is None:
            raise ValueError(f"{model.config.model_type} model has no pooler to prune: leave the pooler option off")
        modules.append(pooler)
    if which.embeddings:
        modules.append(operator.attrgetter(layout.word_embeddings)(base))
    names = {id(module): name for name, module in model.named_modules()}
    return {f"{names[id(module)]}.weight": module.weight for module in modules}


def to_encoder_name(name: str, model: nn.Module) -> str:
    """``name`` relative to ``model.base_model`` (``bert.encoder.layer.0...`` -> ``encoder.layer.0...``), so
    a mask found on a bare encoder (TAMT) applies to a classifier model and back."""
    prefix = model.base_model_prefix + "."
    return name[len(prefix):] if name.startswith(prefix) else name


def prune_count(sparsity: float, total: int) -> int:
    """``floor(sparsity * total)``: how many of ``total`` weights a mask at ``sparsity`` removes.

    Raises:
        ValueError: ``sparsity`` outside [0, 1).
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity {sparsity} must be a fraction in [0, 1)")
    return math.floor(sparsity * total + _EPS)


@dataclass(frozen=True)
class WeightMask:
    """An unstructured ticket.

    Attributes:
        masks: ``{name: bool tensor}``, one per masked matrix, the shape of its weight, True = kept. Names
            are relative to the encoder (``encoder.layer.0.attention.self.query.weight``, see
            ``to_encoder_name``), so one mask fits any head on the same encoder.
    """

    masks: dict[str, torch.Tensor]

    @property
    def total(self) -> int:
        """Weights covered by the mask (the prunable weights)."""
        return sum(m.numel() for m in self.masks.values())

    @property
    def kept(self) -> int:
        """Weights kept."""
        return sum(int(m.sum()) for m in self.masks.values())

    @property
    def sparsity(self) -> float:
        """Achieved sparsity: fraction (not percent) of the covered weights that are pruned."""
        return 1.0 - self.kept / self.total

    @property
    def is_dense(self) -> bool:
        """True when nothing is pruned."""
        return all(bool(m.all()) for m in self.masks.values())

    def matrix_sparsity(self) -> dict[str, float]:
        """Fraction pruned in each matrix."""
        return {name: 1.0 - int(m.sum()) / m.numel() for name, m in self.masks.items()}

    def apply(self, model: nn.Module) -> None:
        """Mask ``model``'s weights in place (``torch.nn.utils.prune.custom_from_mask``).

        Raises:
            KeyError: a masked matrix is not in ``model``.
        """
        for name, mask in self.masks.items():
            module = model.base_model.get_submodule(name.rsplit(".", 1)[0])
            prune.custom_from_mask(module, "weight", mask.to(module.weight.device))

    def switch(self, model: nn.Module) -> "WeightSwitch":
        """This mask on ``model``, switched off (see ``WeightSwitch``)."""
        return WeightSwitch(self, model)

    def summary(self) -> dict:
        """Small, flat description for MLflow: weights kept, total, achieved sparsity."""
        return {"weights_kept": self.kept, "total_weights": self.total, "achieved_sparsity": self.sparsity}

    @staticmethod
    def describe_kept(facts: dict) -> str:
        """``62.9% of weights`` from ``summary()``'s facts."""
        return f"{100 * facts['weights_kept'] / facts['total_weights']:.1f}% of weights"

    @classmethod
    def unit_grid(cls, path: str | Path) -> None:
        """``None``: single weights have no unit grid to draw."""
        return None

    def bitmask_bytes(self, model: nn.Module) -> int:
        """Bytes of a bitmask form of the exported ``model``: the masked matrices as fp32 non-zeros plus one bit
        per weight, every other tensor as stored (computed, not written)."""
        masked = set(self.masks)
        total = 0
        for name, tensor in model.state_dict().items():
            local = name.split(".", 1)[1] if name.startswith(model.base_model_prefix + ".") else name
            if local in masked:
                total += int(torch.count_nonzero(tensor)) * tensor.element_size() + (tensor.numel() + 7) // 8
            else:
                total += tensor.numel() * tensor.element_size()
        return total

    def to_dict(self) -> dict:
        """JSON-ready description (per-matrix kept counts; the 0/1 mask itself goes in ``save``'s file)."""
        return {"kind": "weights", **self.summary(),
                "matrices": {name: {"kept": int(m.sum()), "total": m.numel()} for name, m in self.masks.items()}}

    def save(self, path: str | Path) -> Path:
        """Write the mask as safetensors (bool tensors, 1 byte per weight); returns the path."""
        save_file({name: m.contiguous() for name, m in self.masks.items()}, str(path))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "WeightMask":
        """Read a mask written by ``save``."""
        return cls(dict(load_file(str(path))))

    #: the file suffix of ``save``
    suffix = "safetensors"

    def export(self, model: nn.Module) -> nn.Module:
        """The fine-tuned ticket ``model`` as a stock model: the mask applied (if it was not) and baked in, so
        ``state_dict`` has the usual names and exact zeros where pruned. Changes ``model`` in place; returns it.

        Raises:
            KeyError: a masked matrix is not in ``model``.
        """
        if not any(prune.is_pruned(module) for module in model.modules()):
            self.apply(model)
        return bake(model)


class WeightSwitch:
    """An unstructured ticket switched on and off on a (shared) encoder.

    Each masked matrix gets one ``torch.nn.utils.prune`` mask buffer (``weight = weight_orig * weight_mask``),
    shared by every switch on that matrix: ``on()`` writes this ticket's mask into it, ``off()`` ones, so the
    weights themselves (``weight_orig``) are never overwritten. ``pruned`` maps each ``weight_orig`` to the
    elements this ticket removes.

    Raises:
        KeyError: a masked matrix is not in ``model``.
    """

    def __init__(self, mask: WeightMask, model: nn.Module):
        self.modules, self.pruned = [], {}
        for name, keep in mask.masks.items():
            module = model.base_model.get_submodule(name.rsplit(".", 1)[0])
            if not prune.is_pruned(module):
                prune.identity(module, "weight")  # a mask buffer of ones: the model still runs dense
            keep = keep.to(module.weight_orig.device)
            self.modules.append((module, keep))
            if not bool(keep.all()):
                self.pruned[module.weight_orig] = ~keep

    def on(self) -> None:
        """Mask the matrices with this ticket."""
        for module, keep in self.modules:
            module.weight_mask.copy_(keep)

    def off(self) -> None:
        """Unmask them."""
        for module, _ in self.modules:
            module.weight_mask.fill_(1)


def masked_weights(model: nn.Module, which: PrunableSet = PrunableSet()) -> dict[str, torch.Tensor]:
    """The current (effective) prunable weights of ``model``, by encoder-relative name, detached on the CPU."""
    return {to_encoder_name(name, model): w.detach().cpu() for name, w in prunable_weights(model, which).items()}


def bake(model: nn.Module) -> nn.Module:
    """Make every mask applied by ``WeightMask.apply`` permanent (``prune.remove``): plain ``weight`` tensors
    with zeros where pruned, so ``state_dict`` has the usual names. Returns ``model``."""
    for module in model.modules():
        if prune.is_pruned(module) and hasattr(module, "weight_orig"):
            prune.remove(module, "weight")
    return model


#: A global magnitude ranking keeps at least this fraction of every matrix (``--min-keep-per-matrix``).
DEFAULT_MIN_KEEP = 0.01

#: Default sparsity range of the unstructured methods: Chen et al. find matching subnetworks at 40-90 %, so
#: the grid runs to 90 % in 10 % steps (IMP's default ladder). ``(low, high, step)``, fractions.
UNSTRUCTURED_RANGE = {None: (0.0, 0.9, 0.1)}

#: Options of every unstructured method: which matrices besides the six per layer are prunable, and the
#: per-matrix floor of a global ranking. One value per study, so every method of a study prunes the same set.
PRUNABLE_OPTIONS = (
    Option("prune_pooler", bool, False, "also prune the pooler's dense matrix (Chen et al.; on by default with "
           "--tamt-recipe paper, for every method of the study)"),
    Option("prune_embeddings", bool, False, "also prune the word-embedding table (TAMT; on by default with "
           "--tamt-recipe paper, for every method of the study)"),
    Option("min_keep_per_matrix", float, DEFAULT_MIN_KEEP, "a global magnitude ranking keeps at least this fraction of every "
           f"matrix, in [0, 1) (default {DEFAULT_MIN_KEEP:g}; 0 lets it empty a matrix); a matrix kept below 5 %% is named in a "
           "warning"),
)


def prunable_set_basis(options: dict) -> str:
    """What an unstructured method's achieved sparsity counts, in words: the prunable set the study's options
    pick (``PrunableSet``)."""
    return PrunableSet.from_options(options).describe()
