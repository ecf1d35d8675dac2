"""Seed racing: spend seeds where they decide (Birattari et al.'s F-Race; METHODS.md section 6).

A trial runs its seeds one after another. After each seed (from the second on), ``SeedRacingScheduler`` asks
whether the ticket can still be named a winning ticket once every planned seed has run, and stops it when it
cannot. To be named, the ticket's final interval of (ticket - dense) must have its lower bound at least
``-tolerance`` (``search.verdict.analysis``). The test is a *futility* test, the kind group-sequential trials use:

    stop when  high - half_width * sqrt(k / n)  <  -tolerance

where, over the ``k`` seeds done of ``n`` planned, ``high`` is the upper end of the difference's interval at the
verdict's confidence (a bold but plausible value of the final mean) and ``half_width * sqrt(k / n)`` is the
half-width of that interval now, shrunk as ``n`` seeds would shrink it (an optimistic final width). Even with both
optimistic guesses the final lower bound would fall below ``-tolerance``. The rule is that of the verdict's own
confidence because a test of the winning sequence that stops wrongly names a less sparse winning ticket than the
full grid: a bolder guess (the 50 % interval's upper end) stopped one ticket of a 12-ticket sequence in 2 of 20
replayed SST-2 searches (``benchmarks.search_efficiency``). Because a stopped ticket is never named (it is not
shown to be winning), stopping can only cost a winning ticket, never name a false one: the verdict's error rate is
the one its interval states. A ticket whose whole interval already lies below ``-tolerance`` is always stopped.

This is the instance-wise test Optuna's ``WilcoxonPruner`` makes, with seeds x dev examples as the instances and
the dense model (every ticket's reference in the verdict) as the incumbent. Dense and control trials are never
stopped: the dense trial is the reference, and a control is only meaningful over the same seeds as its good
ticket. A stopped trial's decision is kept in ``decisions`` (shared with the MLflow callback, which records it as
the run's status reason).

A trial the search started as a candidate super ticket (purpose ``screen``, ``search.strategy.policy``) is raced
against 0 instead, from its first seed on (``screen_decision``), with the bolder guess of the 50 % interval's upper
end as the final mean: it stops once even that optimistic final lower bound would not lie above 0, so it cannot be a super ticket. With one seed the interval covers the dev examples
only, so the first-seed test is the lenient guess of a screen, not a claim: a screened ticket is never named, and
the verdict leaves it out of the winning sequence and lists it as untested.
"""

from __future__ import annotations

import math

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from search.strategy.policy import SCREEN
from search.verdict.analysis import SCREENED
from search.verdict.statistics import PairedDifference, paired_difference
from trainables.config import TrialConfig
from trainables.report import TrialReport

RACED = "raced"
#: The level of the interval whose upper end is a screen's optimistic final mean (a winning test uses the verdict's).
SCREEN_CONFIDENCE = 0.5


def seed_interval(report: TrialReport, metric: str, confidence: float) -> PairedDifference:
    """Ticket minus dense over the report's finished seeds, with its interval.

    The seeds are taken in order of their number, as the verdict takes them (``search.verdict.analysis``), so the
    searcher, the scheduler and the verdict compute the same (seeded) bootstrap whatever order the seeds ran in.
    """
    finished = sorted(report.finished, key=lambda s: s.seed)
    return paired_difference(metric, np.array([s.predictions for s in finished]),
                             np.array([s.dense_predictions for s in finished]), np.array(report.labels), confidence)


def projected_low(optimistic: PairedDifference, current: PairedDifference, planned_seeds: int) -> float:
    """The lower bound the verdict's interval would have after every planned seed, guessed optimistically.

    Args:
        optimistic: the difference over the seeds done; the upper end of its interval is the guess of the final
            mean.
        current: the same difference at the verdict's confidence; its half-width, times
            ``sqrt(seeds done / planned_seeds)``, is the guess of the final half-width.
        planned_seeds: seeds the trial will run in all.

    Returns:
        the guessed final lower bound, dev-score units.
    """
    half_width = (current.high - current.low) / 2 * math.sqrt(current.seeds / planned_seeds)
    return optimistic.high - half_width


def race_decision(current: PairedDifference, planned_seeds: int, tolerance: float) -> str | None:
    """Why a ticket should stop after the seeds done, or ``None`` to go on (the futility test of the module doc).

    Args:
        current: ticket minus dense over the seeds done, at the verdict's confidence (its upper end is the
            optimistic final mean).
        planned_seeds: seeds the trial will run in all.
        tolerance: the verdict's winning tolerance (dev-score units).
    """
    if current.seeds < 2 or current.seeds >= planned_seeds:
        return None  # one seed says nothing about seed noise; after the last one the verdict decides
    guess = projected_low(current, current, planned_seeds)
    if guess >= -tolerance:
        return None
    return (f"{RACED}: cannot be a winning ticket after {planned_seeds} seeds: after {current.seeds} its difference "
            f"is {current.points()} ({100 * current.confidence:g}% CI), and even an optimistic final interval would "
            f"reach only {100 * guess:+.1f} points, below -{100 * tolerance:g}")


def screen_decision(optimistic: PairedDifference, current: PairedDifference, planned_seeds: int,
                    tolerance: float) -> str | None:
    """Why a candidate super ticket should stop after the seeds done, or ``None`` to go on.

    It stops when the optimistic final lower bound (``projected_low``) is not above 0. The reason starts with
    ``raced`` when, from two seeds on, it cannot be a winning ticket either (``race_decision``: the verdict then
    counts it as a failed test of the winning sequence), else with ``screened`` (its winning test was not run).

    Args:
        optimistic: ticket minus dense over the seeds done at ``SCREEN_CONFIDENCE`` (its upper end is the guess
            of the final mean).
        current, planned_seeds, tolerance: as for ``race_decision``; one finished seed is enough.
    """
    if current.seeds < 1 or current.seeds >= planned_seeds:
        return None
    guess = projected_low(optimistic, current, planned_seeds)
    if guess > 0:
        return None
    raced = race_decision(current, planned_seeds, tolerance)
    if raced is not None:
        return raced
    return (f"{SCREENED}: cannot be a super ticket after {planned_seeds} seeds: after {current.seeds} its difference "
            f"is {current.points()} ({100 * current.confidence:g}% CI), and even an optimistic final interval would "
            f"reach only {100 * guess:+.1f} points, not above 0; its winning test was not run")


class SeedRacingScheduler(FIFOScheduler):
    """A Ray Tune scheduler that stops a ticket between seeds once it cannot be named (see the module doc).

    Args:
        metric: the task's primary metric name (``accuracy``, ``mcc``, ``pearson``).
        confidence: interval level, a fraction (the verdict's).
        tolerance: the winning tolerance, dev-score units (the verdict's).
        decisions: ``{trial_id: reason}``, filled with every stop (shared with the tracking callback).
        purpose: ``purpose(TrialConfig) -> "sequence" | "screen"`` (the searcher's, see ``search.strategy.policy``);
            ``None``: every ticket is raced as ``sequence``.
    """

    def __init__(self, metric: str, confidence: float, tolerance: float, decisions: dict | None = None,
                 purpose=None):
        super().__init__()
        self.task_metric, self.confidence, self.tolerance = metric, confidence, tolerance
        self.decisions = decisions if decisions is not None else {}
        self.purpose = purpose

    def decide(self, config: TrialConfig, report: TrialReport | None) -> str | None:
        """Why the trial of ``config`` should stop after its latest ``report``, or ``None`` to go on."""
        if report is None or not report.ends_seed or report.complete or config.role != "ticket":
            return None
        screen = self.purpose is not None and self.purpose(config) == SCREEN
        if len(report.finished) < (1 if screen else 2):
            return None
        current = seed_interval(report, self.task_metric, self.confidence)
        if not screen:
            return race_decision(current, len(report.planned_seeds), self.tolerance)
        optimistic = seed_interval(report, self.task_metric, SCREEN_CONFIDENCE)
        return screen_decision(optimistic, current, len(report.planned_seeds), self.tolerance)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        """Stop the trial after a seed when it can no longer be what it runs for; else continue."""
        reason = self.decide(TrialConfig.from_tune(trial.config), TrialReport.from_tune(result))
        if reason is None:
            return TrialScheduler.CONTINUE
        self.decisions[trial.trial_id] = reason
        return TrialScheduler.STOP
