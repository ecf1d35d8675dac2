#!/usr/bin/env bash
# Everything that needs a GPU, in one call of at most 8 minutes (issue 30): the GPU tests, the ticket and trial
# speed benchmarks on cuda, and four 0.25-GPU trials packed vs one at a time. Run from the repository root on a
# machine with a CUDA GPU and ../shared beside the checkout, after the project is installed (see .ci/run):
#     bash benchmarks/gpu_check.sh [OUT]     # OUT: where the figures go (default docs/results/gpu)
# Each part has its own time limit, so one slow part cannot eat the others' time; the output of each goes to OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/results/gpu}"
mkdir -p "$out"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
python=${PYTHON:-python}
{
  echo "# gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} > "$out/machine.txt" 2>&1
timeout 120 $python -m pytest -q tests/test_gpu.py > "$out/tests.txt" 2>&1; echo "tests exit $?" >> "$out/tests.txt"
timeout 90 $python -m benchmarks.ticket_speed --device cuda --rounds 5 > "$out/ticket_speed.txt" 2>&1
timeout 90 $python -m benchmarks.trial_speed --device cuda --rounds 3 --steps 8 --study-rounds 0 > "$out/trial_speed.txt" 2>&1
timeout 150 $python -m benchmarks.gpu_packing --tickets 4 > "$out/gpu_packing.txt" 2>&1
for f in machine tests ticket_speed trial_speed gpu_packing; do echo "== $f"; grep -v "it/s\]\|examples/s\]" "$out/$f.txt" | tail -25; done
