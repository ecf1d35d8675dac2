"""Every searchable pruning method's space, by ``--method`` name (one line per method)."""

from __future__ import annotations

from spaces import imp, magnitude, structured, tamt
from spaces.method import MethodSpace, Option

METHODS: dict[str, MethodSpace] = {space.name: space for space in (
    structured.SPACE,
    magnitude.SPACE,
    imp.SPACE,
    tamt.SPACE,
)}


def all_options() -> dict[str, Option]:
    """Every method's options by name (a shared option, such as ``prune_pooler``, once)."""
    return {option.name: option for space in METHODS.values() for option in space.options}
