"""Search bookkeeping: early-stopped trials are PRUNED in Optuna, KILLED in MLflow; the super-ticket verdict."""

import optuna
import pytest

from search.analysis import TicketResult, find_super_ticket
from search.optuna_search import PruningAwareOptunaSearch
from search.report import verdict_line
from search.tracking import resolve_tracking_uri, trial_status
from spaces.search_space import TicketSpace
from spaces.sparsity import SparsityRange


def _searcher():
    space = TicketSpace(SparsityRange(0.0, 0.5, 0.05))
    searcher = PruningAwareOptunaSearch(space, metric="dev_score", mode="max",
                                        sampler=optuna.samplers.TPESampler(seed=0),
                                        points_to_evaluate=[space.dense_point()])
    return searcher


def test_dense_point_comes_first_and_stopped_trials_are_pruned():
    searcher = _searcher()
    first = searcher.suggest("a")
    assert first == {"sparsity": 0.0, "method": "structured", "control": "good", "rewind": "pretrained"}
    second = searcher.suggest("b")
    assert 0.0 <= second["sparsity"] <= 0.5 and round(second["sparsity"] / 0.05, 6) % 1 == 0  # on the grid
    for trial_id in ("a", "b"):
        searcher.on_trial_result(trial_id, {"dev_score": 0.6, "training_iteration": 1})
    searcher.on_trial_complete("a", {"dev_score": 0.7, "training_iteration": 3, "planned_epochs": 3})
    searcher.on_trial_complete("b", {"dev_score": 0.6, "training_iteration": 1, "planned_epochs": 3})
    states = [t.state for t in searcher.optuna_study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]


def test_mlflow_status_of_each_ending():
    assert trial_status({"training_iteration": 3, "planned_epochs": 3}, errored=False) == "FINISHED"
    assert trial_status({"training_iteration": 1, "planned_epochs": 3}, errored=False) == "KILLED"
    assert trial_status(None, errored=True) == "FAILED"


def _ticket(trial_id, sparsity, score, status="FINISHED", std=0.0):
    heads = 72 - int(sparsity * 72)
    return TicketResult(trial_id, f"run-{trial_id}", sparsity, "pretrained", status, heads_kept=heads, total_heads=72,
                        ffn_kept=6 - int(sparsity * 6), total_ffn=6, head_sparsity=1 - heads / 72,
                        ffn_sparsity=int(sparsity * 6) / 6, dev_score=score, dev_std=std, seed_scores={0: score},
                        epochs=3)


def test_super_ticket_is_the_best_ticket_above_dense():
    tickets = [_ticket("d", 0.0, 0.60), _ticket("a", 0.1, 0.63), _ticket("b", 0.3, 0.65),
               _ticket("c", 0.5, 0.55), _ticket("k", 0.2, 0.90, status="KILLED")]
    verdict = find_super_ticket(tickets)
    assert verdict.dense.trial_id == "d"
    assert verdict.super_ticket.trial_id == "b"  # the killed trial's truncated score does not compete
    assert verdict.winning_ticket.trial_id == "b"
    assert "Super ticket: structured (good) at sparsity 0.30 (51/72 heads, 5/6 FFN kept)" in verdict_line(verdict, "accuracy")
    assert "run-b" in verdict_line(verdict, "accuracy")


def test_without_a_better_ticket_the_sparsest_matching_one_is_named():
    tickets = [_ticket("d", 0.0, 0.60, std=0.02), _ticket("a", 0.1, 0.59), _ticket("b", 0.4, 0.585),
               _ticket("c", 0.5, 0.50)]
    verdict = find_super_ticket(tickets)
    assert verdict.super_ticket is None
    assert verdict.winning_ticket.trial_id == "b"  # within one seed-std of dense, and the sparsest
    assert verdict_line(verdict, "accuracy").startswith("No ticket beats the dense model")
    assert find_super_ticket([_ticket("a", 0.1, 0.5)]).dense is None


@pytest.mark.parametrize("given,expected", [("sqlite:///x.db", "sqlite:////ABS/x.db"),
                                            ("sqlite:////tmp/y.db", "sqlite:////tmp/y.db"),
                                            ("http://127.0.0.1:5000", "http://127.0.0.1:5000")])
def test_tracking_uri_is_absolute(tmp_path, monkeypatch, given, expected):
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri(given) == expected.replace("/ABS", str(tmp_path))


def test_each_grid_point_runs_once_and_the_search_ends_when_all_are_tried():
    space = TicketSpace(SparsityRange(0.0, 0.2, 0.05))  # 5 points: 0, .05, .1, .15, .2
    searcher = PruningAwareOptunaSearch(space, metric="dev_score", mode="max",
                                        sampler=optuna.samplers.TPESampler(seed=0),
                                        points_to_evaluate=[space.dense_point()])
    seen = []
    for i in range(8):
        config = searcher.suggest(str(i))
        if config == searcher.FINISHED:
            break
        seen.append(round(config["sparsity"], 6))
        searcher.on_trial_result(str(i), {"dev_score": 0.5, "training_iteration": 1})
        searcher.on_trial_complete(str(i), {"dev_score": 0.5, "training_iteration": 1, "planned_epochs": 1})
    assert sorted(seen) == [0.0, 0.05, 0.1, 0.15, 0.2] and seen[0] == 0.0
    completed = [t for t in searcher.optuna_study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(round(t.params["sparsity"], 6) for t in completed) == sorted(seen)  # Optuna saw what ran
