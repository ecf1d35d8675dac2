"""Which grid point to try next, and what a trial is for (the ``verdict``, ``bisect`` and ``grid`` strategies).

The verdict (``search.verdict.analysis``) answers two questions along each curve (method and rewinding point):
where the winning sequence ends (the sparsest winning ticket: non-inferiority tests in a fixed order, from the
least sparse ticket on, that stop at the first failure or untested point) and where the super tickets are (the
best and the sparsest ticket whose interval lies above the dense model). Each trial gets a *purpose*:

- ``sequence``: it is a test of the winning sequence. Seed racing stops it only once it can no longer be a
  winning ticket (``search.strategy.racing.race_decision``); a stopped one ends the sequence, as in the full grid.
- ``screen``: it is a candidate super ticket past the end of the sequence. Seed racing stops it, from its first
  seed on, once it can no longer be a super ticket (``search.strategy.racing.screen_decision``). A *screened*
  ticket is never named, and the verdict lists it among the untested points.

``VerdictPolicy`` (the default ``verdict`` strategy) works in three phases on every curve:

1. **Dense first**, every seed; the search ends at once when it failed or did not beat the constant baseline
   (the verdict's guard), since then nothing could be named.
2. **The winning sequence, walked in its own order** (purpose ``sequence``): the least sparse ticket first, then
   the next, until one fails. These are exactly the tests the full grid's sequence makes, so the winning ticket
   the search names is the one the grid names, and the fixed-sequence guarantee holds as stated however the
   search goes on. With several trials at once the next tickets start before the earlier ones end (each is
   needed if those before it pass). Bisection would be cheaper on a monotone curve, but a ticket it skips is
   not a test, and naming a sparser ticket behind it would need the monotone shape as an assumption.
3. **Screening every point past the end for super tickets** (purpose ``screen``): racing over all candidates
   with the seed as the unit of fidelity (Birattari et al. 2002's F-Race; successive rejects; METHODS.md
   section 6): each point is started, least sparse first; a point whose first seed cannot reach a super
   ticket's interval stops after one or two seeds, and one that can runs every seed and is tested like any
   other. A unimodal prior skips what cannot hold a super ticket: once two grid neighbours past the end are
   both shown worse than the dense model (upper bound below 0, over at least two seeds each: a one-seed interval
   leaves out seed noise, and one unlucky dense seed drags every ticket paired with it down together), the
   sparser tickets are not tried (Liang et al.'s phase transition: past the fall, tickets do not rise again). A super ticket inside the winning
   sequence has been run with every seed by phase 2 already.

Then each control (random, bad) the study asked for runs at every sparsity where the good ticket finished. The
``bisect`` strategy (the default before screening, kept for comparison) bisects for the end of the sequence
between the sparsest ticket known to pass and the least sparse one known to fail, then tries the untried
neighbours of the best super ticket; ``grid`` tries every point in order (the ground truth).

What the verdict may claim does not depend on the order either: a ticket is named only from its interval over
every seed, which is the one the full grid computes for it. ``benchmarks.search_efficiency`` measures agreement
with the full grid per curve shape and ``benchmarks.adaptive_error`` the error rate of the claims when the search
chooses what to test.
"""

from __future__ import annotations

from dataclasses import dataclass

from search.verdict.statistics import PairedDifference
from spaces.search_space import TicketSpace
from trainables.config import TrialConfig

#: Returned by ``next_point`` when the search is over.
FINISHED = "FINISHED"
#: Trial purposes (see the module doc).
SEQUENCE, SCREEN = "sequence", "screen"


@dataclass(frozen=True)
class Outcome:
    """What the search learnt from one ended trial.

    Attributes:
        params: the trial's searched parameters (``sparsity`` and any searched categorical), as Optuna holds them.
        config: its whole configuration (method, control, rewind, sparsity, options).
        status: ``complete`` (every seed ran), ``stopped`` (a scheduler stopped it: it cannot be a winning
            ticket), ``screened`` (stopped as unable to be a super ticket, its winning test not run), ``failed``,
            or ``not_learned`` (the dense trial ran every seed but does not beat the constant baseline).
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
        screen: walk the sequence and screen the points past its end for super tickets (phases 2-3); ``False``
            is the ``bisect`` strategy.

    Attributes:
        purposes: ``{TrialConfig: "sequence" | "screen"}`` for every ticket the policy proposed.
    """

    def __init__(self, space: TicketSpace, tolerance: float, exhaustive: bool = False, screen: bool = True):
        self.space, self.tolerance, self.exhaustive, self.screen = space, tolerance, exhaustive, screen
        self.points = space.grid_points()
        self.configs = [space.config(p) for p in self.points]
        self.purposes: dict[TrialConfig, str] = {}

    def purpose(self, config: TrialConfig) -> str:
        """``screen`` or ``sequence`` (the default, also for a ticket this policy did not propose)."""
        return getattr(self, "purposes", {}).get(config, SEQUENCE)

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
            if isinstance(choice, tuple):
                point, purpose = choice
                if not hasattr(self, "purposes"):  # a policy pickled before purposes existed
                    self.purposes = {}
                self.purposes[self.space.config(point)] = purpose
                return point
            waiting = waiting or choice is None
        return None if waiting or running else FINISHED

    def _next_on_curve(self, curve, outcomes, busy, taken) -> tuple | str | None:
        """``(point, purpose)`` to try on ``curve``, ``None`` when waiting on a running one, ``FINISHED`` when
        settled."""
        good = [(p, c) for p, c in zip(self.points, self.configs)
                if c.curve == curve and c.control == "good" and c.sparsity > 0]
        done = {o.config: o for o in outcomes}
        if self.screen:
            walk = self._walk(good, done, busy, taken)
            if walk is None or isinstance(walk, tuple):
                return walk
            end = walk
            candidates = self._super_candidates(good, done, taken, end)
            if candidates:
                return candidates[0], SCREEN
            if any(c in busy for _, c in good):
                return None  # a running screen may move the unimodal cut-off
        else:
            bisection = self._bisect(good, done, busy, taken)
            if bisection is None or isinstance(bisection, tuple):
                return bisection
            free = self._neighbours_of_best(good, done, taken)
            if free:
                return free[0], SEQUENCE
        finished = {c.sparsity for _, c in good if done.get(c) and done[c].status == "complete"}
        controls = [p for p, c in zip(self.points, self.configs) if c.control != "good" and c.curve == curve
                    and c.sparsity in finished and c not in taken]
        if controls:
            return controls[0], SEQUENCE
        return FINISHED

    def _walk(self, good, done, busy, taken) -> tuple | float | None:
        """The winning sequence walked in its own order: ``(point, "sequence")`` for the least sparse untried
        ticket before any known failure (several at once when trials run in parallel: each is needed if those
        before it pass), ``None`` to wait for a running one, or the sparsity where the sequence ended (past the
        grid when every ticket passed)."""
        waiting = False
        for point, config in good:
            outcome = done.get(config)
            if outcome is not None:
                if self._is_winning(outcome):
                    continue
                return config.sparsity  # the first failure ends the sequence (a screened ticket: not from a walk)
            if config in busy:
                waiting = True
                continue
            return point, SEQUENCE
        if waiting:
            return None
        return max((c.sparsity for _, c in good), default=0.0) + self.space.sparsity.step

    def _bisect(self, good, done, busy, taken) -> tuple | None | str:
        """The ``bisect`` strategy's step: between the sparsest ticket known to pass and the least sparse one known
        to fail, the untried point nearest the middle; ``None`` to wait, ``"settled"`` when they are neighbours."""
        step = self.space.sparsity.step
        losing = [c.sparsity for _, c in good if self._is_losing(done.get(c))]
        high = min(losing, default=max((c.sparsity for _, c in good), default=0.0) + step)
        low = max((c.sparsity for _, c in good if c.sparsity < high and self._is_winning(done.get(c))), default=0.0)
        between = [(p, c) for p, c in good if low < c.sparsity < high]
        free = [(p, c) for p, c in between if c not in taken]
        if free:
            middle = (low + high) / 2
            point = min(free, key=lambda pc: (round(abs(pc[1].sparsity - middle), 6), pc[1].sparsity))[0]
            return point, SEQUENCE  # ties: less sparse
        if any(c in busy for _, c in between):
            return None
        return "settled"

    def _super_candidates(self, good, done, taken, end) -> list[dict]:
        """Untried points past the end of the winning sequence (sparsity ``end``) that could hold a super ticket,
        least sparse first, up to the unimodal cut-off (phase 3 of the module doc)."""
        tried = sorted((c.sparsity, done[c].difference) for _, c in good if c in done and done[c].difference)
        cutoff = None  # the unimodal prior: two grid neighbours past the end both shown worse than dense
        for (s1, d1), (s2, d2) in zip(tried, tried[1:]):
            if (s1 >= end and round((s2 - s1) / self.space.sparsity.step) == 1 and d1.high < 0 and d2.high < 0
                    and min(d1.seeds, d2.seeds) >= 2):  # one seed's interval leaves out seed noise, which is shared
                cutoff = s2
                break
        return [p for p, c in good if c not in taken and c.sparsity > end and (cutoff is None or c.sparsity < cutoff)]

    def _neighbours_of_best(self, good, done, taken) -> list[dict]:
        """The untried grid neighbours of the best finished super ticket (the ``bisect`` strategy's last step)."""
        supers = [c for _, c in good if self._is_super(done.get(c))]
        if not supers:
            return []
        best = max(supers, key=lambda c: done[c].difference.mean)
        step = self.space.sparsity.step
        return [p for p, c in good if abs(c.sparsity - best.sparsity) < 1.5 * step and c != best and c not in taken]

    def _is_winning(self, outcome: Outcome | None) -> bool:
        return (outcome is not None and outcome.status == "complete" and outcome.difference is not None
                and outcome.difference.low >= -self.tolerance)

    def _is_losing(self, outcome: Outcome | None) -> bool:
        return outcome is not None and outcome.status != "screened" and not self._is_winning(outcome)

    def _is_super(self, outcome: Outcome | None) -> bool:
        return self._is_winning(outcome) and outcome.difference.low > 0
