"""The paired interval and the verdict, on real dev labels (MRPC, CoLA) with hand-made prediction sets."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score, matthews_corrcoef

from search.verdict.analysis import TicketResult, decide
from search.verdict.report import phase_transition_plot, trial_table, verdict_lines
from search.verdict.statistics import batched_metric, majority_predictions, paired_difference
from trainables.config import TrialConfig
from trainables.data import load_raw
from trainables.tasks import get_task


@pytest.fixture(scope="module")
def mrpc_labels(glue_dir):
    return np.array(load_raw(get_task("mrpc"), glue_dir)["validation"]["label"])  # 408 real dev labels


def _flip(labels, wrong, rng):
    """Predictions that are wrong on exactly ``wrong`` of the examples (chosen at random)."""
    predictions = labels.copy()
    index = rng.choice(len(labels), wrong, replace=False)
    predictions[index] = 1 - predictions[index]
    return predictions


def test_batched_metrics_equal_scikit_learn_and_scipy(mrpc_labels):
    rng = np.random.default_rng(0)
    sets = np.stack([_flip(mrpc_labels, k, rng) for k in (10, 60, 150)])
    assert batched_metric("accuracy", sets, mrpc_labels) == pytest.approx([(s == mrpc_labels).mean() for s in sets])
    assert batched_metric("f1", sets, mrpc_labels) == pytest.approx([f1_score(mrpc_labels, s) for s in sets])
    assert batched_metric("mcc", sets, mrpc_labels) == pytest.approx([matthews_corrcoef(mrpc_labels, s) for s in sets])
    scores = rng.normal(size=(2, 50))
    gold = rng.normal(size=50)
    assert batched_metric("pearson", scores, gold) == pytest.approx([stats.pearsonr(s, gold)[0] for s in scores])


def test_one_seed_interval_matches_the_direct_paired_computation(mrpc_labels):
    """With one seed the interval is over dev examples only: it must agree with the normal approximation of a
    paired difference of accuracies, mean(d) +- 1.96 sd(d) / sqrt(n) with d = correct(ticket) - correct(dense)."""
    rng = np.random.default_rng(1)
    dense = _flip(mrpc_labels, 80, rng)
    ticket = dense.copy()
    ticket[:60] = mrpc_labels[:60]  # fixes the dense model's mistakes among the first 60 examples
    ticket[300:320] = 1 - mrpc_labels[300:320]  # and makes 20 new ones
    d = (ticket == mrpc_labels).astype(float) - (dense == mrpc_labels)
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    result = paired_difference("accuracy", ticket[None], dense[None], mrpc_labels, 0.95, resamples=4000)
    assert result.mean == pytest.approx(d.mean(), abs=1e-12)
    assert result.low == pytest.approx(d.mean() - half, abs=0.004)
    assert result.high == pytest.approx(d.mean() + half, abs=0.004)
    assert (result.seeds, result.examples) == (1, 408)
    again = paired_difference("accuracy", ticket[None], dense[None], mrpc_labels, 0.95, resamples=4000)
    assert again == result  # seeded: the same predictions always give the same interval


def test_seed_noise_widens_the_interval(mrpc_labels):
    """Two seeds that disagree (one +5 points, one -5) give a mean near 0 and a wider interval than either
    seed alone would over the examples: the seed is resampled too."""
    rng = np.random.default_rng(2)
    dense = np.stack([_flip(mrpc_labels, 80, rng), _flip(mrpc_labels, 80, rng)])
    ticket = dense.copy()
    wrong0 = np.flatnonzero(dense[0] != mrpc_labels)[:20]
    ticket[0, wrong0] = mrpc_labels[wrong0]
    right1 = np.flatnonzero(dense[1] == mrpc_labels)[:20]
    ticket[1, right1] = 1 - mrpc_labels[right1]
    both = paired_difference("accuracy", ticket, dense, mrpc_labels)
    alone = paired_difference("accuracy", ticket[:1], dense[:1], mrpc_labels)
    assert both.mean == pytest.approx(0.0)
    assert both.high - both.low > alone.high - alone.low


def _ticket(trial_id, sparsity, predictions, dense, labels, control="good", status="FINISHED"):
    seeds = range(len(predictions))
    return TicketResult(trial_id, f"run-{trial_id}", TrialConfig(sparsity, control=control), status,
                        facts={"achieved_sparsity": sparsity, "heads_kept": 72 - int(sparsity * 72), "total_heads": 72,
                               "ffn_kept": 6 - int(sparsity * 6), "total_ffn": 6},
                        seed_scores={s: float((predictions[s] == labels).mean()) for s in seeds},
                        dense_scores={s: float((dense[s] == labels).mean()) for s in seeds}, planned_seeds=len(predictions),
                        predictions={s: predictions[s].tolist() for s in seeds},
                        dense_predictions={s: dense[s].tolist() for s in seeds}, labels=labels.tolist())


def _fix(dense, labels, count):
    """Each seed's dense predictions with ``count`` of its mistakes corrected."""
    better = dense.copy()
    for s in range(len(dense)):
        wrong = np.flatnonzero(dense[s] != labels)[:count]
        better[s, wrong] = labels[wrong]
    return better


def _break(dense, labels, count):
    """Each seed's predictions with ``count`` correct ones made wrong (the last ones, so as not to undo ``_fix``)."""
    worse = dense.copy()
    for s in range(len(dense)):
        right = np.flatnonzero(dense[s] == labels)[-count:]
        worse[s, right] = 1 - labels[right]
    return worse


@pytest.fixture(scope="module")
def dense5(mrpc_labels):
    rng = np.random.default_rng(3)
    return np.stack([_flip(mrpc_labels, 85, rng) for _ in range(5)])  # ~0.79 accuracy, 5 seeds


def test_better_on_every_seed_but_within_noise_is_not_super(mrpc_labels, dense5):
    # +0.5 points on every seed (2 of 408 examples net), but from 12 fixed and 10 new mistakes: noise
    close = _break(_fix(dense5, mrpc_labels, 12), mrpc_labels, 10)
    tickets = [_ticket("d", 0.0, dense5, dense5, mrpc_labels), _ticket("a", 0.2, close, dense5, mrpc_labels)]
    verdict = decide(tickets, "mrpc", tolerance=0.02)
    a = tickets[1]
    assert all(a.seed_scores[s] > a.dense_scores[s] for s in range(5))
    assert a.difference.low <= 0 < a.difference.mean
    assert verdict.kind == "winning" and verdict.best_super is None and verdict.winning is a
    lines = verdict_lines(verdict, "accuracy")
    assert lines[0].startswith("No ticket is shown better than the dense model")
    assert "Sparsest winning ticket (no worse than dense by more than 2 points)" in lines[1]
    assert "+0.5 points [-1.3, +2.1]" in lines[1]
    assert "95% CI over 5 seeds and 408 dev examples" in lines[1]


def test_clearly_better_ticket_is_super_and_the_best_and_sparsest_are_both_named(mrpc_labels, dense5):
    tickets = [_ticket("d", 0.0, dense5, dense5, mrpc_labels),
               _ticket("best", 0.1, _fix(dense5, mrpc_labels, 30), dense5, mrpc_labels),
               _ticket("sparse", 0.3, _fix(dense5, mrpc_labels, 15), dense5, mrpc_labels),
               _ticket("bad", 0.5, _break(dense5, mrpc_labels, 40), dense5, mrpc_labels)]
    verdict = decide(tickets, "mrpc")
    assert verdict.kind == "super"
    assert verdict.best_super.trial_id == "best" and verdict.sparsest_super.trial_id == "sparse"
    assert verdict.winning.trial_id == "sparse" and verdict.best_super.difference.low > 0
    lines = verdict_lines(verdict, "accuracy")
    assert lines[0].startswith("Super ticket: structured at sparsity 0.10") and "+7.4 points [" in lines[0]
    assert lines[1].startswith("Sparsest super ticket: structured at sparsity 0.30")
    table = trial_table(tickets).to_string()
    assert "-9.8 points" in table
    figure = phase_transition_plot(tickets, verdict, "accuracy", "test")
    assert len(figure.axes[0].get_legend().get_texts()) >= 4


def test_a_control_is_never_named_and_is_compared_with_its_good_ticket(mrpc_labels, dense5):
    good = _fix(dense5, mrpc_labels, 5)
    tickets = [_ticket("d", 0.0, dense5, dense5, mrpc_labels), _ticket("g", 0.3, good, dense5, mrpc_labels),
               _ticket("r", 0.3, _fix(dense5, mrpc_labels, 40), dense5, mrpc_labels, control="random"),
               _ticket("b", 0.5, _fix(dense5, mrpc_labels, 40), dense5, mrpc_labels, control="bad")]
    verdict = decide(tickets, "mrpc")
    assert all(t.control == "good" for t in verdict.named.values()) and verdict.winning.trial_id == "g"
    assert tickets[2].difference.low > 0  # the random control is clearly better than dense ...
    assert verdict.best_super is None or verdict.best_super.control == "good"  # ... and still not named
    assert tickets[2].versus_good.mean == pytest.approx(35 / 408)  # compared with its good ticket
    assert tickets[3].versus_good is None  # no good ticket at 0.5 to compare with


def test_a_winning_ticket_behind_a_failing_less_sparse_one_is_not_named(mrpc_labels, dense5):
    """The winning sequence runs from the least sparse ticket on and ends at the first that fails: 0.3 matches
    dense, but 0.2 (10 points worse) comes first, so the sparsest winning ticket is 0.1."""
    same = _break(_fix(dense5, mrpc_labels, 6), mrpc_labels, 4)  # +2 examples net on each seed, within noise
    tickets = [_ticket("d", 0.0, dense5, dense5, mrpc_labels), _ticket("a", 0.1, same, dense5, mrpc_labels),
               _ticket("b", 0.2, _break(dense5, mrpc_labels, 40), dense5, mrpc_labels),
               _ticket("c", 0.3, same, dense5, mrpc_labels)]
    verdict = decide(tickets, "mrpc")
    assert tickets[3].difference.low >= -0.01  # 0.3 alone would pass ...
    assert verdict.kind == "winning" and verdict.winning.trial_id == "a"  # ... but is not named
    assert verdict.beyond.trial_id == "b"
    lines = verdict_lines(verdict, "accuracy")
    assert lines[-1].startswith("The winning sequence (least sparse first) ends at structured at sparsity 0.20")
    assert "-9.8 points [" in lines[-1] and lines[-1].endswith("its lower bound is below the tolerance.")
    # when the least sparse ticket tested fails, no winning ticket is named at all
    verdict = decide([tickets[0], tickets[2], tickets[3]], "mrpc")
    assert verdict.kind == "none" and verdict.winning is None and verdict.beyond.trial_id == "b"
    lines = verdict_lines(verdict, "accuracy")
    assert "the least sparse ticket tested is not shown to be within 1 point of it" in lines[0]
    half = 100 * (tickets[2].difference.high - tickets[2].difference.low) / 2
    assert half > 1 and lines[-1].startswith(f"Its interval is +-{half:.1f} points wide over 5 seed(s) and 408 dev")


def test_a_stopped_ticket_is_not_named(mrpc_labels, dense5):
    early = _ticket("e", 0.4, _fix(dense5[:2], mrpc_labels, 40), dense5[:2], mrpc_labels, status="KILLED")
    early.planned_seeds = 5
    verdict = decide([_ticket("d", 0.0, dense5, dense5, mrpc_labels), early], "mrpc")
    assert verdict.kind == "none" and not verdict.named and verdict.beyond is early
    line = verdict_lines(verdict, "accuracy")[1]
    assert line.startswith("The winning sequence (least sparse first) ends at structured at sparsity 0.40")
    assert "KILLED after 2 of 5 seeds at +9.8 points [" in line and "(95% CI over 2 seeds and 408 dev examples)" in line


@pytest.mark.parametrize("task", ["mrpc", "cola"])
def test_the_guard_fires_on_a_dense_model_that_predicts_one_class(task, glue_dir):
    labels = np.array(load_raw(get_task(task), glue_dir)["validation"]["label"])
    constant = majority_predictions(labels, regression=False)
    dense = np.stack([constant, constant, constant])
    rng = np.random.default_rng(4)
    ticket = np.stack([_flip(labels, 100, rng) for _ in range(3)])  # a "ticket" that does better than dense
    tickets = [_ticket("d", 0.0, dense, dense, labels), _ticket("t", 0.3, ticket, dense, labels)]
    verdict = decide(tickets, task)
    assert verdict.kind == "dense_not_learned" and not verdict.named
    line = verdict_lines(verdict, get_task(task).primary_metric)[0]
    assert line.startswith("The dense model did not learn this task under these settings")
    assert "+0.0 points [+0.0, +0.0]" in line and "over 3 seeds" in line
