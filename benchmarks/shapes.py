"""Shaped grids: a recorded grid's real per-example noise, bent into a phase-transition curve whose truth is known.

A recorded grid (``benchmarks.record_grid``) holds, for every sparsity and seed, each dev prediction of a real
ticket and of the dense model of the same seed. A ``Shape`` gives the true difference from the dense model at each
sparsity (dev-score units: 0.02 = 2 points). ``shape_grid`` keeps every recorded ticket's predictions, so its real
disagreements with the dense model and its seed-to-seed spread stay, and moves examples between right and wrong
until, at every sparsity, the mean over seeds of (ticket - dense) is the shape's value: each seed keeps its recorded
deviation from the recorded mean, and its accuracy moves by the same number of examples at every epoch. The
examples moved are drawn at random (seeded by the shape, the sparsity and the seed) among those the ticket gets
wrong (to raise it) or right (to lower it). The dense point is never changed.

Shapes are given on the grid's positions (fractions of its largest sparsity), so each shape exists on any grid:
flat, a monotone decline, a cliff, a super-ticket region near the dense model or far from it just before a drop,
regions narrower (one point) and wider than the grid step, and a non-monotone dip. On accuracy tasks moving one
example changes accuracy by exactly 1/n, so the injected curve is exact up to that step; regression scores
(STS-B's Pearson) are blended towards the gold scores or away from them instead (``shape_grid``).

    python -m benchmarks.shapes --grid benchmarks/data/mrpc-structured-grid.json    # print each shape's curve
    python -m benchmarks.shapes --verdicts        # and the full grid's verdict on each shape, with its intervals
"""

from __future__ import annotations

import sys
import zlib
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

#: The size of a super-ticket region's gain and of a drop, dev-score units (points / 100).
GAIN, DROP = 0.025, 0.05


@dataclass(frozen=True)
class Shape:
    """A true curve of (ticket - dense) against sparsity.

    Attributes:
        name: short name, used in the benchmark's table.
        about: what it is, in words.
        at: ``at(position, positions)`` -> the true mean difference (dev-score units) at a grid point, where
            ``position`` is the point's sparsity divided by the grid's largest (1.0 is the sparsest point) and
            ``positions`` are those of every non-dense grid point, least sparse first; never called for 0.
    """

    name: str
    about: str
    at: Callable[[float, list[float]], float]

    def curve(self, sparsities: list[float]) -> dict[float, float]:
        """The true difference at each of ``sparsities`` (0 at the dense point)."""
        top = max(sparsities)
        positions = sorted(s / top for s in sparsities if s > 0)
        return {s: 0.0 if s == 0 else float(self.at(s / top, positions)) for s in sparsities}


def _nearest(p: float, positions: list[float], where: float) -> bool:
    """``p`` is the grid point nearest ``where`` (a fraction of the range)."""
    return p == min(positions, key=lambda q: (abs(q - where), q))


def _after(p: float, where: float) -> bool:
    return p > where + 1e-9


SHAPES: dict[str, Shape] = {shape.name: shape for shape in (
    Shape("flat", "every ticket ties the dense model", lambda p, ps: 0.0),
    Shape("decline", "a steady fall to -4 points at the sparsest point", lambda p, ps: -0.04 * p),
    Shape("cliff", "ties the dense model up to 60 % of the range, then 5 points worse",
          lambda p, ps: -DROP if _after(p, 0.6) else 0.0),
    Shape("super-near", "2.5 points better at the two least sparse points, ties, then 5 points worse after 60 %",
          lambda p, ps: GAIN if p in ps[:2] else (-DROP if _after(p, 0.6) else 0.0)),
    Shape("super-far", "ties, 2.5 points better at 55-70 % of the range, then 5 points worse (just before a drop)",
          lambda p, ps: -DROP if _after(p, 0.7) else (GAIN if p >= 0.55 - 1e-9 else 0.0)),
    Shape("super-narrow", "the one point nearest the middle 3 points better (narrower than the grid step), the rest "
          "ties", lambda p, ps: 0.03 if _nearest(p, ps, 0.5) else 0.0),
    Shape("super-wide", "2 points better from 20 % to 60 % of the range (wider than the grid step), then ties",
          lambda p, ps: 0.02 if 0.2 - 1e-9 <= p <= 0.6 + 1e-9 else 0.0),
    Shape("dip", "ties but for the point nearest 40 % of the range, 4 points worse (non-monotone), then 5 points "
          "worse after 80 %", lambda p, ps: -DROP if _after(p, 0.8) else (-0.04 if _nearest(p, ps, 0.4) else 0.0)),
)}


def _rng(shape: str, sparsity: float, seed: int) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(shape.encode()), round(sparsity * 1e6), seed])


def _move(predictions: list, labels: np.ndarray, count: int, rng: np.random.Generator) -> list:
    """``predictions`` with ``count`` more examples right (``count`` > 0: wrong ones made right) or ``-count`` more
    wrong (right ones made wrong, to the next class)."""
    predicted = np.asarray(predictions)
    if count == 0:
        return predicted.tolist()
    pool = np.flatnonzero(predicted != labels) if count > 0 else np.flatnonzero(predicted == labels)
    chosen = rng.choice(pool, min(abs(count), len(pool)), replace=False)
    classes = int(labels.max()) + 1
    predicted = predicted.copy()
    predicted[chosen] = labels[chosen] if count > 0 else (labels[chosen] + 1) % classes
    return predicted.tolist()


def _blend(predictions: list, labels: np.ndarray, weight: float, away: np.ndarray) -> list:
    """Regression scores moved a fraction ``weight`` of the way to the gold scores (``weight`` > 0) or to
    ``away``, the same scores shuffled (``weight`` < 0): the correlation rises or falls smoothly with ``weight``."""
    predicted = np.asarray(predictions, dtype=float)
    target = labels if weight > 0 else away
    return ((1 - abs(weight)) * predicted + abs(weight) * target).tolist()


def _score(metric: str, predictions, labels: np.ndarray) -> float:
    from search.verdict.statistics import batched_metric

    return float(batched_metric(metric, np.asarray(predictions), labels))


def _solve(change: Callable[[float], float], wanted: float, low: float, high: float) -> float:
    """The ``x`` in ``[low, high]`` where the increasing ``change(x)`` is nearest ``wanted`` (bisection)."""
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if change(middle) < wanted else (low, middle)
    return (low + high) / 2


def shape_grid(grid, shape: Shape):
    """``grid`` (a ``benchmarks.search_efficiency.RecordedGrid``) bent into ``shape``.

    Accuracy: examples move between right and wrong (each one moves the score by exactly 1/n). Regression
    (Pearson, Spearman): every score moves a fraction of the way to its gold score, or to the shuffled scores,
    found by bisection; MCC and F1: examples move one at a time, as many as bring the score nearest the target.
    Each seed's transformation is the same at every epoch.

    Returns:
        a new ``RecordedGrid`` whose mean (ticket - dense) primary score over seeds at every sparsity is the
        shape's value (accuracy: to within one dev example, 1/n; otherwise to within 1e-3 unless the score cannot
        move that far), with each seed's recorded deviation from the mean kept; the dense point unchanged.
    """
    from trainables.tasks import get_task

    task = get_task(grid.task)
    metric = task.primary_metric
    labels = np.asarray(grid.labels, dtype=float if task.is_regression else int)
    n = len(labels)
    dense = {seed: _score(metric, grid.points[0.0]["seeds"][seed][-1]["predictions"], labels) for seed in grid.seeds}
    target = shape.curve(sorted(grid.points))
    points = {}
    for sparsity, point in grid.points.items():
        if sparsity == 0.0:
            points[sparsity] = point
            continue
        recorded = {seed: _score(metric, point["seeds"][seed][-1]["predictions"], labels) - dense[seed]
                    for seed in grid.seeds}
        mean = float(np.mean(list(recorded.values())))
        seeds = {}
        for seed in grid.seeds:
            wanted = target[sparsity] + recorded[seed] - mean  # the seed keeps its deviation from the mean
            final = point["seeds"][seed][-1]["predictions"]
            rng = _rng(shape.name, sparsity, seed)
            if metric == "accuracy":
                count = round((wanted - recorded[seed]) * n)
                transform = lambda p, c=count, r=rng: _move(p, labels, c, r)  # noqa: E731
            elif task.is_regression:
                away = np.asarray(final, dtype=float)[rng.permutation(n)]
                weight = _solve(lambda w: _score(metric, _blend(final, labels, w, away), labels) - dense[seed],
                                wanted, -1.0, 1.0)
                transform = lambda p, w=weight, a=away: _blend(p, labels, w, a)  # noqa: E731
            else:
                order = rng.bit_generator.state
                count = round(_solve(lambda c: _score(metric, _move(final, labels, round(c), _restored(order)),
                                                      labels) - dense[seed], wanted, -n, n))
                transform = lambda p, c=count, o=order: _move(p, labels, c, _restored(o))  # noqa: E731
            epochs = []
            for record in point["seeds"][seed]:
                predictions = transform(record["predictions"])
                epochs.append({**record, "predictions": predictions,
                               "dev_score": _score(metric, predictions, labels)})
            seeds[seed] = epochs
        points[sparsity] = {**point, "seeds": seeds}
    return replace(grid, points=points)


def _restored(state: dict) -> np.random.Generator:
    """A generator in ``state``: each epoch draws the same examples to move."""
    generator = np.random.default_rng()
    generator.bit_generator.state = state
    return generator


def measured_curve(grid) -> dict[float, float]:
    """The mean over seeds of (ticket - dense) final primary dev score at every sparsity of ``grid``."""
    from trainables.tasks import get_task

    task = get_task(grid.task)
    labels = np.asarray(grid.labels, dtype=float if task.is_regression else int)

    def score(point, seed):
        return _score(task.primary_metric, point["seeds"][seed][-1]["predictions"], labels)

    dense = grid.points[0.0]
    return {sparsity: float(np.mean([score(point, s) - score(dense, s) for s in grid.seeds]))
            for sparsity, point in sorted(grid.points.items())}


def main(argv=None) -> int:
    """Print each shape's measured curve on ``--grid`` (and with ``--verdicts`` the full grid's verdict on it);
    returns the exit code (2: bad input, one line)."""
    from benchmarks.search_efficiency import DEFAULT_GRID, RecordedGrid
    from search.errors import OneLineParser, UsageError
    from search.verdict.report import verdict_lines
    from trainables.tasks import get_task

    parser = OneLineParser(prog="python -m benchmarks.shapes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", default=str(DEFAULT_GRID), help="a grid written by benchmarks.record_grid")
    parser.add_argument("--verdicts", action="store_true",
                        help="also print the full grid's verdict on each shape (confidence 0.95, tolerance 0.01)")
    try:
        args = parser.parse_args(argv)
        grid = RecordedGrid.read(args.grid)
        shaped = {name: shape_grid(grid, shape) for name, shape in SHAPES.items()}
    except (UsageError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    recorded = measured_curve(grid)
    print(f"{'sparsity':<14}" + "".join(f"{s:>7.2f}" for s in recorded))
    print(f"{'recorded':<14}" + "".join(f"{100 * d:>+7.1f}" for d in recorded.values()))
    for name, bent in shaped.items():
        curve = measured_curve(bent)
        print(f"{name:<14}" + "".join(f"{100 * d:>+7.1f}" for d in curve.values()) + f"   {SHAPES[name].about}")
    print("(mean over seeds of ticket - dense, points)")
    if args.verdicts:
        metric = get_task(grid.task).primary_metric
        for name, bent in shaped.items():
            print(f"\n{name}: full-grid verdict")
            for line in verdict_lines(bent.full_verdict(0.95, 0.01), metric):
                print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
