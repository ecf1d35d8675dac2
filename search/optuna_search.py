"""``OptunaSearch`` that tells Optuna the truth about early-stopped trials.

Ray's ``OptunaSearch`` reports a trial that the ASHA scheduler stopped as COMPLETE with its truncated
score, which misleads TPE (STACK.md). Here a trial that ended before its planned epochs is told as
PRUNED (its intermediate values stay, as with Optuna's own pruners).
"""

from __future__ import annotations

from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch


def stopped_early(result: dict | None) -> bool:
    """True when ``result`` (a trial's last report) came before its ``planned_epochs``-th report."""
    if not result or "planned_epochs" not in result:
        return False
    return result.get("training_iteration", 0) < result["planned_epochs"]


class PruningAwareOptunaSearch(OptunaSearch):
    """``OptunaSearch`` whose early-stopped trials become PRUNED, not COMPLETE, in the Optuna study."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if error or not stopped_early(result) or trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result, error)
        self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
        self._completed_trials.add(trial_id)

    @property
    def optuna_study(self):
        """The underlying ``optuna.Study`` (for inspecting trial states)."""
        return self._ot_study
