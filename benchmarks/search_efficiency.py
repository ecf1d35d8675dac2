"""Search efficiency: how often a search names the same tickets as the full grid, on curves of every shape, and at
what cost.

    python -m benchmarks.search_efficiency                  # every grid in benchmarks/data, every shape, 20 seeds
    python -m benchmarks.search_efficiency --search-seeds 10 --grid benchmarks/data/mrpc-structured-grid.json \
        --shapes recorded,super-far --match-tolerance 0.01

A grid file (made once by ``benchmarks.record_grid`` with the real trial code on real data) holds every sparsity
of the structured grid x every seed x every epoch with per-example dev predictions. Each grid is measured as
recorded and bent into every shape of ``benchmarks.shapes`` (its real per-example noise, a known true curve).
A run replays the recorded reports exactly as a real trial sends them to the study's own searcher
(``search.strategy.searcher.TicketSearch``: Optuna, the verdict policy) and racing rule
(``search.strategy.racing.SeedRacingScheduler``), driven one trial at a time as Ray Tune's controller drives them
(``drive``; ``--ray`` runs the same searches in Ray Tune itself, seconds per run instead of milliseconds). For each
shape and strategy it prints:

- agree: the fraction of runs whose verdict (its kind and the sparsity of every ticket it names) equals the
  verdict computed on the full grid with the same confidence and tolerance;
- extra: the fraction of runs whose verdict names a ticket the full grid's does not;
- true: on a shaped grid, the fraction of runs in which every named ticket is what it is named as on the true
  curve (a super ticket truly above the dense model, a winning ticket truly within the tolerance);
- epochs: fine-tuning epochs the run consumed (one per report; the dense model's included) divided by the full
  grid's (grid points x seeds x epochs): the mean over runs, and the smallest and largest run; and trials;
- the floor (beside the full grid's verdict): the fewest epochs in which any search could reach that verdict with
  the same tests and still look at every point (``floor_epochs``), so a cost can be read against what the
  verdict itself requires.

A search seed seeds the sampler and also draws the order in which every trial of that run meets the recorded
seeds (they are exchangeable: any order is one a real study could have met), so seed racing is measured over
many early seeds, not one lucky or unlucky order.

Strategies: the study's default ``verdict`` (printed first) and the ``bisect`` search it replaced, both with seed
racing, and plain ``tpe`` and ``random`` (every trial runs every seed) given the number of trials nearest to the
epochs the default used on average, so the comparison is at (about) equal cost. A last line per grid and
tolerance names the shape on which the default did worst.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.verdict.analysis import Verdict, decide, ticket_from_report
from spaces.search_space import TicketSpace
from search.cli.flags import FLAGS
from search.errors import UsageError
from spaces.sparsity import SparsityRange
from trainables.config import TrialConfig, on_grid
from trainables.report import EpochResult, SeedOutcome, TicketFacts, TrialReport
from trainables.tasks import get_task

DATA = Path(__file__).resolve().parent / "data"
DEFAULT_GRID = DATA / "mrpc-structured-grid.json"


@dataclass(frozen=True)
class RecordedGrid:
    """A recorded grid (see ``benchmarks.record_grid``).

    Attributes:
        task: GLUE task name.
        seeds: the seeds, in the order a trial runs them.
        epochs: epochs per seed.
        labels: gold dev labels, shape ``(n_dev,)``.
        points: ``{sparsity: {"counts": ..., "seeds": {seed: [epoch records]}}}``; an epoch record has ``epoch``,
            ``dev_score``, ``train_loss`` and ``predictions``.
        step: the grid's sparsity step.
    """

    task: str
    seeds: tuple
    epochs: int
    labels: list
    points: dict
    step: float

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RecordedGrid":
        """Read a grid file written by ``benchmarks.record_grid``."""
        data = json.loads(Path(path).read_text())
        points = {on_grid(p["sparsity"]): {"counts": p["counts"],
                                              "seeds": {int(s): e for s, e in p["seeds"].items()}}
                  for p in data["points"]}
        grid = sorted(points)
        return cls(data["task"], tuple(data["seeds"]), data["finetune"]["epochs"], data["labels"], points,
                   on_grid(grid[1] - grid[0]))

    @classmethod
    def read(cls, path: str | os.PathLike) -> "RecordedGrid":
        """``load`` for a path a user gave.

        Raises:
            UsageError: no such file, or not a grid written by ``benchmarks.record_grid`` (one line, naming the fix).
        """
        if not Path(path).is_file():
            raise UsageError(f"grid file {path} not found: pass --grid with a file written by benchmarks.record_grid")
        try:
            return cls.load(path)
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise UsageError(f"grid file {path} is not a grid written by benchmarks.record_grid "
                             f"({type(err).__name__}: {err}); pass --grid with one") from None

    @property
    def space(self) -> TicketSpace:
        """The structured space over the recorded sparsities."""
        return TicketSpace(SparsityRange(0.0, max(self.points), self.step))

    def reports(self, sparsity: float, order: tuple | None = None) -> list[TrialReport]:
        """The reports a real trial at ``sparsity`` sent, in order: every epoch of every seed, each finished seed
        paired with the dense model (sparsity 0) of the same seed.

        Args:
            sparsity: a recorded grid point.
            order: the order the seeds run in (default: as recorded). The seeds are exchangeable, so any order is
                one a real study could have met; seed racing sees the early ones first.
        """
        point, dense = self.points[on_grid(sparsity)], self.points[0.0]
        facts = TicketFacts(dict(point["counts"]), replayed=True, reused_dense=sparsity == 0.0)
        metric, finished, reports = get_task(self.task).primary_metric, [], []
        order = tuple(order or self.seeds)
        for seed in order:
            records = point["seeds"][seed]
            for record in records:
                current = EpochResult(record["epoch"], record["dev_score"], {metric: record["dev_score"],
                                                                              "dev_score": record["dev_score"]},
                                      record["train_loss"], record["predictions"])
                if record is records[-1]:
                    last = dense["seeds"][seed][-1]
                    finished.append(SeedOutcome(seed, record["dev_score"], record["predictions"], last["dev_score"],
                                                last["predictions"], [r["train_loss"] for r in records]))
                reports.append(TrialReport(seed, record["epoch"], self.epochs, order, current, list(finished),
                                           self.labels, facts))
        return reports

    @property
    def configs(self) -> list[TrialConfig]:
        """Every configuration of the grid (the dense one first)."""
        return [self.space.config(p) for p in self.space.grid_points()]

    def full_verdict(self, confidence: float, tolerance: float) -> Verdict:
        """The verdict on every grid point with every seed: the reference a search should agree with."""
        tickets = []
        for sparsity in sorted(self.points):
            config = TrialConfig(sparsity, "structured")
            tickets.append(ticket_from_report(f"grid-{sparsity:.2f}", None, config, self.reports(sparsity)[-1],
                                              "FINISHED"))
        return decide(tickets, self.task, confidence, tolerance, self.configs)


def replay_trainable(config: dict, grid: RecordedGrid, order: tuple | None = None) -> None:
    """A Ray Tune trainable that sends the recorded reports of ``config["sparsity"]``, as a real trial would,
    running the seeds in ``order`` (default: as recorded)."""
    from ray import tune

    for report in grid.reports(TrialConfig.from_tune(config).sparsity, order):
        tune.report(report.to_tune())


@dataclass(frozen=True)
class RunResult:
    """One search run: its verdict, the epochs it consumed, the trials it ran, and those trials' outcomes."""

    verdict: Verdict
    epochs: int
    trials: int
    verdict_tickets: list


def drive(grid: RecordedGrid, strategy: str, search_seed: int, racing: bool, num_trials: int, confidence: float,
          tolerance: float, order: tuple | None = None) -> RunResult:
    """One search over the replayed grid, driven the way Ray Tune's controller drives it one trial at a time.

    The study's own ``TicketSearch`` proposes each trial (``suggest``), hears every report
    (``on_trial_result``) and its end (``on_trial_complete``); after each report the study's
    ``SeedRacingScheduler`` decides whether the trial stops (``decide``, the rule its ``on_trial_result`` applies).
    Only Tune's process machinery is left out, so thousands of runs take minutes; ``run_search`` is the same run
    in Ray Tune (``tests/test_racing_and_replay.py`` checks that both give the same verdict and cost).

    Args:
        grid: the recorded (or shaped) grid.
        strategy: ``verdict``, ``bisect``, ``tpe``, ``random`` or ``grid``.
        search_seed: seeds the sampler.
        racing: stop trials between seeds (the study's ``--scheduler race``).
        num_trials: at most this many trials (the dense one included).
        confidence, tolerance: the verdict's.
        order: the order every trial runs the recorded seeds in (default: as recorded).
    """
    from ray.tune.search import Searcher

    from search.strategy.racing import SeedRacingScheduler
    from search.strategy.searcher import TicketSearch

    task = get_task(grid.task)
    searcher = TicketSearch(grid.space, strategy, search_seed, task.primary_metric, confidence, tolerance,
                            task.is_regression)
    scheduler = SeedRacingScheduler(task.primary_metric, confidence, tolerance, {}, searcher.purpose) \
        if racing else None
    tickets, epochs = [], 0
    for number in range(num_trials):
        trial_id = f"trial_{number:05d}"
        params = searcher.suggest(trial_id)
        if params is None or params == Searcher.FINISHED:
            break  # one trial at a time: nothing runs that it could wait for
        config = TrialConfig.from_tune(params)
        reason, result, report = None, None, None
        for iteration, report in enumerate(grid.reports(config.sparsity, order), start=1):
            result = {**report.to_tune(), "training_iteration": iteration, "trial_id": trial_id}
            searcher.on_trial_result(trial_id, result)
            epochs += 1
            reason = scheduler.decide(config, report) if scheduler else None
            if reason:
                break
        searcher.on_trial_complete(trial_id, result)
        tickets.append(ticket_from_report(trial_id, None, config, report,
                                          "FINISHED" if report.complete else "KILLED", reason))
    return RunResult(decide(tickets, grid.task, confidence, tolerance, grid.configs), epochs, len(tickets), tickets)


def run_search(grid: RecordedGrid, strategy: str, search_seed: int, racing: bool, num_trials: int,
               confidence: float, tolerance: float, storage: str, order: tuple | None = None) -> RunResult:
    """``drive``'s run in Ray Tune itself, one trial at a time (slow: seconds per run)."""
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from search.strategy.racing import SeedRacingScheduler
    from search.strategy.searcher import TicketSearch

    task = get_task(grid.task)
    stop_reasons: dict = {}
    searcher = TicketSearch(grid.space, strategy, search_seed, task.primary_metric, confidence, tolerance,
                            task.is_regression)
    scheduler = SeedRacingScheduler(task.primary_metric, confidence, tolerance, stop_reasons, searcher.purpose) \
        if racing else FIFOScheduler()
    tuner = tune.Tuner(
        tune.with_parameters(replay_trainable, grid=grid, order=order),
        tune_config=tune.TuneConfig(metric="dev_score", mode="max", search_alg=searcher, scheduler=scheduler,
                                    num_samples=num_trials, max_concurrent_trials=1, reuse_actors=True),
        run_config=tune.RunConfig(name=f"{strategy}-{search_seed}", storage_path=storage, verbose=0))
    results = tuner.fit()
    tickets, epochs = [], 0
    for result in results:
        if result.config is None:
            continue
        report = TrialReport.from_tune(result.metrics)
        epochs += int(result.metrics.get("training_iteration", 0))
        status = "FAILED" if result.error else ("FINISHED" if report and report.complete else "KILLED")
        trial_id = result.metrics.get("trial_id", "")
        tickets.append(ticket_from_report(trial_id, None, TrialConfig.from_tune(result.config), report, status,
                                          stop_reasons.get(trial_id)))
    return RunResult(decide(tickets, grid.task, confidence, tolerance, grid.configs), epochs, len(tickets), tickets)


#: The study's default strategy first, then the one it replaced, then Optuna's samplers at about equal cost.
STRATEGIES = ("verdict", "bisect", "tpe", "random")
LABELS = {"verdict": "verdict search + racing (default)", "bisect": "bisection + racing (before)",
          "tpe": "TPE, all seeds", "random": "random, all seeds"}


def claims_hold(verdict: Verdict, truth: dict[float, float], tolerance: float) -> bool:
    """Every ticket the verdict names is what it is named as, on the true curve ``truth`` (sparsity -> true mean
    difference): a super ticket truly above the dense model, a winning ticket truly within ``tolerance``."""
    for role, ticket in verdict.named.items():
        value = truth[ticket.sparsity]
        if (role == "winning" and value < -tolerance - 1e-9) or (role != "winning" and value <= 1e-9):
            return False
    return True


def extra_names(verdict: Verdict, full: Verdict) -> bool:
    """The verdict names a ticket (any role) that the full grid's verdict does not name."""
    return bool({t.sparsity for t in verdict.named.values()} - {t.sparsity for t in full.named.values()})


@dataclass
class Row:
    """One strategy on one (shaped) grid at one tolerance, over every search seed."""

    label: str
    agreement: float
    extra: float
    true: float | None
    fractions: list
    trials: float
    seconds: float


def measure(grid: RecordedGrid, full: Verdict, truth: dict | None, tolerance: float, confidence: float,
            search_seeds: int, ray_storage: str | None = None) -> list[Row]:
    """Every strategy on ``grid`` over ``search_seeds`` runs: agreement with ``full`` (the full grid's verdict),
    extra names, true claims (``None`` without a known truth), epochs / the grid's per run, mean trials."""
    grid_epochs = len(grid.points) * len(grid.seeds) * grid.epochs
    rows, same = [], None
    for strategy in STRATEGIES:
        racing = strategy in ("verdict", "bisect")
        trials = 4 * len(grid.points) if racing else same
        started, runs = time.perf_counter(), []
        for seed in range(search_seeds):
            order = tuple(int(s) for s in np.random.default_rng(seed).permutation(grid.seeds))
            if ray_storage:
                runs.append(run_search(grid, strategy, seed, racing, trials, confidence, tolerance, ray_storage, order))
            else:
                runs.append(drive(grid, strategy, seed, racing, trials, confidence, tolerance, order))
        fractions = [r.epochs / grid_epochs for r in runs]
        if strategy == "verdict":  # TPE and random get about the default's cost: the dense point and one more
            same = max(2, round(float(np.mean(fractions)) * len(grid.points)))
        label = LABELS[strategy] if racing else f"{LABELS[strategy]}, {same} trials"
        rows.append(Row(label, float(np.mean([r.verdict.signature() == full.signature() for r in runs])),
                        float(np.mean([extra_names(r.verdict, full) for r in runs])),
                        None if truth is None else float(np.mean([claims_hold(r.verdict, truth, tolerance)
                                                                  for r in runs])),
                        fractions, float(np.mean([r.trials for r in runs])), time.perf_counter() - started))
    return rows


def floor_epochs(grid: RecordedGrid, full: Verdict, confidence: float, tolerance: float) -> int:
    """The fewest fine-tuning epochs in which any search could reach ``full`` (the full grid's verdict) with the
    same tests and still have looked at every grid point.

    It must run with every seed the dense model, every ticket of the winning sequence up to the winning one, and
    every named super ticket; the ticket that ends the sequence until seed racing could stop it (in the recorded
    seed order); and every other point for at least one seed, since a point never run could hide a super ticket.
    """
    from search.strategy.racing import SeedRacingScheduler

    per_seed = grid.epochs
    seeds = len(grid.seeds)
    sparsities = sorted(s for s in grid.points if s > 0)
    full_seeds = {0.0} | {t.sparsity for t in full.named.values()}
    beyond = None
    for sparsity in sparsities:
        if full.winning is not None and sparsity <= full.winning.sparsity:
            full_seeds.add(sparsity)
        elif beyond is None:
            beyond = sparsity
    epochs = 0
    racing = SeedRacingScheduler(get_task(grid.task).primary_metric, confidence, tolerance)
    for sparsity in [0.0, *sparsities]:
        if sparsity in full_seeds:
            epochs += seeds * per_seed
        elif sparsity == beyond:
            reports = grid.reports(sparsity)
            stop = next((i for i, r in enumerate(reports, 1) if racing.decide(TrialConfig(sparsity), r)), len(reports))
            epochs += stop
        else:
            epochs += per_seed
    return epochs


def signature_text(verdict: Verdict) -> str:
    """``super 0.35 (sparsest 0.40), winning 0.10`` or ``none``: what a verdict names, briefly."""
    parts = []
    if verdict.best_super is not None:
        parts.append(f"super {verdict.best_super.sparsity:.2f}" + (
            f" (sparsest {verdict.sparsest_super.sparsity:.2f})"
            if verdict.sparsest_super is not verdict.best_super else ""))
    if verdict.winning is not None:
        parts.append(f"winning {verdict.winning.sparsity:.2f}")
    return ", ".join(parts) or verdict.kind.replace("_", " ")


def main(argv=None) -> int:
    from benchmarks.shapes import SHAPES, measured_curve, shape_grid

    parser = argparse.ArgumentParser(prog="python -m benchmarks.search_efficiency",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", action="append",
                        help="recorded grid (benchmarks.record_grid); repeat for several (default: every grid in "
                             "benchmarks/data)")
    parser.add_argument("--search-seeds", type=int, default=20, help="runs per strategy and shape (default 20)")
    FLAGS["confidence"].add_to(parser)  # the study's own flag: the same default and range
    parser.add_argument("--match-tolerance", default="0.01,0.02",
                        help="winning tolerance(s) in dev-score units, comma-separated; one table each "
                             "(default 0.01,0.02: the study's default, and a wider one at which the recorded grids "
                             "name winning tickets)")
    parser.add_argument("--shapes", default="recorded," + ",".join(SHAPES),
                        help="comma-separated: recorded (the grid as recorded) and shapes of benchmarks.shapes "
                             f"(default: recorded and all: {', '.join(SHAPES)})")
    parser.add_argument("--ray", action="store_true",
                        help="run every search in Ray Tune itself instead of the sequential driver (slow)")
    args = parser.parse_args(argv)
    try:
        tolerances = [float(t) for t in args.match_tolerance.split(",")]
    except ValueError:
        tolerances = []
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    problems = []
    if not tolerances or not all(0 <= t < 1 for t in tolerances):
        problems.append(f"--match-tolerance {args.match_tolerance!r} is not a list of fractions in [0, 1): pass e.g. "
                        "0.01,0.02")
    if args.search_seeds < 1:
        problems.append(f"--search-seeds {args.search_seeds} must be at least 1")
    unknown = [s for s in shapes if s != "recorded" and s not in SHAPES]
    if unknown or not shapes:
        problems.append(f"--shapes {args.shapes!r}: unknown {', '.join(unknown) or 'empty list'}; choose from "
                        f"recorded, {', '.join(SHAPES)}")
    try:
        FLAGS["confidence"].validate(args.confidence)
    except UsageError as err:
        problems.append(str(err))
    grids = []
    if not problems:
        try:
            grids = [(path, RecordedGrid.read(path)) for path in (args.grid or sorted(map(str, DATA.glob("*.json"))))]
        except UsageError as err:
            problems.append(str(err))
    if problems:
        print(f"error: {problems[0]}", file=sys.stderr)
        return 2
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no per-run console tables: only this script's figures
    storage = None
    if args.ray:
        from search.study.local_ray import init_ray  # on 127.0.0.1 only, as a study's own instance

        init_ray(num_cpus=2)
        storage = tempfile.mkdtemp()
    started = time.perf_counter()
    worst: dict = {}
    for path, grid in grids:
        grid_epochs = len(grid.points) * len(grid.seeds) * grid.epochs
        print(f"\ngrid: {path}: {grid.task}, {len(grid.points)} sparsities x {len(grid.seeds)} seeds x {grid.epochs} "
              f"epochs = {grid_epochs} epochs, {len(grid.labels)} dev examples; confidence {args.confidence}")
        bent = {}
        for name in shapes:
            if name == "recorded":
                bent[name] = (grid, None)
            else:
                shaped = shape_grid(grid, SHAPES[name])
                bent[name] = (shaped, measured_curve(shaped))
        for tolerance in tolerances:
            print(f"\ntolerance {tolerance:g}")
            print(f"  {'shape':<13} {'full-grid verdict (floor)':<42} {'strategy':<38} {'agree':>5} {'extra':>5} "
                  f"{'true':>5} {'epochs':>6} {'per run':>9} {'trials':>6}")
            for name, (shaped, truth) in bent.items():
                full = shaped.full_verdict(args.confidence, tolerance)
                floor = floor_epochs(shaped, full, args.confidence, tolerance) / grid_epochs
                about = f"{signature_text(full)} ({floor:.2f})"
                rows = measure(shaped, full, truth, tolerance, args.confidence, args.search_seeds, storage)
                for index, row in enumerate(rows):
                    true = "-" if row.true is None else f"{row.true:.2f}"
                    spread = f"{min(row.fractions):.2f}-{max(row.fractions):.2f}"
                    print(f"  {name if index == 0 else '':<13} {about if index == 0 else '':<42} "
                          f"{row.label:<38} {row.agreement:>5.2f} {row.extra:>5.2f} {true:>5} "
                          f"{np.mean(row.fractions):>6.2f} {spread:>9} {row.trials:>6.1f}", flush=True)
                ours = rows[0]
                key = (Path(path).name, tolerance)
                if key not in worst or (ours.agreement, -np.mean(ours.fractions)) < worst[key][1:]:
                    worst[key] = (name, ours.agreement, -float(np.mean(ours.fractions)))
    print()
    for (name, tolerance), (shape, agree, cost) in worst.items():
        print(f"worst shape for the default search on {name} at tolerance {tolerance:g}: {shape} "
              f"(agreement {agree:.2f} at {-cost:.2f} of the grid's epochs)")
    print(f"({args.search_seeds} search seeds per strategy and shape; agree: same verdict as the full grid; extra: "
          f"names a ticket the full grid does not; true: every named ticket is what it is named as on the shape's "
          f"true curve; epochs: fine-tuning epochs / the full grid's, mean and range; floor: the fewest epochs / the "
          f"grid's in which any search reaches the full grid's verdict with the same tests and looks at every point "
          f"(floor_epochs); target: agree >= 0.9 at <= 0.35 of the grid's epochs; "
          f"{time.perf_counter() - started:.0f} s)")
    if args.ray:
        import ray

        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
