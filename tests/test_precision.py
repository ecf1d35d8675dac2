"""Mixed precision (--precision): which dtype the forward runs in, weights kept fp32, the fp16 loss scaler."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from trainables.data import collator, load_tokenized
from trainables.finetune import FineTuneRun, FinetuneSettings, autocast_dtype, make_optimizer
from trainables.tasks import get_task


def test_auto_precision_is_fp32_on_the_cpu_and_names_are_checked():
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) == torch.bfloat16 and autocast_dtype("fp16", cpu) == torch.float16
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        autocast_dtype("fp8", cpu)


@pytest.mark.parametrize("precision, expected", [("fp32", torch.float32), ("bf16", torch.bfloat16),
                                                 ("fp16", torch.float16)])
def test_a_fine_tune_runs_its_forward_in_the_asked_precision_and_keeps_fp32_weights(tiny_spec, precision, expected):
    task = get_task("rte")
    tokenizer = AutoTokenizer.from_pretrained(tiny_spec.model)
    data = load_tokenized(task, tokenizer, tiny_spec.data)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_spec.model, num_labels=2)
    seen = []
    model.bert.encoder.layer[0].intermediate.dense.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    before = model.classifier.weight.detach().clone()
    settings = FinetuneSettings(learning_rate=1e-4, epochs=1, batch_size=16, optimizer="adamw", precision=precision)
    run = FineTuneRun(model, data["train"], collator(tokenizer), settings, 0, torch.device("cpu"))
    loss = run.train_epoch()
    assert set(seen) == {expected} and run.step == 2
    assert run.optimisation.scaler.is_enabled() == (precision == "fp16")  # loss scaling only where fp16's range needs it
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast: the weights stay fp32
    assert torch.isfinite(torch.tensor(loss)) and not torch.equal(model.classifier.weight, before)  # it trained


def test_data_workers_give_the_same_batches_and_the_same_fine_tune(tiny_spec):
    """Worker processes only collate: the order comes from the seeded sampler in the training process, so two
    epochs with two workers see exactly the batches, and end with exactly the weights, of two epochs without."""
    from trainables.data import batches

    task = get_task("rte")
    tokenizer = AutoTokenizer.from_pretrained(tiny_spec.model)
    train = load_tokenized(task, tokenizer, tiny_spec.data)["train"]
    collate = collator(tokenizer)
    plain, spawned = (batches(train, collate, 8, shuffle_seed=3, workers=w) for w in (0, 2))
    for _ in range(2):  # two passes: a new order each pass, the same sequence of orders either way
        for a, b in zip(plain, spawned, strict=True):
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    weights = []
    for workers in (0, 2):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(tiny_spec.model, num_labels=2)
        settings = FinetuneSettings(learning_rate=1e-4, epochs=2, batch_size=16, optimizer="adamw", precision="fp32")
        run = FineTuneRun(model, train, collate, settings, 0, torch.device("cpu"), workers)
        run.train_epoch(), run.train_epoch()
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_auto_data_workers_feed_a_gpu_trial_and_stay_off_on_the_cpu():
    from search.cli.settings import data_workers

    assert data_workers("auto", 2, 0) == 0  # a CPU trial trains on every core it has
    assert data_workers("auto", 2, 1) == 1 and data_workers("auto", 8, 0.25) == 4 and data_workers("auto", 1, 1) == 0
    assert data_workers("2", 3, 0) == 2


@pytest.mark.parametrize("name", ["adamw", "adamax"])
def test_the_study_optimiser_steps_as_the_reference_loop_does(name):
    """AdamW is built fused on the CPU (Adamax as PyTorch's default); three steps of it move every weight as
    PyTorch's reference loop does, to float32 rounding (1e-6 on updates of about 3e-3)."""
    torch.manual_seed(0)
    weights = [torch.randn(64, 32), torch.randn(32)]
    grads = [[torch.randn_like(w) for w in weights] for _ in range(3)]
    settings = FinetuneSettings(learning_rate=1e-3, epochs=1, batch_size=1, optimizer=name, weight_decay=0.01)
    ours = [w.clone().requires_grad_() for w in weights]
    reference = [w.clone().requires_grad_() for w in weights]
    built = make_optimizer(ours, settings, torch.device("cpu"))
    assert built.defaults.get("fused") is (True if name == "adamw" else None)
    loop = type(built)(reference, lr=1e-3, weight_decay=0.01, foreach=False)
    for step in grads:
        for params, optimizer in ((ours, built), (reference, loop)):
            for param, grad in zip(params, step):
                param.grad = grad.clone()
            optimizer.step()
    for a, b, w in zip(ours, reference, weights):
        assert float((a - w).abs().max()) > 1e-3  # the steps moved the weights
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
