"""How a pruning method declares what a study of it may vary (one ``MethodSpace`` per method module).

A ``MethodSpace`` names the method, its default sparsity range per task, the controls and rewinding points
it accepts, and its own options. The command line, the settings checks and the search space are all built
from these declarations, so a new method is a new module in ``spaces/`` plus a line in
``spaces.registry`` (and its pruning module in ``trainables/pruning/``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spaces.sparsity import SparsityRange
from trainables.pruning.magnitude import DEFAULT_MIN_KEEP


@dataclass(frozen=True)
class Option:
    """One method option: a key of the trial configuration and the flag ``--<name with dashes>``.

    Attributes:
        name: configuration key, e.g. ``imp_rate`` (flag ``--imp-rate``).
        type: ``float``, ``int``, ``str`` or ``bool`` (a bool is an on/off flag).
        default: value when the flag is not given.
        help: what it does, with units.
        choices: allowed values, if a closed set.
        path: the value is a file or folder: resolved like the model (flag, ``$SUPERTICKETS_<NAME>``,
            ``supertickets.toml``, default) and made absolute before the trials start.
    """

    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None = None
    path: bool = False

    @property
    def flag(self) -> str:
        """The command-line flag."""
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class MethodSpace:
    """What a study of one pruning method searches and accepts.

    Attributes:
        name: the ``--method`` value.
        summary: one line for ``--help``.
        units: what sparsity counts (for outputs).
        sparsity: default sparsity range per task (``None`` key: any other task).
        controls: the controls the method has (``good`` always).
        options: the method's own options.
    """

    name: str
    summary: str
    units: str
    sparsity: dict = field(default_factory=lambda: {None: SparsityRange()})
    controls: tuple[str, ...] = ("good",)
    options: tuple[Option, ...] = ()

    def sparsity_for(self, task: str) -> SparsityRange:
        """The default sparsity range of ``task``."""
        return self.sparsity.get(task, self.sparsity[None])


#: Default sparsity range of the unstructured methods: Chen et al. find matching subnetworks at 40-90 %, so
#: the grid runs to 90 % in 10 % steps (IMP's default ladder).
UNSTRUCTURED_RANGE = {None: SparsityRange(0.0, 0.9, 0.1)}

#: Options of every unstructured method: which matrices besides the six per layer are prunable, and the
#: per-matrix floor of a global ranking. One value per study, so every method of a study prunes the same set.
PRUNABLE_OPTIONS = (
    Option("prune_pooler", bool, False, "also prune the pooler's dense matrix (Chen et al.; on by default with "
           "--tamt-recipe paper, for every method of the study)"),
    Option("prune_embeddings", bool, False, "also prune the word-embedding table (TAMT; on by default with "
           "--tamt-recipe paper, for every method of the study)"),
    Option("min_keep_per_matrix", float, DEFAULT_MIN_KEEP, "a global magnitude ranking keeps at least this fraction of every "
           "matrix, in [0, 1) (default 0.01; 0 lets it empty a matrix); a matrix kept below 5 %% is named in a "
           "warning"),
)
