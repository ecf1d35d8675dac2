"""Mixed precision (--precision): which dtype the forward runs in, weights kept fp32, the fp16 loss scaler."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from trainables.data import collator, load_tokenized
from trainables.finetune import FineTuneRun, FinetuneSettings, autocast_dtype
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
    assert run.scaler.is_enabled() == (precision == "fp16")  # loss scaling only where fp16's range needs it
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast: the weights stay fp32
    assert torch.isfinite(torch.tensor(loss)) and not torch.equal(model.classifier.weight, before)  # it trained
