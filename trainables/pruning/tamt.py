"""Task-agnostic mask training, TAMT (Liu et al. 2022; METHODS.md section 4).

The pre-trained weights stay frozen. Every prunable weight gets a real-valued score; the forward pass uses
``W * 1[score > tau]`` and the gradient passes straight through the threshold to the score. Scores start
from the one-shot global magnitude mask of the pre-trained weights. Two initialisations give that mask:

- ``magnitude`` (default): score = |w|, threshold = the global magnitude threshold, so the borderline
  weights flip first, one at a time;
- ``constant`` (METHODS.md's wording): kept ``init_score``, pruned 0, threshold half-way. With Adam every
  score whose gradient keeps its sign moves by the same step, so thousands flip in the same step (measured
  on a batch of WikiText-2: distillation loss 0.13 -> 0.85 at the first flip); hence not the default.

Every ``reset_every`` steps, and once at the end, each matrix's threshold is reset so that the matrix has
exactly the target sparsity (``floor(s * n)`` weights pruned). The objective needs no labels:

- ``kd``: distillation from the dense pre-trained model, ``L = mean over layers of (1 - cos(h_ticket,
  h_dense))`` averaged over the non-padding tokens;
- ``mlm``: the masked-language-modelling loss, for checkpoints that ship an MLM head.

The mask is task-agnostic: trained once per (model, sparsity, objective, corpus, seed, settings, prunable
set), cached under ``<cache>/tamt/``, and reused by every task's trials; each task then fine-tunes the
masked pre-trained model like any other ticket.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import datasets
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader
from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer, DataCollatorForLanguageModeling
from transformers import DataCollatorWithPadding

from trainables.cache import CACHE_VERSION
from trainables.finetune import pick_device
from trainables.model import quiet_loading
from trainables.pruning.magnitude import magnitude_mask
from trainables.pruning.tickets import Ticket, TicketRequest
from trainables.pruning.weights import PrunableSet, WeightMask, prune_count, prunable_weights, to_encoder_name
from trainables.store import compute_once

log = logging.getLogger(__name__)

OBJECTIVES = ("kd", "mlm")
INITS = ("magnitude", "constant")
#: The default unlabeled corpus, relative to the project root: ``../shared/data/wikitext-2``.
DEFAULT_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "wikitext-2"


class MissingMlmHeadError(ValueError):
    """The checkpoint has no masked-LM head, so the MLM objective would train against random outputs."""


@dataclass(frozen=True)
class TamtSettings:
    """How a TAMT mask is trained.

    Attributes:
        objective: ``kd`` or ``mlm``.
        corpus: a text file, or a folder whose ``*.txt`` files are read (absolute path).
        steps: optimiser steps on the scores.
        batch_size: text blocks per step.
        max_seq_length: tokens per block (the corpus is concatenated and cut into blocks).
        learning_rate: Adam learning rate of the scores.
        reset_every: steps between per-matrix threshold resets (one more at the end).
        init: ``magnitude`` or ``constant`` (module docstring).
        init_score: with ``constant``, the initial score of the weights the magnitude mask keeps.
    """

    objective: str = "kd"
    corpus: str = str(DEFAULT_CORPUS)
    steps: int = 200
    batch_size: int = 16
    max_seq_length: int = 128
    learning_rate: float = 3e-4
    reset_every: int = 50
    init: str = "magnitude"
    init_score: float = 1e-2

    @classmethod
    def from_options(cls, options: dict) -> "TamtSettings":
        """From a trial's ``tamt_*`` options; absent ones keep the defaults above."""
        fields = {name: options[f"tamt_{name}"] for name in cls.__dataclass_fields__ if f"tamt_{name}" in options}
        settings = cls(**fields)
        return replace(settings, corpus=str(Path(settings.corpus).expanduser().resolve()))

    def validate(self) -> None:
        """Raises ``ValueError`` naming the problem (unknown objective, missing corpus, counts below 1)."""
        if self.init not in INITS:
            raise ValueError(f"unknown TAMT initialisation {self.init!r}: choose {' or '.join(INITS)}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown TAMT objective {self.objective!r}: choose {' or '.join(OBJECTIVES)}")
        if not corpus_files(self.corpus):
            raise ValueError(f"TAMT corpus {self.corpus} not found or has no .txt file: pass --tamt-corpus with a "
                             "text file or a folder of .txt files")
        for name in ("steps", "batch_size", "max_seq_length", "reset_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TAMT {name} {getattr(self, name)} must be at least 1")


def corpus_files(corpus: str) -> list[str]:
    """The text files of ``corpus``: the file itself, or a folder's ``*.txt`` files sorted by name."""
    path = Path(corpus)
    if path.is_file():
        return [str(path)]
    return sorted(str(p) for p in path.glob("*.txt")) if path.is_dir() else []


class ThresholdMask(nn.Module):
    """A ``torch.nn.utils.parametrize`` parametrisation: ``weight -> weight * 1[scores > tau]``, with the
    straight-through estimator (the binary mask's gradient is passed to ``scores`` unchanged).

    Attributes:
        scores: ``nn.Parameter``, the weight's shape.
        tau: 0-d buffer, the matrix's threshold.
    """

    def __init__(self, scores: torch.Tensor):
        super().__init__()
        self.scores = nn.Parameter(scores.clone())
        self.register_buffer("tau", torch.zeros((), dtype=scores.dtype, device=scores.device))

    def binary(self) -> torch.Tensor:
        """The current 0/1 mask (bool), the weight's shape."""
        return self.scores > self.tau

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        hard = self.binary().to(weight.dtype)
        return weight * (hard + self.scores - self.scores.detach())  # forward: hard; backward: d/dscores

    @torch.no_grad()
    def reset(self, sparsity: float) -> None:
        """Move ``tau`` so that exactly ``floor(sparsity * n)`` weights are pruned (the lowest scores; ties by
        position): half-way between the highest pruned and the lowest kept score, so a score needs a move of
        the same size to flip either way. When they tie, the tied pruned scores are lowered by one float step
        so that the threshold separates them."""
        flat = self.scores.view(-1)
        n_prune = prune_count(sparsity, flat.numel())
        order = torch.argsort(flat, stable=True)
        minus_inf = torch.tensor(float("-inf"), device=flat.device, dtype=flat.dtype)
        if n_prune == 0:
            self.tau.fill_(torch.nextafter(flat.min(), minus_inf))
            return
        highest_pruned, lowest_kept = flat[order[n_prune - 1]], flat[order[n_prune]]  # n_prune < n: s < 1
        middle = (highest_pruned + lowest_kept) / 2
        if highest_pruned < middle < lowest_kept:
            self.tau.fill_(middle)
            return
        below = torch.nextafter(lowest_kept, minus_inf)
        pruned = order[:n_prune]
        flat[pruned] = torch.minimum(flat[pruned], below)
        self.tau.fill_(below)


class TamtMasker:
    """Score parametrisations on the prunable matrices of a frozen encoder.

    Args:
        model: a bare encoder (``AutoModel``) or a masked-LM model; every parameter is frozen.
        sparsity: the target sparsity; the initial mask is the global magnitude mask at it, the resets make
            every matrix exact.
        which: the prunable set.
        init: ``magnitude`` or ``constant`` (module docstring).
        init_score: the kept weights' initial score with ``constant``.
    """

    def __init__(self, model: nn.Module, sparsity: float, which: PrunableSet, init: str = "magnitude",
                 init_score: float = 1e-2):
        self.model, self.sparsity = model, sparsity
        for p in model.parameters():
            p.requires_grad_(False)
        weights = prunable_weights(model, which)
        initial = magnitude_mask({n: w.detach() for n, w in weights.items()}, sparsity)
        if init == "magnitude":  # the global threshold: the largest pruned magnitude, nudged up if kept ties it
            pruned = torch.cat([w.detach().abs()[~initial.masks[n].to(w.device)] for n, w in weights.items()])
            tau = float(pruned.max()) if pruned.numel() else -1.0
        else:
            tau = init_score / 2
        modules = dict(model.named_modules())
        self.masks: dict[str, ThresholdMask] = {}
        for name, weight in weights.items():
            kept = initial.masks[name]
            if init == "magnitude":
                scores = weight.detach().abs().clone()
                kept = kept.to(scores.device)
                limit = torch.tensor(tau, device=scores.device, dtype=scores.dtype)
                scores[~kept] = torch.minimum(scores[~kept], limit)  # a weight tied with tau stays pruned
                scores[kept] = torch.maximum(scores[kept], torch.nextafter(limit, limit + 1))
            else:
                scores = kept.to(weight.device, weight.dtype) * init_score
            mask = ThresholdMask(scores)
            mask.tau.fill_(tau)
            parametrize.register_parametrization(modules[name.rsplit(".", 1)[0]], "weight", mask)
            self.masks[to_encoder_name(name, model)] = mask

    def scores(self) -> list[nn.Parameter]:
        """The trainable scores (what the optimiser updates)."""
        return [m.scores for m in self.masks.values()]

    def reset(self) -> None:
        """Reset every matrix's threshold to the exact target sparsity."""
        for mask in self.masks.values():
            mask.reset(self.sparsity)

    def current(self) -> WeightMask:
        """The current binary mask (CPU, encoder-relative names)."""
        return WeightMask({name: m.binary().detach().cpu() for name, m in self.masks.items()})


def kd_loss(student_hidden: tuple[torch.Tensor, ...], teacher_hidden: tuple[torch.Tensor, ...],
            attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over layers of the mean over real tokens of ``1 - cos(h_student, h_teacher)`` (TAMT's KD loss).

    Args:
        student_hidden / teacher_hidden: per layer, ``(batch, seq, hidden)``; the embedding output (index 0)
            is skipped.
        attention_mask: ``(batch, seq)``, 1 on real tokens.

    Returns:
        a 0-d tensor in [0, 2] (0 when the ticket reproduces every layer's hidden states).
    """
    weights = attention_mask.float()
    losses = []
    for s, t in zip(student_hidden[1:], teacher_hidden[1:]):
        distance = 1.0 - nn.functional.cosine_similarity(s, t.detach(), dim=-1)  # (batch, seq)
        losses.append((distance * weights).sum() / weights.sum())
    return torch.stack(losses).mean()


def corpus_blocks(corpus: str, tokenizer, max_seq_length: int) -> datasets.Dataset:
    """The corpus tokenised, concatenated and cut into blocks of ``max_seq_length`` tokens ([CLS] ... [SEP])."""
    raw = datasets.load_dataset("text", data_files={"train": corpus_files(corpus)}, split="train")
    raw = raw.filter(lambda row: bool(row["text"].strip()))
    body = max_seq_length - 2

    def tokenize(batch):
        ids = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
        flat = [token for row in ids for token in row]
        blocks = [flat[i:i + body] for i in range(0, len(flat) - body + 1, body)]
        return {"input_ids": [[tokenizer.cls_token_id, *b, tokenizer.sep_token_id] for b in blocks]}

    return raw.map(tokenize, batched=True, batch_size=1000, remove_columns=raw.column_names)


def _load_mlm(model_path: str) -> nn.Module:
    with quiet_loading():
        model, info = AutoModelForMaskedLM.from_pretrained(model_path, output_loading_info=True)
    missing = [k for k in info["missing_keys"] if not k.endswith("position_ids")]
    if missing:
        raise MissingMlmHeadError(f"checkpoint {model_path} has no masked-LM head ({len(missing)} head weights would "
                                  "be random): use --tamt-objective kd")
    return model


def check_mlm_head(model_path: str) -> None:
    """Raise ``MissingMlmHeadError`` (one line naming the fix) when ``model_path`` has no masked-LM head."""
    _load_mlm(model_path)


def _load_encoder(model_path: str) -> nn.Module:
    with quiet_loading():
        return AutoModel.from_pretrained(model_path)


class TamtTrainer:
    """Train one TAMT mask; ``step(batch)`` is one optimiser step, ``loss(batch)`` the objective alone.

    Args:
        model_path: the pre-trained checkpoint.
        sparsity: target sparsity, a fraction in [0, 1).
        settings: how to train.
        which: the prunable set.
        seed: seeds the MLM masking and the data order.

    Raises:
        MissingMlmHeadError: ``mlm`` on a checkpoint without an MLM head.
    """

    def __init__(self, model_path: str, sparsity: float, settings: TamtSettings, which: PrunableSet, seed: int):
        self.settings, self.seed, self.device = settings, seed, pick_device()
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        if settings.objective == "mlm":
            self.student, self.teacher = _load_mlm(model_path), None
            self.collate = DataCollatorForLanguageModeling(self.tokenizer, mlm_probability=0.15)
        else:
            self.student, self.teacher = _load_encoder(model_path), _load_encoder(model_path)
            self.teacher.to(self.device).eval()
            self.collate = DataCollatorWithPadding(self.tokenizer)
        self.student.to(self.device).eval()  # no dropout: the weights are frozen, only the mask learns
        self.masker = TamtMasker(self.student, sparsity, which, settings.init, settings.init_score)
        self.optimizer = torch.optim.Adam(self.masker.scores(), lr=settings.learning_rate)
        self.steps_done = 0

    def loss(self, batch: dict) -> torch.Tensor:
        """The objective on one collated batch (``input_ids``, ``attention_mask``; ``labels`` for MLM)."""
        batch = {k: v.to(self.device) for k, v in batch.items()}
        if self.settings.objective == "mlm":
            return self.student(**batch).loss
        out = self.student(**batch, output_hidden_states=True)
        with torch.no_grad():
            ref = self.teacher(**batch, output_hidden_states=True)
        return kd_loss(out.hidden_states, ref.hidden_states, batch["attention_mask"])

    def step(self, batch: dict) -> float:
        """One optimiser step on the scores (a reset every ``reset_every`` steps); returns the loss before it."""
        loss = self.loss(batch)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps_done += 1
        if self.steps_done % self.settings.reset_every == 0:
            self.masker.reset()
        return loss.item()

    def train(self) -> list[float]:
        """Train for ``settings.steps`` steps over the corpus (cycling, seeded order), reset once more, and
        return the loss of every step."""
        blocks = corpus_blocks(self.settings.corpus, self.tokenizer, self.settings.max_seq_length)
        torch.manual_seed(self.seed)
        loader = DataLoader(blocks, batch_size=self.settings.batch_size, shuffle=True, collate_fn=self.collate,
                            generator=torch.Generator().manual_seed(self.seed))
        losses, started = [], time.perf_counter()
        while len(losses) < self.settings.steps:
            for batch in loader:
                losses.append(self.step(batch))
                if len(losses) % 50 == 0 or len(losses) == self.settings.steps:
                    log.info("TAMT %s step %d/%d: loss %.4f (%.0f s)", self.settings.objective, len(losses),
                             self.settings.steps, losses[-1], time.perf_counter() - started)
                if len(losses) == self.settings.steps:
                    break
        self.masker.reset()
        return losses


def _key(model_path: str, sparsity: float, settings: TamtSettings, which: PrunableSet, seed: int) -> str:
    digest = hashlib.sha256()
    for file in corpus_files(settings.corpus):
        digest.update(Path(file).read_bytes())
    payload = json.dumps({"version": CACHE_VERSION, "model": model_path, "sparsity": round(sparsity, 6),
                          "settings": {**asdict(settings), "corpus": digest.hexdigest()}, "prunable": asdict(which),
                          "seed": seed}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def ensure_mask(model_path: str, sparsity: float, settings: TamtSettings, which: PrunableSet, seed: int,
                cache_root: str | Path) -> tuple[WeightMask, dict]:
    """The TAMT mask for these inputs, from ``<cache_root>/tamt/<key>/`` or trained once and stored there.

    The key has no task: every task's trials share the mask. The corpus enters the key by content.

    Returns:
        ``(mask, record)``; the record has the loss curve's first and last values, the seconds it took and
        ``reused``.
    """
    settings.validate()
    target = Path(cache_root).resolve() / "tamt" / _key(model_path, sparsity, settings, which, seed)

    def write(scratch: Path) -> None:
        log.info("TAMT mask at sparsity %.4f (%s objective): training once for every task", sparsity,
                 settings.objective)
        started = time.perf_counter()
        trainer = TamtTrainer(model_path, sparsity, settings, which, seed)
        losses = trainer.train()
        trainer.masker.current().save(scratch / "mask.safetensors")
        record = {"sparsity": sparsity, "settings": asdict(settings), "seed": seed, "first_loss": losses[0],
                  "last_loss": losses[-1], "losses": losses, "seconds": time.perf_counter() - started}
        (scratch / "record.json").write_text(json.dumps(record))

    computed = compute_once(target, write)
    record = json.loads((target / "record.json").read_text())
    return WeightMask.load(target / "mask.safetensors"), {**record, "reused": not computed}


def make_ticket(request: TicketRequest) -> Ticket:
    """The TAMT ticket at ``request.sparsity`` (options ``tamt_*``, ``prune_pooler``, ``prune_embeddings``).

    Raises:
        ValueError: a control other than ``good``, or invalid settings; ``MissingMlmHeadError`` for ``mlm``
            without an MLM head.
    """
    if request.control != "good":
        raise ValueError(f"TAMT has no {request.control!r} control: controls apply to structured and magnitude "
                         "tickets")
    settings, which = TamtSettings.from_options(request.options), PrunableSet.from_options(request.options)
    if request.sparsity == 0:
        dense = WeightMask({n: torch.ones_like(w, dtype=torch.bool)
                            for n, w in _prunable_shapes(request.spec.model, which).items()})
        return Ticket(dense, replay=request.dense.history)
    mask, record = ensure_mask(request.spec.model, request.sparsity, settings, which, request.spec.seed,
                               request.cache_dir)
    return Ticket(mask, info={"tamt_first_loss": record["first_loss"], "tamt_last_loss": record["last_loss"],
                              "tamt_reused": record["reused"]})


def _prunable_shapes(model_path: str, which: PrunableSet) -> dict[str, torch.Tensor]:
    model = _load_encoder(model_path)
    return {to_encoder_name(n, model): w.detach() for n, w in prunable_weights(model, which).items()}
