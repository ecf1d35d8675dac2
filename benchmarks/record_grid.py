"""Record a full structured grid once, with the real trial code, for the search-efficiency benchmark.

Every sparsity of the structured grid x every seed x every epoch, each with its per-example dev predictions
and training loss, is written to one JSON file (``benchmarks/data/``). ``benchmarks.search_efficiency``
replays it through the real searcher and scheduler, so search strategies can be compared on real numbers
without fine-tuning again.

    python -m benchmarks.record_grid --task mrpc --seeds 5 --epochs 2 --max-train-examples 1000 \\
        --out benchmarks/data/mrpc-structured-grid.json

Each grid point is one ``trainables.trial.run_ticket_trial`` with every seed (the dense point replays the
cached dense fine-tunes, as in a study); points run in ``--workers`` processes of one torch thread each.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time
from dataclasses import asdict
from pathlib import Path

from search.errors import OneLineParser, UsageError
from spaces.sparsity import SparsityRange

SHARED = Path(__file__).resolve().parents[2] / "shared"


def _context(args):
    from trainables.data import DataSettings
    from trainables.finetune import FinetuneSettings
    from trainables.trial import TrialContext

    return TrialContext(model=args.model, task=args.task,
                        data=DataSettings(args.glue_dir, args.max_seq_length, args.max_train_examples or None,
                                          args.max_dev_examples or None),
                        finetune=FinetuneSettings(args.learning_rate, args.epochs, args.batch_size, args.optimizer),
                        seeds=tuple(range(args.seeds)), cache_dir=args.cache, threads=1)


def _dense(job):
    args, seed = job
    from trainables.cache import ensure_dense

    context = _context(args)
    started = time.perf_counter()
    result = ensure_dense(context.dense_spec(seed), context.cache_dir)
    return seed, result.history[-1].dev_score, time.perf_counter() - started


def _point(job):
    args, sparsity = job
    from trainables.config import TrialConfig
    from trainables.trial import run_ticket_trial

    reports, started = [], time.perf_counter()
    run_ticket_trial(TrialConfig(sparsity, "structured"), _context(args), reports.append)
    seeds: dict[int, list] = {}
    for report in reports:
        current = report.current
        seeds.setdefault(report.seed, []).append({"epoch": current.epoch, "dev_score": current.dev_score,
                                                  "train_loss": current.train_loss,
                                                  "predictions": current.predictions})
    last = reports[-1]
    return {"sparsity": sparsity, "counts": last.ticket.counts, "labels": last.labels,
            "seeds": {str(s): epochs for s, epochs in seeds.items()}, "seconds": time.perf_counter() - started}


def check_args(args) -> None:
    """Every flag checked before a process starts or a file is written (nothing is created): the fine-tune's values
    by the study's own ranges (``search.cli.flags``), the grid, the worker count, the model and the task's data, and
    ``--out`` a new file (a recorded grid took hours: it is never overwritten).

    Raises:
        UsageError: the first problem, naming it and the fix.
    """
    from search.cli.flags import FLAGS
    from search.cli.preflight import check_folder, check_model_and_data, check_new_file, check_tasks
    from trainables.finetune import OPTIMIZERS

    for name in ("seeds", "epochs", "learning_rate", "batch_size", "max_seq_length", "max_train_examples",
                 "max_dev_examples"):
        FLAGS[name].validate(getattr(args, name))
    if args.optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {args.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    try:
        SparsityRange(0.0, args.sparsity_max, args.sparsity_step).validate()
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers} must be at least 1")
    check_new_file(args.out, "--out")
    check_folder(args.cache, "--cache")
    if len(check_tasks(args.task, "--task")) != 1:
        raise UsageError(f"--task {args.task}: a grid is of one task; record one grid per task")
    check_model_and_data(args.model, args.glue_dir, (args.task.strip().lower(),))


def main(argv=None) -> int:
    """Record the grid; returns the exit code (0 written, 2 bad input: one line on stderr, nothing created)."""
    parser = OneLineParser(prog="python -m benchmarks.record_grid", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="mrpc")
    parser.add_argument("--model", default=str(SHARED / "models" / "all-MiniLM-L6-v2"))
    parser.add_argument("--glue-dir", default=str(SHARED / "data" / "glue"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--optimizer", default="adamw")
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--max-train-examples", type=int, default=1000, help="0: the whole training split")
    parser.add_argument("--max-dev-examples", type=int, default=0, help="0: the whole dev split")
    parser.add_argument("--sparsity-max", type=float, default=0.6)
    parser.add_argument("--sparsity-step", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", default="/tmp/supertickets-grid-cache")
    parser.add_argument("--out", required=True, help="the grid file to write (a new file)")
    try:
        args = parser.parse_args(argv)
        check_args(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.task = args.task.strip().lower()
    grid = SparsityRange(0.0, args.sparsity_max, args.sparsity_step).values()
    started = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers) as pool:
        for seed, score, seconds in pool.imap_unordered(_dense, [(args, s) for s in range(args.seeds)]):
            print(f"dense seed {seed}: dev {score:.4f} ({seconds:.0f} s)", flush=True)
        points = []
        for point in pool.imap_unordered(_point, [(args, s) for s in grid]):
            finals = [epochs[-1]["dev_score"] for epochs in point["seeds"].values()]
            print(f"sparsity {point['sparsity']:.2f}: final dev per seed {[round(f, 4) for f in finals]} "
                  f"({point['seconds']:.0f} s)", flush=True)
            points.append(point)
    points.sort(key=lambda p: p["sparsity"])
    context = _context(args)
    record = {"what": "structured tickets, every grid sparsity x seed x epoch, per-example dev predictions",
              "task": args.task, "model": Path(args.model).name, "labels": points[0]["labels"],
              "finetune": asdict(context.finetune), "data": {**asdict(context.data), "glue_dir": None},
              "seeds": list(context.seeds), "grid": grid, "seconds": time.perf_counter() - started,
              "points": [{k: v for k, v in p.items() if k != "labels"} for p in points]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, separators=(",", ":")))
    print(f"wrote {args.out} ({len(points)} sparsities x {args.seeds} seeds x {args.epochs} epochs) in "
          f"{record['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
