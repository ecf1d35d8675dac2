"""What a structured-pruning study varies (Prasanna et al. 2020; Liang et al. 2021).

A trial's configuration is ``{"method", "sparsity", "rewind"}``. Sparsity is searched on Liang et al.'s
grid (steps of 5 %) between bounds that cover where their super tickets sat (10-40 % of heads); the
rewinding point is fixed unless several are allowed, in which case Optuna chooses it too.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

#: Rewinding points of structured tickets: ``pretrained`` re-fine-tunes the ticket from the pre-trained
#: weights (the default); ``none`` only evaluates the masked fine-tuned model.
from trainables.pruning.controls import CONTROLS  # noqa: E402,F401  (re-exported: the space's choices)
from trainables.rewinding import REWIND_POINTS  # noqa: E402  (re-exported: the space's choices)


def grid_value(sparsity: float) -> float:
    """``sparsity`` without the grid's float noise (0.05 * 7 = 0.35000000000000003 -> 0.35)."""
    return round(float(sparsity), 6)


@dataclass(frozen=True)
class SparsityRange:
    """Bounds (fractions in [0, 1)) and grid step of the searched sparsity."""

    low: float = 0.0
    high: float = 0.6
    step: float = 0.05

    def validate(self) -> None:
        """Raises ``ValueError`` naming the problem when the bounds are outside [0, 1) or inverted."""
        if not (0.0 <= self.low < 1.0 and 0.0 <= self.high < 1.0):
            raise ValueError(f"sparsity range [{self.low}, {self.high}] must lie in [0, 1): pass fractions "
                             "such as --sparsity-max 0.5, not percent")
        if self.low > self.high:
            raise ValueError(f"sparsity range [{self.low}, {self.high}] is inverted: make --sparsity-min "
                             "no larger than --sparsity-max")
        if not 0.0 < self.step < 1.0:
            raise ValueError(f"sparsity step {self.step} must be a fraction in (0, 1)")


#: Per-task sparsity ranges. Liang et al. found BERT-base super tickets at 10-30 % and BERT-large up to
#: ~40 % (CoLA); the default covers that with room to see the score fall.
TASK_SPARSITY = {None: SparsityRange(0.0, 0.6, 0.05)}


@dataclass(frozen=True)
class StructuredSpace:
    """The define-by-run search space handed to ``OptunaSearch`` (picklable, so Ray can ship it).

    Calling it with an Optuna trial suggests ``sparsity`` on the grid (and ``rewind`` when more than one
    rewinding point is allowed) and returns the constant part of the trial's configuration.
    """

    sparsity: SparsityRange
    rewind: tuple[str, ...] = ("pretrained",)
    method: str = "structured"
    control: str = "good"

    def __call__(self, trial) -> dict:
        with warnings.catch_warnings():  # the dense point (0) may lie below --sparsity-min: that is intended
            warnings.filterwarnings("ignore", message="Fixed parameter sparsity")
            trial.suggest_float("sparsity", self.sparsity.low, self.sparsity.high, step=self.sparsity.step)
        constants = {"method": self.method, "control": self.control}
        if len(self.rewind) > 1:
            trial.suggest_categorical("rewind", list(self.rewind))
        else:
            constants["rewind"] = self.rewind[0]
        return constants

    def grid_points(self) -> list[dict]:
        """Every point of the searched grid (the dense point included), as the parameters Optuna sets."""
        count = round((self.sparsity.high - self.sparsity.low) / self.sparsity.step)
        values = sorted({0.0, *(grid_value(self.sparsity.low + i * self.sparsity.step) for i in range(count + 1))})
        rewinds = self.rewind if len(self.rewind) > 1 else (None,)
        return [{"sparsity": s, **({"rewind": r} if r else {})} for r in rewinds for s in values]

    def dense_point(self) -> dict:
        """The first configuration a study evaluates: the dense model (sparsity 0)."""
        point = {"sparsity": 0.0}
        if len(self.rewind) > 1:
            point["rewind"] = self.rewind[0]
        return point


METHODS = {"structured": StructuredSpace}


def sparsity_range_for(task: str) -> SparsityRange:
    """The default sparsity range of ``task``."""
    return TASK_SPARSITY.get(task, TASK_SPARSITY[None])
