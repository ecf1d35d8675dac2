"""How much faster is an exported structured ticket than the dense model? Prints measured figures.

    python -m benchmarks.ticket_speed [--task sst2] [--rounds 5] [--device cpu|cuda]

One process, one machine, the models measured interleaved (round after round, each model in turn, so drift in
the machine's speed hits them alike): the dense model and structured tickets at 30 % and 50 % sparsity
(Liang et al.'s counts: ``floor(s * heads)`` heads and ``floor(s * layers * 5/6)`` FFN blocks, the units with
the lowest importance removed), exported physically smaller by ``StructuredMask.export``. Importance here is the
per-token |dL/dξ| of the pre-trained model (with a fresh classifier) on 64 training examples: which units go does
not change the cost, only how many per layer.

Figures: inference examples/s on the dev set at batch 1 and batch 64, every example padded to 128 tokens (so
every model does the same work per example and the FLOP count is exact); training examples/s (forward, backward
and an AdamW step at batch 32); parameters; FLOPs per example from the formula below; and each speedup beside its
FLOP-ratio bound (the dense model's FLOPs over the ticket's). On the CPU, the same models exported to ONNX
(``search.export``'s writer) and run by ONNX Runtime's CPU provider with as many threads: batch 1 and batch 64
examples/s, speedup over ONNX Runtime's dense model and over PyTorch's.

FLOPs per example at sequence length L, hidden size H, head size d, FFN width I (a multiply-add is 2 FLOPs), per
layer with h kept heads and an FFN block kept (f = 1) or pruned (f = 0):
    Q, K, V and attention output    4 * 2 * L * H * (h * d)
    scores and weighted values      2 * 2 * L * L * (h * d)
    FFN                             f * 2 * 2 * L * H * I
plus the pooler and classifier, 2 * H * H + 2 * H * labels (embedding look-ups and LayerNorms left out).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from search.errors import OneLineParser, UsageError

SHARED = Path(__file__).resolve().parents[2] / "shared"


def flops_per_example(config, length: int, heads_per_layer: list[int], ffn_per_layer: list[int],
                      labels: int = 2) -> int:
    """FLOPs of one example of ``length`` tokens (``trainables.flops``, the formula of the module docstring);
    ``ffn_per_layer`` holds FFN widths (0: pruned)."""
    from trainables.flops import encoder_flops
    from trainables.model import encoder_shape

    return encoder_flops(encoder_shape(config), length, heads_per_layer, [1 if i else 0 for i in ffn_per_layer],
                         labels)


def _structure(model) -> tuple[list[int], list[int]]:
    config = model.config
    layers = config.num_hidden_layers
    ticket = getattr(config, "ticket", None) or {}
    heads = ticket.get("heads_per_layer") or [config.num_attention_heads] * layers
    inner = ticket.get("intermediate_per_layer") or [config.intermediate_size] * layers
    return list(heads), list(inner)


def ticket_masks(dense, batches, sparsities) -> dict:
    """``{sparsity: StructuredMask}``: Liang et al.'s counts of heads and FFN blocks with the lowest per-token
    importance of ``dense`` (a sequence classifier, put in eval mode) on ``batches`` (labelled)."""
    from trainables.pruning.structured import normalize_by_layer, structured_mask, unit_importance

    head, ffn = unit_importance(dense.eval(), batches).of("per-token")
    return {sparsity: structured_mask(normalize_by_layer(head), ffn, sparsity) for sparsity in sparsities}


def _tickets(model_dir: str, task, batches, sparsities):
    import torch

    from trainables.model import load_model

    dense = load_model(model_dir, task, seed=0).eval()
    models = {"dense": dense}
    for sparsity, mask in ticket_masks(dense, batches, sparsities).items():
        models[f"{round(100 * sparsity)}% ticket"] = mask.export(dense)
    torch.manual_seed(0)
    return models


def _onnx_session(model, tokenizer, path: Path, threads: int):
    """An ONNX Runtime CPU session on ``model`` exported to ``path`` (``search.tools.export_forms.write_onnx``)."""
    import onnxruntime

    from search.tools.export_forms import quiet_exporter, write_onnx

    with quiet_exporter():
        write_onnx(model, tokenizer, path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _ort(session, batches):
    from search.tools.export_forms import onnx_logits

    feeds = [{k: v.numpy() for k, v in batch.items()} for batch in batches]

    def run():
        for feed in feeds:
            onnx_logits(session, feed)
    return run


def _time(fn, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return time.perf_counter() - start


def parse_sparsities(text: str) -> list[float]:
    """``--sparsities``: distinct fractions in (0, 1), comma-separated.

    Raises:
        UsageError: anything else, with the fix.
    """
    try:
        sparsities = [float(s) for s in text.split(",")]
    except ValueError:
        sparsities = []
    if not sparsities or not all(0 < s < 1 for s in sparsities) or len(set(sparsities)) != len(sparsities):
        raise UsageError(f"--sparsities {text!r} is not a list of fractions in (0, 1), each named once: pass e.g. "
                         "0.3,0.5 (not percent)")
    return sparsities


def check_device(text: str) -> None:
    """``--device``: ``cpu``, or a CUDA device that is here.

    Raises:
        UsageError: anything else, with the fix.
    """
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        raise UsageError(f"--device {text!r} is not a torch device: pass cpu or cuda (cuda:N)") from None
    if device.type == "cuda" and not (torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()):
        raise UsageError(f"--device {text}: no such CUDA device here ({torch.cuda.device_count()} visible): "
                         "pass --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {text}: measured on cpu or cuda only")


def check_args(args) -> list[float]:
    """The flags checked before anything is loaded; returns the sparsities.

    Raises:
        UsageError: the first problem, naming it and the fix.
    """
    from search.cli.preflight import check_model_and_data, check_tasks

    sparsities = parse_sparsities(args.sparsities)
    for flag in ("rounds", "batches", "single", "train_steps"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} {getattr(args, flag)} must be at least 1")
    if args.threads < 0:
        raise UsageError(f"--threads {args.threads} must be 0 (all cores) or more")
    check_device(args.device)
    if len(check_tasks(args.task, "--task")) != 1:
        raise UsageError(f"--task {args.task}: the speeds are measured on one task's dev set; pass one")
    args.task = args.task.strip().lower()
    check_model_and_data(args.model, args.glue_dir, (args.task,))
    return sparsities


def main(argv: list[str] | None = None) -> int:
    """Measure and print; returns the exit code (0 done, 2 bad input: one line on stderr)."""
    parser = OneLineParser(prog="python -m benchmarks.ticket_speed", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--model", default=str(SHARED / "models" / "all-MiniLM-L6-v2"))
    parser.add_argument("--glue-dir", default=str(SHARED / "data" / "glue"))
    parser.add_argument("--sparsities", default="0.3,0.5")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median reported)")
    parser.add_argument("--batches", type=int, default=4, help="batches of 64 per model per round")
    parser.add_argument("--single", type=int, default=64, help="batch-1 examples per model per round")
    parser.add_argument("--train-steps", type=int, default=3, help="training steps of batch 32 per model per round")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    try:
        args = parser.parse_args(argv)
        sparsities = check_args(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    import torch

    from trainables.data import load_raw
    from trainables.model import load_tokenizer, quiet_loading
    from trainables.tasks import get_task

    if args.threads:
        torch.set_num_threads(args.threads)
    task = get_task(args.task)
    tokenizer = load_tokenizer(args.model)
    raw = load_raw(task, args.glue_dir)

    def encode(rows, labels=False):
        batch = tokenizer(*(rows[c] for c in task.text_columns), padding="max_length", truncation=True,
                          max_length=128, return_tensors="pt")
        if labels:
            batch["labels"] = torch.tensor(rows["label"])
        return batch

    dev = raw["validation"]
    need = 64 * args.batches
    dev = dev.select([i % len(dev) for i in range(max(need, args.single))])
    big = [encode(dev[i:i + 64]) for i in range(0, need, 64)]
    single = [encode(dev[i:i + 1]) for i in range(args.single)]
    train = [encode(raw["train"][i:i + 32], labels=True) for i in range(0, 32 * args.train_steps, 32)]
    with quiet_loading():
        models = _tickets(args.model, task, [encode(raw["train"][i:i + 16], labels=True) for i in range(0, 64, 16)],
                          sparsities)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    big = [{k: v.to(device) for k, v in b.items()} for b in big]
    single = [{k: v.to(device) for k, v in b.items()} for b in single]
    train = [{k: v.to(device) for k, v in b.items()} for b in train]
    for model in models.values():
        model.to(device).eval()

    def infer(model, batches):
        def run():
            with torch.inference_mode():
                for batch in batches:
                    model(**batch)
            sync()
        return run

    def training(model):
        copy = __import__("copy").deepcopy(model).train()
        optimizer = torch.optim.AdamW(copy.parameters(), lr=1e-5)

        def run():
            for batch in train:
                optimizer.zero_grad()
                copy(**batch).loss.backward()
                optimizer.step()
            sync()
        return run

    runs = {name: {"batch 64": infer(m, big), "batch 1": infer(m, single), "train": training(m)}
            for name, m in models.items()}
    examples = {"batch 64": 64 * len(big), "batch 1": len(single), "train": 32 * len(train)}
    scratch = tempfile.TemporaryDirectory(prefix="ticket-speed-onnx-")
    if device.type == "cpu":  # ONNX Runtime's CPU provider: the same models exported by search.export's writer
        for index, (name, model) in enumerate(models.items()):
            session = _onnx_session(model, tokenizer, Path(scratch.name) / f"model-{index}.onnx",
                                    torch.get_num_threads())
            runs[name]["ort batch 64"] = _ort(session, big)
            runs[name]["ort batch 1"] = _ort(session, single)
        examples.update({"ort batch 64": examples["batch 64"], "ort batch 1": examples["batch 1"]})
    for kinds in runs.values():  # warm-up: allocator, kernels, thread pools
        for run in kinds.values():
            run()
    rates = {name: {kind: [] for kind in examples} for name in models}
    for _ in range(args.rounds):
        for name, kinds in runs.items():
            for kind, run in kinds.items():
                rates[name][kind].append(examples[kind] / _time(run, 1))

    config = models["dense"].config
    dense_flops = flops_per_example(config, 128, *_structure(models["dense"]))
    cpu = platform.processor() or platform.machine()
    threads = torch.get_num_threads()
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU {cpu}, {os.cpu_count()} cores, {threads} torch threads")
    print(f"ticket_speed: {os.path.basename(args.model)}, {task.name} dev padded to 128 tokens, {where}, torch "
          f"{torch.__version__}; median of {args.rounds} interleaved rounds")
    print(f"{'model':<12} {'heads':>6} {'FFN':>4} {'params':>11} {'GFLOPs/ex':>9} {'bound':>6} "
          f"{'b64 ex/s':>9} {'speedup':>7} {'b1 ex/s':>8} {'speedup':>7} {'train ex/s':>10} {'speedup':>7}")
    base = {kind: statistics.median(rates["dense"][kind]) for kind in examples}
    for name, model in models.items():
        heads, inner = _structure(model)
        flops = flops_per_example(config, 128, heads, inner)
        medians = {kind: statistics.median(rates[name][kind]) for kind in examples}
        print(f"{name:<12} {sum(heads):>6} {sum(1 for i in inner if i):>4} "
              f"{sum(p.numel() for p in model.parameters()):>11,} {flops / 1e9:>9.3f} {dense_flops / flops:>5.2f}x "
              f"{medians['batch 64']:>9.1f} {medians['batch 64'] / base['batch 64']:>6.2f}x "
              f"{medians['batch 1']:>8.1f} {medians['batch 1'] / base['batch 1']:>6.2f}x "
              f"{medians['train']:>10.1f} {medians['train'] / base['train']:>6.2f}x")
    if "ort batch 64" in examples:
        onnxruntime = __import__("onnxruntime")
        print(f"ONNX Runtime {onnxruntime.__version__} (CPU provider, {torch.get_num_threads()} intra-op threads), "
              "the same models exported to model.onnx; speedup over ONNX Runtime's dense model, and over PyTorch's")
        print(f"{'model':<12} {'b64 ex/s':>9} {'speedup':>7} {'vs torch':>8} {'b1 ex/s':>8} {'speedup':>7} {'vs torch':>8}")
        for name in models:
            medians = {kind: statistics.median(rates[name][kind]) for kind in examples}
            print(f"{name:<12} {medians['ort batch 64']:>9.1f} {medians['ort batch 64'] / base['ort batch 64']:>6.2f}x "
                  f"{medians['ort batch 64'] / base['batch 64']:>7.2f}x "
                  f"{medians['ort batch 1']:>8.1f} {medians['ort batch 1'] / base['ort batch 1']:>6.2f}x "
                  f"{medians['ort batch 1'] / base['batch 1']:>7.2f}x")
    scratch.cleanup()
    print("bound: dense FLOPs / ticket FLOPs per example, matrix products only (GELU, softmax and LayerNorm are left "
          "out, and pruning removes some of them too, so a speedup can pass it); speedup: examples/s over the dense "
          "model's, same run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
