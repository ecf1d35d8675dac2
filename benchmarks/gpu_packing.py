"""Throughput of ticket trials on one GPU: one trial at a time vs four packed (``--gpus-per-trial 0.25``). Prints
measured figures.

    python -m benchmarks.gpu_packing [--task sst2] [--tickets 4]

Two small structured grid studies on the same settings (``--budget smoke``, one seed, ``--tickets`` sparsities from
0.2 plus the dense point, fresh storage each, so each fine-tunes its own dense model first): ``--gpus-per-trial 1``
(one trial at a time) and ``--gpus-per-trial 0.25`` (four at once on the GPU). Printed: each study's wall time, its
ticket trials' time (from the dense point's report to the last ticket report, read from the study's
progress.csv) and ticket trials per
minute. Needs a CUDA GPU.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from search.errors import OneLineParser, UsageError

SHARED = Path(__file__).resolve().parents[2] / "shared"


def _study(gpus: float, args, root: Path) -> tuple[float, float]:
    """(wall seconds, seconds from the dense point's report to the last ticket report) of one study."""
    folder = Path(tempfile.mkdtemp(prefix=f"gpu-packing-{gpus:g}-", dir=root))
    high = round(0.2 + 0.05 * (args.tickets - 1), 2)
    command = [sys.executable, "-m", "search.run", "--task", args.task, "--budget", "smoke", "--method", "structured",
               "--search", "grid", "--num-trials", str(args.tickets + 1), "--sparsity-min", "0.2", "--sparsity-max",
               str(high), "--sparsity-step", "0.05", "--seeds", "1", "--gpus-per-trial", f"{gpus:g}",
               "--cpus-per-trial", "1", "--model", args.model, "--glue-dir", args.glue_dir, "--storage-path",
               str(folder / "results"), "--mlflow-uri", f"sqlite:///{folder}/mlflow.db", "--keep-weights", "none",
               "--study-name", "packing"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the study with --gpus-per-trial {gpus:g} failed (exit {done.returncode}): "
                           f"{done.stderr.strip()[-500:]}")
    rows = list(csv.DictReader((folder / "results" / "packing" / "progress.csv").open()))
    dense = [float(r["time_s"]) for r in rows if r["name"] == "dense"]
    end = max(float(r["time_s"]) for r in rows)
    return wall, end - (max(dense) if dense else 0.0)


def main(argv: list[str] | None = None) -> int:
    """Measure and print; returns the exit code (0 done, 2 bad input, 1 a study failed)."""
    parser = OneLineParser(prog="python -m benchmarks.gpu_packing", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--model", default=str(SHARED / "models" / "all-MiniLM-L6-v2"))
    parser.add_argument("--glue-dir", default=str(SHARED / "data" / "glue"))
    parser.add_argument("--tickets", type=int, default=4, help="ticket trials per study (default 4)")
    try:
        args = parser.parse_args(argv)
        if args.tickets < 1:
            raise UsageError(f"--tickets {args.tickets} must be at least 1")
        import torch

        if not torch.cuda.is_available():
            raise UsageError("no CUDA GPU here: run this on a GPU machine (benchmarks/gpu_check.sh)")
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results = {}
    with tempfile.TemporaryDirectory(prefix="gpu-packing-") as root:
        try:
            for gpus in (1.0, 0.25):
                results[gpus] = _study(gpus, args, Path(root))
                print(f"  --gpus-per-trial {gpus:g}: study {results[gpus][0]:.1f} s", flush=True)
        except RuntimeError as err:
            print(f"failed (exit 1): {err}", file=sys.stderr)
            return 1
    print(f"gpu_packing: {torch.cuda.get_device_name(0)}, {args.task}, --budget smoke, 1 seed, {args.tickets} "
          "structured ticket trials after the dense fine-tune")
    print(f"{'gpus per trial':>14} {'at once':>7} {'study s':>8} {'tickets s':>9} {'tickets/min':>11}")
    for gpus, (wall, tickets) in results.items():
        print(f"{gpus:>14g} {min(args.tickets, int(1 / gpus)):>7} {wall:>8.1f} {tickets:>9.1f} "
              f"{60 * args.tickets / tickets:>11.2f}")
    one, packed = results[1.0][1], results[0.25][1]
    print(f"four packed: {one / packed:.2f}x the ticket throughput of one trial at a time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
