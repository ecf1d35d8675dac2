"""What a dev score resolves: a score over n dev examples (and its mean over seeds) moves in steps of 1/(n x seeds),
so the numbers logged and shown are rounded to that step, not printed to 17 digits. Used by the MLflow records,
the Optuna study and the verdict alike (points: 100 x the metric's units).
"""

from __future__ import annotations

import math


def points_decimals(examples: int, seeds: int = 1) -> int:
    """Decimals, in points (100 x dev-score units), that a score or difference over ``examples`` dev examples and
    ``seeds`` seeds resolves: a mean over seeds of a per-example metric moves in steps of
    ``100 / (examples * seeds)`` points, shown to that step's first significant digit, and never fewer than one
    decimal (the verdict's ``+0.3 points``). RTE's 277 examples: a step of 0.36 points, 1 decimal; MNLI's 9,815:
    0.01 points, 2 decimals. Correlations (Pearson, MCC) take the same rule as an estimate."""
    step = 100.0 / (max(int(examples), 1) * max(int(seeds), 1))
    return max(1, math.ceil(-math.log10(step) - 1e-9))


def round_points(value: float, examples: int, seeds: int = 1) -> float:
    """``value`` (a fraction of the metric) in points, rounded as ``points_decimals`` says (``0.00312`` ->
    ``0.3`` on RTE)."""
    return round(100.0 * value, points_decimals(examples, seeds))


def round_score(value: float, examples: int, seeds: int = 1) -> float:
    """A dev score or fraction rounded to what ``examples`` dev examples over ``seeds`` seeds resolve, and to at
    least 4 decimals as the terminal shows scores (``0.76834862`` -> ``0.7683`` on RTE)."""
    return round(value, max(4, points_decimals(examples, seeds) + 2))
