"""What a Tickets-Share study costs here: seconds per multi-task step of each arm on the full training sets, and the
paper budget's projected time (``python -m benchmarks.multitask_cost --tasks rte,mrpc,stsb``).

Times ``--steps`` optimiser steps of each arm (after 3 warm-up steps) at the paper budget's batch size and sequence
length, the tickets-share arm with a structured ticket on every task (a third of the heads and one FFN block
pruned, so ``held`` restores weights every step), and projects one arm-seed (5 epochs over the mixed data) and the
whole paper budget (2 arms x 5 seeds). Printed, not asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from search.errors import OneLineParser, UsageError
from spaces.budgets import BUDGETS
from trainables.data import DataSettings, collator, load_tokenized
from trainables.finetune import FinetuneSettings
from trainables.multitask import MultiTaskRun, TaskSampling, shared_models
from trainables.pruning.structured import StructuredMask
from trainables.tasks import get_task

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main(argv: list[str] | None = None) -> int:
    """Print the measured seconds per step and the projections; returns the exit code (0 done, 2 bad input: one line
    on stderr)."""
    from search.cli.preflight import check_model_and_data, check_tasks

    p = OneLineParser(prog="python -m benchmarks.multitask_cost", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="rte,mrpc,stsb", help="comma-separated GLUE tasks, at least 2")
    p.add_argument("--model", default=str(SHARED / "models" / "all-MiniLM-L6-v2"))
    p.add_argument("--glue-dir", default=str(SHARED / "data" / "glue"))
    p.add_argument("--steps", type=int, default=20, help="timed steps per arm, after 3 warm-up steps")
    try:
        args = p.parse_args(argv)
        if args.steps < 1:
            raise UsageError(f"--steps {args.steps} must be at least 1")
        names = check_tasks(args.tasks, "--tasks", at_least=2)
        args.model = check_model_and_data(args.model, args.glue_dir, names)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    paper = BUDGETS["paper"]
    from trainables.model import load_tokenizer

    tokenizer = load_tokenizer(args.model)
    tasks = [get_task(t) for t in names]
    data = DataSettings(args.glue_dir, paper.max_seq_length)
    splits = {t.name: load_tokenized(t, tokenizer, data)["train"] for t in tasks}
    settings = FinetuneSettings(paper.learning_rate, paper.multitask_epochs, paper.batch_size, paper.optimizer)
    print(f"{torch.get_num_threads()} torch threads; tasks {args.tasks}: "
          + ", ".join(f"{n} {len(s)} training examples" for n, s in splits.items()))
    per_step = {}
    for arm in ("multitask-dense", "tickets-share"):
        models = shared_models(args.model, tasks, seed=0)
        first = next(iter(models.values()))
        layers, heads = first.config.num_hidden_layers, first.config.num_attention_heads
        head = torch.ones(layers, heads, dtype=torch.bool)
        head[:, : heads // 3] = False
        ffn = torch.ones(layers, dtype=torch.bool)
        ffn[-1] = False
        switches = {t.name: (StructuredMask(head, ffn).switch(first) if arm == "tickets-share" else None) for t in tasks}
        run = MultiTaskRun(models, splits, collator(tokenizer), settings, 0, torch.device("cpu"), TaskSampling(),
                           switches)
        order = TaskSampling().schedule(run.batches_per_task, run.sizes, 0, 0)
        run.models.train()
        for task in order[:3]:
            run.train_step(task, run.next_batch(task))
        started = time.perf_counter()
        for task in order[3:3 + args.steps]:
            run.train_step(task, run.next_batch(task))
        per_step[arm] = (time.perf_counter() - started) / args.steps
        epoch = per_step[arm] * run.steps_per_epoch
        print(f"{arm}: {per_step[arm]:.2f} s per step; {run.steps_per_epoch} steps per epoch = {epoch / 60:.0f} min; "
              f"{paper.multitask_epochs} epochs (one arm, one seed) = {paper.multitask_epochs * epoch / 3600:.1f} h")
    total = sum(per_step.values()) * run.steps_per_epoch * paper.multitask_epochs * paper.seeds
    print(f"paper budget (2 arms x {paper.seeds} seeds, one trial at a time): {total / 3600:.0f} h of training, "
          "before the tasks' own studies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
