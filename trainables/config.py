"""What one trial is: a typed, frozen ``TrialConfig``, converted to and from Ray Tune's config dict here only.

A trial is one point of a study: a pruning method at a requested sparsity, trained from a rewinding point, as the
good ticket or a control, with the method's options. Ray Tune and Optuna carry configurations as flat dicts
(``{"method", "sparsity", "rewind", "control", <options>}``); everything else in the project (the trial, the
searcher and its policy, seed racing, MLflow tracking, the verdict and its reports) reads a ``TrialConfig``,
made by ``TrialConfig.from_tune``, so the defaults and the sparsity's grid rounding live in one place.

Units: ``sparsity`` is a fraction in [0, 1) of the method's units (heads and FFN blocks, or weights), never
percent, and is put on the grid once, here (``0.05 * 7`` -> ``0.35``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

#: The keys of a trial configuration every method shares; any other key is a method option (``imp_rate``, ...).
TRIAL_KEYS = ("method", "sparsity", "rewind", "control")
#: Digits a sparsity keeps: the grid's float noise (``0.35000000000000003``) goes, any real grid value stays.
GRID_DIGITS = 6


def on_grid(sparsity: float) -> float:
    """``sparsity`` without the grid's float noise (``0.05 * 7 = 0.35000000000000003`` -> ``0.35``)."""
    return round(float(sparsity), GRID_DIGITS)


@dataclass(frozen=True)
class TrialConfig:
    """One trial's configuration.

    Attributes:
        sparsity: the requested sparsity, a fraction in [0, 1) of the method's units, on the grid.
        method: the pruning method (a ``trainables.pruning.registry`` name).
        rewind: the rewinding point: ``pretrained``, ``step:K`` (K optimiser steps of the dense fine-tune) or
            ``none`` (pruned, not retrained).
        control: ``good`` (the method's ticket) or a control (``random``, ``bad``).
        options: the method options as sorted ``(name, value)`` pairs (``options_dict`` gives the dict).
    """

    sparsity: float
    method: str = "structured"
    rewind: str = "pretrained"
    control: str = "good"
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "sparsity", on_grid(self.sparsity))
        object.__setattr__(self, "options", tuple(sorted(dict(self.options).items())))

    @classmethod
    def from_tune(cls, config: Mapping[str, Any]) -> "TrialConfig":
        """The configuration in Tune's (or Optuna's) flat dict: the shared keys, every other key a method option.

        Raises:
            KeyError: the dict has no ``sparsity``.
        """
        options = {k: v for k, v in config.items() if k not in TRIAL_KEYS}
        return cls(float(config["sparsity"]), config.get("method") or "structured",
                   config.get("rewind") or "pretrained", config.get("control") or "good", tuple(options.items()))

    def to_tune(self) -> dict[str, Any]:
        """Tune's flat dict: ``method``, ``sparsity``, ``rewind``, ``control`` and the options."""
        return {"method": self.method, "sparsity": self.sparsity, "rewind": self.rewind, "control": self.control,
                **self.options_dict}

    @property
    def options_dict(self) -> dict[str, Any]:
        """The method options by name."""
        return dict(self.options)

    @property
    def role(self) -> str:
        """``dense`` (sparsity 0, good), ``control`` (random or bad) or ``ticket``: the ``role`` tag of its run."""
        if self.control != "good":
            return "control"
        return "dense" if self.sparsity == 0.0 else "ticket"

    @property
    def curve(self) -> tuple[str, str]:
        """``(method, rewind)``: the tickets along which the verdict reads one phase-transition curve."""
        return self.method, self.rewind

    @property
    def run_name(self) -> str:
        """The MLflow run name, leading with what differs between a study's trials: ``s=0.35 structured good``
        (plus the rewinding point when it is not ``pretrained``), ``dense`` for the dense baseline."""
        if self.role == "dense":
            return "dense" if self.rewind == "pretrained" else f"dense rewind {self.rewind}"
        name = f"s={self.sparsity:.2f} {self.method} {self.control}"
        return name if self.rewind == "pretrained" else f"{name} rewind {self.rewind}"
