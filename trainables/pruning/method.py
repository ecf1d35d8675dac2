"""A pruning method as one object: what a study of it may vary, what it checks, how it builds and loads a ticket.

A ``PruningMethod`` names the method, its default sparsity range per task, the controls it accepts, its own
options and their checks, the function that builds its ticket (``trainables.pruning.<method>.make_ticket``) and
the mask type that says what a ticket kept and turns a fine-tuned ticket into a standalone model. The command
line, the settings checks, the search space, the trial, tracking, reports and ``search.export`` all read
``trainables.pruning.registry.METHODS``, so a new method is one module in ``trainables/pruning/`` (its
``make_ticket``, its mask type and its ``METHOD``) and one line in ``trainables.pruning.registry``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from trainables.pruning.tickets import Ticket, TicketRequest


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


def _no_check(options: dict, model: str) -> None:
    return None


def _no_implied(options: dict) -> dict:
    return {}


def _removed_weights(options: dict) -> str:
    return "the weights the mask removes"


@dataclass(frozen=True)
class PruningMethod:
    """One pruning method: what a study of it searches and accepts, and how its tickets are built and loaded.

    Attributes:
        name: the ``--method`` value.
        summary: one line for ``--help``.
        units: what sparsity counts (for outputs).
        build: ``build(TicketRequest) -> Ticket``, the method's ticket (``trainables.pruning.<method>``).
        mask_type: the class of its masks (``StructuredMask`` or ``WeightMask``): ``load(path)`` reads a saved
            mask, ``export(model)`` bakes it into a fine-tuned model, ``suffix`` names its file.
        sparsity: default sparsity range per task (``None`` key: any other task): ``(low, high, step)``, fractions.
        controls: the controls the method has (``good`` always).
        options: the method's own options.
        check: ``check(options, model)`` raises ``ValueError`` naming a bad option value or a model the method
            cannot use; ``options`` are the study's resolved options, ``model`` a local model folder or hub id.
        implied: ``implied(options)`` -> defaults the method sets for the study's shared options when their flags
            are not given (TAMT's paper recipe masks the pooler and word embeddings, for every method of the study).
        achieved: ``achieved(options)`` -> what the method's *achieved* sparsity counts, in words, under the
            study's options (the plot's x-axis and the parent run's ``sparsity_basis``).
        training_cost: ``training_cost(sparsity, config, options)`` -> a ticket's fine-tuning FLOPs over the dense
            model's (a fraction; 1.0 where the ticket trains at the dense cost, e.g. masked weights in dense
            kernels), for the study's time estimate.
    """

    name: str
    summary: str
    units: str
    build: Callable[[TicketRequest], Ticket]
    mask_type: type
    sparsity: dict = field(default_factory=lambda: {None: (0.0, 0.6, 0.05)})
    controls: tuple[str, ...] = ("good",)
    options: tuple[Option, ...] = ()
    check: Callable[[dict, str], None] = _no_check
    implied: Callable[[dict], dict] = _no_implied
    achieved: Callable[[dict], str] = _removed_weights
    training_cost: Callable[[float, Any, dict], float] = lambda sparsity, config, options: 1.0

    def sparsity_for(self, task: str) -> tuple[float, float, float]:
        """The default sparsity range of ``task``: ``(low, high, step)``, fractions."""
        return self.sparsity.get(task, self.sparsity[None])

    def make_ticket(self, request: TicketRequest) -> Ticket:
        """This method's ticket for ``request``.

        Raises:
            ValueError: a control the method does not have, or whatever the method rejects (options).
        """
        if request.control not in self.controls:
            raise ValueError(f"{self.name} has no {request.control!r} control: its controls are "
                             f"{', '.join(self.controls)}")
        return self.build(request)
