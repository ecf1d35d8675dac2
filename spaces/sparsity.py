"""The sparsity dimension: bounds and grid step (fractions, never percent)."""

from __future__ import annotations

from dataclasses import dataclass

from trainables.config import on_grid


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

    def values(self) -> list[float]:
        """Every grid value from ``low`` to ``high``."""
        count = round((self.high - self.low) / self.step)
        return [on_grid(self.low + i * self.step) for i in range(count + 1)]
