"""Rewinding points: the weights a ticket is (re-)trained from (METHODS.md, "Rewinding point").

- ``pretrained``: the pre-trained encoder with the classifier the dense run of the same seed started from
  (Prasanna et al., Liang et al., Chen et al.: re-fine-tune the ticket from pre-trained).
- ``step:K``: the dense fine-tune's weights after K optimiser steps (not epochs), classifier included
  (Frankle et al.'s "late rewinding"); the checkpoint comes from the dense-model cache.
- ``none``: the dense model's fine-tuned weights, kept as they are ("pruned, not retrained": one evaluation).

The mask of any method is applied after rewinding, so every method has every rewinding point.
"""

from __future__ import annotations

import re

from torch import nn

from trainables.cache import DenseResult
from trainables.model import load_model
from trainables.tasks import GlueTask

#: The named rewinding points; ``step:K`` (K >= 1 optimiser steps) is the third kind.
REWIND_POINTS = ("pretrained", "none")
_STEP = re.compile(r"^step:(\d+)$")


def rewind_step(point: str) -> int | None:
    """K for ``step:K``, ``None`` for ``pretrained`` and ``none``.

    Raises:
        ValueError: not a rewinding point (e.g. ``step:0``, ``step:x``, ``epoch:1``).
    """
    if point in REWIND_POINTS:
        return None
    match = _STEP.match(point)
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"unknown rewinding point {point!r}: choose pretrained, none or step:K "
                         "(K >= 1 optimiser steps of the dense fine-tune)")
    return int(match.group(1))


def rewound_model(point: str, model_name_or_path: str, task: GlueTask, seed: int, dense: DenseResult) -> nn.Module:
    """The model a ticket starts from.

    Args:
        point: ``pretrained``, ``step:K`` or ``none``.
        model_name_or_path: the pre-trained checkpoint.
        task: the task (decides the classifier's size).
        seed: the trial seed; with ``pretrained`` it draws the same classifier as the dense run of that seed.
        dense: the cached dense fine-tune of that seed (weights for ``none``, checkpoints for ``step:K``).

    Raises:
        ValueError: unknown rewinding point.
        FileNotFoundError: ``step:K`` whose checkpoint was never saved (``trainables.cache.ensure_step``).
    """
    step = rewind_step(point)
    model = load_model(model_name_or_path, task, seed)
    if point == "none":
        model.load_state_dict(dense.weights())
    elif step is not None:
        model.load_state_dict(dense.step_weights(step))
    return model
