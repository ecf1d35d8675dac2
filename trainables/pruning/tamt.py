"""Task-agnostic mask training, TAMT (Liu et al. 2022; METHODS.md section 4; code llyx97/TAMT).

The pre-trained weights stay frozen. Every prunable weight gets a real-valued score; the forward pass uses
``W * 1[score > tau]`` and the gradient passes straight through the threshold to the score. Every so often each
matrix's threshold is reset so that it prunes exactly ``floor(s * n)`` of its weights. The objective needs no
labels: ``kd``, distillation from the dense pre-trained model, ``L = mean over layers of (1 - cos(h_ticket,
h_dense))`` over the non-padding tokens; or ``mlm``, the masked-LM loss for checkpoints that ship an MLM head.

Two recipes (``--tamt-recipe``):

- ``paper`` (default) follows llyx97/TAMT (``mask_training/train_kd.py``, ``masking/maskers.py``,
  ``bash_files/train_kd/bert/*.sh``) point by point: the initial mask is the *per-matrix* magnitude mask of the
  pre-trained weights (exactly ``s`` in every matrix) with binary scores, 0.02 kept and 0 pruned, threshold
  0.01; thresholds are reset after step 1, after every step ``k`` with ``(k + 1) % reset_every == 0``, at the
  end of every pass over the corpus and at the end; the optimiser is BERT's Adam (no bias correction, weight
  decay 0.01 on the scores, each score tensor's gradient clipped to norm 1) with the learning rate decaying
  linearly to 0; dropout is on in the student and the teacher; the masked set adds the pooler and the word
  embeddings to every layer's six matrices. Their run is about ``PAPER_STEPS`` steps (two epochs of
  WikiText-103 in blocks of 512, batch 16) at lr 2e-5 with a reset every 100 steps; ours is ``steps`` long, so
  the learning rate is scaled by ``PAPER_STEPS / steps`` (the same total score movement, Σ lr, which is what
  decides how many scores cross the 0.01 gap) and the reset interval by ``steps / PAPER_STEPS`` (the same
  number of resets per unit of movement). At ``steps = PAPER_STEPS`` both are theirs.
- ``global-magnitude`` (this project's first recipe) starts from the *global* magnitude mask with scores |w|
  (or ``--tamt-init constant``), Adam lr 3e-4 constant, a reset every 50 steps, dropout off, and the masked set
  from ``--prune-pooler``/``--prune-embeddings``. Measured against the paper's code: at 50 % the global mask's
  per-matrix sparsity ranges 0.31-0.70, so the first per-matrix reset flips 9.7 % of the mask before any
  training; kept for comparison with masks found before the paper recipe existed.

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
from transformers import AutoModel, AutoModelForMaskedLM, DataCollatorForLanguageModeling
from transformers import DataCollatorWithPadding

from trainables.cache import CACHE_VERSION
from trainables.finetune import pick_device
from trainables.model import load_tokenizer, quiet_loading, remote_code_trusted
from trainables.pruning.magnitude import global_mask, magnitude_mask
from trainables.pruning.tickets import Ticket, TicketRequest
from trainables.pruning.method import Option, PruningMethod
from trainables.pruning.weights import (PRUNABLE_OPTIONS, UNSTRUCTURED_RANGE, PrunableSet, WeightMask, prunable_set_basis,
                                        prune_count, prunable_weights, to_encoder_name)
from trainables.store import compute_once

log = logging.getLogger(__name__)

OBJECTIVES = ("kd", "mlm")
INITS = ("magnitude", "constant")
RECIPES = ("paper", "global-magnitude")
#: The default unlabeled corpus, relative to the project root: ``../shared/data/wikitext-2``.
DEFAULT_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "wikitext-2"

#: llyx97/TAMT's run, which the paper recipe compresses into ``steps``: learning rate, reset interval, and the
#: number of optimiser steps of two epochs of WikiText-103 in blocks of 512 at batch 16 (103 M words x ~1.23
#: word-pieces per word, measured on the shared WikiText-2 with the shared tokenizer, / 510 per block / 16,
#: x 2 epochs: about 31 000 steps; an estimate, their pre-generated data are not public).
PAPER_LEARNING_RATE = 2e-5
PAPER_RESET_EVERY = 100
PAPER_STEPS = 31_000
#: The paper's binary scores: kept weights start at 2 x threshold, pruned ones at 0.
PAPER_THRESHOLD = 1e-2
PAPER_WEIGHT_DECAY = 0.01
PAPER_MAX_GRAD_NORM = 1.0


class MissingMlmHeadError(ValueError):
    """The checkpoint has no masked-LM head, so the MLM objective would train against random outputs."""


@dataclass(frozen=True)
class TamtSettings:
    """How a TAMT mask is trained.

    Attributes:
        recipe: ``paper`` or ``global-magnitude`` (module docstring).
        objective: ``kd`` or ``mlm``.
        corpus: a text file, or a folder whose ``*.txt`` files are read (absolute path).
        steps: optimiser steps on the scores.
        batch_size: text blocks per step.
        max_seq_length: tokens per block (the corpus is concatenated and cut into blocks).
        learning_rate: peak learning rate of the scores; ``None``: the recipe's (``paper``: 2e-5 x
            ``PAPER_STEPS / steps``; ``global-magnitude``: 3e-4).
        reset_every: the reset interval in steps; ``None``: the recipe's (``paper``: 100 x ``steps /
            PAPER_STEPS``, at least 1; ``global-magnitude``: 50).
        init: ``global-magnitude`` only: ``magnitude`` or ``constant`` (module docstring).
        init_score: ``global-magnitude`` with ``constant``: the initial score of the weights the mask keeps.
    """

    recipe: str = "paper"
    objective: str = "kd"
    corpus: str = str(DEFAULT_CORPUS)
    steps: int = 200
    batch_size: int = 16
    max_seq_length: int = 128
    learning_rate: float | None = None
    reset_every: int | None = None
    init: str = "magnitude"
    init_score: float = 1e-2

    @classmethod
    def from_options(cls, options: dict) -> "TamtSettings":
        """From a trial's ``tamt_*`` options; absent ones keep the defaults above."""
        fields = {name: options[f"tamt_{name}"] for name in cls.__dataclass_fields__ if f"tamt_{name}" in options}
        settings = cls(**fields)
        return replace(settings, corpus=str(Path(settings.corpus).expanduser().resolve()))

    @property
    def paper(self) -> bool:
        """True for llyx97/TAMT's recipe."""
        return self.recipe == "paper"

    @property
    def lr(self) -> float:
        """The peak learning rate actually used."""
        if self.learning_rate is not None:
            return self.learning_rate
        return PAPER_LEARNING_RATE * PAPER_STEPS / self.steps if self.paper else 3e-4

    @property
    def interval(self) -> int:
        """The reset interval actually used, in steps."""
        if self.reset_every is not None:
            return self.reset_every
        return max(1, round(PAPER_RESET_EVERY * self.steps / PAPER_STEPS)) if self.paper else 50

    def resets_after(self, step: int) -> bool:
        """Whether the thresholds are reset right after optimiser step ``step`` (1-based), besides the resets
        at the end of each pass over the corpus and at the end. ``paper``: after step 1 and every step ``k``
        with ``(k + 1) % interval == 0`` (train_kd.py's ``(global_step + 1) % eval_step == 0 or global_step ==
        1``); ``global-magnitude``: every ``interval`` steps."""
        if self.paper:
            return step == 1 or (step + 1) % self.interval == 0
        return step % self.interval == 0

    def validate(self) -> None:
        """Raises ``ValueError`` naming the problem (unknown recipe or objective, missing corpus, counts below 1)."""
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown TAMT recipe {self.recipe!r}: choose {' or '.join(RECIPES)}")
        if self.init not in INITS:
            raise ValueError(f"unknown TAMT initialisation {self.init!r}: choose {' or '.join(INITS)}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown TAMT objective {self.objective!r}: choose {' or '.join(OBJECTIVES)}")
        if not corpus_files(self.corpus):
            raise ValueError(f"TAMT corpus {self.corpus} not found or has no .txt file: pass --tamt-corpus with a "
                             "text file or a folder of .txt files")
        for name in ("steps", "batch_size", "max_seq_length", "reset_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"TAMT {name} {value} must be at least 1 (--tamt-{name.replace('_', '-')})")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"TAMT learning rate {self.learning_rate} must be above 0 (--tamt-learning-rate)")


def check_corpus_text(files: list[str]) -> None:
    """The corpus files are UTF-8 text with at least one line that is not blank (read in pre-flight, the
    method's check: a trial would otherwise fail on them after the dense fine-tunes).

    Raises:
        ValueError: a file that is not UTF-8 (naming the byte offset), or no text in any file.
    """
    text = False
    for name in files:
        try:
            with open(name, encoding="utf-8") as handle:
                for line in handle:
                    text = text or bool(line.strip())
        except UnicodeDecodeError as err:
            raise ValueError(f"TAMT corpus file {name} is not UTF-8 text (byte {err.start} of a block): convert it "
                             "(iconv -t utf-8) or pass another --tamt-corpus") from None
    if not text:
        raise ValueError(f"TAMT corpus {', '.join(files)} holds no text (empty or blank lines only): pass "
                         "--tamt-corpus with unlabeled text")


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
        minus_inf = torch.tensor(float("-inf"), device=flat.device, dtype=flat.dtype)
        if n_prune == 0:
            self.tau.fill_(torch.nextafter(flat.min(), minus_inf))
            return
        # two order statistics (linear time) instead of a full sort: the paper recipe resets every few steps
        highest_pruned = torch.kthvalue(flat, n_prune).values
        lowest_kept = torch.kthvalue(flat, n_prune + 1).values  # n_prune < n: s < 1
        middle = (highest_pruned + lowest_kept) / 2
        if highest_pruned < middle < lowest_kept:
            self.tau.fill_(middle)
            return
        order = torch.argsort(flat, stable=True)
        lowest_kept = flat[order[n_prune]]
        below = torch.nextafter(lowest_kept, minus_inf)
        pruned = order[:n_prune]
        flat[pruned] = torch.minimum(flat[pruned], below)
        self.tau.fill_(below)


class TamtMasker:
    """Score parametrisations on the prunable matrices of a frozen encoder.

    Args:
        model: a bare encoder (``AutoModel``) or a masked-LM model; every parameter is frozen.
        sparsity: the target sparsity.
        which: the prunable set.
        settings: the recipe. ``paper``: each matrix starts from its own magnitude mask at exactly ``sparsity``,
            scores 0.02 kept / 0 pruned, threshold 0.01 (TAMT's ``controlled_init magnitude``).
            ``global-magnitude``: the global magnitude mask (with ``which.min_keep``'s floor), scores |w| or
            constant (module docstring), every matrix made exact by the first reset.
    """

    def __init__(self, model: nn.Module, sparsity: float, which: PrunableSet, settings: "TamtSettings"):
        self.model, self.sparsity = model, sparsity
        for p in model.parameters():
            p.requires_grad_(False)
        weights = prunable_weights(model, which)
        modules = dict(model.named_modules())
        initial, tau = self._initial(weights, sparsity, which, settings)
        self.masks: dict[str, ThresholdMask] = {}
        for name, weight in weights.items():
            kept = initial.masks[name].to(weight.device)
            if settings.paper:
                scores = kept.to(weight.dtype) * (2 * PAPER_THRESHOLD)
            elif settings.init == "magnitude":
                scores = weight.detach().abs().clone()
                limit = torch.tensor(tau, device=scores.device, dtype=scores.dtype)
                scores[~kept] = torch.minimum(scores[~kept], limit)  # a weight tied with tau stays pruned
                scores[kept] = torch.maximum(scores[kept], torch.nextafter(limit, limit + 1))
            else:
                scores = kept.to(weight.dtype) * settings.init_score
            mask = ThresholdMask(scores)
            mask.tau.fill_(tau)
            parametrize.register_parametrization(modules[name.rsplit(".", 1)[0]], "weight", mask)
            self.masks[to_encoder_name(name, model)] = mask

    @staticmethod
    def _initial(weights: dict, sparsity: float, which: PrunableSet, settings: "TamtSettings"
                 ) -> tuple[WeightMask, float]:
        """The initial mask and threshold of the recipe."""
        magnitudes = {n: w.detach().abs() for n, w in weights.items()}
        if settings.paper:  # per matrix: floor(s * n) of each, the smallest |w|
            per_matrix = {n: global_mask({n: m}, sparsity).masks[n] for n, m in magnitudes.items()}
            return WeightMask(per_matrix), PAPER_THRESHOLD
        initial = magnitude_mask(magnitudes, sparsity, min_keep=which.min_keep)
        if settings.init == "magnitude":  # the global threshold: the largest pruned magnitude
            pruned = torch.cat([m[~initial.masks[n].to(m.device)] for n, m in magnitudes.items()])
            return initial, float(pruned.max()) if pruned.numel() else -1.0
        return initial, settings.init_score / 2

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


class BertAdam(torch.optim.Optimizer):
    """Adam as BERT's original code has it (``BertAdam`` of pytorch-pretrained-bert, which llyx97/TAMT's
    ``train_kd.py`` trains the scores with): each parameter's gradient clipped to L2 norm ``max_grad_norm``
    first, moments without bias correction, and the weight decay added to the update (decoupled, scaled by
    the learning rate): ``p -= lr * (m / (sqrt(v) + eps) + weight_decay * p)``. ``torch.optim.AdamW`` differs
    in the bias correction, which makes BERT's first steps about 3x larger than AdamW's.
    """

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-6, weight_decay: float = 0.0,
                 max_grad_norm: float = 1.0):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                                  "max_grad_norm": max_grad_norm})

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter with a gradient (``closure`` is not supported: always ``None``)."""
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if group["max_grad_norm"] > 0:
                    torch.nn.utils.clip_grad_norm_(p, group["max_grad_norm"])
                state = self.state[p]
                if not state:
                    state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                update = exp_avg / (exp_avg_sq.sqrt() + group["eps"])
                if group["weight_decay"]:
                    update += group["weight_decay"] * p
                p.add_(update, alpha=-group["lr"])
        return None


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
        model, info = AutoModelForMaskedLM.from_pretrained(model_path, output_loading_info=True,
                                                           trust_remote_code=remote_code_trusted())
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
        return AutoModel.from_pretrained(model_path, trust_remote_code=remote_code_trusted())


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
        self.tokenizer = load_tokenizer(model_path)
        if settings.objective == "mlm":
            self.student, self.teacher = _load_mlm(model_path), None
            self.collate = DataCollatorForLanguageModeling(self.tokenizer, mlm_probability=0.15)
        else:
            self.student, self.teacher = _load_encoder(model_path), _load_encoder(model_path)
            self.teacher.to(self.device).train(settings.paper)
            self.collate = DataCollatorWithPadding(self.tokenizer)
        # the paper's student and teacher keep dropout on; the global-magnitude recipe turns it off in both
        self.student.to(self.device).train(settings.paper)
        self.masker = TamtMasker(self.student, sparsity, which, settings)
        if settings.paper:
            self.optimizer = BertAdam(self.masker.scores(), lr=settings.lr, weight_decay=PAPER_WEIGHT_DECAY,
                                      max_grad_norm=PAPER_MAX_GRAD_NORM)
            total = settings.steps
            self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda k: max(0.0, 1 - k / total))
        else:
            self.optimizer = torch.optim.Adam(self.masker.scores(), lr=settings.lr)
            self.schedule = None
        self.steps_done = 0
        self.reset_steps: list[int] = []  # after which optimiser steps the thresholds were reset

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
        """One optimiser step on the scores (then a reset where ``settings.resets_after`` says); returns the
        loss before it."""
        loss = self.loss(batch)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.schedule is not None:
            self.schedule.step()
        self.steps_done += 1
        if self.settings.resets_after(self.steps_done):
            self.reset()
        return loss.item()

    def reset(self) -> None:
        """Reset every matrix's threshold to the exact target sparsity (once per step at most)."""
        if not self.reset_steps or self.reset_steps[-1] != self.steps_done:
            self.masker.reset()
            self.reset_steps.append(self.steps_done)

    def train(self) -> list[float]:
        """Train for ``settings.steps`` steps over the corpus (cycling, seeded order; the paper recipe skips a
        last incomplete batch and resets at the end of every pass, as train_kd.py does), reset once more, and
        return the loss of every step."""
        blocks = corpus_blocks(self.settings.corpus, self.tokenizer, self.settings.max_seq_length)
        torch.manual_seed(self.seed)
        loader = DataLoader(blocks, batch_size=self.settings.batch_size, shuffle=True, collate_fn=self.collate,
                            generator=torch.Generator().manual_seed(self.seed), drop_last=self.settings.paper)
        losses, started = [], time.perf_counter()
        while len(losses) < self.settings.steps:
            for batch in loader:
                losses.append(self.step(batch))
                if len(losses) % 50 == 0 or len(losses) == self.settings.steps:
                    log.info("TAMT %s step %d/%d: loss %.4f (%.0f s)", self.settings.objective, len(losses),
                             self.settings.steps, losses[-1], time.perf_counter() - started)
                if len(losses) == self.settings.steps:
                    break
            else:
                if self.settings.paper:  # a whole pass over the corpus: train_kd.py resets at each epoch end
                    self.reset()
        self.reset()
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
                  "last_loss": losses[-1], "losses": losses, "seconds": time.perf_counter() - started,
                  "learning_rate": settings.lr, "reset_every": settings.interval,
                  "reset_steps": trainer.reset_steps, "prunable": asdict(which)}
        (scratch / "record.json").write_text(json.dumps(record))

    computed = compute_once(target, write)
    record = json.loads((target / "record.json").read_text())
    return WeightMask.load(target / "mask.safetensors"), {**record, "reused": not computed}


def make_ticket(request: TicketRequest) -> Ticket:
    """The TAMT ticket at ``request.sparsity`` (options ``tamt_*``, ``prune_pooler``, ``prune_embeddings``).

    Raises:
        ValueError: invalid settings; ``MissingMlmHeadError`` for ``mlm`` without an MLM head. (TAMT has no
            control tickets: ``METHOD`` below refuses them.)
    """
    settings, which = TamtSettings.from_options(request.options), PrunableSet.from_options(request.options)
    if request.sparsity == 0:
        dense = WeightMask({n: torch.ones_like(w, dtype=torch.bool)
                            for n, w in _prunable_shapes(request.spec.model, which).items()})
        return Ticket(dense, replay=request.dense.history, replay_weights=request.dense.weights_file)
    mask, record = ensure_mask(request.spec.model, request.sparsity, settings, which, request.spec.seed,
                               request.cache_dir)
    return Ticket(mask, info={"tamt_first_loss": record["first_loss"], "tamt_last_loss": record["last_loss"],
                              "tamt_reused": record["reused"]})


def _prunable_shapes(model_path: str, which: PrunableSet) -> dict[str, torch.Tensor]:
    model = _load_encoder(model_path)
    return {to_encoder_name(n, model): w.detach() for n, w in prunable_weights(model, which).items()}


# The method as the registry holds it (trainables.pruning.registry).
_D = TamtSettings()


def _check(options: dict, model: str) -> None:
    """The TAMT settings are valid, the corpus holds UTF-8 text (read once, here in pre-flight, not in every
    trial), and an ``mlm`` objective has a model with an MLM head."""
    settings = TamtSettings.from_options(options)
    settings.validate()
    check_corpus_text(corpus_files(settings.corpus))
    if options.get("tamt_objective") == "mlm":
        check_mlm_head(model)


def _implied(options: dict) -> dict:
    """TAMT's masked set has the pooler and the word embeddings: with the paper recipe every method of the study
    prunes that set unless the flags say otherwise."""
    return {"prune_pooler": True, "prune_embeddings": True} if options.get("tamt_recipe") == "paper" else {}

METHOD = PruningMethod(
    name="tamt",
    summary="task-agnostic mask training: scores on frozen pre-trained weights, KD or MLM on unlabeled text",
    units="weights of the prunable matrices (each matrix at the target sparsity)",
    build=make_ticket,
    mask_type=WeightMask,
    achieved=prunable_set_basis,
    sparsity=UNSTRUCTURED_RANGE,
    options=(
        Option("tamt_recipe", str, _D.recipe, "paper (default): llyx97/TAMT's recipe (per-matrix magnitude "
               "init with binary scores, BERT Adam with weight decay and clipping, linear decay, resets at step 1, "
               "every ~100 paper steps and each corpus pass, dropout on, pooler and word embeddings masked) "
               f"compressed into --tamt-steps (lr and reset interval scaled by {PAPER_STEPS} / steps); "
               "global-magnitude: this project's first recipe (global |w| init, Adam 3e-4, reset every 50)",
               choices=RECIPES),
        Option("tamt_objective", str, _D.objective, "kd: distil the dense model's hidden states (any "
               "checkpoint); mlm: masked-LM loss (checkpoints with an MLM head)", choices=OBJECTIVES),
        Option("tamt_corpus", str, "../shared/data/wikitext-2", "unlabeled text: a file, or a folder of .txt "
               "files (default $SUPERTICKETS_TAMT_CORPUS, then tamt_corpus in ./supertickets.toml, then "
               "../shared/data/wikitext-2)", path=True),
        Option("tamt_steps", int, _D.steps, f"mask-training steps (default {_D.steps})"),
        Option("tamt_batch_size", int, _D.batch_size, f"text blocks per mask-training step (default {_D.batch_size})"),
        Option("tamt_max_seq_length", int, _D.max_seq_length, f"tokens per text block (default {_D.max_seq_length})"),
        Option("tamt_learning_rate", float, _D.learning_rate, "peak learning rate of the scores (default: the "
               f"recipe's, paper 2e-5 x {PAPER_STEPS} / steps, global-magnitude 3e-4)"),
        Option("tamt_reset_every", int, _D.reset_every, "steps between per-matrix threshold resets (default: the "
               f"recipe's, paper 100 x steps / {PAPER_STEPS} (at least 1), global-magnitude 50)"),
        Option("tamt_init", str, _D.init, "global-magnitude recipe's initial scores: magnitude (|w|, "
               "default) or constant (kept --tamt-init-score, pruned 0); both start from the global magnitude mask", choices=INITS),
        Option("tamt_init_score", float, _D.init_score, f"kept weights' initial score with --tamt-init constant "
               f"(default {_D.init_score})"),
        *PRUNABLE_OPTIONS,
    ),
    check=_check,
    implied=_implied,
)
