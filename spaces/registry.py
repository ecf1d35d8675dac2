"""Every pruning method, by ``--method`` name: one ``PruningMethod`` per line (``spaces.method``)."""

from __future__ import annotations

from spaces import imp, magnitude, structured, tamt
from spaces.method import Option, PruningMethod

METHODS: dict[str, PruningMethod] = {method.name: method for method in (
    structured.METHOD,
    magnitude.METHOD,
    imp.METHOD,
    tamt.METHOD,
)}


def all_options() -> dict[str, Option]:
    """Every method's options by name (a shared option, such as ``prune_pooler``, once)."""
    return {option.name: option for method in METHODS.values() for option in method.options}


def get_method(name: str) -> PruningMethod:
    """The method called ``name``.

    Raises:
        ValueError: unknown method.
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}: choose one of {', '.join(METHODS)}")
    return METHODS[name]
