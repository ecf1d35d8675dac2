"""Adaptive error: how often a verdict names a ticket that is in truth not what it is named as, when the search
chooses what to test.

    python -m benchmarks.adaptive_error                      # 100 worlds per shape on the recorded MRPC grid
    python -m benchmarks.adaptive_error --worlds 200 --shapes flat --grid benchmarks/data/sst2-structured-grid.json

A shaped grid (``benchmarks.shapes``) has a known true curve: its mean (ticket - dense) at every sparsity. Each
*world* redraws the noise around that truth the way the verdict's interval models it: the seeds and the dev
examples are drawn again with replacement (one draw for every grid point and the dense model, so the pairing
stays), and every prediction and score is recomputed on the drawn examples. In each world the full grid's verdict
and the study's default search (``verdict`` with seed racing, driven as in ``benchmarks.search_efficiency``, one
search seed per world) each name their tickets, and a claim is false when the true curve contradicts it: a
super ticket whose true difference is not above 0, a winning ticket truly worse than the tolerance.

It prints, per shape, the fraction of worlds in which each names at least one false ticket, with its 95 %
Clopper-Pearson interval, beside the stated level: a named ticket's interval errs on its side with probability
``(1 - confidence) / 2`` (2.5 % at 95 %), and a verdict names at most three tickets.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

import numpy as np
from scipy import stats

from benchmarks.search_efficiency import DEFAULT_GRID, RecordedGrid, claims_hold, drive
from benchmarks.shapes import SHAPES, measured_curve, shape_grid
from search.cli.flags import FLAGS
from search.errors import OneLineParser, UsageError
from search.verdict.statistics import batched_metric
from trainables.tasks import get_task

DEFAULT_SHAPES = ("flat", "decline", "super-far", "dip")


def world(grid: RecordedGrid, rng: np.random.Generator) -> RecordedGrid:
    """``grid`` with its seeds and dev examples drawn again with replacement (the same draw at every point).

    The drawn seeds are renumbered ``0..k-1`` (seed ``i`` of the world is recorded seed ``seeds[i]``), so a seed
    drawn twice is two seeds of the world with equal data, as in a bootstrap resample."""
    task = get_task(grid.task)
    n = len(grid.labels)
    examples = rng.integers(0, n, n)
    seeds = [grid.seeds[i] for i in rng.integers(0, len(grid.seeds), len(grid.seeds))]
    labels = np.asarray(grid.labels)[examples]

    def redraw(records: list) -> list:
        out = []
        for record in records:
            predictions = np.asarray(record["predictions"])[examples]
            score = float(batched_metric(task.primary_metric, predictions, labels))
            out.append({**record, "predictions": predictions.tolist(), "dev_score": score})
        return out

    points = {s: {**p, "seeds": {i: redraw(p["seeds"][seed]) for i, seed in enumerate(seeds)}}
              for s, p in grid.points.items()}
    return replace(grid, seeds=tuple(range(len(seeds))), labels=labels.tolist(), points=points)


def error_rates(grid: RecordedGrid, truth: dict, worlds: int, confidence: float, tolerance: float,
                seed: int = 0) -> dict[str, int]:
    """Worlds (of ``worlds``) in which the full grid's verdict, and the default search's, name a false ticket.

    Args:
        grid: a shaped grid; truth: its true curve (sparsity -> mean difference, dev-score units).
        worlds: how many worlds to draw; seed: seeds the draws.
        confidence, tolerance: the verdict's.

    Returns:
        ``{"grid": count, "search": count}``.
    """
    rng = np.random.default_rng(seed)
    wrong = {"grid": 0, "search": 0}
    for index in range(worlds):
        drawn = world(grid, rng)
        wrong["grid"] += not claims_hold(drawn.full_verdict(confidence, tolerance), truth, tolerance)
        run = drive(drawn, "verdict", index, True, 4 * len(grid.points), confidence, tolerance)
        wrong["search"] += not claims_hold(run.verdict, truth, tolerance)
    return wrong


def _interval(count: int, total: int) -> str:
    ci = stats.binomtest(count, total).proportion_ci(0.95, method="exact")
    return f"{count / total:.3f} [{ci.low:.3f}, {ci.high:.3f}]"


def main(argv=None) -> int:
    """Print the error rates; returns the exit code (0 done, 2 bad input: one line on stderr)."""
    parser = OneLineParser(prog="python -m benchmarks.adaptive_error", description=__doc__.split("\n\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", default=str(DEFAULT_GRID), help="a grid written by benchmarks.record_grid")
    parser.add_argument("--worlds", type=int, default=100, help="worlds drawn per shape (default 100)")
    parser.add_argument("--shapes", default=",".join(DEFAULT_SHAPES),
                        help=f"comma-separated shapes of benchmarks.shapes (default {','.join(DEFAULT_SHAPES)})")
    FLAGS["confidence"].add_to(parser)
    FLAGS["match_tolerance"].add_to(parser)
    try:
        args = parser.parse_args(argv)
        shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
        if args.worlds < 1:
            raise UsageError(f"--worlds {args.worlds} must be at least 1")
        unknown = [s for s in shapes if s not in SHAPES]
        if unknown or not shapes:
            raise UsageError(f"--shapes {args.shapes!r}: unknown {', '.join(unknown) or 'empty list'}; choose from "
                             f"{', '.join(SHAPES)}")
        if len(set(shapes)) != len(shapes):
            raise UsageError(f"--shapes {args.shapes} names a shape twice: name each once")
        FLAGS["confidence"].validate(args.confidence)
        FLAGS["match_tolerance"].validate(args.match_tolerance)
        grid = RecordedGrid.read(args.grid)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    level = (1 - args.confidence) / 2
    print(f"grid: {args.grid}: {grid.task}, {len(grid.points)} sparsities x {len(grid.seeds)} seeds, "
          f"{len(grid.labels)} dev examples; confidence {args.confidence}, tolerance {args.match_tolerance}; "
          f"{args.worlds} worlds per shape")
    print(f"{'shape':<13} {'full grid: a false claim':<28} {'default search: a false claim':<30}")
    started = time.perf_counter()
    for name in shapes:
        shaped = shape_grid(grid, SHAPES[name])
        wrong = error_rates(shaped, measured_curve(shaped), args.worlds, args.confidence, args.match_tolerance)
        print(f"{name:<13} {_interval(wrong['grid'], args.worlds):<28} {_interval(wrong['search'], args.worlds):<30}",
              flush=True)
    print(f"(fraction of worlds whose verdict names at least one ticket the true curve contradicts, with its 95% "
          f"Clopper-Pearson interval; one named ticket errs with probability at most {level:g}; "
          f"{time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
