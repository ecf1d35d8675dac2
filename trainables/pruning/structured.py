"""Structured head/FFN pruning (Prasanna et al. 2020; Liang et al. 2021; METHODS.md section 1).

Importance of a unit is the first-order Taylor estimate of the loss change when its gate ξ is removed
(Michel et al. 2019, eq. 2), accumulated over the training split on the fine-tuned dense model in eval mode
(no dropout). Three estimators (``ESTIMATORS``, ``--importance``) differ in where the absolute value is taken:

    per-token   (Liang, default)  I(u) = mean over examples x of  sum over tokens t of |dL(x)/d xi_(u,x,t)|
    per-example (Michel, eq. 2)   I(u) = mean over examples x of  |dL(x)/d xi_u|
    per-batch                     I(u) = sum over batches b of    |d mean_(x in b) L(x) / d xi_u|

Head scores are L2-normalised per layer; heads are ranked globally, FFN blocks are ranked globally, and the
lowest are pruned, always keeping at least one head in every layer.

Counts: at sparsity ``s`` a ticket prunes ``floor(s * total_heads)`` heads (at most ``total_heads -
num_layers``, one head per layer being kept) and ``floor(s * num_layers * 5 / 6)`` FFN blocks. This is the
rule behind every (heads, FFN blocks) pair Liang et al. publish: BERT-base (12 x 12) 14/1, 28/2, 43/3, 57/4,
72/5, 86/6, 100/7, 115/8 at 10-80 % (``scripts/rewind_{rte,mrpc}_winning.sh`` of
github.com/cliang1453/super-structured-lottery-tickets) and BERT-large (24 x 16) 19/1, 38/2, 76/4, 115/6,
134/7, 153/8 at 5, 10, 20, 30, 35, 40 % (``construct_mtl_mask.py``): the FFN count is 10 s on 12 layers and
20 s on 24, i.e. s x 5/6 of the layers. ``floor(s * num_layers)`` would prune 6/7/8/9 instead of 5/6/7/8
blocks at 50-80 % on BERT-base.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from trainables.data import batches, collator, load_tokenized
from trainables.finetune import pick_device
from trainables.export_files.modeling_ticket import head_rows
from trainables.gates import UnitGates
from trainables.model import encoder_layers, encoder_shape, load_config, load_model, load_tokenizer, submodule
from trainables.pruning.controls import CONTROLS, control_scores
from trainables.pruning.method import Option, PruningMethod
from trainables.pruning.tickets import Ticket, TicketRequest, UnitGrid
from trainables.store import compute_once
from trainables.tasks import get_task

log = logging.getLogger(__name__)

_EPS = 1e-9  # guards floor() against 0.29 * 100 = 28.999999999999996


@dataclass(frozen=True)
class StructuredMask:
    """A structured ticket: which heads and FFN blocks are kept.

    Attributes:
        head: shape ``(num_layers, num_heads)``, bool, True = kept.
        ffn: shape ``(num_layers,)``, bool, True = kept.
    """

    head: torch.Tensor
    ffn: torch.Tensor
    head_weights: int = 0
    ffn_weights: int = 0
    total_weights: int = 0

    def with_sizes(self, config) -> "StructuredMask":
        """This mask with the weight counts of ``config``'s encoder (``trainables.model.EncoderShape``), so
        ``achieved_sparsity`` counts weights: a head disables its rows of Q, K, V and its columns of the attention
        output, an FFN block its FFN matrices; the total is every layer's prunable matrices."""
        shape = encoder_shape(config)
        return StructuredMask(self.head, self.ffn, shape.head_weights, shape.ffn_weights,
                              shape.layer_weights * self.head.shape[0])

    @property
    def heads_kept(self) -> int:
        """Number of heads kept, over all layers."""
        return int(self.head.sum())

    @property
    def ffn_kept(self) -> int:
        """Number of FFN blocks kept (one per layer at most)."""
        return int(self.ffn.sum())

    @property
    def head_sparsity(self) -> float:
        """Fraction (not percent) of heads pruned."""
        return 1.0 - self.heads_kept / self.head.numel()

    @property
    def ffn_sparsity(self) -> float:
        """Fraction (not percent) of FFN blocks pruned."""
        return 1.0 - self.ffn_kept / self.ffn.numel()

    @property
    def is_dense(self) -> bool:
        """True when nothing is pruned."""
        return bool(self.head.all() and self.ffn.all())

    @property
    def achieved_sparsity(self) -> float:
        """Fraction of the encoder's prunable weights the pruned units disable (see ``with_sizes``); the head
        sparsity when the sizes are unknown."""
        if not self.total_weights:
            return self.head_sparsity
        pruned = ((~self.head).sum() * self.head_weights + (~self.ffn).sum() * self.ffn_weights).item()
        return pruned / self.total_weights

    def set_gates(self, gates: UnitGates) -> None:
        """Set ``gates`` to this mask (pruned units get gate 0)."""
        gates.set(self.head.float(), self.ffn.float())

    def apply(self, model: nn.Module) -> UnitGates:
        """Gate ``model``'s heads and FFN blocks with this mask; returns the gates (hooks stay on the model)."""
        gates = UnitGates(model)
        self.set_gates(gates)
        return gates

    def switch(self, model: nn.Module) -> "GateSwitch":
        """Gates for this mask on ``model`` (all open until ``on()``) and the weights the pruned units use."""
        return GateSwitch(self, model)

    def summary(self) -> dict:
        """Flat counts for MLflow: heads and FFN blocks kept and in all, their sparsities, achieved sparsity."""
        return {"heads_kept": self.heads_kept, "total_heads": self.head.numel(), "ffn_kept": self.ffn_kept,
                "total_ffn": self.ffn.numel(), "head_sparsity": self.head_sparsity,
                "ffn_sparsity": self.ffn_sparsity, "achieved_sparsity": self.achieved_sparsity}

    @staticmethod
    def describe_kept(facts: dict) -> str:
        """``51/72 heads, 5/6 FFN`` from ``summary()``'s facts."""
        return f"{facts['heads_kept']}/{facts['total_heads']} heads, {facts['ffn_kept']}/{facts['total_ffn']} FFN"

    @classmethod
    def unit_grid(cls, path: str | Path) -> UnitGrid:
        """Layers x (heads, then the FFN block): 1.0 where the mask saved at ``path`` keeps the unit.

        Raises:
            OSError: the file cannot be read (e.g. it is on another node's disk).
        """
        mask = cls.load(path)
        heads = mask.head.shape[1]
        labels = tuple(str(h + 1) if (h + 1) % 4 == 0 or h == 0 else "" for h in range(heads)) + ("FFN",)
        return UnitGrid(torch.hstack([mask.head.float(), mask.ffn.float()[:, None]]).numpy(), labels, heads, "head")

    def bitmask_bytes(self, model: nn.Module) -> None:
        """``None``: a structured export is physically smaller already."""
        return None

    def to_dict(self) -> dict:
        """JSON-ready form: lists of 0/1 per layer, plus the counts."""
        return {"kind": "structured", "head": self.head.int().tolist(), "ffn": self.ffn.int().tolist(),
                **self.summary(), "heads_kept_per_layer": self.head.sum(dim=1).tolist()}

    def save(self, path) -> Path:
        """Write ``to_dict()`` as JSON to ``path``; returns it."""
        Path(path).write_text(json.dumps(self.to_dict()))
        return Path(path)

    @classmethod
    def from_dict(cls, data: dict) -> "StructuredMask":
        """Inverse of ``to_dict`` (reads ``mask.json`` back)."""
        return cls(torch.tensor(data["head"], dtype=torch.bool), torch.tensor(data["ffn"], dtype=torch.bool))

    #: the file suffix of ``save``
    suffix = "json"

    @classmethod
    def load(cls, path: str | Path) -> "StructuredMask":
        """Read a mask written by ``save``."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def export(self, model: nn.Module) -> nn.Module:
        """The fine-tuned ticket ``model`` with the pruned heads and FFN blocks physically removed
        (``trainables.pruning.shrink``): fewer parameters, the same logits.

        Raises:
            ValueError: the mask does not fit ``model``; UnsupportedModelError: a family without a layout.
        """
        from trainables.pruning.shrink import shrink

        return shrink(model, self.head, self.ffn)


def _optional(layer: nn.Module, path: str) -> nn.Module | None:
    """``layer``'s submodule at ``path``, or ``None`` when its config did not build it."""
    try:
        return submodule(layer, path)
    except AttributeError:
        return None


class GateSwitch:
    """A structured ticket switched on and off on a (shared) encoder through its own gates.

    ``pruned`` holds, for every pruned head, its rows of Q, K and V (weights and biases; every block of a fused QKV
    map) and its columns of the attention-output matrix; for every pruned FFN block, its FFN matrices and their
    biases: exactly the
    weights whose gradient a closed gate makes 0.
    """

    def __init__(self, mask: StructuredMask, model: nn.Module):
        self.mask, self.gates = mask, UnitGates(model)
        self.pruned: dict[nn.Parameter, torch.Tensor] = {}
        layout, layers = encoder_layers(model)
        shape = encoder_shape(model.config)
        for index, layer in enumerate(layers):
            dropped = ~mask.head[index].cpu()
            for paths, blocks in ((layout.attention_inputs, layout.qkv_blocks), (layout.optional_attention_inputs, 1)):
                rows = torch.zeros(blocks * shape.num_heads * shape.head_dim, dtype=torch.bool)
                rows[head_rows(dropped, shape.head_dim, shape.num_heads, blocks)] = True  # a pruned head's rows
                for path in paths:
                    linear = _optional(layer, path)
                    if linear is not None:
                        self._hold(linear.weight, rows[:, None].expand_as(linear.weight))
                        if linear.bias is not None:
                            self._hold(linear.bias, rows)
            columns = torch.zeros(shape.num_heads * shape.head_dim, dtype=torch.bool)
            columns[head_rows(dropped, shape.head_dim, shape.num_heads)] = True
            projection = submodule(layer, layout.head_projection).weight  # (hidden, heads * head_dim)
            self._hold(projection, columns[None, :].expand_as(projection))
            if not mask.ffn[index]:
                for path in (layout.ffn_input, layout.ffn_output):
                    linear = submodule(layer, path)
                    for param in (linear.weight, linear.bias):
                        if param is not None:
                            self._hold(param, torch.ones_like(param, dtype=torch.bool))

    def _hold(self, param: nn.Parameter, where: torch.Tensor) -> None:
        if bool(where.any()):
            self.pruned[param] = where.to(param.device).contiguous()

    def on(self) -> None:
        """Close the pruned heads' and FFN blocks' gates."""
        self.mask.set_gates(self.gates)

    def off(self) -> None:
        """Open every gate."""
        self.gates.set(torch.ones_like(self.gates.head), torch.ones_like(self.gates.ffn))


#: The head/FFN importance estimators (``--importance``), METHODS.md section 1. Each is a sum of |dL/dξ|:
#: ``per-token``: Liang et al.'s (their ``MaskHead``/``MaskFFN`` backward), the absolute gradient of each
#: example's loss in a gate on each token, summed over tokens, averaged over examples;
#: ``per-example``: Michel et al.'s eq. 2, the absolute gradient of each example's loss, averaged over examples;
#: ``per-batch``: the absolute gradient of each batch's mean loss, summed over batches (HF bertology's
#: ``compute_heads_importance``; signs cancel inside a batch, so it depends on the batch size).
ESTIMATORS = ("per-token", "per-example", "per-batch")


@dataclass(frozen=True)
class UnitImportance:
    """Every estimator's head and FFN importance of one dense fine-tune, unnormalised.

    Attributes:
        head: estimator name -> shape ``(num_layers, num_heads)``, float32, CPU, non-negative.
        ffn: estimator name -> shape ``(num_layers,)``.
        examples: how many examples were scored.
    """

    head: dict
    ffn: dict
    examples: int

    def of(self, estimator: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(head, ffn)`` of ``estimator``.

        Raises:
            ValueError: unknown estimator.
        """
        if estimator not in self.head:
            raise ValueError(f"unknown importance estimator {estimator!r}: choose {', '.join(ESTIMATORS)}")
        return self.head[estimator], self.ffn[estimator]

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Flat tensors for ``safetensors`` (``head/<estimator>``, ``ffn/<estimator>``, ``examples``)."""
        flat = {f"head/{k}": v.contiguous() for k, v in self.head.items()}
        flat.update({f"ffn/{k}": v.contiguous() for k, v in self.ffn.items()})
        flat["examples"] = torch.tensor(self.examples)
        return flat

    @classmethod
    def from_tensors(cls, flat: dict[str, torch.Tensor]) -> "UnitImportance":
        """Inverse of ``to_tensors``."""
        head = {k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith("head/")}
        ffn = {k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith("ffn/")}
        return cls(head, ffn, int(flat["examples"]))


def unit_importance(model: nn.Module, batches: Iterable[dict], device: torch.device | str = "cpu"
                    ) -> UnitImportance:
    """Every estimator of ``ESTIMATORS`` from one backward pass per batch (Michel et al. 2019, eq. 2; Liang et
    al. 2021's per-token form; METHODS.md section 1).

    Each example of a batch gets its own gate on every token (gates of shape ``(batch, seq, heads)`` per layer),
    and the loss is the *sum* of the examples' losses, so autograd returns every example's per-token gradient
    at once, with no loop over examples (examples do not interact in eval mode). The per-example gradient is
    its sum over tokens (all gates are 1, so d/dξ_x = Σ_t d/dξ_(x,t)); the batch gradient of the mean loss is
    the mean of the per-example ones.

    Args:
        model: a fine-tuned sequence-classification model; it is put in eval mode (no dropout) and left
            unchanged (no weight is updated, no hook is left behind).
        batches: padded model inputs with ``labels`` and ``attention_mask`` (e.g. a ``DataLoader`` over the
            training split).
        device: where the batches are sent.

    Returns:
        the scores; ``per-token`` and ``per-example`` are means over examples (independent of the batch
        size), ``per-batch`` a sum over batches. Padding tokens are left out of the per-token sum (their
        gradient is 0 anyway: nothing attends to them).
    """
    model.eval()
    gates = UnitGates(model)
    totals = {e: [torch.zeros_like(gates.head), torch.zeros_like(gates.ffn)] for e in ESTIMATORS}
    examples = 0
    try:
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            size, length = batch["input_ids"].shape
            head, ffn = gates.track_gradients(size, length)
            loss = model(**batch).loss * size  # HF's losses are batch means: this is the sum over examples
            head_grad, ffn_grad = torch.autograd.grad(loss, [head, ffn])  # (L, B, S, H), (L, B, S)
            tokens = batch["attention_mask"].to(head_grad.dtype)  # (B, S)
            steps = {
                "per-token": ((head_grad.abs() * tokens[None, :, :, None]).sum(dim=(1, 2)),
                              (ffn_grad.abs() * tokens[None]).sum(dim=(1, 2))),
                "per-example": (head_grad.sum(dim=2).abs().sum(dim=1), ffn_grad.sum(dim=2).abs().sum(dim=1)),
                "per-batch": (head_grad.sum(dim=(1, 2)).abs() / size, ffn_grad.sum(dim=(1, 2)).abs() / size),
            }
            for estimator, (h, f) in steps.items():
                totals[estimator][0] += h.detach()
                totals[estimator][1] += f.detach()
            examples += size
    finally:
        gates.remove()
    per_example_mean = {"per-token", "per-example"}
    scale = {e: (1.0 / max(examples, 1) if e in per_example_mean else 1.0) for e in ESTIMATORS}
    return UnitImportance({e: (totals[e][0] * scale[e]).float().cpu() for e in ESTIMATORS},
                          {e: (totals[e][1] * scale[e]).float().cpu() for e in ESTIMATORS}, examples)


def normalize_by_layer(head_importance: torch.Tensor) -> torch.Tensor:
    """Divide each layer's head scores by their L2 norm (Michel et al.; Liang's ``--normalize_scores_by_layer``).

    Args:
        head_importance: shape ``(num_layers, num_heads)``, non-negative.

    Returns:
        same shape; each row has unit L2 norm (rows of zeros stay zero).
    """
    norm = head_importance.norm(p=2, dim=1, keepdim=True)
    return head_importance / (norm + 1e-20)


def units_to_prune(sparsity: float, count: float) -> int:
    """``floor(sparsity * count)``: how many of ``count`` heads a ticket at ``sparsity`` prunes (Liang et al.'s
    ``int(total_heads * percent / 100)``); ``count`` may be fractional (FFN blocks: ``layers * 5/6``).

    Raises:
        ValueError: ``sparsity`` is outside [0, 1).
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity {sparsity} must be a fraction in [0, 1)")
    return math.floor(sparsity * count + _EPS)


#: FFN blocks pruned per block of the model per unit of sparsity: Liang et al. pair 10 % of the heads with one
#: of BERT-base's 12 FFN blocks and with two of BERT-large's 24 (module docstring).
FFN_RATE = 5 / 6


def ffn_blocks_to_prune(sparsity: float, num_layers: int) -> int:
    """``floor(sparsity * num_layers * 5 / 6)``: how many FFN blocks a ticket at ``sparsity`` prunes,
    reproducing Liang et al.'s published (heads, FFN) pairs (module docstring).

    Raises:
        ValueError: ``sparsity`` is outside [0, 1).
    """
    return units_to_prune(sparsity, num_layers * FFN_RATE)


def structured_mask(head_scores: torch.Tensor, ffn_scores: torch.Tensor, sparsity: float) -> StructuredMask:
    """The structured ticket at ``sparsity``: prune the globally lowest-scoring heads and FFN blocks.

    Args:
        head_scores: shape ``(num_layers, num_heads)``, already normalised per layer if wanted.
        ffn_scores: shape ``(num_layers,)``.
        sparsity: fraction in [0, 1) of heads to prune; FFN blocks follow Liang et al.'s pairing (module
            docstring).

    Returns:
        the mask; pruned heads are the lowest scores among those whose layer keeps another head, so every
        layer keeps at least one. Ties break by position (stable sort), so masks are nested in sparsity.

    Raises:
        ValueError: ``sparsity`` is outside [0, 1).
    """
    num_layers, num_heads = head_scores.shape
    n_heads = min(units_to_prune(sparsity, num_layers * num_heads), num_layers * (num_heads - 1))
    n_ffn = ffn_blocks_to_prune(sparsity, num_layers)

    head_keep = torch.ones(num_layers, num_heads, dtype=torch.bool)
    left_in_layer = [num_heads] * num_layers
    pruned = 0
    for flat in torch.argsort(head_scores.flatten(), stable=True).tolist():
        if pruned == n_heads:
            break
        layer, head = divmod(flat, num_heads)  # row-major: divide by heads per layer, not by layers
        if left_in_layer[layer] > 1:
            head_keep[layer, head] = False
            left_in_layer[layer] -= 1
            pruned += 1

    ffn_keep = torch.ones(num_layers, dtype=torch.bool)
    ffn_keep[torch.argsort(ffn_scores, stable=True)[:n_ffn]] = False
    return StructuredMask(head_keep, ffn_keep)


#: The estimator a ticket uses when its options name none (Liang et al.'s, with which super tickets were found).
DEFAULT_ESTIMATOR = "per-token"


def dense_importance(spec, dense, cache_dir: str | Path) -> UnitImportance:
    """Every estimator's head/FFN importance of one dense fine-tune over its training split: this method's own
    cache entry, ``<cache_dir>/importance/<dense key>/``, computed once (``trainables.store.compute_once``) the
    first time a structured ticket (or ``search.tools.importance_check``) asks for it, so studies of other methods never
    pay for it.

    Args:
        spec: the dense fine-tune's spec (``trainables.cache.DenseSpec``): model, task, seed, data, batch size.
        dense: that fine-tune, cached (``trainables.cache.DenseResult``): its weights are scored.
        cache_dir: the study's cache root.

    Returns:
        the unnormalised scores (``unit_importance``) over every example of the fine-tune's training split, in
        batches of the fine-tune's batch size (which only ``per-batch`` depends on).
    """
    target = Path(cache_dir).resolve() / "importance" / dense.directory.name

    def write(scratch: Path) -> None:
        started = time.perf_counter()
        log.info("head/FFN importance of the dense fine-tune %s seed %d: computing once for every structured "
                 "ticket", spec.task, spec.seed)
        task, device = get_task(spec.task), pick_device()
        model = load_model(spec.model, task, spec.seed)
        model.load_state_dict(dense.weights())
        tokenizer = load_tokenizer(spec.model)
        train = load_tokenized(task, tokenizer, spec.data, seed=spec.seed)["train"]
        scores = unit_importance(model.to(device), batches(train, collator(tokenizer), spec.finetune.batch_size,
                                                           device), device)
        save_file(scores.to_tensors(), scratch / "importance.safetensors")
        (scratch / "record.json").write_text(json.dumps({"dense": dense.directory.name, "examples": scores.examples,
                                                         "estimators": list(ESTIMATORS), "device": str(device),
                                                         "seconds": time.perf_counter() - started}, indent=2))

    compute_once(target, write)
    return UnitImportance.from_tensors(load_file(target / "importance.safetensors"))


#: How a structured ticket is fine-tuned (``--train-as``): physically smaller, or gated in the full model.
TRAIN_AS = ("smaller", "gated")
DEFAULT_TRAIN_AS = "smaller"


def make_ticket(request: TicketRequest) -> Ticket:
    """The structured ticket of a ``TicketRequest``: the dense run's head scores (``dense_importance``) of the
    estimator named by the ``importance`` option (default ``per-token``) normalised per layer, its FFN scores,
    ranked by the request's control (``trainables.pruning.controls``), at the requested sparsity. A dense ticket
    replays the dense fine-tune; any other is fine-tuned physically smaller unless the ``train_as`` option says
    ``gated``.

    Raises:
        ValueError: unknown estimator.
    """
    dense = request.dense
    importance = dense_importance(request.spec, dense, request.cache_dir)
    head, ffn = importance.of(request.options.get("importance", DEFAULT_ESTIMATOR))
    scores = control_scores((normalize_by_layer(head), ffn), request.control, request.spec.seed)
    mask = structured_mask(*scores, request.sparsity).with_sizes(load_config(request.spec.model))
    if mask.is_dense:
        return Ticket(mask, replay=dense.history, replay_weights=dense.weights_file)
    return Ticket(mask, smaller=request.options.get("train_as", DEFAULT_TRAIN_AS) == "smaller")


def training_cost(sparsity: float, config, options: dict) -> float:
    """A ticket's fine-tuning FLOPs over the dense model's (``trainables.flops``): its kept heads and FFN blocks at
    ``sparsity`` (the counts ``structured_mask`` prunes) when it trains physically smaller, else 1.0."""
    from trainables.flops import kept_fraction

    if sparsity == 0.0 or options.get("train_as", DEFAULT_TRAIN_AS) == "gated":
        return 1.0
    shape = encoder_shape(config)
    mask = structured_mask(torch.ones(shape.num_layers, shape.num_heads), torch.ones(shape.num_layers), sparsity)
    return kept_fraction(shape, mask.heads_kept, mask.ffn_kept)


# The method as the registry holds it (trainables.pruning.registry).
METHOD = PruningMethod(
    name="structured",
    summary="attention heads and FFN blocks ranked by accumulated |dL/d gate| on the dense fine-tune",
    units="heads and FFN blocks (achieved sparsity: the encoder weights they disable)",
    build=make_ticket,
    mask_type=StructuredMask,
    sparsity={None: (0.0, 0.6, 0.05)},
    controls=CONTROLS,
    options=(
        Option("importance", str, DEFAULT_ESTIMATOR,
               "head/FFN importance: per-token (default, Liang et al.'s: |dL/d gate| of each example on each "
               "token), per-example (Michel et al.'s eq. 2) or per-batch (|gradient| of each batch's mean loss; "
               "signs cancel inside a batch). All three are computed together and cached once per dense "
               "fine-tune; compare them with python -m search.importance_check", choices=ESTIMATORS),
        Option("train_as", str, DEFAULT_TRAIN_AS,
               "how a ticket is fine-tuned: smaller (default: its pruned heads and FFN blocks removed, the same "
               "function and gradients at the ticket's own cost) or gated (masked inside the full model, at the "
               "dense model's cost; for comparison)", choices=TRAIN_AS),
    ),
    achieved=lambda options: "the encoder weights the pruned heads and FFN blocks disable",
    training_cost=training_cost,
)
