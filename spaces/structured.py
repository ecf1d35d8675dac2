"""Structured head/FFN tickets (Prasanna et al. 2020; Liang et al. 2021).

Sparsity is searched on Liang et al.'s grid (steps of 5 %) between bounds that cover where their super
tickets sat (10-40 % of heads); a ticket at ``s`` prunes ``floor(s * heads)`` heads and ``floor(s * layers
* 5/6)`` FFN blocks (Liang et al.'s published pairs, ``trainables.pruning.structured``).
"""

from spaces.method import Option, PruningMethod
from spaces.sparsity import SparsityRange
from trainables.pruning.controls import CONTROLS
from trainables.pruning.structured import DEFAULT_ESTIMATOR, ESTIMATORS, StructuredMask, make_ticket

METHOD = PruningMethod(
    name="structured",
    summary="attention heads and FFN blocks ranked by accumulated |dL/d gate| on the dense fine-tune",
    units="heads and FFN blocks (achieved sparsity: the encoder weights they disable)",
    build=make_ticket,
    mask_type=StructuredMask,
    sparsity={None: SparsityRange(0.0, 0.6, 0.05)},
    controls=CONTROLS,
    options=(
        Option("importance", str, DEFAULT_ESTIMATOR,
               "head/FFN importance: per-token (default, Liang et al.'s: |dL/d gate| of each example on each "
               "token), per-example (Michel et al.'s eq. 2) or per-batch (|gradient| of each batch's mean loss; "
               "signs cancel inside a batch). All three are computed together and cached once per dense "
               "fine-tune; compare them with python -m search.importance_check", choices=ESTIMATORS),
    ),
    achieved=lambda options: "the encoder weights the pruned heads and FFN blocks disable",
)
