"""GLUE dev metrics, computed with scikit-learn and SciPy (``evaluate`` would need the hub).

All values are fractions in [0, 1] (correlations in [-1, 1]), never percent.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from trainables.tasks import GlueTask


def _accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    return float(accuracy_score(gold, pred))


def _f1(pred: np.ndarray, gold: np.ndarray) -> float:
    return float(f1_score(gold, pred))  # binary F1 of the positive class (label 1), as GLUE


def _mcc(pred: np.ndarray, gold: np.ndarray) -> float:
    return float(matthews_corrcoef(gold, pred))


def _correlation(fn):
    def compute(pred: np.ndarray, gold: np.ndarray) -> float:
        # A constant prediction has no defined correlation; score it 0 like no signal at all.
        if np.all(pred == pred[0]) or np.all(gold == gold[0]):
            return 0.0
        return float(fn(pred, gold)[0])

    return compute


METRICS = {
    "accuracy": _accuracy,
    "f1": _f1,
    "mcc": _mcc,
    "pearson": _correlation(stats.pearsonr),
    "spearman": _correlation(stats.spearmanr),
}


def predictions_from_logits(logits: np.ndarray, task: GlueTask) -> np.ndarray:
    """Turn model outputs into predictions.

    Args:
        logits: shape ``(n_examples, num_labels)``.
        task: the task; regression tasks (``num_labels == 1``) return the raw score, shape ``(n,)``.

    Returns:
        shape ``(n_examples,)``: class ids (int) or regression scores (float).
    """
    if task.is_regression:
        return logits.reshape(-1).astype(np.float64)
    return logits.argmax(axis=-1)


def compute_metrics(task: GlueTask, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every dev metric of ``task`` plus ``dev_score``, the task's primary metric.

    Args:
        task: the GLUE task.
        predictions: shape ``(n,)``, class ids or regression scores.
        labels: shape ``(n,)``, gold labels.

    Returns:
        ``{metric_name: value, ..., "dev_score": value of task.primary_metric}``.

    Raises:
        ValueError: the two arrays differ in length or are empty.
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape or predictions.size == 0:
        raise ValueError(f"predictions {predictions.shape} and labels {labels.shape} must be equal, non-empty")
    scores = {name: METRICS[name](predictions, labels) for name in task.metrics}
    scores["dev_score"] = scores[task.primary_metric]
    return scores
