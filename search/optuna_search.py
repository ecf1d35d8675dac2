"""``OptunaSearch`` that tells Optuna the truth about early-stopped trials and never runs a grid point twice.

Ray's ``OptunaSearch`` reports a trial that the ASHA scheduler stopped as COMPLETE with its truncated
score, which misleads TPE (STACK.md). Here a trial that ended before its planned epochs is told as
PRUNED (its intermediate values stay, as with Optuna's own pruners).

Sparsity is searched on a grid (5 % steps: 13 points in [0, 0.6]); TPE's random start-up alone proposes
the same point again within a handful of trials, and a repeated trial (same ticket, same seeds) only
spends compute. When a proposal is taken, the nearest untried grid point is run instead (told to Optuna
with its real parameters); when every point has been tried the search ends.
"""

from __future__ import annotations

from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from spaces.sparsity import grid_value


def stopped_early(result: dict | None) -> bool:
    """True when ``result`` (a trial's last report) came before its ``planned_epochs``-th report."""
    if not result or "planned_epochs" not in result:
        return False
    return result.get("training_iteration", 0) < result["planned_epochs"]


def _key(config: dict) -> tuple:
    return tuple(sorted((k, grid_value(v) if isinstance(v, float) else v) for k, v in config.items()))


class PruningAwareOptunaSearch(OptunaSearch):
    """``OptunaSearch`` whose early-stopped trials become PRUNED, and which runs each grid point once.

    The space may offer ``grid_points()`` (a list of the searched parameters of every grid point); without
    it, proposals are run as Optuna makes them.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._taken: set[tuple] = set()

    def _untried(self, proposal: dict) -> dict | None:
        grid = getattr(self._space, "grid_points", None)
        if grid is None:
            return None
        free = [p for p in grid() if _key({**proposal, **p}) not in self._taken]
        if not free:
            return None
        same_rest = [p for p in free if all(proposal.get(k) == v for k, v in p.items() if k != "sparsity")]
        return min(same_rest or free, key=lambda p: abs(p["sparsity"] - proposal["sparsity"]))

    def suggest(self, trial_id: str):
        """Optuna's proposal, or the nearest untried grid point when it is taken; FINISHED when none is left."""
        config = super().suggest(trial_id)
        if not isinstance(config, dict) or _key(config) not in self._taken:
            if isinstance(config, dict):
                self._taken.add(_key(config))
            return config
        replacement = self._untried(config)
        if replacement is None and getattr(self._space, "grid_points", None) is not None:
            self._ot_study.tell(self._ot_trials.pop(trial_id), state=TrialState.FAIL)
            return Searcher.FINISHED  # every grid point has been tried
        if replacement is None:
            return config
        # Drop the duplicate proposal and run the nearest free grid point in its place.
        self._ot_study.tell(self._ot_trials.pop(trial_id), state=TrialState.FAIL)
        self._ot_study.enqueue_trial(replacement)
        config = super().suggest(trial_id)
        self._taken.add(_key(config))
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell Optuna the trial's end: PRUNED when it stopped before its planned epochs, else as Ray does."""
        if error or not stopped_early(result) or trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result, error)
        self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
        self._completed_trials.add(trial_id)

    @property
    def optuna_study(self):
        """The underlying ``optuna.Study`` (for inspecting trial states)."""
        return self._ot_study
