"""The default search on replayed grids: it finds a planted super ticket, stops early on a flat curve, never names
what the full grid would not, says what it left untested, and runs the same in Ray Tune as in the benchmark's
driver."""

from dataclasses import replace

import numpy as np
import pytest

from benchmarks.search_efficiency import (DEFAULT_GRID, RecordedGrid, claims_hold, drive, extra_names, floor_epochs,
                                          run_search)
from benchmarks.shapes import SHAPES, measured_curve, shape_grid
from search.verdict.analysis import decide, ticket_from_report
from search.verdict.report import verdict_lines, verdict_tags
from tests.grids import write_grid
from trainables.config import TrialConfig
from trainables.data import load_raw
from trainables.tasks import get_task

SPARSITIES = [round(0.05 * i, 2) for i in range(1, 13)]


@pytest.fixture(scope="module")
def labels(glue_dir):
    return load_raw(get_task("mrpc"), glue_dir)["validation"]["label"]


def _grid(tmp_path_factory, labels, differences, noise=10):
    path = write_grid(tmp_path_factory.mktemp("grid") / "grid.json", labels, differences, seeds=4, epochs=2,
                      noise=noise)
    return RecordedGrid.load(path)


@pytest.fixture(scope="module")
def planted(tmp_path_factory, labels):
    """Ties up to 0.3, a super ticket at 0.35 (30 more dev pairs right on every seed: +7 points), then 10 points
    worse from 0.4 on."""
    return _grid(tmp_path_factory, labels, {s: 30 if s == 0.35 else (-40 if s >= 0.4 else 0) for s in SPARSITIES})


@pytest.fixture(scope="module")
def flat(tmp_path_factory, labels):
    return _grid(tmp_path_factory, labels, {s: 0 for s in SPARSITIES})


def _grid_epochs(grid):
    return len(grid.points) * len(grid.seeds) * grid.epochs


def test_the_search_finds_a_planted_super_ticket_at_a_fraction_of_the_grid(planted):
    full = planted.full_verdict(0.95, 0.01)
    assert full.kind == "super" and full.best_super.sparsity == full.sparsest_super.sparsity == 0.35
    run = drive(planted, "verdict", 0, True, 60, 0.95, 0.01)
    assert run.verdict.signature() == full.signature()
    by_sparsity = {t.sparsity: t for t in run.verdict_tickets}
    assert by_sparsity[0.35].complete and len(by_sparsity[0.35].seed_scores) == 4
    screened = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6)
    assert all(len(by_sparsity[s].seed_scores) == 1 for s in screened)  # each stopped after one seed
    assert by_sparsity[0.2].status_reason.startswith("screened: cannot be a super ticket")
    assert run.epochs < 0.5 * _grid_epochs(planted)
    # the floor: dense and the super ticket with all 4 seeds, one seed at each point but 0.05, which ends the
    # sequence and runs until racing stops it (here it cannot: all 4 seeds); 2 epochs a seed
    assert floor_epochs(planted, full, 0.95, 0.01) == 2 * (4 + 4 + 10 + 4) <= run.epochs
    # one-seed intervals leave out seed noise, so 0.4 and 0.45 (10 points worse) do not cut the rest off
    assert run.verdict.untested[0].never == () and run.verdict.untested[0].screened == screened
    sentence = verdict_lines(run.verdict, "accuracy")[-1]
    assert sentence == ("Untested on the structured curve: 0.10-0.30, 0.40-0.60 stopped after their first seeds as "
                        "unable to be super tickets (not tested as winning tickets).")
    assert verdict_tags(run.verdict, verdict_lines(run.verdict, "accuracy"))["verdict.untested"] == sentence


def test_what_was_never_run_is_said_and_ends_the_winning_sequence(planted):
    run = drive(planted, "verdict", 0, True, 4, 0.95, 0.01)  # a cap of 4 trials: dense, 0.05, 0.1, 0.15
    assert run.verdict.untested[0].never == tuple(SPARSITIES[3:])
    assert verdict_lines(run.verdict, "accuracy")[-1].startswith(
        "Untested on the structured curve: 0.20-0.60 untested (never run): a super or winning ticket there is not "
        "ruled out")


def test_the_search_stops_early_on_a_flat_curve_and_names_no_super_ticket(flat):
    full = flat.full_verdict(0.95, 0.01)
    run = drive(flat, "verdict", 0, True, 60, 0.95, 0.01)
    assert run.verdict.signature() == full.signature() and run.verdict.best_super is None
    assert run.epochs <= 0.4 * _grid_epochs(flat)
    assert "verdict.untested" in verdict_tags(run.verdict, verdict_lines(run.verdict, "accuracy"))


@pytest.mark.parametrize("tolerance", [0.01, 0.02])
def test_on_shaped_real_grids_the_search_names_only_what_the_full_grid_names_and_what_is_true(tolerance):
    grid = RecordedGrid.load(DEFAULT_GRID)
    for name, shape in SHAPES.items():
        shaped = shape_grid(grid, shape)
        full, truth = shaped.full_verdict(0.95, tolerance), measured_curve(shaped)
        for search_seed in range(2):
            order = tuple(int(s) for s in np.random.default_rng(search_seed).permutation(grid.seeds))
            run = drive(shaped, "verdict", search_seed, True, 60, 0.95, tolerance, order)
            assert not extra_names(run.verdict, full), (name, search_seed)
            assert claims_hold(run.verdict, truth, tolerance), (name, search_seed)


def test_a_gap_in_the_grid_ends_the_winning_sequence(tmp_path_factory, labels):
    same = _grid(tmp_path_factory, labels, {s: 0 for s in SPARSITIES}, noise=1)  # every ticket within a point
    tickets = [ticket_from_report(f"t{s}", None, TrialConfig(s), same.reports(s)[-1], "FINISHED")
               for s in sorted(same.points) if s != 0.1]
    assert decide(tickets, "mrpc").winning.sparsity == 0.6  # without the grid: the tested tickets are the sequence
    verdict = decide(tickets, "mrpc", grid=same.configs)
    assert verdict.winning.sparsity == 0.05 and verdict.untested[0].gap == 0.1
    assert "the winning sequence stops at the untested 0.10" in verdict_lines(verdict, "accuracy")[-1]


def test_the_benchmark_driver_and_ray_tune_run_the_same_search(planted, tmp_path):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        tune = run_search(planted, "verdict", 0, True, 60, 0.95, 0.01, str(tmp_path), (2, 0, 3, 1))
    finally:
        ray.shutdown()
    direct = drive(planted, "verdict", 0, True, 60, 0.95, 0.01, (2, 0, 3, 1))
    assert tune.verdict.signature() == direct.verdict.signature() and tune.epochs == direct.epochs

    def ran(run):
        return sorted((t.sparsity, t.status, len(t.seed_scores), t.status_reason) for t in run.verdict_tickets)
    assert ran(tune) == ran(direct)


def _regression_grid() -> RecordedGrid:
    rng = np.random.default_rng(0)
    labels = rng.uniform(0, 5, 300)
    dense = {seed: labels + rng.normal(0, 1.5, 300) for seed in range(3)}
    points = {}
    for sparsity in [0.0, *SPARSITIES]:
        seeds = {}
        for seed in range(3):
            final = dense[seed] if sparsity == 0 else dense[seed] + rng.normal(0, 0.6, 300)
            seeds[seed] = [{"epoch": e, "dev_score": 0.0, "train_loss": 1.0, "predictions": (final + 0.1 * (2 - e)).tolist()}
                           for e in (1, 2)]
        points[sparsity] = {"counts": {"achieved_sparsity": sparsity}, "seeds": seeds}
    return RecordedGrid("stsb", (0, 1, 2), 2, labels.tolist(), points, 0.05)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_shaped_regression_grid_has_the_pearson_curve_it_claims(name):
    grid = _regression_grid()
    shaped = shape_grid(grid, SHAPES[name])
    truth = SHAPES[name].curve(sorted(grid.points))
    measured = measured_curve(shaped)
    for sparsity, value in truth.items():
        assert measured[sparsity] == pytest.approx(value, abs=1e-3), sparsity
    assert shaped.points[0.0] == grid.points[0.0]
    before = measured_curve(replace(grid))
    labels = np.asarray(grid.labels)
    for sparsity in SPARSITIES:  # each seed keeps its recorded deviation from the mean
        def per_seed(g):
            dense = [np.corrcoef(g.points[0.0]["seeds"][s][-1]["predictions"], labels)[0, 1] for s in g.seeds]
            return np.array([np.corrcoef(g.points[sparsity]["seeds"][s][-1]["predictions"], labels)[0, 1] - dense[s]
                             for s in g.seeds])
        old, new = per_seed(grid), per_seed(shaped)
        assert np.allclose(new - new.mean(), old - old.mean(), atol=2e-3)
        assert new.mean() == pytest.approx(truth[sparsity], abs=1e-3) and before[sparsity] != truth[sparsity]


@pytest.mark.parametrize("argv, expected", [(["--shapes", "bogus"], "--shapes 'bogus': unknown bogus"),
                                            (["--search-seeds", "0"], "--search-seeds 0 must be at least 1"),
                                            (["--match-tolerance", "5"], "is not a list of fractions")])
def test_the_benchmark_refuses_bad_input_in_one_line(argv, expected, capsys):
    from benchmarks.search_efficiency import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err


def test_the_adaptive_error_simulation_counts_false_claims_against_the_true_curve(planted):
    from benchmarks.adaptive_error import error_rates, world

    drawn = world(planted, np.random.default_rng(0))
    assert len(drawn.labels) == len(planted.labels) and drawn.seeds == (0, 1, 2, 3)
    truth = {s: 0.0 for s in planted.points}  # pretend the planted super ticket is a tie: naming it is false
    wrong = error_rates(planted, truth, 3, 0.95, 0.01)
    assert wrong["grid"] == 3 and 2 <= wrong["search"] <= 3  # +7 points on every seed: (almost) every world names it
    right = error_rates(planted, measured_curve(planted), 3, 0.95, 0.01)
    assert right == {"grid": 0, "search": 0}
