"""Seed racing and the benchmark's replay, through real Ray Tune runs of the real searcher and scheduler."""

import json

import numpy as np
import pytest

from benchmarks.search_efficiency import RecordedGrid, replay_trainable, run_search
from search.racing import race_decision
from search.statistics import PairedDifference
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


def test_race_decision_rules():
    worse = PairedDifference(-0.05, -0.08, -0.02, 0.95, 2, 408)
    close = PairedDifference(-0.005, -0.02, 0.01, 0.95, 2, 408)
    not_better = PairedDifference(-0.004, -0.008, -0.001, 0.95, 2, 408)
    assert race_decision(worse, 0.01, None, 0.3).startswith("raced: worse than dense by more than 1 points")
    assert race_decision(close, 0.01, None, 0.3) is None
    assert race_decision(not_better, 0.01, None, 0.3) is None  # within the tolerance: might still win
    assert "already a winning ticket" in race_decision(not_better, 0.01, 0.4, 0.3)  # a sparser one won already
    assert race_decision(not_better, 0.01, 0.2, 0.3) is None  # the winner is less sparse: this one may beat it


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
    assert len(by_sparsity[0.3].seed_scores) == 1 and by_sparsity[0.3].status == "KILLED"
    assert by_sparsity[0.3].status_reason.startswith("raced: worse than dense")
    assert len(by_sparsity[0.1].seed_scores) == 4 and by_sparsity[0.1].status == "FINISHED"
    assert result.epochs == (3 * 4 + 1) * 2  # three trials ran 4 seeds x 2 epochs; the stopped one one seed
