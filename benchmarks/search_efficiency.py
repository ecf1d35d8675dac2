"""Search efficiency: how often a search names the same tickets as the full grid, and at what cost.

    python -m benchmarks.search_efficiency                       # 50 search seeds per strategy
    python -m benchmarks.search_efficiency --search-seeds 10 --grid benchmarks/data/mrpc-structured-grid.json

The grid file (made once by ``benchmarks.record_grid`` with the real trial code on real data) holds every
sparsity of the structured grid x every seed x every epoch with per-example dev predictions. Here a *replay
trainable* returns those numbers as exactly the ``TrialReport`` a real trial would send, and the real searcher
(``search.strategy.searcher.TicketSearch``: Optuna through Ray Tune) and scheduler (``search.strategy.racing.SeedRacingScheduler``)
run over it in Ray Tune, once per search seed. For each strategy it prints:

- agreement: the fraction of runs whose verdict (its kind and the sparsity of every ticket it names) equals the
  verdict computed on the full grid with the same confidence and tolerance;
- epochs: fine-tuning epochs the run consumed (one per report; the dense model's included) divided by the full
  grid's (grid points x seeds x epochs): the mean over runs, and the smallest and largest run ("per run").

A search seed seeds the sampler and also draws the order in which every trial of that run meets the recorded
seeds (they are exchangeable: any order is one a real study could have met), so seed racing is measured over
50 different early seeds, not one lucky or unlucky order.

Strategies: ``verdict`` with seed racing (the default of a study with several seeds), and plain ``tpe`` and
``random`` (every trial runs every seed) given the number of trials nearest to the epochs the verdict search used
on average, so the comparison is at (about) equal cost; the printed epoch fraction is each strategy's own. Trials
run one at a time so every run is reproducible.
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
from search.verdict.report import verdict_lines
from spaces.search_space import TicketSpace
from search.cli.flags import FLAGS
from search.errors import UsageError
from spaces.sparsity import SparsityRange
from trainables.config import TrialConfig, on_grid
from trainables.report import EpochResult, SeedOutcome, TicketFacts, TrialReport
from trainables.tasks import get_task

DEFAULT_GRID = Path(__file__).resolve().parent / "data" / "mrpc-structured-grid.json"


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

    def full_verdict(self, confidence: float, tolerance: float) -> Verdict:
        """The verdict on every grid point with every seed: the reference a search should agree with."""
        tickets = []
        for sparsity in sorted(self.points):
            config = TrialConfig(sparsity, "structured")
            tickets.append(ticket_from_report(f"grid-{sparsity:.2f}", None, config, self.reports(sparsity)[-1],
                                              "FINISHED"))
        return decide(tickets, self.task, confidence, tolerance)


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


def run_search(grid: RecordedGrid, strategy: str, search_seed: int, racing: bool, num_trials: int,
               confidence: float, tolerance: float, storage: str, order: tuple | None = None) -> RunResult:
    """Run one search over the replayed grid in Ray Tune, one trial at a time; return its verdict and cost.

    ``order`` is the order every trial runs the recorded seeds in (default: as recorded)."""
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from search.strategy.racing import SeedRacingScheduler
    from search.strategy.searcher import TicketSearch

    metric = get_task(grid.task).primary_metric
    stop_reasons: dict = {}
    scheduler = SeedRacingScheduler(metric, confidence, tolerance, stop_reasons) if racing else FIFOScheduler()
    searcher = TicketSearch(grid.space, strategy, search_seed, metric, confidence, tolerance,
                            get_task(grid.task).is_regression)
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
    return RunResult(decide(tickets, grid.task, confidence, tolerance), epochs, len(tickets), tickets)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search_efficiency",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", default=str(DEFAULT_GRID), help="recorded grid (benchmarks.record_grid)")
    parser.add_argument("--search-seeds", type=int, default=50, help="runs per strategy (default 50)")
    FLAGS["confidence"].add_to(parser)  # the study's own flag: the same default and range
    parser.add_argument("--match-tolerance", default="0.01,0.02",
                        help="winning tolerance(s) in dev-score units, comma-separated; one table each "
                             "(default 0.01,0.02: the study's default, and a wider one at which the recorded MRPC "
                             "grid names a winning ticket)")
    args = parser.parse_args(argv)
    try:
        tolerances = [float(t) for t in args.match_tolerance.split(",")]
    except ValueError:
        tolerances = []
    problems = []
    if not tolerances or not all(0 <= t < 1 for t in tolerances):
        problems.append(f"--match-tolerance {args.match_tolerance!r} is not a list of fractions in [0, 1): pass e.g. "
                        "0.01,0.02")
    if args.search_seeds < 1:
        problems.append(f"--search-seeds {args.search_seeds} must be at least 1")
    try:
        FLAGS["confidence"].validate(args.confidence)
    except UsageError as err:
        problems.append(str(err))
    if not problems:
        try:
            grid = RecordedGrid.read(args.grid)
        except UsageError as err:
            problems.append(str(err))
    if problems:
        print(f"error: {problems[0]}", file=sys.stderr)
        return 2
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no per-run console tables: only this script's figures
    import ray

    grid_epochs = len(grid.points) * len(grid.seeds) * grid.epochs
    print(f"grid: {args.grid}: {grid.task}, {len(grid.points)} sparsities x {len(grid.seeds)} seeds x {grid.epochs} "
          f"epochs = {grid_epochs} epochs, {len(grid.labels)} dev examples; confidence {args.confidence}")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    tables = []
    with tempfile.TemporaryDirectory() as storage:
        for tolerance in tolerances:
            tables.append((tolerance, _compare(grid, grid_epochs, tolerance, args, storage)))
    ray.shutdown()
    for tolerance, rows in tables:
        print()
        print(f"tolerance {tolerance:g}: {'strategy':<34} {'agreement':>9} {'epochs/grid':>12} {'per run':>10} "
              f"{'trials':>7}")
        for label, agree, fractions, trials, _ in rows:
            spread = f"{min(fractions):.2f}-{max(fractions):.2f}"
            print(f"{'':<{len(f'tolerance {tolerance:g}: ')}}{label:<34} {agree:>9.2f} {np.mean(fractions):>12.2f} "
                  f"{spread:>10} {trials:>7.1f}")
    print(f"({args.search_seeds} search seeds per strategy; target: agreement >= 0.9 at <= 0.30 of the grid's epochs)")
    return 0


def _compare(grid: RecordedGrid, grid_epochs: int, tolerance: float, args, storage: str) -> list[tuple]:
    """Every strategy at one tolerance: print the full-grid verdict and each strategy's figures; return the rows."""
    full = grid.full_verdict(args.confidence, tolerance)
    print(f"\nfull-grid verdict at tolerance {tolerance:g}:")
    for line in verdict_lines(full, get_task(grid.task).primary_metric):
        print("  " + line)
    rows = []

    def measure(label, strategy, racing, trials):
        started, runs = time.perf_counter(), []
        for seed in range(args.search_seeds):
            order = tuple(int(s) for s in np.random.default_rng(seed).permutation(grid.seeds))
            runs.append(run_search(grid, strategy, seed, racing, trials, args.confidence, tolerance, storage, order))
        agree = np.mean([r.verdict.signature() == full.signature() for r in runs])
        fractions = [r.epochs / grid_epochs for r in runs]
        rows.append((label, agree, fractions, np.mean([r.trials for r in runs]), time.perf_counter() - started))
        print(f"{label:<34} agreement {agree:.2f}  epochs {np.mean(fractions):.2f} of the grid's  "
              f"trials {rows[-1][3]:.1f}  ({rows[-1][4]:.0f} s)", flush=True)
        return float(np.mean(fractions))

    ours = measure("verdict search + seed racing", "verdict", True, 4 * len(grid.points))
    same = max(2, round(ours * len(grid.points)))  # the dense point and at least one ticket
    measure(f"TPE, {same} trials, all seeds", "tpe", False, same)
    measure(f"random, {same} trials, all seeds", "random", False, same)
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
