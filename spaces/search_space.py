"""The define-by-run space a study hands to ``OptunaSearch``: the dimensions a study searches.

``sparsity`` is always searched (on the grid of ``SparsityRange``). ``method``, ``control`` and ``rewind`` are
searched when a study allows more than one value (``--method structured,magnitude``, ``--control
good,random,bad``, ``--rewind pretrained,step:200``), else fixed. Method options are constants of every trial,
so they are recorded with it.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

from spaces.sparsity import SparsityRange
from trainables.config import TrialConfig

#: The categorical dimensions, in the order Optuna suggests them.
CHOICES = ("method", "control", "rewind")


@dataclass(frozen=True)
class TicketSpace:
    """Picklable, so Ray can ship it; calling it with an Optuna trial suggests the searched dimensions and
    returns the constant part of the trial's configuration.

    Attributes:
        sparsity: bounds and grid of the searched sparsity.
        method, control, rewind: the allowed values of each; one value = fixed, several = searched.
        options: method options, the same for every trial.
    """

    sparsity: SparsityRange
    method: tuple[str, ...] = ("structured",)
    control: tuple[str, ...] = ("good",)
    rewind: tuple[str, ...] = ("pretrained",)
    options: dict = field(default_factory=dict)

    def _searched(self) -> list[str]:
        return [name for name in CHOICES if len(getattr(self, name)) > 1]

    def constants(self) -> dict:
        """The part of every trial's configuration that is not searched: single-valued choices and options."""
        constants = dict(self.options)
        constants.update({name: getattr(self, name)[0] for name in CHOICES if len(getattr(self, name)) == 1})
        return constants

    def __call__(self, trial) -> dict:
        """Suggest the searched dimensions on the Optuna ``trial`` (categoricals first, so a sampler choosing the
        sparsity sees them) and return the constant part of the configuration."""
        for name in self._searched():
            trial.suggest_categorical(name, list(getattr(self, name)))
        with warnings.catch_warnings():  # the dense point (0) may lie below --sparsity-min: that is intended
            warnings.filterwarnings("ignore", message="Fixed parameter sparsity")
            trial.suggest_float("sparsity", self.sparsity.low, self.sparsity.high, step=self.sparsity.step)
        return self.constants()

    def config(self, params: dict) -> TrialConfig:
        """The trial at the searched parameters ``params`` (Optuna's: ``sparsity`` and any searched choice)."""
        return TrialConfig.from_tune({**self.constants(), **params})

    def grid_points(self) -> list[dict]:
        """Every point of the searched grid (the dense point once, first, as a good ticket), as the parameters
        Optuna sets."""
        searched = self._searched()
        combos = [dict(zip(searched, values)) for values in itertools.product(*(getattr(self, n) for n in searched))]
        dense = combos[0] if "control" not in searched else {**combos[0], "control": "good"}
        points = [{"sparsity": 0.0, **dense}]
        points += [{"sparsity": s, **c} for c in combos for s in self.sparsity.values() if s != 0.0]
        return points

    def dense_point(self) -> dict:
        """The first configuration a study evaluates: the dense model (sparsity 0)."""
        return self.grid_points()[0]
