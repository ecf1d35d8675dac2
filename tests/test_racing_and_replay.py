"""Seed racing and the benchmark's replay, through real Ray Tune runs of the real searcher and scheduler."""

import json

import numpy as np
import pytest

from benchmarks.search_efficiency import RecordedGrid, replay_trainable, run_search
from search.strategy.racing import projected_low, race_decision
from search.verdict.statistics import PairedDifference
from trainables.data import load_raw
from trainables.report import TrialReport
from trainables.tasks import get_task

from grids import write_grid


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def grid_file(tmp_path_factory, glue_dir):
    labels = load_raw(get_task("mrpc"), glue_dir)["validation"]["label"]
    # 0.1 is as good as dense (noise only); 0.3 is 20 points worse on every seed: racing must stop it at once.
    return write_grid(tmp_path_factory.mktemp("grid") / "grid.json", labels, {0.1: 0, 0.2: -2, 0.3: -80},
                      seeds=4, epochs=2, noise=10)


def test_racing_futility_test_on_known_intervals():
    def interval(low, high, seeds, confidence=0.95):
        return PairedDifference((low + high) / 2, low, high, confidence, seeds, 408)

    # optimistic final mean -0.008 (top of the 50% interval), final half-width 0.0175 * sqrt(2/5)
    assert projected_low(interval(-0.02, -0.008, 2, 0.5), interval(-0.03, 0.005, 2), 5) == pytest.approx(
        -0.008 - 0.0175 * np.sqrt(2 / 5))
    # the winning test guesses the final mean as the top of the verdict's own interval: -2 + 1.5 * (1 - sqrt(2/5))
    # = -2.95 points cannot clear -1 point after 5 seeds
    assert race_decision(interval(-0.05, -0.02, 2), 5, 0.01).startswith(
        "raced: cannot be a winning ticket after 5 seeds: after 2 its difference is")
    # a mean of -1.25 points, yet an optimistic final interval still reaches -0.61 points: it runs on (a guess from
    # the 50% interval's top, -0.8 - 1.1 = -1.9, would stop a ticket that 3 more seeds may well show winning)
    assert race_decision(interval(-0.03, 0.005, 2), 5, 0.01) is None
    # one seed says nothing about seed noise; after the last seed the verdict decides
    assert race_decision(interval(-0.35, -0.15, 1), 5, 0.01) is None
    assert race_decision(interval(-0.35, -0.15, 5), 5, 0.01) is None
    # a wider tolerance keeps it
    assert race_decision(interval(-0.05, -0.02, 2), 5, 0.03) is None


def test_replay_trainable_returns_exactly_the_recorded_numbers(ray_local, grid_file, tmp_path):
    from ray import tune

    grid = RecordedGrid.load(grid_file)
    recorded = json.loads(grid_file.read_text())
    results = tune.Tuner(tune.with_parameters(replay_trainable, grid=grid),
                         param_space={"sparsity": 0.2},
                         run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0)).fit()
    history = results[0].metrics_dataframe
    reports = [TrialReport.from_tune(row) for row in history.to_dict("records")]
    point = next(p for p in recorded["points"] if p["sparsity"] == 0.2)
    dense = next(p for p in recorded["points"] if p["sparsity"] == 0.0)
    expected = [(int(seed), e) for seed, epochs in point["seeds"].items() for e in epochs]
    assert len(reports) == len(expected) == 4 * 2
    for report, (seed, epoch) in zip(reports, expected):
        assert (report.seed, report.epoch) == (seed, epoch["epoch"])
        assert report.current.dev_score == epoch["dev_score"] and report.current.train_loss == epoch["train_loss"]
        assert report.current.predictions == epoch["predictions"]
    last = reports[-1]
    assert last.complete and [s.seed for s in last.finished] == [0, 1, 2, 3]
    for outcome in last.finished:
        assert outcome.predictions == point["seeds"][str(outcome.seed)][-1]["predictions"]
        assert outcome.dense_predictions == dense["seeds"][str(outcome.seed)][-1]["predictions"]
    assert last.labels == recorded["labels"]


def test_racing_stops_a_clearly_worse_sparsity_after_fewer_seeds_than_a_close_one(ray_local, grid_file, tmp_path):
    grid = RecordedGrid.load(grid_file)
    result = run_search(grid, "grid", 0, racing=True, num_trials=10, confidence=0.95, tolerance=0.01,
                        storage=str(tmp_path))
    by_sparsity = {t.sparsity: t for t in result.verdict_tickets}
    assert len(by_sparsity[0.3].seed_scores) == 2 and by_sparsity[0.3].status == "KILLED"  # the earliest it can
    assert by_sparsity[0.3].status_reason.startswith("raced: cannot be a winning ticket after 4 seeds")
    assert len(by_sparsity[0.1].seed_scores) == 4 and by_sparsity[0.1].status == "FINISHED"
    # 0.2 is half a point worse on every seed: with no seed noise its interval stays as wide as dev sampling
    # makes it (about +-1.6 points on 408 examples). It cannot clear -1 point, but the top of that interval is
    # above dense, so the winning test runs all its seeds and the verdict, not racing, says it is not winning
    assert len(by_sparsity[0.2].seed_scores) == 4 and by_sparsity[0.2].status == "FINISHED"
    assert by_sparsity[0.2].difference.low < -0.01 < by_sparsity[0.2].difference.high
    assert result.epochs == (3 * 4 + 2) * 2  # dense, 0.1 and 0.2 ran 4 seeds x 2 epochs; 0.3 two seeds
