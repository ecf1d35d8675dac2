"""Shaped grids: the recorded MRPC grid's real noise bent into curves whose truth is known (benchmarks.shapes)."""

import numpy as np
import pytest

from benchmarks.search_efficiency import DEFAULT_GRID, RecordedGrid
from benchmarks.shapes import SHAPES, measured_curve, shape_grid
from trainables.config import on_grid


@pytest.fixture(scope="module")
def grid():
    return RecordedGrid.load(DEFAULT_GRID)


def _per_seed(grid):
    labels = np.asarray(grid.labels)
    dense = {s: (np.asarray(grid.points[0.0]["seeds"][s][-1]["predictions"]) == labels).mean() for s in grid.seeds}
    return {sparsity: np.array([(np.asarray(p["seeds"][s][-1]["predictions"]) == labels).mean() - dense[s]
                                for s in grid.seeds]) for sparsity, p in grid.points.items()}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_shaped_grid_has_the_curve_it_claims_and_keeps_the_recorded_noise(grid, name):
    shaped = shape_grid(grid, SHAPES[name])
    n, labels = len(grid.labels), np.asarray(grid.labels)
    truth = SHAPES[name].curve(sorted(grid.points))
    measured = measured_curve(shaped)
    for sparsity, value in truth.items():  # the injected mean, to within one dev example
        assert measured[sparsity] == pytest.approx(value, abs=1 / n), sparsity
    before, after = _per_seed(grid), _per_seed(shaped)
    for sparsity in grid.points:  # each seed keeps its recorded deviation from the mean (whole examples)
        assert np.abs((after[sparsity] - after[sparsity].mean()) - (before[sparsity] - before[sparsity].mean())).max() \
            <= 1 / n + 1e-12
    assert shaped.points[0.0] == grid.points[0.0]  # the dense model is never changed
    for sparsity, point in shaped.points.items():
        for seed, epochs in point["seeds"].items():
            for record, old in zip(epochs, grid.points[sparsity]["seeds"][seed]):
                predictions = np.asarray(record["predictions"])
                assert set(np.unique(predictions)) <= set(np.unique(labels))
                assert record["dev_score"] == pytest.approx((predictions == labels).mean())
                moved = (predictions != np.asarray(old["predictions"])).sum()  # only what the shape needs moves
                assert moved <= abs(round((truth[sparsity] - before[sparsity].mean()) * n)) + 1


def test_shapes_are_what_their_names_say(grid):
    sparsities = sorted(grid.points)
    curve = {name: shape.curve(sparsities) for name, shape in SHAPES.items()}
    assert set(curve["flat"].values()) == {0.0}
    assert all(a > b for a, b in zip(list(curve["decline"].values())[1:], list(curve["decline"].values())[2:]))
    assert [s for s, v in curve["super-near"].items() if v > 0] == sparsities[1:3]
    far = [s for s, v in curve["super-far"].items() if v > 0]
    assert far and max(far) < min(s for s, v in curve["super-far"].items() if v < 0)  # just before the drop
    assert len([v for v in curve["super-narrow"].values() if v > 0]) == 1
    assert len([v for v in curve["super-wide"].values() if v > 0]) >= 4
    dip = [s for s, v in curve["dip"].items() if v < 0]
    assert dip[0] < dip[1] and curve["dip"][on_grid(dip[0] + grid.step)] == 0.0  # worse, then tied again: not monotone


@pytest.mark.parametrize("grid_file, expected", [("/no/such/grid.json", "grid file /no/such/grid.json not found"),
                                                 ("README.md", "is not a grid written by benchmarks.record_grid")])
def test_a_bad_grid_file_is_one_line_and_exit_2(grid_file, expected, capsys, monkeypatch):
    from pathlib import Path

    from benchmarks.shapes import main

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert main(["--grid", grid_file]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err
