"""The verdict: which tickets the data show to be super or winning tickets (Liang et al. 2021; Chen et al. 2020).

Every ticket is compared with the dense model *pairwise* (same seed, same dev examples; ``search.verdict.statistics``):
``difference`` = ticket minus dense, with its interval over seeds and dev examples at ``confidence``.

- **Guard.** The dense model must beat the constant baseline (always the majority dev class; for regression a
  constant score) with the interval of (dense - baseline) above 0. Otherwise the verdict is that the dense
  model did not learn the task under these settings, and no ticket is named. A dense model whose training
  diverged names none either.
- **Super ticket**: a ticket whose lower bound on (ticket - dense) is above 0. Where several are, the best (largest
  mean difference) and the sparsest are both named.
- **Winning ticket**: non-inferiority, tested in a fixed sequence (Maurer et al. 1995; Hsu & Berger 1999's
  step-down intervals for the highest safe dose). Along each curve (method and rewinding point) the tested
  tickets are taken from the least sparse on; a ticket passes when its lower bound is at least ``-tolerance``
  (no worse than the dense model by more than the tolerance), and the sequence ends at the first ticket that does
  not pass (a trial stopped early or failed does not pass). When the study's grid is given, the sequence is the
  grid's: it also stops at the first grid point that was not tested (never run, or *screened*: stopped by the
  search as unable to be a super ticket before its winning test ran), since an untested ticket does not pass.
  The sparsest ticket that passed is the sparsest
  winning ticket. Each test uses the interval at the full ``confidence``; over a fixed set of tested tickets the
  chance of naming one that is in truth worse than the tolerance stays at most that of one interval's lower
  bound, ``(1 - confidence) / 2``, with no correction for the number of tickets, and a lone sparse ticket that
  passes by noise behind a failing less sparse one is not named. (The verdict search chooses the tested
  tickets as it goes; ``benchmarks.adaptive_error`` measures the error rate of its claims by simulation and
  ``benchmarks.search_efficiency`` how often it agrees with the full grid.) This is the phase transition of
  Liang et al. read as a test: tickets stay winning as sparsity grows, then fall away.
- **Untested points.** Given the grid the study could test, the verdict lists per curve the points never run and
  the screened ones: a super ticket there is not ruled out.
- Otherwise no ticket is distinguishable from the dense model; the best difference is given with its interval.

Only tickets that ran every planned seed (FINISHED) may be named; a trial stopped by a scheduler (KILLED), or failed,
is reported but never named. Controls (random, bad) are compared with their good ticket (same method,
rewinding point and sparsity) and never named.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from search.verdict.statistics import PairedDifference, paired_difference, versus_constant
from trainables.config import TRIAL_KEYS, TrialConfig
from trainables.pruning.registry import get_method
from trainables.report import TrialReport
from trainables.tasks import get_task

#: The status reason of a ticket the search stopped as unable to be a super ticket before its winning test ran.
SCREENED = "screened"
#: The ``Verdict.kind`` values.
KINDS = ("super", "winning", "none", "dense_not_learned", "dense_failed", "no_dense")


@dataclass
class TicketResult:
    """One trial's outcome, as the analysis, the table and the plot see it.

    Attributes:
        config: the trial's configuration (method, requested sparsity, rewinding point, control, options).
        status: FINISHED (every seed ran), KILLED (a scheduler stopped it early) or FAILED, as in MLflow.
        status_reason: why it stopped or failed (``diverged``, the racing test, ``asha``), else ``None``.
        facts: what the ticket's method reports about it (``Mask.summary`` and ``Ticket.info``): counts in the
            method's own units and ``achieved_sparsity``, the fraction of the weights its mask removes; empty when
            the trial failed before its ticket was built.
        seed_scores: the ticket's final primary dev score per finished seed; ``dense_scores`` the dense model's
            for the same seeds.
        planned_seeds: seeds the trial was to run.
        epochs: reports the trial made (over all seeds).
        train_losses: per finished seed, the mean training loss of each epoch.
        difference: ticket minus dense with its interval (set by ``decide``).
        versus_good: for a control, control minus its good ticket with its interval (set by ``decide``).
        predictions, dense_predictions: per finished seed, per-example dev predictions (not in ``to_dict``).
        labels: gold dev labels (not in ``to_dict``).
        mask_files: the ticket's per-seed mask files (not in ``to_dict``).
        weight_files: ``{seed (str): path}`` of the ticket's fine-tuned weights, when kept (not in ``to_dict``).
    """

    trial_id: str
    run_id: str | None
    config: TrialConfig
    status: str
    status_reason: str | None = None
    facts: dict = field(default_factory=dict)
    seed_scores: dict = field(default_factory=dict)
    dense_scores: dict = field(default_factory=dict)
    planned_seeds: int = 0
    epochs: int = 0
    train_losses: dict = field(default_factory=dict)
    difference: PairedDifference | None = None
    versus_good: PairedDifference | None = None
    predictions: dict = field(default_factory=dict, repr=False)
    dense_predictions: dict = field(default_factory=dict, repr=False)
    labels: list = field(default_factory=list, repr=False)
    mask_files: list = field(default_factory=list, repr=False)
    weight_files: dict = field(default_factory=dict, repr=False)

    @property
    def sparsity(self) -> float:
        """The requested sparsity (fraction of the method's units, on the grid)."""
        return self.config.sparsity

    @property
    def method(self) -> str:
        """The pruning method (``config.method``)."""
        return self.config.method

    @property
    def control(self) -> str:
        """``good`` or a control (``config.control``)."""
        return self.config.control

    @property
    def rewind(self) -> str:
        """The rewinding point (``config.rewind``)."""
        return self.config.rewind

    @property
    def achieved_sparsity(self) -> float | None:
        """The fraction of the weights the ticket's mask removes (``None`` before its ticket was built)."""
        return self.facts.get("achieved_sparsity")

    @property
    def dev_score(self) -> float | None:
        """Mean final primary dev score over the finished seeds (``None`` before any finished)."""
        return float(np.mean(list(self.seed_scores.values()))) if self.seed_scores else None

    @property
    def dev_std(self) -> float | None:
        """Standard deviation of the final dev score over the finished seeds."""
        return float(np.std(list(self.seed_scores.values()))) if self.seed_scores else None

    @property
    def is_dense(self) -> bool:
        """True when the ticket masked nothing (the dense baseline)."""
        if self.achieved_sparsity is not None:
            return self.achieved_sparsity == 0.0
        return self.sparsity == 0.0  # a trial that failed before its ticket was built

    @property
    def curve(self) -> tuple[str, str, str]:
        """``(method, control, rewind)``: the tickets that form one curve of the phase-transition plot."""
        return self.method, self.control, self.rewind

    @property
    def kept(self) -> str:
        """What the ticket kept, in its method's units (``51/72 heads, 5/6 FFN``, ``62.9% of weights``; the mask
        type's ``describe_kept``), or ``-`` when unknown."""
        try:
            return get_method(self.method).mask_type.describe_kept(self.facts)
        except (KeyError, ValueError, TypeError, ZeroDivisionError):  # no facts, or a method not registered here
            return "-"

    @property
    def complete(self) -> bool:
        """True when it ran every planned seed to the end."""
        return self.status == "FINISHED" and self.planned_seeds > 0 and len(self.seed_scores) == self.planned_seeds

    def to_dict(self) -> dict:
        """JSON-ready form (as in ``summary.json``): the configuration's keys and the method's facts flat, no
        per-example predictions."""
        data = {"trial_id": self.trial_id, "run_id": self.run_id, **self.config.to_tune(),
                **{k: v for k, v in self.facts.items() if k not in TRIAL_KEYS}, "status": self.status,
                "status_reason": self.status_reason}
        for key in ("seed_scores", "dense_scores", "planned_seeds", "epochs", "train_losses"):
            data[key] = getattr(self, key)
        for key in ("difference", "versus_good"):
            value = getattr(self, key)
            data[key] = None if value is None else asdict(value)
        data["facts"] = sorted(k for k in self.facts if k not in TRIAL_KEYS)
        data["dev_score"], data["dev_std"] = self.dev_score, self.dev_std
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TicketResult":
        """A ticket read back from ``to_dict``'s form (``summary.json``), without its intervals (``decide``
        recomputes them) or predictions. Summaries written before ``facts`` was listed: every key that is not a
        field or a configuration key, and not null, is taken as a fact."""
        fields = {"trial_id", "run_id", "status", "status_reason", "seed_scores", "dense_scores", "planned_seeds",
                  "epochs", "train_losses"}
        computed = {"dev_score", "dev_std", "difference", "versus_good", "facts", "options"}
        names = data.get("facts")
        facts = {k: data[k] for k in names} if names is not None else \
            {k: v for k, v in data.items() if k not in fields | computed | set(TRIAL_KEYS) and v is not None}
        config = {k: v for k, v in data.items() if k not in fields | computed | set(facts)} if names is not None \
            else {k: data[k] for k in TRIAL_KEYS if k in data}  # no options in summaries of that time
        ticket = cls(config=TrialConfig.from_tune(config), facts=facts, **{k: data[k] for k in fields if k in data})
        ticket.seed_scores = {int(k): v for k, v in ticket.seed_scores.items()}
        ticket.dense_scores = {int(k): v for k, v in ticket.dense_scores.items()}
        ticket.train_losses = {int(k): v for k, v in ticket.train_losses.items()}
        return ticket


def ticket_from_report(trial_id: str, run_id: str | None, config: TrialConfig, report: TrialReport | None,
                       status: str, status_reason: str | None = None) -> TicketResult:
    """A ``TicketResult`` from a trial's configuration and its last report (``None`` if it never reported)."""
    ticket = TicketResult(trial_id, run_id, config, status, status_reason)
    if report is None:
        return ticket
    ticket.facts = dict(report.ticket.counts)
    ticket.status_reason = ticket.status_reason or report.status_reason
    ticket.planned_seeds = len(report.planned_seeds)
    ticket.labels = report.labels
    ticket.mask_files = list(report.ticket.mask_files)
    ticket.weight_files = dict(report.ticket.weight_files)
    for seed in report.finished:
        ticket.seed_scores[seed.seed] = seed.dev_score
        ticket.dense_scores[seed.seed] = seed.dense_score
        ticket.predictions[seed.seed] = seed.predictions
        ticket.dense_predictions[seed.seed] = seed.dense_predictions
        ticket.train_losses[seed.seed] = seed.train_losses
    return ticket


def compare_with_dense(ticket: TicketResult, metric: str, confidence: float) -> PairedDifference | None:
    """Ticket minus dense over the ticket's finished seeds (``None`` before any seed finished)."""
    seeds = sorted(ticket.predictions)
    if not seeds or not ticket.labels:
        return None
    return paired_difference(metric, np.array([ticket.predictions[s] for s in seeds]),
                             np.array([ticket.dense_predictions[s] for s in seeds]), np.array(ticket.labels),
                             confidence)


@dataclass
class Verdict:
    """What the data support.

    Attributes:
        kind: ``super``, ``winning``, ``none``, ``dense_not_learned``, ``dense_failed`` (diverged or failed) or
            ``no_dense`` (the dense trial never finished).
        dense: the dense trial.
        baseline_score: the constant baseline's dev score (majority class; 0 correlation for regression).
        dense_vs_baseline: dense minus the constant baseline, with its interval.
        best_super, sparsest_super: the super tickets named (the same ticket when only one).
        winning: the sparsest winning ticket (a super ticket is also winning).
        best: the candidate with the largest mean difference (reported when nothing is named).
        beyond: the tested ticket that ended the winning sequence (the next one after ``winning`` on its curve,
            or the least sparse one tested when none passed); ``None`` when every tested ticket passed.
        confidence: interval level (fraction); tolerance: the non-inferiority margin (dev-score units).
        untested: per curve, the grid points the search never ran and those it screened (``Untested``); empty
            when every point was tested or the grid was not given.
    """

    kind: str
    dense: TicketResult | None
    confidence: float
    tolerance: float
    baseline_score: float | None = None
    dense_vs_baseline: PairedDifference | None = None
    best_super: TicketResult | None = None
    sparsest_super: TicketResult | None = None
    winning: TicketResult | None = None
    best: TicketResult | None = None
    beyond: TicketResult | None = None
    untested: list = field(default_factory=list)

    @property
    def named(self) -> dict[str, TicketResult]:
        """The tickets the verdict names, by role (``best_super``, ``sparsest_super``, ``winning``)."""
        roles = {"best_super": self.best_super, "sparsest_super": self.sparsest_super, "winning": self.winning}
        return {role: t for role, t in roles.items() if t is not None}

    def signature(self) -> tuple:
        """``(kind, sparsity of each named role)``: two verdicts that agree have equal signatures."""
        return (self.kind, *((role, t.curve, t.sparsity) for role, t in sorted(self.named.items())))


def _sparsity(ticket: TicketResult) -> float:
    return ticket.achieved_sparsity if ticket.achieved_sparsity is not None else ticket.sparsity


def _versus_constant(dense: TicketResult, task, confidence: float) -> tuple[float, PairedDifference]:
    """The constant baseline's dev score and (dense - constant baseline) with its interval."""
    seeds = sorted(dense.predictions)
    return versus_constant(task.primary_metric, np.array([dense.predictions[s] for s in seeds]),
                           np.array(dense.labels), task.is_regression, confidence)


@dataclass(frozen=True)
class Untested:
    """Grid points of one curve whose tickets were not tested.

    Attributes:
        curve: ``(method, control, rewind)``.
        never: sparsities never run (fractions, ascending).
        screened: sparsities stopped after their first seeds as unable to be super tickets, so not tested as
            winning tickets.
        gap: the untested sparsity where the winning sequence stopped (every less sparse ticket passed), if any.
    """

    curve: tuple
    never: tuple
    screened: tuple
    gap: float | None = None


def _curve(config: TrialConfig) -> tuple[str, str, str]:
    """``(method, control, rewind)``: a configuration's curve as ``TicketResult.curve`` names it."""
    return config.method, config.control, config.rewind


def is_screened(ticket: TicketResult) -> bool:
    """The search stopped it as unable to be a super ticket before its winning test ran."""
    return ticket.status == "KILLED" and (ticket.status_reason or "").startswith(SCREENED)


def untested_points(tickets: list[TicketResult], grid: list[TrialConfig]) -> list[Untested]:
    """Per good curve of ``grid`` (the non-dense configurations the study could test), its points no ticket of
    ``tickets`` tested: never run, or screened."""
    found = []
    for curve in sorted({_curve(c) for c in grid if c.control == "good" and c.sparsity > 0}):
        points = sorted(c.sparsity for c in grid if _curve(c) == curve and c.sparsity > 0)
        ran = {t.sparsity: t for t in tickets if t.curve == curve}
        never = tuple(s for s in points if s not in ran)
        screened = tuple(s for s in points if s in ran and is_screened(ran[s]))
        if never or screened:
            found.append(Untested(curve, never, screened))
    return found


def decide(tickets: list[TicketResult], task_name: str, confidence: float = 0.95,
           tolerance: float = 0.01, grid: list[TrialConfig] | None = None) -> Verdict:
    """Compare every ticket with the dense model (and every control with its good ticket) and give the verdict.

    Sets ``difference`` on every ticket with a finished seed and ``versus_good`` on every control whose good
    ticket finished.

    Args:
        tickets: every trial of a study (or of several studies on the same task and dense fine-tunes).
        task_name: the GLUE task (decides the metric and the constant baseline).
        confidence: interval level, a fraction in (0, 1).
        tolerance: the non-inferiority margin of a winning ticket, in dev-score units (0.01 = 1 point).
        grid: the configurations the study could test (its space's grid points); when given, the verdict lists
            the untested ones (``Verdict.untested``).
    """
    task = get_task(task_name)
    metric = task.primary_metric
    for ticket in tickets:
        ticket.difference = compare_with_dense(ticket, metric, confidence)
    dense = next((t for t in tickets if t.is_dense and t.complete and t.control == "good"), None)
    if dense is None:
        failed = [t for t in tickets if t.is_dense and t.status == "FAILED" and t.control == "good"]
        return Verdict("dense_failed" if failed else "no_dense", failed[0] if failed else None, confidence, tolerance)
    baseline, versus = _versus_constant(dense, task, confidence)
    if versus.low <= 0:
        return Verdict("dense_not_learned", dense, confidence, tolerance, baseline, versus)
    untested = untested_points(tickets, grid) if grid else []
    grid_curves = {}
    for config in grid or []:
        if config.control == "good" and config.sparsity > 0:
            grid_curves.setdefault(_curve(config), []).append(config.sparsity)
    compare_controls(tickets, metric, confidence)
    candidates = [t for t in tickets if t.complete and not t.is_dense and t.control == "good" and t.difference]
    supers = [t for t in candidates if t.difference.low > 0]
    winners, ends, gaps = _winning_sequences(tickets, tolerance, grid_curves)
    untested = [replace(u, gap=gaps.get(u.curve)) for u in untested]
    verdict = Verdict("none", dense, confidence, tolerance, baseline, versus,
                      best=max(candidates, key=lambda t: (t.difference.mean, _sparsity(t)), default=None),
                      untested=untested)
    if winners:
        verdict.kind = "winning"
        verdict.winning = max(winners, key=lambda t: (_sparsity(t), t.difference.mean))
        verdict.beyond = ends.get(verdict.winning.curve)
    elif ends:
        verdict.beyond = ends[min(ends)]
    if supers:
        verdict.kind = "super"
        verdict.best_super = max(supers, key=lambda t: (t.difference.mean, _sparsity(t)))
        verdict.sparsest_super = max(supers, key=lambda t: (_sparsity(t), t.difference.mean))
    return verdict


def _passes(ticket: TicketResult, tolerance: float) -> bool:
    """Shown no worse than the dense model by more than ``tolerance``, over every planned seed."""
    return ticket.complete and ticket.difference is not None and ticket.difference.low >= -tolerance


def _winning_sequences(tickets: list[TicketResult], tolerance: float,
                       grid: dict | None = None) -> tuple[list[TicketResult], dict, dict]:
    """The fixed-sequence non-inferiority tests of every curve (see the module doc).

    Args:
        grid: ``{curve: [sparsity, ...]}``, the points each curve's sequence must test in order; a curve absent
            (or no grid) takes its tested tickets as the sequence.

    Returns:
        the tickets that passed, on every curve; per curve ``(method, control, rewind)`` the tested ticket that
        ended its sequence (curves where every tested ticket passed are absent); and per curve the untested
        sparsity where its sequence stopped.
    """
    grid = grid or {}
    tested = [t for t in tickets if t.control == "good" and not t.is_dense and not is_screened(t)]
    passed, ends, gaps = [], {}, {}
    for curve in sorted({t.curve for t in tested} | set(grid)):
        ordered = sorted((t for t in tested if t.curve == curve), key=lambda t: (t.sparsity, _sparsity(t)))
        points = sorted(set(grid.get(curve, [])) | {t.sparsity for t in ordered})
        by_sparsity = {t.sparsity: t for t in ordered}
        for sparsity in points if curve in grid else [t.sparsity for t in ordered]:
            ticket = by_sparsity.get(sparsity)
            if ticket is None:
                gaps[curve] = sparsity
                break
            if not _passes(ticket, tolerance):
                ends[curve] = ticket
                break
            passed.append(ticket)
    return passed, ends, gaps


def compare_controls(tickets: list[TicketResult], metric: str, confidence: float) -> None:
    """Set ``versus_good`` on every control (random/bad) of ``tickets``: control minus the good ticket of the same
    method, rewinding point and sparsity among ``tickets``, paired over their common seeds (Prasanna et al.'s
    comparison). Pass the tickets of one study: good tickets of different studies may prune different sets."""
    goods = {(t.method, t.rewind, t.sparsity): t for t in tickets if t.control == "good" and t.seed_scores}
    for control in (t for t in tickets if t.control != "good" and t.seed_scores):
        good = goods.get((control.method, control.rewind, control.sparsity))
        seeds = sorted(set(control.predictions) & set(good.predictions)) if good else []
        if seeds:
            control.versus_good = paired_difference(metric, np.array([control.predictions[s] for s in seeds]),
                                                    np.array([good.predictions[s] for s in seeds]),
                                                    np.array(control.labels), confidence)
