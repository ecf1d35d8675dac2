"""A structured ticket fine-tuned physically smaller is the ticket fine-tuned gated (issue 30): same seed, same data
order, the same kept weights and dev predictions; and a study's trial trains it smaller by default."""

import copy

import pytest
import torch
from torch import nn

from trainables.data import DataSettings, batches, collator, load_tokenized
from trainables.finetune import FinetuneSettings, FineTuneRun, evaluate
from trainables.model import load_model, load_tokenizer
from trainables.pruning.structured import StructuredMask
from trainables.pruning.tickets import Ticket
from trainables.tasks import get_task

#: Tolerance of the comparison, absolute. The two runs do the same arithmetic on every kept weight but in other
#: shapes: a pruned head's zeros are summed in (gated) or never present (smaller), and matrix products of other
#: widths take other blocking orders, so float32 rounding (about 1e-7 relative) differs. AdamW divides each
#: gradient by its own running scale, so where a gradient is itself near rounding noise a small relative
#: difference becomes a visible fraction of that step's update (lr 1e-4 here): measured 2.9e-6 after 4 steps,
#: against updates of 2.5e-4; 1e-5 leaves room for other CPUs' kernels. Logits: below 1e-4.
WEIGHT_TOLERANCE = 1e-5
LOGIT_TOLERANCE = 1e-4


def _no_dropout(model: nn.Module) -> nn.Module:
    """Dropout off: attention-probability dropout draws one random mask per head, so with fewer heads its random
    stream differs and the two runs would be the same ticket with other dropout noise, not the same numbers."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return model


@pytest.fixture(scope="module")
def rte(model_dir, glue_dir):
    tokenizer = load_tokenizer(model_dir)
    split = load_tokenized(get_task("rte"), tokenizer, DataSettings(glue_dir, 48, 32, 32), seed=0)
    return split, collator(tokenizer)


def _mask() -> StructuredMask:
    head = torch.ones(6, 12, dtype=torch.bool)
    head[0, [1, 5, 7]] = False
    head[2, :11] = False
    head[4, ::2] = False
    return StructuredMask(head, torch.tensor([True, False, True, True, False, True]))


def test_a_ticket_fine_tuned_smaller_has_the_gated_tickets_kept_weights_and_dev_predictions(model_dir, rte):
    split, collate = rte
    task, device = get_task("rte"), torch.device("cpu")
    settings = FinetuneSettings(learning_rate=1e-4, epochs=2, batch_size=16, optimizer="adamw", weight_decay=0.01)
    pretrained = load_model(model_dir, task, seed=0)
    trained = {}
    for smaller in (False, True):
        model = _no_dropout(Ticket(_mask(), smaller=smaller).model_to_train(copy.deepcopy(pretrained)))
        run = FineTuneRun(model, split["train"], collate, settings, seed=3, device=device)
        for _ in range(settings.epochs):
            run.train_epoch()
        assert run.step == 4
        dev = batches(split["validation"], collate, 16, device)
        trained[smaller] = (run.model, evaluate(run.model, dev, task, device))
    (gated, gated_dev), (small, small_dev) = trained[False], trained[True]
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in pretrained.parameters())
    kept = _mask().export(gated).state_dict()  # the gated run's kept weights, in the smaller shapes
    state = small.state_dict()
    assert kept.keys() == state.keys()
    worst = max(float((kept[name] - state[name]).abs().max()) for name in state if state[name].numel())
    moved = float((state["classifier.weight"] - pretrained.state_dict()["classifier.weight"]).abs().max())
    print(f"max |smaller - gated| over the kept weights after 4 steps: {worst:.2e} (training moved them by {moved:.2e})")
    assert worst < WEIGHT_TOLERANCE and moved > 1e-4  # measured: 2.9e-6 apart, moved 2.5e-4 (lr 1e-4, warm-up)
    assert (small_dev.predictions == gated_dev.predictions).all()
    assert small_dev.dev_score == gated_dev.dev_score
    with torch.no_grad():
        batch = next(iter(batches(split["validation"], collate, 16, device)))
        batch = {k: v for k, v in batch.items() if k != "labels"}
        gates = _mask().apply(gated)
        assert float((gated(**batch).logits - small(**batch).logits).abs().max()) < LOGIT_TOLERANCE
        gates.remove()


def test_a_structured_trial_trains_smaller_by_default_and_gated_on_request(tiny_spec, tmp_path):
    from trainables.config import TrialConfig
    from trainables.trial import TrialContext, run_ticket_trial

    context = TrialContext(model=tiny_spec.model, task="rte", data=tiny_spec.data, finetune=tiny_spec.finetune,
                           seeds=(0,), cache_dir=str(tmp_path / "cache"), weights_dir=str(tmp_path / "weights"))
    reports = {}
    for form in ("smaller", "gated"):
        got = []
        run_ticket_trial(TrialConfig(0.5, options=(("train_as", form),)), context, got.append)
        reports[form] = got[-1]
    from safetensors.torch import load_file

    small = load_file(reports["smaller"].ticket.weight_files["0"])
    full = load_file(reports["gated"].ticket.weight_files["0"])
    query = "bert.encoder.layer.0.attention.self.query.weight"
    kept = reports["smaller"].ticket.counts["heads_kept"]
    assert small[query].shape[0] < full[query].shape[0] == 384  # the kept weights of a smaller ticket are smaller
    assert sum(v.shape[0] for k, v in small.items() if k.endswith("attention.self.query.weight")) == kept * 32
    assert reports["smaller"].ticket.counts == reports["gated"].ticket.counts  # the same ticket


def test_the_time_estimate_scales_each_ticket_trial_by_its_kept_flops(model_dir):
    from search.study.progress import Plan, estimate
    from trainables.flops import encoder_flops
    from trainables.model import encoder_shape, load_config
    from trainables.pruning.registry import get_method

    config = load_config(model_dir)
    structured = get_method("structured")
    # MiniLM at 50 %: 36/72 heads, 4/6 FFN blocks; 128 tokens: 1.737 of 2.869 GFLOPs (the README's speed table)
    shape = encoder_shape(config)
    assert encoder_flops(shape, 128, [12] * 6, [1] * 6) == pytest.approx(2.869e9, rel=1e-3)
    assert structured.training_cost(0.5, config, {}) == pytest.approx(1.737 / 2.869, rel=1e-3)
    assert structured.training_cost(0.5, config, {"train_as": "gated"}) == 1.0  # gated: the dense cost
    assert get_method("magnitude").training_cost(0.5, config, {}) == 1.0  # masked weights in dense kernels
    costs = tuple(structured.training_cost(s / 20, config, {}) for s in range(1, 13))
    assert all(a > b for a, b in zip(costs, costs[1:]))  # sparser tickets cost less
    scaled, flat = estimate(Plan(1, 1, 13, 1, costs), 100.0), estimate(Plan(1, 1, 13, 1), 100.0)
    assert "up to 21 min 40 s in all" in flat  # 100 s dense + 12 trials x 100 s
    total = 100 + 100 * sum(costs)
    assert f"up to {int(total // 60)} min {round(total % 60)} s in all" in scaled
