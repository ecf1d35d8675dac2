"""GLUE metrics on hand-made inputs, and the task table on the shared GLUE files."""

import numpy as np
import pytest

from trainables.data import load_raw
from trainables.metrics import compute_metrics, predictions_from_logits
from trainables.tasks import get_task


def test_accuracy_and_f1_on_known_predictions():
    # 4 of 5 right; positives: TP=2, FP=1, FN=0 -> precision 2/3, recall 1, F1 0.8
    scores = compute_metrics(get_task("mrpc"), np.array([1, 1, 0, 1, 0]), np.array([1, 1, 0, 0, 0]))
    assert scores["accuracy"] == pytest.approx(0.8)
    assert scores["f1"] == pytest.approx(0.8)
    assert scores["dev_score"] == scores["accuracy"]


def test_matthews_correlation_on_known_predictions():
    # TP=1 TN=1 FP=1 FN=1 -> MCC 0; a perfect and an inverted prediction give +1 and -1
    cola = get_task("cola")
    assert compute_metrics(cola, np.array([1, 0, 1, 0]), np.array([1, 0, 0, 1]))["mcc"] == pytest.approx(0.0)
    assert compute_metrics(cola, np.array([1, 0, 1]), np.array([1, 0, 1]))["dev_score"] == pytest.approx(1.0)
    assert compute_metrics(cola, np.array([0, 1, 0]), np.array([1, 0, 1]))["mcc"] == pytest.approx(-1.0)


def test_pearson_and_spearman_on_known_scores():
    stsb = get_task("stsb")
    gold = np.array([0.0, 1.0, 2.0, 3.0])
    linear = compute_metrics(stsb, 2 * gold + 1, gold)
    assert linear["pearson"] == pytest.approx(1.0) and linear["spearman"] == pytest.approx(1.0)
    monotone = compute_metrics(stsb, gold ** 3, gold)  # same ranks, not linear
    assert monotone["spearman"] == pytest.approx(1.0)
    assert monotone["pearson"] == pytest.approx(44 / 2350 ** 0.5)  # cov 44, var 5 and 470 (sums)
    assert compute_metrics(stsb, np.ones(4), gold)["pearson"] == 0.0  # constant prediction: no signal


def test_predictions_from_logits():
    logits = np.array([[0.1, 0.9], [2.0, -1.0]])
    assert predictions_from_logits(logits, get_task("rte")).tolist() == [1, 0]
    assert predictions_from_logits(np.array([[3.5], [1.0]]), get_task("stsb")).tolist() == [3.5, 1.0]


def test_metric_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        compute_metrics(get_task("rte"), np.array([1, 0]), np.array([1]))


@pytest.mark.parametrize("task,train,dev,first_label", [
    ("rte", 2490, 277, 1), ("mrpc", 3668, 408, 1), ("cola", 8551, 1043, 1), ("stsb", 5749, 1500, 5.0),
    ("sst2", 67349, 872, 0)])
def test_shared_glue_splits_load_with_official_sizes(glue_dir, task, train, dev, first_label):
    raw = load_raw(get_task(task), glue_dir)
    assert (len(raw["train"]), len(raw["validation"])) == (train, dev)
    assert raw["train"][0]["label"] == first_label  # RTE's first row is not_entailment = 1, as on the hub


def test_unknown_task_names_the_known_ones():
    with pytest.raises(KeyError, match="choose one of rte"):
        get_task("squad")
    assert get_task("STS-B").name == "stsb"
