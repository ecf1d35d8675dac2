"""``python -m search.importance_check``: how well each head/FFN importance estimator predicts what removing a
unit actually does.

For the dense fine-tune a study with the same flags uses (read from the study cache, or fine-tuned once and
stored there), it removes each attention head and each FFN block in turn (gate 0), measures the mean dev loss,
and prints, for every estimator of ``--importance`` (``trainables.pruning.structured.ESTIMATORS``), the
Spearman correlation between the unit's score (heads normalised per layer, as tickets rank them) and the
actual loss change. The better estimator ranks units closer to what removing them costs. Takes the study's
flags (``--task``, ``--model``, ``--glue-dir``, ``--budget``, ``--max-train-examples``, ...) so that it reads the
same cached fine-tune; prints a table and, with ``--out``, writes it as JSON (a new file: never overwritten).
The check is of the structured method's estimators: ``--importance`` narrows it to one, another ``--method`` is
refused, and so is a study flag it has no use for (``STUDY_ONLY``).

Exit codes: 0 done, 2 bad input (one line, nothing created).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from search.errors import UsageError
from search.cli.study_command import parser as study_parser

if TYPE_CHECKING:  # torch and SciPy load once the flags are parsed: --help answers at once
    import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EstimatorCheck:
    """One estimator against actual removal.

    Attributes:
        estimator: its name.
        heads_rho: Spearman correlation over all heads of score vs dev-loss change when removed.
        heads_p: its two-sided p-value.
        ffn_rho: the same over FFN blocks (few units: read with care).
        ffn_p: its p-value.
        first_ffn: the FFN block (layer index) this estimator prunes first.
    """

    estimator: str
    heads_rho: float
    heads_p: float
    ffn_rho: float
    ffn_p: float
    first_ffn: int


@dataclass(frozen=True)
class RemovalEffects:
    """Mean dev loss of the dense model and its change when one unit is removed.

    Attributes:
        base_loss: mean dev loss, all units on.
        head: shape ``(num_layers, num_heads)``, loss with that head removed minus ``base_loss``.
        ffn: shape ``(num_layers,)``, the same for FFN blocks.
        examples: dev examples the losses average over.
    """

    base_loss: float
    head: torch.Tensor
    ffn: torch.Tensor
    examples: int


def removal_effects(model, loader, device) -> RemovalEffects:
    """Remove each head and each FFN block of ``model`` in turn (``trainables.gates.UnitGates``) and measure the
    mean loss over ``loader``'s batches (eval mode, no dropout)."""
    import torch

    from trainables.gates import UnitGates

    model.eval()
    batches = [{k: v.to(device) for k, v in b.items()} for b in loader]
    examples = sum(len(b["input_ids"]) for b in batches)
    gates = UnitGates(model)
    layers, heads = gates.head.shape

    def mean_loss(head_mask, ffn_mask) -> float:
        gates.set(head_mask, ffn_mask)
        with torch.no_grad():
            return sum(float(model(**b).loss) * len(b["input_ids"]) for b in batches) / examples

    ones_h, ones_f = torch.ones(layers, heads), torch.ones(layers)
    try:
        base = mean_loss(ones_h, ones_f)
        head = torch.zeros(layers, heads)
        for layer in range(layers):
            for h in range(heads):
                mask = ones_h.clone()
                mask[layer, h] = 0
                head[layer, h] = mean_loss(mask, ones_f) - base
            log.info("removal effects: layer %d/%d of heads done", layer + 1, layers)
        ffn = torch.zeros(layers)
        for layer in range(layers):
            mask = ones_f.clone()
            mask[layer] = 0
            ffn[layer] = mean_loss(ones_h, mask) - base
    finally:
        gates.remove()
    return RemovalEffects(base, head, ffn, examples)


def check_estimators(importance, effects: RemovalEffects, estimators: tuple[str, ...] | None = None
                     ) -> list[EstimatorCheck]:
    """Spearman correlation of each estimator's scores (heads normalised per layer) with ``effects``; ``estimators``:
    which (default every one of ``ESTIMATORS``)."""
    import torch
    from scipy.stats import spearmanr

    from trainables.pruning.structured import ESTIMATORS, normalize_by_layer

    rows = []
    for estimator in estimators or ESTIMATORS:
        head, ffn = importance.of(estimator)
        h = spearmanr(normalize_by_layer(head).flatten().numpy(), effects.head.flatten().numpy())
        f = spearmanr(ffn.numpy(), effects.ffn.numpy())
        rows.append(EstimatorCheck(estimator, float(h.statistic), float(h.pvalue), float(f.statistic),
                                   float(f.pvalue), int(torch.argmin(ffn))))
    return rows


def table(rows: list[EstimatorCheck], effects: RemovalEffects) -> str:
    """The printed table."""
    import torch

    n_heads, n_ffn = effects.head.numel(), effects.ffn.numel()
    lines = [f"{'estimator':<12} {'heads rho':>9} {'p':>8}   {'FFN rho':>7} {'p':>6}   first FFN pruned",
             *(f"{r.estimator:<12} {r.heads_rho:>9.3f} {r.heads_p:>8.1e}   {r.ffn_rho:>7.3f} {r.ffn_p:>6.2f}   "
               f"layer {r.first_ffn}" for r in rows),
             f"actual: {n_heads} heads and {n_ffn} FFN blocks removed one at a time on {effects.examples} dev "
             f"examples (base loss {effects.base_loss:.4f}); the FFN block whose removal costs least is layer "
             f"{int(torch.argmin(effects.ffn))}, the most layer {int(torch.argmax(effects.ffn))}."]
    return "\n".join(lines)


def parser():
    """The study's flags (so the same cached dense fine-tune is read) plus ``--seed`` and ``--out``."""
    p = study_parser()
    p.prog = "python -m search.importance_check"
    p.description = __doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1]
    p.epilog = ("example:\n  python -m search.importance_check --task mrpc --max-train-examples 1000 --epochs 3 "
                "--optimizer adamw --learning-rate 1e-4 --seeds 1 --out mrpc-importance.json")
    extra = p.add_argument_group("the check")
    extra.add_argument("--seed", type=int, default=0, help="which seed's dense fine-tune (default 0)")
    extra.add_argument("--out", help="also write the table as JSON here")
    return p


#: Study flags the check has no use for (it runs no search over tickets and logs nothing to MLflow): given, they
#: are refused rather than silently ignored.
STUDY_ONLY = ("control", "rewind", "sparsity_min", "sparsity_max", "sparsity_step", "num_trials", "search",
              "scheduler", "confidence", "match_tolerance", "concurrent_trials", "grace_period", "max_failures",
              "keep_weights", "search_seed", "study_name", "resume", "mlflow_uri", "optuna_storage")


def check_args(p, args) -> None:
    """The flags of the check itself, and that no flag it would ignore was given (``STUDY_ONLY``, another
    ``--method``); nothing is created.

    Raises:
        UsageError: the first problem, naming it and the fix.
    """
    from search.cli.preflight import check_new_file, check_storage_path

    if args.seed < 0:
        raise UsageError(f"--seed {args.seed} must be 0 or more")
    ignored = next((dest for dest in STUDY_ONLY if getattr(args, dest) != p.get_default(dest)), None)
    if ignored:
        raise UsageError(f"--{ignored.replace('_', '-')} is a study's flag the importance check does not use (it runs "
                         "no search and logs nothing to MLflow): drop it")
    if args.method.strip() != "structured":
        raise UsageError(f"--method {args.method}: the check measures the structured method's head and FFN importance "
                         "estimators, which other methods do not use: drop --method (pick an estimator with "
                         "--importance)")
    if args.out is not None:
        check_new_file(args.out, "--out")
        if not Path(args.out).expanduser().resolve().parent.is_dir():
            raise UsageError(f"--out {args.out}: its folder does not exist; create it or pass another path")
    check_storage_path(args.storage_path)


def main(argv: list[str] | None = None) -> int:
    """Run the check; returns the exit code (0 done, 2 bad input: one line on stderr, nothing created, 1 a failure:
    one line)."""
    try:
        p = parser()
        args = p.parse_args(argv)
        check_args(p, args)
        from search.cli.settings import build_settings

        settings = build_settings(args)
        from search.cli.preflight import check_data, check_model, check_storage

        check_storage(settings)
        check_data(settings)
        check_model(settings)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        return _check(args, settings)
    except Exception as err:  # a failure (the disk, the model): one line, no traceback
        from search.errors import failure_summary

        print(f"failed (exit 1): {failure_summary(err)}; fix the cause and run the check again", file=sys.stderr)
        return 1


def _check(args, settings) -> int:
    """Fine-tune (or read from the cache) the dense model, measure each unit's removal, print the table."""
    from trainables.cache import DenseSpec, ensure_dense
    from trainables.data import batches, collator, load_tokenized
    from trainables.finetune import pick_device
    from trainables.model import load_model, load_tokenizer
    from trainables.pruning.structured import dense_importance
    from trainables.tasks import get_task

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    task = get_task(settings.task)
    spec = DenseSpec(settings.model, settings.task, args.seed, settings.finetune, settings.data)
    dense = ensure_dense(spec, settings.cache_dir)
    importance = dense_importance(spec, dense, settings.cache_dir)
    device = pick_device()
    model = load_model(settings.model, task, args.seed)
    model.load_state_dict(dense.weights())
    model.to(device)
    tokenizer = load_tokenizer(settings.model)
    dev = load_tokenized(task, tokenizer, settings.data, seed=args.seed)["validation"]
    loader = batches(dev, collator(tokenizer), settings.finetune.batch_size, device)
    effects = removal_effects(model, loader, device)
    rows = check_estimators(importance, effects, (args.importance,) if args.importance else None)
    last = dense.history[-1]
    print(f"\n{task.name.upper()}, {Path(settings.model).name}, seed {args.seed}: dense dev {task.primary_metric} "
          f"{last.dev_score:.4f}; importance scored on {importance.examples} training examples")
    print(table(rows, effects))
    if args.out:
        Path(args.out).write_text(json.dumps({
            "task": task.name, "model": settings.model, "seed": args.seed, "dense_dev_score": last.dev_score,
            "train_examples_scored": importance.examples, "dev_examples": effects.examples,
            "base_loss": effects.base_loss, "head_loss_change": effects.head.tolist(),
            "ffn_loss_change": effects.ffn.tolist(), "estimators": [asdict(r) for r in rows]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
