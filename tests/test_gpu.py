"""Checks that need a CUDA GPU (skipped without one; ``benchmarks/gpu_check.sh`` runs them where a GPU is lent):
a structured ticket trained smaller on the GPU is the gated ticket, mixed precision trains finitely, data-loader
workers feed the GPU, and an export traced on the GPU runs in ONNX Runtime with the same logits."""

import copy
import math

import pytest
import torch

from test_smaller_training import _no_dropout
from trainables.data import DataSettings, batches, collator, load_tokenized
from trainables.finetune import FinetuneSettings, FineTuneRun, autocast_dtype
from trainables.model import load_model, load_tokenizer
from trainables.pruning.structured import StructuredMask
from trainables.pruning.tickets import Ticket
from trainables.tasks import get_task

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def rte(model_dir, glue_dir):
    tokenizer = load_tokenizer(model_dir)
    return load_tokenized(get_task("rte"), tokenizer, DataSettings(glue_dir, 64, 64, 64), seed=0), collator(tokenizer)


def _mask() -> StructuredMask:
    head = torch.ones(6, 12, dtype=torch.bool)
    head[0, [1, 5, 7]] = False
    head[3, ::2] = False
    return StructuredMask(head, torch.tensor([True, False, True, True, True, False]))


def test_a_ticket_trained_smaller_on_the_gpu_is_the_gated_ticket(model_dir, rte):
    split, collate = rte
    device = torch.device("cuda")
    settings = FinetuneSettings(learning_rate=1e-4, epochs=1, batch_size=16, optimizer="adamw", precision="fp32")
    pretrained = load_model(model_dir, get_task("rte"), seed=0)
    trained = {}
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 arithmetic on both sides: TF32 would round each differently
    for smaller in (False, True):
        model = _no_dropout(Ticket(_mask(), smaller=smaller).model_to_train(copy.deepcopy(pretrained).to(device)))
        run = FineTuneRun(model, split["train"], collate, settings, seed=3, device=device)
        run.train_epoch()
        trained[smaller] = run.model
    kept = _mask().export(trained[False]).state_dict()
    state = trained[True].state_dict()
    assert max(float((kept[n] - state[n]).abs().max()) for n in state if state[n].numel()) < 1e-4


@pytest.mark.parametrize("precision", ["auto", "bf16", "fp16"])
def test_mixed_precision_trains_a_smaller_ticket_finitely_on_the_gpu(model_dir, rte, precision):
    split, collate = rte
    device = torch.device("cuda")
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    settings = FinetuneSettings(learning_rate=1e-4, epochs=1, batch_size=16, optimizer="adamw", precision=precision)
    model = Ticket(_mask(), smaller=True).model_to_train(load_model(model_dir, get_task("rte"), seed=0).to(device))
    run = FineTuneRun(model, split["train"], collate, settings, seed=0, device=device, workers=2)
    assert autocast_dtype(precision, device) in (torch.bfloat16, torch.float16)
    assert math.isfinite(run.train_epoch())
    assert all(torch.isfinite(p).all() for p in run.model.parameters())


def test_an_export_traced_on_the_gpu_runs_in_onnx_runtime_with_the_same_logits(model_dir, rte, tmp_path):
    from search.tools.export_forms import onnx_logits, onnx_session, quiet_exporter, write_onnx

    split, collate = rte
    ticket = _mask().export(load_model(model_dir, get_task("rte"), seed=0)).to("cuda").eval()
    tokenizer = load_tokenizer(model_dir)
    with quiet_exporter():
        write_onnx(ticket, tokenizer, tmp_path / "model.onnx")
    batch = next(iter(batches(split["validation"], collate, 16, "cpu")))
    batch = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        expected = ticket.cpu()(**batch).logits
    got = torch.from_numpy(onnx_logits(onnx_session(tmp_path / "model.onnx"), batch))
    assert (got - expected).abs().max() < 1e-4
