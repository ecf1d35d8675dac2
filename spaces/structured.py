"""Structured head/FFN tickets (Prasanna et al. 2020; Liang et al. 2021).

Sparsity is searched on Liang et al.'s grid (steps of 5 %) between bounds that cover where their super
tickets sat (10-40 % of heads); a ticket at ``s`` prunes ``floor(s * heads)`` heads and ``floor(s * layers)``
FFN blocks.
"""

from spaces.method import MethodSpace
from spaces.sparsity import SparsityRange
from trainables.pruning.controls import CONTROLS

SPACE = MethodSpace(
    name="structured",
    summary="attention heads and FFN blocks ranked by accumulated |dL/d gate| on the dense fine-tune",
    units="heads and FFN blocks (achieved sparsity: the encoder weights they disable)",
    sparsity={None: SparsityRange(0.0, 0.6, 0.05)},
    controls=CONTROLS,
)
