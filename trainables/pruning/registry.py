"""Which module builds a ticket for each pruning method (one module per method, one line each here).

Every entry maps a ``TicketRequest`` to a ``Ticket`` (``trainables.pruning.tickets``). Adding a method is a
new pruning module, a line here and a space in ``spaces/``; the trial and the search stay as they are.
"""

from __future__ import annotations

from typing import Callable

from trainables.pruning import imp, magnitude, structured, tamt
from trainables.pruning.tickets import Ticket, TicketRequest

PRUNERS: dict[str, Callable[[TicketRequest], Ticket]] = {
    "structured": structured.make_ticket,  # heads and FFN blocks by gate importance (Prasanna; Liang)
    "magnitude": magnitude.make_ticket,  # one-shot global magnitude of the fine-tuned weights (Prasanna; Chen)
    "imp": imp.make_ticket,  # iterative magnitude pruning, nested cached levels (Chen et al.)
    "tamt": tamt.make_ticket,  # task-agnostic mask training on unlabeled text (Liu et al.)
}


def make_ticket(method: str, request: TicketRequest) -> Ticket:
    """The ticket of ``method`` for ``request``.

    Raises:
        ValueError: unknown method, or whatever the method rejects (control, options).
    """
    if method not in PRUNERS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(PRUNERS)}")
    return PRUNERS[method](request)
