"""Rewinding points: the weights a ticket is (re-)trained from (METHODS.md, "Rewinding point").

``pretrained``: the pre-trained encoder with the classifier the dense run of the same seed started from
(Prasanna et al., Liang et al.: re-fine-tune the ticket from pre-trained). ``none``: the dense model's
fine-tuned weights, kept as they are ("pruned, not retrained").
"""

from __future__ import annotations

from torch import nn

from trainables.cache import DenseResult
from trainables.model import load_model
from trainables.tasks import GlueTask

REWIND_POINTS = ("pretrained", "none")


def rewound_model(point: str, model_name_or_path: str, task: GlueTask, seed: int, dense: DenseResult) -> nn.Module:
    """The model a ticket starts from.

    Args:
        point: ``pretrained`` or ``none``.
        model_name_or_path: the pre-trained checkpoint.
        task: the task (decides the classifier's size).
        seed: the trial seed; with ``pretrained`` it draws the same classifier as the dense run of that seed.
        dense: the cached dense fine-tune (its weights are used by ``none``).

    Raises:
        ValueError: unknown rewinding point.
    """
    if point not in REWIND_POINTS:
        raise ValueError(f"unknown rewinding point {point!r}: choose one of {', '.join(REWIND_POINTS)}")
    model = load_model(model_name_or_path, task, seed)
    if point == "none":
        model.load_state_dict(dense.weights())
    return model
