"""The verdict search's choice of grid points: dense first, the winning sequence in order, screens past its end."""

from search.strategy.policy import FINISHED, Outcome, VerdictPolicy
from search.verdict.statistics import PairedDifference
from spaces.search_space import TicketSpace
from spaces.sparsity import SparsityRange


def _outcome(space, sparsity, low, status="complete", control="good"):
    params = {"sparsity": sparsity, **({"control": control} if len(space.control) > 1 else {})}
    return Outcome(params, space.config(params), status,
                   PairedDifference(low + 0.01, low, low + 0.02, 0.95, 5, 408))


def _run(policy, space, truth, seeds_stopped=None):
    """Drive ``policy`` one trial at a time against ``truth`` (sparsity -> (low, status)); return the points tried
    and their purposes."""
    outcomes = [_outcome(space, 0.0, 0.0)]
    tried = []
    while (point := policy.next_point(outcomes, [])) != FINISHED:
        s = point["sparsity"]
        tried.append((s, policy.purpose(space.config(point))))
        low, status = truth(s)
        outcomes.append(_outcome(space, s, low, status=status))
    return tried


def test_dense_first_then_the_winning_sequence_in_order_then_screens_past_its_end():
    space = TicketSpace(SparsityRange(0.0, 0.6, 0.05))
    policy = VerdictPolicy(space, tolerance=0.01)
    assert policy.next_point([], []) == {"sparsity": 0.0}
    assert policy.next_point([], [{"sparsity": 0.0}]) is None  # waits for the dense trial
    winning = {0.05, 0.1, 0.15, 0.2, 0.25}  # the truth: tickets up to 0.25 are winning, then they fall away

    def truth(s):
        return (0.0, "complete") if s in winning else (-0.03, "screened" if s > 0.3 else "stopped")
    tried = _run(policy, space, truth)
    assert tried[:6] == [(s, "sequence") for s in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)]  # the grid's own tests
    assert all(purpose == "screen" for _, purpose in tried[6:])  # then every point past the end, as a screen
    assert [s for s, _ in tried[6:]] == [0.35]  # 0.3 and 0.35 both shown worse than dense: the sparser are skipped


def test_a_running_sequence_ticket_does_not_hold_up_the_next_one():
    space = TicketSpace(SparsityRange(0.0, 0.6, 0.05))
    policy = VerdictPolicy(space, tolerance=0.01)
    outcomes = [_outcome(space, 0.0, 0.0)]
    assert policy.next_point(outcomes, [{"sparsity": 0.05}]) == {"sparsity": 0.1}  # needed if 0.05 passes


def test_the_bisect_strategy_bisects_for_the_boundary():
    space = TicketSpace(SparsityRange(0.0, 0.6, 0.05))
    policy = VerdictPolicy(space, tolerance=0.01, screen=False)
    winning = {0.05, 0.1, 0.15, 0.2, 0.25}
    tried = _run(policy, space, lambda s: (0.0, "complete") if s in winning else (-0.08, "stopped"))
    assert tried[0] == (0.3, "sequence")  # the middle of [0, 0.65)
    assert 0.25 in dict(tried) and len(tried) <= 5  # bisection, not the 12-point grid


def test_a_failed_dense_trial_ends_the_search():
    space = TicketSpace(SparsityRange(0.0, 0.6, 0.05))
    policy = VerdictPolicy(space, tolerance=0.01)
    assert policy.next_point([_outcome(space, 0.0, 0.0, status="failed")], []) == FINISHED


def test_controls_run_where_the_good_ticket_finished():
    space = TicketSpace(SparsityRange(0.3, 0.3, 0.05), control=("good", "random", "bad"))
    policy = VerdictPolicy(space, tolerance=0.01)
    dense = policy.next_point([], [])
    assert dense == {"sparsity": 0.0, "control": "good"}
    outcomes = [_outcome(space, 0.0, 0.0)]
    assert policy.next_point(outcomes, []) == {"sparsity": 0.3, "control": "good"}
    outcomes.append(_outcome(space, 0.3, -0.005))
    controls = []
    while (point := policy.next_point(outcomes, [])) != FINISHED:
        controls.append(point["control"])
        outcomes.append(_outcome(space, 0.3, -0.1, control=point["control"]))
    assert sorted(controls) == ["bad", "random"]


def test_bisection_moves_below_a_losing_ticket_less_sparse_than_a_winning_one():
    """The verdict's winning sequence ends at the least sparse losing ticket, so a winner beyond it does not
    count: the bisect strategy bisects between the dense model and that losing ticket."""
    space = TicketSpace(SparsityRange(0.0, 0.6, 0.05))
    policy = VerdictPolicy(space, tolerance=0.01, screen=False)
    outcomes = [_outcome(space, 0.0, 0.0), _outcome(space, 0.3, 0.0), _outcome(space, 0.2, -0.05)]
    assert policy.next_point(outcomes, []) == {"sparsity": 0.1}  # the middle of (0, 0.2)
    outcomes += [_outcome(space, 0.1, 0.0), _outcome(space, 0.15, -0.05)]
    assert policy.next_point(outcomes, []) == FINISHED  # 0.1 wins, 0.15 loses: settled, 0.3 does not count


def test_a_super_ticket_past_the_end_is_screened_and_one_inside_the_sequence_is_not_missed():
    space = TicketSpace(SparsityRange(0.0, 0.6, 0.05))
    policy = VerdictPolicy(space, tolerance=0.01)

    def truth(s):  # the sequence ends at 0.1; a super ticket at 0.4; worse than dense from 0.5 on
        if s == 0.05:
            return 0.01, "complete"
        if s == 0.4:
            return 0.01, "complete"
        return (-0.04, "screened") if s >= 0.5 else (-0.015, "screened" if s > 0.1 else "stopped")
    tried = dict(_run(policy, space, truth))
    assert tried[0.05] == "sequence" and tried[0.1] == "sequence" and tried[0.4] == "screen"
    assert set(tried) == {0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55}  # 0.6 past the cut-off


def test_a_dense_model_that_learned_nothing_ends_the_search(glue_dir):
    """The guard of the verdict, applied by the searcher: a dense trial that predicts the majority class on every
    seed names no ticket, so no ticket is worth training (the grid strategy still tries every point)."""
    import numpy as np

    from search.strategy.searcher import TicketSearch
    from trainables.data import load_raw
    from trainables.report import EpochResult, SeedOutcome, TicketFacts, TrialReport
    from trainables.tasks import get_task

    labels = np.array(load_raw(get_task("mrpc"), glue_dir)["validation"]["label"])
    space = TicketSpace(SparsityRange(0.0, 0.6, 0.05))

    def dense_report(predictions):
        finished = [SeedOutcome(s, float((predictions == labels).mean()), predictions.tolist(),
                                float((predictions == labels).mean()), predictions.tolist(), [0.6]) for s in (0, 1)]
        return TrialReport(1, 1, 1, (0, 1), EpochResult(1, finished[-1].dev_score, {}, 0.6, predictions.tolist()),
                           finished, labels.tolist(), TicketFacts({"achieved_sparsity": 0.0})).to_tune()

    majority = np.full_like(labels, np.bincount(labels).argmax())
    learnt = labels.copy()
    learnt[:60] = 1 - learnt[:60]  # 85 % accuracy against 68 % for the majority class
    for strategy in ("verdict", "tpe", "grid"):
        for predictions, expected in ((majority, "not_learned"), (learnt, "complete")):
            search = TicketSearch(space, strategy, 0, "accuracy", 0.95, 0.01)
            assert search.suggest("dense")["sparsity"] == 0.0
            search.on_trial_complete("dense", dense_report(predictions))
            assert search.outcomes[0].status == expected
            next_config = search.suggest("next")
            if expected == "not_learned" and strategy != "grid":
                assert next_config == "FINISHED"
            else:
                assert isinstance(next_config, dict) and next_config["sparsity"] > 0
