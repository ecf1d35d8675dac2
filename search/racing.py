"""Seed racing: spend seeds where they decide (Birattari et al.'s F-Race; METHODS.md section 6).

A trial runs its seeds one after another. After each seed, ``SeedRacingScheduler`` computes the ticket's paired
difference from the dense model over the seeds done so far (``search.statistics``, the same interval the
verdict uses) and stops the trial when the interval shows the ticket can no longer be named by the verdict:

- its upper bound is below ``-tolerance``: clearly worse than the dense model by more than the winning
  tolerance, so neither a winning nor a super ticket; or
- its upper bound is below 0 (clearly not better than dense, so not a super ticket) and a *sparser* ticket of the
  same method and rewinding point has already finished every seed as a winning ticket, so it cannot be the
  sparsest winning ticket either.

This is the instance-wise test Optuna's ``WilcoxonPruner`` makes, with seeds x dev examples as the instances and
the dense model (every ticket's reference in the verdict) as the incumbent. Dense and control trials are never
stopped: the dense trial is the reference, and a control is only meaningful over the same seeds as its good
ticket. A stopped trial's decision is kept in ``decisions`` (shared with the MLflow callback, which records it as
the run's status reason).
"""

from __future__ import annotations

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from search.statistics import PairedDifference, paired_difference
from spaces.sparsity import grid_value
from trainables.report import TrialReport

RACED = "raced"


def seed_interval(report: TrialReport, metric: str, confidence: float) -> PairedDifference:
    """Ticket minus dense over the report's finished seeds, with its interval."""
    return paired_difference(metric, np.array([s.predictions for s in report.finished]),
                             np.array([s.dense_predictions for s in report.finished]), np.array(report.labels),
                             confidence)


def race_decision(difference: PairedDifference, tolerance: float, sparser_winner: float | None,
                  sparsity: float) -> str | None:
    """Why a ticket with this interval should stop, or ``None`` to go on (the two rules of the module doc).

    Args:
        difference: ticket minus dense over the seeds done, dev-score units.
        tolerance: the verdict's winning tolerance (dev-score units).
        sparser_winner: the sparsity of the sparsest ticket of the same curve that finished every seed as a
            winning ticket (``None``: none yet).
        sparsity: this ticket's sparsity.
    """
    if difference.high < -tolerance:
        return (f"{RACED}: worse than dense by more than {100 * tolerance:g} points after "
                f"{difference.seeds} seed(s): {difference.points()}")
    if difference.high < 0 and sparser_winner is not None and sparser_winner > sparsity:
        return (f"{RACED}: not better than dense after {difference.seeds} seed(s) ({difference.points()}) and "
                f"sparsity {sparser_winner:.2f} is already a winning ticket")
    return None


class SeedRacingScheduler(FIFOScheduler):
    """A Ray Tune scheduler that stops a ticket between seeds once it cannot be named (see the module doc).

    Args:
        metric: the task's primary metric name (``accuracy``, ``mcc``, ``pearson``).
        confidence: interval level, a fraction (the verdict's).
        tolerance: the winning tolerance, dev-score units (the verdict's).
        decisions: ``{trial_id: reason}``, filled with every stop (shared with the tracking callback).
    """

    def __init__(self, metric: str, confidence: float, tolerance: float, decisions: dict | None = None):
        super().__init__()
        self.task_metric, self.confidence, self.tolerance = metric, confidence, tolerance
        self.decisions = decisions if decisions is not None else {}
        self.winners: dict[tuple, float] = {}  # (method, rewind) -> sparsest finished winning ticket

    def _curve(self, trial) -> tuple:
        return trial.config.get("method", "structured"), trial.config.get("rewind", "pretrained")

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        """Stop the trial after a seed when its interval shows it cannot be named; else continue."""
        report = TrialReport.from_tune(result)
        if (report is None or not report.ends_seed or report.complete or trial.config.get("control", "good") != "good"
                or grid_value(trial.config["sparsity"]) == 0.0):
            return TrialScheduler.CONTINUE
        sparsity = grid_value(trial.config["sparsity"])
        reason = race_decision(seed_interval(report, self.task_metric, self.confidence), self.tolerance,
                               self.winners.get(self._curve(trial)), sparsity)
        if reason is None:
            return TrialScheduler.CONTINUE
        self.decisions[trial.trial_id] = reason
        return TrialScheduler.STOP

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        """Remember a good ticket that finished every seed as a winning ticket (the second rule)."""
        report = TrialReport.from_tune(result)
        if report is not None and report.complete and trial.config.get("control", "good") == "good":
            sparsity = grid_value(trial.config["sparsity"])
            if sparsity > 0 and seed_interval(report, self.task_metric, self.confidence).low >= -self.tolerance:
                curve = self._curve(trial)
                self.winners[curve] = max(sparsity, self.winners.get(curve, 0.0))
        super().on_trial_complete(tune_controller, trial, result)
