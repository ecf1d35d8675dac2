"""One-shot global magnitude tickets of the dense fine-tuned weights (Prasanna et al. 2020; Chen et al. 2020).

Chen et al. find matching subnetworks at 40-90 % sparsity: the default range runs to 90 % in 10 % steps.
"""

from spaces.method import PRUNABLE_OPTIONS, UNSTRUCTURED_RANGE, PruningMethod
from trainables.pruning.controls import CONTROLS
from trainables.pruning.magnitude import make_ticket
from trainables.pruning.weights import WeightMask

METHOD = PruningMethod(
    name="magnitude",
    summary="single weights, global |w| ranking of the fine-tuned Q, K, V, attention-output and FFN matrices",
    units="weights of the prunable matrices",
    build=make_ticket,
    mask_type=WeightMask,
    sparsity=UNSTRUCTURED_RANGE,
    controls=CONTROLS,
    options=PRUNABLE_OPTIONS,
)
