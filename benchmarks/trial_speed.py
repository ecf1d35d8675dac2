"""How much faster does a study fine-tune a structured ticket trained physically smaller? Prints measured figures.

    python -m benchmarks.trial_speed [--task rte] [--rounds 3] [--steps 4] [--study-rounds 1] [--device cpu|cuda]

Part 1, the study's own training loop (``trainables.finetune.FineTuneRun``, the loop every trial runs): the dense
model and structured tickets at 30 % and 50 % sparsity (Liang et al.'s counts, the lowest per-token importance of
the pre-trained model with a fresh classifier on 64 training examples), each fine-tuned physically smaller
(``--train-as smaller``, the default: ``Ticket.model_to_train`` removes the pruned heads and FFN blocks) and gated
in the full model (``--train-as gated``), ``--steps`` optimiser steps per model per round, the models interleaved
round after round so drift in the machine's speed hits them alike; the median over rounds. Training examples/s
(forward, backward, clipping and an AdamW step, the task's examples padded per batch as a study pads them), and
``speedup``: examples/s over the dense model's, removal on.

Part 2, end to end: a small structured grid study (``--budget smoke``, one seed, sparsities 0.3-0.6 in steps of
0.1 plus the dense point, ``--study-task``, RTE by default, ``--study-seq-length`` tokens, the papers' 128 by
default), its wall time with removal on and off, run alternately
``--study-rounds`` times in fresh storage each (so each computes its own dense fine-tune); ``--study-rounds 0``
skips it. What the removal saves end to end depends on how much of a trial is matrix work: on SST-2's short
sentences (about 25 tokens, padded per batch) per-step costs that do not shrink with the ticket (the optimiser
step over the word embeddings, Python, data) and the fixed costs (Ray, the dense fine-tune, model loading) weigh
more than on RTE's 64-token inputs.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from search.errors import OneLineParser, UsageError

SHARED = Path(__file__).resolve().parents[2] / "shared"


def _models(model_dir: str, task, split, collate, sparsities: list[float], device):
    """``{row name: {"smaller": model, "gated": model}}`` (the dense row has one model), rewound to pre-trained."""
    import torch

    from benchmarks.ticket_speed import ticket_masks
    from trainables.data import batches
    from trainables.model import load_model
    from trainables.pruning.tickets import Ticket

    dense = load_model(model_dir, task, seed=0)
    sample = split["train"].select(range(min(64, len(split["train"]))))
    masks = ticket_masks(dense, list(batches(sample, collate, 16, "cpu")), sparsities)
    rows = {"dense": {"smaller": dense.to(device)}}
    for sparsity, mask in masks.items():
        rows[f"structured {round(100 * sparsity)} %"] = {
            form: Ticket(mask, smaller=form == "smaller").model_to_train(copy.deepcopy(dense).to(device))
            for form in ("smaller", "gated")}
    torch.manual_seed(0)
    return rows


def _study(form: str, args, root: Path) -> float:
    """Wall seconds of one small structured grid study with ``--train-as form``, in fresh storage."""
    folder = Path(tempfile.mkdtemp(prefix=f"trial-speed-{form}-", dir=root))
    command = [sys.executable, "-m", "search.run", "--task", args.study_task, "--budget", "smoke", "--method", "structured",
               "--search", "grid", "--num-trials", "5", "--sparsity-min", "0.3", "--sparsity-max", "0.6",
               "--sparsity-step", "0.1", "--seeds", "1", "--max-seq-length", str(args.study_seq_length),
               "--train-as", form, "--model", args.model, "--glue-dir",
               args.glue_dir, "--storage-path", str(folder / "results"), "--mlflow-uri",
               f"sqlite:///{folder}/mlflow.db", "--keep-weights", "none", "--study-name", f"speed-{form}"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the {form} study failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds


def check_args(args) -> list[float]:
    """The flags checked before anything is loaded; returns the sparsities.

    Raises:
        UsageError: the first problem, naming it and the fix.
    """
    from benchmarks.ticket_speed import check_device, parse_sparsities
    from search.cli.preflight import check_model_and_data, check_tasks

    sparsities = parse_sparsities(args.sparsities)
    check_device(args.device)
    for flag in ("rounds", "steps", "batch_size", "max_seq_length", "study_seq_length"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} {getattr(args, flag)} must be at least 1")
    if args.study_rounds < 0:
        raise UsageError(f"--study-rounds {args.study_rounds} must be 0 (skip the study) or more")
    if len(check_tasks(args.task, "--task")) != 1:
        raise UsageError(f"--task {args.task}: the training loop is measured on one task; pass one")
    args.task = args.task.strip().lower()
    if len(check_tasks(args.study_task, "--study-task")) != 1:
        raise UsageError(f"--study-task {args.study_task}: one task")
    args.study_task = args.study_task.strip().lower()
    check_model_and_data(args.model, args.glue_dir, (args.task, args.study_task) if args.study_rounds else (args.task,))
    return sparsities


def main(argv: list[str] | None = None) -> int:
    """Measure and print; returns the exit code (0 done, 2 bad input: one line on stderr, 1 a study failed)."""
    parser = OneLineParser(prog="python -m benchmarks.trial_speed", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="rte", help="task of part 1 (default rte)")
    parser.add_argument("--model", default=str(SHARED / "models" / "all-MiniLM-L6-v2"))
    parser.add_argument("--glue-dir", default=str(SHARED / "data" / "glue"))
    parser.add_argument("--sparsities", default="0.3,0.5", help="structured tickets of part 1 (fractions)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of part 1 (median reported)")
    parser.add_argument("--steps", type=int, default=4, help="optimiser steps per model per round")
    parser.add_argument("--batch-size", type=int, default=32, help="training batch (the papers' budget: 32)")
    parser.add_argument("--max-seq-length", type=int, default=128, help="tokens per example at most (default 128)")
    parser.add_argument("--study-rounds", type=int, default=1, help="alternating pairs of part 2's studies (0: skip)")
    parser.add_argument("--study-task", default="rte", help="task of part 2's studies (default rte)")
    parser.add_argument("--study-seq-length", type=int, default=128,
                        help="--max-seq-length of part 2's studies (default 128, the papers'; the smoke budget's is 64)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    try:
        args = parser.parse_args(argv)
        sparsities = check_args(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    import torch

    from trainables.data import DataSettings, collator, load_tokenized
    from trainables.finetune import FinetuneSettings, FineTuneRun
    from trainables.model import load_tokenizer, quiet_loading
    from trainables.tasks import get_task

    device = torch.device(args.device)
    task = get_task(args.task)
    tokenizer = load_tokenizer(args.model)
    examples = args.steps * args.batch_size
    split = load_tokenized(task, tokenizer, DataSettings(args.glue_dir, args.max_seq_length, examples, 64), seed=0)
    collate = collator(tokenizer)
    with quiet_loading():
        rows = _models(args.model, task, split, collate, sparsities, device)
    settings = FinetuneSettings(learning_rate=2e-5, epochs=args.rounds + 1, batch_size=args.batch_size,
                                optimizer="adamw")
    runs = {(name, form): FineTuneRun(model, split["train"], collate, settings, seed=0, device=device)
            for name, forms in rows.items() for form, model in forms.items()}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rates = {key: [] for key in runs}
    for round_ in range(args.rounds + 1):  # round 0: warm-up (allocator, kernels, thread pools)
        for key, run in runs.items():
            sync()
            started = time.perf_counter()
            run.train_epoch()
            sync()
            if round_:
                rates[key].append(examples / (time.perf_counter() - started))
    median = {key: statistics.median(values) for key, values in rates.items()}
    base = median[("dense", "smaller")]
    where = (torch.cuda.get_device_name(device) if device.type == "cuda" else
             f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} "
             "torch threads")
    print(f"trial_speed: {os.path.basename(args.model)}, {task.name} training, batch {args.batch_size}, at most "
          f"{args.max_seq_length} tokens, {args.steps} AdamW steps per model per round, {where}, torch "
          f"{torch.__version__}; median of {args.rounds} interleaved rounds")
    print(f"{'model':<17} {'heads':>5} {'FFN':>4} {'params':>11} {'removed ex/s':>12} {'gated ex/s':>10} "
          f"{'removed/gated':>13} {'speedup':>7}")
    for name, forms in rows.items():
        small = forms["smaller"]
        ticket = getattr(small.config, "ticket", None) or {}
        heads = sum(ticket.get("heads_per_layer") or [small.config.num_attention_heads] * small.config.num_hidden_layers)
        ffn = sum(1 for i in ticket.get("intermediate_per_layer") or [1] * small.config.num_hidden_layers if i)
        removed = median[(name, "smaller")]
        gated = median.get((name, "gated"), removed)
        print(f"{name:<17} {heads:>5} {ffn:>4} {sum(p.numel() for p in small.parameters()):>11,} {removed:>12.1f} "
              f"{gated:>10.1f} {removed / gated:>12.2f}x {removed / base:>6.2f}x")
    print("removed: the ticket fine-tuned physically smaller (the default); gated: masked inside the full model "
          "(--train-as gated); speedup: removed examples/s over the dense model's")
    if not args.study_rounds:
        return 0
    walls = {"smaller": [], "gated": []}
    with tempfile.TemporaryDirectory(prefix="trial-speed-") as root:
        try:
            for _ in range(args.study_rounds):
                for form in ("smaller", "gated"):
                    walls[form].append(_study(form, args, Path(root)))
                    print(f"  study --train-as {form}: {walls[form][-1]:.1f} s", flush=True)
        except RuntimeError as err:
            print(f"failed (exit 1): {err}", file=sys.stderr)
            return 1
    on, off = statistics.median(walls["smaller"]), statistics.median(walls["gated"])
    print(f"structured grid study ({args.study_task}, --budget smoke, --max-seq-length {args.study_seq_length}, 1 seed, "
          "dense + sparsities 0.3-0.6 step 0.1), wall time, "
          f"median of {args.study_rounds}: removal on {on:.1f} s, off {off:.1f} s: {off / on:.2f}x faster end to end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
