"""How long does one optimiser step over a whole model take, per implementation? Prints measured figures.

    python -m benchmarks.optimizer_step [--model DIR] [--steps 10] [--device cpu|cuda]

The step every trial takes after each batch, over every trainable parameter of the sequence classifier (the word
embeddings included: about half of MiniLM, never pruned, so a ticket trained smaller pays for them as the dense
model does), with random gradients of the parameters' shapes. Rows: AdamW and Adamax as a Python loop over the
tensors (``foreach=False``), as PyTorch's for-each form, and AdamW fused; ``study`` is what
``trainables.finetune.make_optimizer`` builds for a trial. Milliseconds per step, median of ``--steps`` steps after two warm-up
steps; torch's threads as set (``OMP_NUM_THREADS``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from search.errors import OneLineParser, UsageError

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main(argv: list[str] | None = None) -> int:
    """Measure and print; returns the exit code (0, or 2 on bad input: one line on stderr)."""
    parser = OneLineParser(prog="python -m benchmarks.optimizer_step", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(SHARED / "models" / "all-MiniLM-L6-v2"))
    parser.add_argument("--steps", type=int, default=10, help="timed steps per implementation (median reported)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    try:
        args = parser.parse_args(argv)
        from benchmarks.ticket_speed import check_device
        from search.cli.preflight import check_model_and_data

        if args.steps < 1:
            raise UsageError(f"--steps {args.steps} must be at least 1")
        check_device(args.device)
        check_model_and_data(args.model, None, ())
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    import torch

    from trainables.finetune import OPTIMIZERS, FinetuneSettings, make_optimizer
    from trainables.model import load_model, quiet_loading
    from trainables.tasks import get_task

    device = torch.device(args.device)
    with quiet_loading():
        model = load_model(args.model, get_task("rte"), seed=0).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    for param in params:
        param.grad = torch.randn_like(param) * 1e-3
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"optimizer_step: {Path(args.model).name}, {sum(p.numel() for p in params):,} parameters, {device}, "
          f"{torch.get_num_threads()} torch threads; median of {args.steps} steps")
    def median_ms(optimizer) -> float:
        times = []
        for index in range(args.steps + 2):  # two warm-up steps create the optimiser's state
            sync()
            started = time.perf_counter()
            optimizer.step()
            sync()
            if index >= 2:
                times.append(1000 * (time.perf_counter() - started))
        return statistics.median(times)

    for name in OPTIMIZERS:
        for form in ("loop", "for-each", "fused", "study"):
            if form == "study":
                optimizer = make_optimizer(params, FinetuneSettings(1e-5, 1, 1, optimizer=name), device)
            elif form == "fused" and name != "adamw":  # Adamax has no fused kernel
                continue
            else:
                options = {"fused": True} if form == "fused" else {"foreach": form == "for-each"}
                optimizer = OPTIMIZERS[name](params, lr=1e-5, **options)
            print(f"{name + ' ' + form:<16} {median_ms(optimizer):8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
