"""Iterative magnitude pruning with rewinding (Chen et al. 2020): levels at the default 10 % of the original
weights per round, so the default grid is the IMP ladder itself (10 %, 20 %, ... 90 %)."""

from spaces.method import PRUNABLE_OPTIONS, UNSTRUCTURED_RANGE, Option, PruningMethod
from trainables.pruning.imp import RATE_OF, ImpSchedule, make_ticket
from trainables.pruning.weights import WeightMask

METHOD = PruningMethod(
    name="imp",
    summary="iterative magnitude pruning: fine-tune, prune by global |w|, rewind, repeat (levels cached, nested)",
    units="weights of the prunable matrices",
    build=make_ticket,
    mask_type=WeightMask,
    sparsity=UNSTRUCTURED_RANGE,
    options=(
        Option("imp_rate", float, ImpSchedule.rate, "fraction pruned per IMP round, in (0, 1) (default 0.1)"),
        Option("imp_rate_of", str, ImpSchedule.of, "the rate is a fraction of the original weights (Chen et al., "
               "default) or of the remaining ones (Prasanna et al.)", choices=RATE_OF),
        *PRUNABLE_OPTIONS,
    ),
    check=lambda options, model: ImpSchedule.from_options(options).validate(),
)
