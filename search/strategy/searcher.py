"""The study's Ray Tune searcher: an Optuna study driven through public APIs only.

``TicketSearch`` is a ``ray.tune.search.Searcher`` that owns an ``optuna.Study`` and talks to it with
``ask``/``tell``/``enqueue_trial`` (no private attribute of Ray's ``OptunaSearch`` or of Optuna). Each trial's
end is told truthfully: COMPLETE with the objective (mean paired difference from the dense model over its
seeds, in dev-score units), PRUNED when a scheduler stopped it early, FAIL when it failed.

Strategies (``--search``):

- ``verdict`` (default): ``search.strategy.policy.VerdictPolicy`` tests the winning sequence in its own order, then
  screens every point past its end for super tickets (each trial tells the racing scheduler what it runs for
  through ``purpose``), and the search ends once the verdict is settled;
- ``bisect``: the bisection alone, then the neighbours of the best super ticket (the default before screening);
- ``tpe`` / ``random``: Optuna's ``TPESampler`` / ``RandomSampler`` propose points, the dense point first;
- ``grid``: every grid point once, in order.

Every strategy runs each grid point at most once: with ``tpe`` and ``random`` a proposal whose point was tried
already is moved to the nearest untried one by ``UntriedGridSampler`` (a wrapper around the base sampler, in the
way Optuna's ``PartialFixedSampler`` wraps one), and the search ends when every point has been tried.
"""

from __future__ import annotations

import math
import pickle
import warnings

import optuna
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.trial import TrialState
from ray.tune.search import Searcher

from search.strategy.policy import FINISHED, SEQUENCE, Outcome, VerdictPolicy, dense_outcome
from search.strategy.racing import race_decision, seed_interval
from search.verdict.statistics import versus_constant
from trainables.resolution import round_points, round_score
from spaces.search_space import TicketSpace
from trainables.config import TrialConfig
from trainables.report import TrialReport

STRATEGIES = ("verdict", "bisect", "tpe", "random", "grid")
#: What Optuna maximises, as the dashboard names it: the mean over seeds of ticket - dense (dev-score units).
OBJECTIVE_NAME = "paired_difference"


def study_notes(task_metric: str) -> dict[str, str]:
    """The Optuna study's user attributes when it starts, in the order optuna-dashboard lists them beside its "Best
    Trial" card: ``verdict`` and ``named_by_verdict`` (none yet: ``search.records.optuna_storage.record_verdict``
    writes them when the study ends), ``best_trial_card`` (that the card's trial is the largest objective, not a
    verdict), ``objective`` (what ``OBJECTIVE_NAME`` is, in which units) and ``intermediate_values`` (what a
    trial's curve is)."""
    return {
        "verdict": "none yet: the study has not ended",
        "named_by_verdict": "none yet",
        "best_trial_card": f"'Best Trial' is the trial with the largest {OBJECTIVE_NAME}, not a verdict: only the "
                           "'verdict' attribute names tickets (set when the study ends)",
        "objective": f"{OBJECTIVE_NAME}: mean over the trial's seeds of ticket - dense dev {task_metric}, as a "
                     "fraction (0.01 = 1 point); PRUNED trials were stopped early and have none",
        "intermediate_values": f"dev {task_metric} (fraction) after each epoch (step) of the trial's first seed; "
                               "the other seeds' curves are in MLflow (dev_score_seed<k>)"}


class UntriedGridSampler(BaseSampler):
    """Wraps an Optuna sampler so that a sparsity already tried (for the same categorical choices) becomes the
    nearest untried grid point.

    Args:
        base: the sampler that proposes (TPE, random, ...).
        space: the study's space (its grid points, and the trial each set of parameters is).
    """

    def __init__(self, base: BaseSampler, space: TicketSpace):
        self.base, self.space, self.grid = base, space, space.grid_points()

    def infer_relative_search_space(self, study, trial):
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.base.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        value = self.base.sample_independent(study, trial, param_name, param_distribution)
        if param_name != "sparsity":
            return value
        chosen = dict(trial.params)  # the categoricals, suggested before the sparsity
        config = self.space.config
        taken = {config(t.params) for t in study.get_trials(deepcopy=False)
                 if t.number != trial.number and "sparsity" in t.params}
        if config({**chosen, "sparsity": value}) not in taken:
            return value
        free = [p for p in self.grid if config(p) not in taken
                and all(p.get(k) == v for k, v in chosen.items())]
        return min(free, key=lambda p: abs(p["sparsity"] - value))["sparsity"] if free else value

    def before_trial(self, study, trial):
        self.base.before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self):
        self.base.reseed_rng()


class TicketSearch(Searcher):
    """Proposes ticket configurations to Ray Tune (see the module doc).

    Args:
        space: what a trial varies.
        strategy: ``verdict``, ``bisect``, ``tpe``, ``random`` or ``grid``.
        seed: seeds the sampler.
        task_metric: the task's primary metric (for the paired intervals).
        confidence: interval level (fraction); tolerance: winning tolerance (dev-score units).
        regression: the task is scored as regression (the dense model's constant baseline is then the mean label).
        storage: Optuna RDB storage URL that keeps the study (``None``: in memory); study_name: its name there.
            A resumed study loads the stored one.

    Attributes:
        study: the Optuna study (every trial with its state and objective).
        outcomes: what each ended trial taught the search.
    """

    def __init__(self, space: TicketSpace, strategy: str = "verdict", seed: int = 0, task_metric: str = "accuracy",
                 confidence: float = 0.95, tolerance: float = 0.01, regression: bool = False,
                 storage: str | None = None, study_name: str | None = None):
        super().__init__(metric="dev_score", mode="max")
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown search strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
        self.space, self.strategy, self.task_metric = space, strategy, task_metric
        self.confidence, self.tolerance, self.regression = confidence, tolerance, regression
        base = RandomSampler(seed=seed) if strategy == "random" else TPESampler(seed=seed)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(direction="maximize", sampler=UntriedGridSampler(base, space),
                                         storage=storage, study_name=study_name, load_if_exists=storage is not None)
        with warnings.catch_warnings():  # "experimental" since Optuna 3.2, still in 5.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.set_metric_names([OBJECTIVE_NAME])
        for key, value in study_notes(task_metric).items():
            self.study.set_user_attr(key, value)
        self.policy = self._policy()
        if self.policy is None:
            self.study.enqueue_trial(space.dense_point())
        self.running: dict[str, tuple] = {}  # Tune trial id -> (Optuna trial, searched params, TrialConfig)
        self.outcomes: list[Outcome] = []
        self.reported: dict[str, int] = {}  # Tune trial id -> last step reported to Optuna

    def suggest(self, trial_id: str) -> dict | str | None:
        """The next configuration, ``None`` to wait for running trials, or ``Searcher.FINISHED``."""
        running = [params for _, params, _ in self.running.values()]
        if self.policy is not None:
            point = self.policy.next_point(self.outcomes, running)
            if point == FINISHED:
                return Searcher.FINISHED
            if point is None:
                return None
            self.study.enqueue_trial(point)
        else:
            reference = dense_outcome(self.outcomes, self.space.config(self.space.dense_point()))
            if reference is not None and reference.status in ("failed", "not_learned"):
                return Searcher.FINISHED  # as the verdict policy: nothing can be named without a learnt dense model
            taken = {o.config for o in self.outcomes} | {self.space.config(p) for p in running}
            if all(self.space.config(p) in taken for p in self.space.grid_points()):
                return None if running else Searcher.FINISHED
        trial = self.study.ask()
        self.space(trial)  # suggests the searched dimensions
        config = self.space.config(trial.params)
        self.running[trial_id] = (trial, dict(trial.params), config)
        trial.set_user_attr("ray_trial_id", trial_id)
        for key in ("method", "control", "rewind"):
            trial.set_user_attr(key, getattr(config, key))
        return config.to_tune()

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Report the dev score of each epoch of the trial's first seed to Optuna as its intermediate values (step =
        epoch), so the dashboard shows one seed's learning curve per trial, not the seeds one after another (the
        other seeds' curves are MLflow's ``dev_score_seed<k>``); the trial's ``intermediate_seed`` attribute names
        the seed."""
        first = trial_id in self.running and result.get("seeds_done", 0) <= 1  # later seeds' reports: not parsed
        report = TrialReport.from_tune(result) if first else None
        if report is None or report.seed != report.planned_seeds[0] or not math.isfinite(report.current.dev_score):
            return
        if report.epoch > self.reported.get(trial_id, -1):  # a restarted trial reports its first epochs again
            trial = self.running[trial_id][0]
            if trial_id not in self.reported:
                trial.set_user_attr("intermediate_seed", report.seed)
            self.reported[trial_id] = report.epoch
            trial.report(round_score(float(report.current.dev_score), len(report.labels)), step=report.epoch)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell Optuna how the trial ended and remember its paired difference for the policy. The trial's user
        attributes get the difference over its finished seeds in points: ``difference`` (``+0.3 points [-0.3,
        +1.2]``), ``difference_low``, ``difference_high``, and ``seeds``."""
        if trial_id not in self.running:
            return
        trial, params, config = self.running.pop(trial_id)
        report = TrialReport.from_tune(result) if result else None
        difference = seed_interval(report, self.task_metric, self.confidence) if report and report.finished else None
        if error or report is None or report.status_reason is not None:
            status, state, value = "failed", TrialState.FAIL, None
        elif report.complete:  # rounded to what the dev set resolves, as MLflow's paired_difference
            status, state, value = "complete", TrialState.COMPLETE, round_score(
                report.mean_difference, len(report.labels), len(report.finished))
            if config == self.space.config(self.space.dense_point()) and not self._dense_learned(report):
                status = "not_learned"
        else:
            status, state, value = "stopped", TrialState.PRUNED, None
            if self.purpose(config) != SEQUENCE and difference is not None and race_decision(
                    difference, len(report.planned_seeds), self.tolerance) is None:
                status = "screened"  # stopped as no super ticket before its winning test was settled
        if value is not None and not math.isfinite(value):
            state, value = TrialState.FAIL, None
        if difference is not None:  # in points, as the terminal, the verdict and the MLflow runs give them
            trial.set_user_attr("difference", difference.points())
            for key, bound in (("difference_low", difference.low), ("difference_high", difference.high)):
                trial.set_user_attr(key, round_points(bound, difference.examples, difference.seeds))
            trial.set_user_attr("seeds", difference.seeds)
        self.study.tell(trial, value, state=state)
        self.outcomes.append(Outcome(params, config, status, difference))

    def purpose(self, config: TrialConfig) -> str:
        """What the trial of ``config`` runs for: ``sequence`` or ``screen`` (``search.strategy.policy``); the
        racing scheduler stops a trial by the rule of its purpose."""
        return self.policy.purpose(config) if self.policy is not None else SEQUENCE

    def _policy(self) -> VerdictPolicy | None:
        if self.strategy not in ("verdict", "bisect", "grid"):
            return None
        return VerdictPolicy(self.space, self.tolerance, exhaustive=self.strategy == "grid",
                             screen=self.strategy == "verdict")

    def _dense_learned(self, report: TrialReport) -> bool:
        """The verdict's guard on the dense trial: its interval against the constant baseline lies above 0."""
        finished = sorted(report.finished, key=lambda s: s.seed)
        _, versus = versus_constant(self.task_metric, [s.predictions for s in finished], report.labels,
                                    self.regression, self.confidence)
        return versus.low > 0

    def save(self, checkpoint_path: str) -> None:
        """Pickle the search (Tune calls this so ``--resume`` can restore it)."""
        with open(checkpoint_path, "wb") as file:
            pickle.dump(self.__dict__, file)

    def restore(self, checkpoint_path: str) -> None:
        """Restore a search pickled by ``save``."""
        with open(checkpoint_path, "rb") as file:
            self.__dict__.update(pickle.load(file))
        self.__dict__.setdefault("reported", {})  # a search saved before intermediate values were reported
        # a search saved before configurations were typed held them as Tune's dicts
        self.outcomes = [o if isinstance(o.config, TrialConfig) else
                         Outcome(o.params, TrialConfig.from_tune(o.config), o.status, o.difference)
                         for o in self.outcomes]
        self.running = {k: (t, p, c if isinstance(c, TrialConfig) else TrialConfig.from_tune(c))
                        for k, (t, p, c) in self.running.items()}
        if not hasattr(self.study.sampler, "space"):  # the sampler and policy of that version knew only the grid
            self.study.sampler = UntriedGridSampler(self.study.sampler.base, self.space)
        if self.policy is not None and not hasattr(self.policy, "configs"):
            self.policy = self._policy()
        if self.policy is not None and not hasattr(self.policy, "screen"):
            self.policy.screen = False  # a verdict search begun before screening goes on as it began: bisection
