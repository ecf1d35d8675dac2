"""Which grid point to try next so the verdict settles early (the ``verdict`` search strategy).

The verdict names the sparsest *winning* ticket and the *super* tickets (``search.verdict.analysis``). Along one curve
(method and rewinding point) tickets stay winning as sparsity grows, then fall away (the phase transition), and
the verdict reads the curve as a fixed sequence of tests from the least sparse ticket on, so the boundary is found
by bisection: between the least sparse ticket known not to be winning (stopped by seed racing, failed, or
finished with a lower bound below ``-tolerance``; none at first) and the sparsest winning ticket less sparse than
it (the dense model at first), try the untried grid point nearest the middle. When no untried point lies between
them the boundary is settled. Then, if a finished ticket is a super ticket, its untried neighbours are tried
until the best one has both neighbours tried (so the peak is not missed by one grid step); then each control
(random, bad) the study asked for is run at every sparsity where the good ticket finished. When every curve is
settled the search ends (``FINISHED``); it ends at once when the dense trial failed or did not beat the
constant baseline (the verdict's guard), since then nothing could be named (the ``grid`` strategy goes on
unless the dense trial failed: it is every point). Bisection trusts the monotone shape:
a less sparse ticket it skipped could fail where the full grid would test it; ``benchmarks.search_efficiency``
measures how often that changes the verdict.

The ``grid`` strategy tries every point in order (the ground truth the benchmark compares with).
"""

from __future__ import annotations

from dataclasses import dataclass

from search.verdict.statistics import PairedDifference
from spaces.search_space import TicketSpace
from trainables.config import TrialConfig

#: Returned by ``next_point`` when the search is over.
FINISHED = "FINISHED"


@dataclass(frozen=True)
class Outcome:
    """What the search learnt from one ended trial.

    Attributes:
        params: the trial's searched parameters (``sparsity`` and any searched categorical), as Optuna holds them.
        config: its whole configuration (method, control, rewind, sparsity, options).
        status: ``complete`` (every seed ran), ``stopped`` (a scheduler stopped it), ``failed``, or
            ``not_learned`` (the dense trial ran every seed but does not beat the constant baseline).
        difference: ticket minus dense over its finished seeds (``None`` when no seed finished).
    """

    params: dict
    config: TrialConfig
    status: str
    difference: PairedDifference | None


def dense_outcome(outcomes: list[Outcome], dense: TrialConfig) -> Outcome | None:
    """The ended trial of the dense configuration ``dense`` (``None`` while it has not ended)."""
    return next((o for o in outcomes if o.config == dense), None)


class VerdictPolicy:
    """Chooses the next grid point of a ``TicketSpace`` from the outcomes so far (see the module doc).

    Args:
        space: the study's space (its grid points and which categoricals are searched).
        tolerance: the verdict's winning tolerance (dev-score units).
        exhaustive: try every grid point in order instead (the ``grid`` strategy).
    """

    def __init__(self, space: TicketSpace, tolerance: float, exhaustive: bool = False):
        self.space, self.tolerance, self.exhaustive = space, tolerance, exhaustive
        self.points = space.grid_points()
        self.configs = [space.config(p) for p in self.points]

    def next_point(self, outcomes: list[Outcome], running: list[dict]) -> dict | str | None:
        """The parameters of the next trial, ``None`` to wait for a running trial, or ``FINISHED``.

        Args:
            outcomes: every ended trial.
            running: the searched parameters of the trials still running.
        """
        busy = {self.space.config(p) for p in running}
        taken = {o.config for o in outcomes} | busy
        untried = [p for p, c in zip(self.points, self.configs) if c not in taken]
        dense = self.configs[0]
        if dense not in taken:
            return self.points[0]
        reference = dense_outcome(outcomes, dense)
        if reference is None:
            return None  # the dense trial replays the cache (seconds): wait, it may show there is nothing to compare
        if reference.status == "failed":
            return FINISHED  # nothing can be compared with a dense model that failed
        if self.exhaustive:  # the grid is every point, even where the verdict can name nothing
            return untried[0] if untried else (None if running else FINISHED)
        if reference.status == "not_learned":
            return FINISHED  # the verdict names no ticket when the dense model learned nothing
        waiting = False
        for curve in sorted({c.curve for c in self.configs}):
            choice = self._next_on_curve(curve, outcomes, busy, taken)
            if isinstance(choice, dict):
                return choice
            waiting = waiting or choice is None
        return None if waiting or running else FINISHED

    def _next_on_curve(self, curve, outcomes, busy, taken) -> dict | str | None:
        """A point of ``curve`` to try, ``None`` when waiting on a running one, ``FINISHED`` when settled."""
        good = [(p, c) for p, c in zip(self.points, self.configs)
                if c.curve == curve and c.control == "good" and c.sparsity > 0]
        done = {o.config: o for o in outcomes}
        step = self.space.sparsity.step
        losing = [c.sparsity for _, c in good if self._is_losing(done.get(c))]
        high = min(losing, default=max((c.sparsity for _, c in good), default=0.0) + step)
        # the verdict's winning sequence ends at the least sparse losing ticket: winners beyond it do not count
        low = max((c.sparsity for _, c in good if c.sparsity < high and self._is_winning(done.get(c))), default=0.0)
        between = [(p, c) for p, c in good if low < c.sparsity < high]
        free = [(p, c) for p, c in between if c not in taken]
        if free:
            middle = (low + high) / 2
            return min(free, key=lambda pc: (round(abs(pc[1].sparsity - middle), 6), pc[1].sparsity))[0]  # ties: less sparse
        if any(c in busy for _, c in between):
            return None
        supers = [(p, c) for p, c in good if self._is_super(done.get(c))]
        if supers:
            best = max(supers, key=lambda pc: done[pc[1]].difference.mean)[1]
            neighbours = [(p, c) for p, c in good if abs(c.sparsity - best.sparsity) < 1.5 * step and c != best]
            free = [p for p, c in neighbours if c not in taken]
            if free:
                return free[0]
        finished = {c.sparsity for _, c in good if done.get(c) and done[c].status == "complete"}
        controls = [p for p, c in zip(self.points, self.configs) if c.control != "good" and c.curve == curve
                    and c.sparsity in finished and c not in taken]
        if controls:
            return controls[0]
        return FINISHED

    def _is_winning(self, outcome: Outcome | None) -> bool:
        return (outcome is not None and outcome.status == "complete" and outcome.difference is not None
                and outcome.difference.low >= -self.tolerance)

    def _is_losing(self, outcome: Outcome | None) -> bool:
        return outcome is not None and not self._is_winning(outcome)

    def _is_super(self, outcome: Outcome | None) -> bool:
        return self._is_winning(outcome) and outcome.difference.low > 0
