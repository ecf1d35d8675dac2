"""Structured tickets on the shared model: exact counts, exact zeros, importance = |dL/dξ|."""

import math

import pytest
import torch

from trainables.gates import UnitGates
from trainables.model import encoder_shape, load_config, load_model
from trainables.pruning.structured import (StructuredMask, normalize_by_layer, structured_mask, unit_importance,
                                           units_to_prune)
from trainables.tasks import get_task


@pytest.fixture(scope="module")
def rte_model(model_dir):
    return load_model(model_dir, get_task("rte"), seed=0).eval()


def test_shape_is_read_from_the_config(model_dir):
    shape = encoder_shape(load_config(model_dir))
    assert (shape.num_layers, shape.num_heads) == (6, 12)  # MiniLM, not BERT-base's 12 x 12


@pytest.mark.parametrize("sparsity", [0.0, 0.05, 0.1, 0.3, 0.5, 0.9, 0.99])
def test_mask_prunes_exactly_floor_of_sparsity_and_keeps_a_head_per_layer(sparsity):
    torch.manual_seed(1)
    mask = structured_mask(torch.rand(6, 12), torch.rand(6), sparsity)
    expected_heads = min(math.floor(sparsity * 72 + 1e-9), 72 - 6)
    assert 72 - mask.heads_kept == expected_heads
    assert 6 - mask.ffn_kept == math.floor(sparsity * 5 + 1e-9)  # Liang's 5/6 of the layers per unit
    assert (mask.head.sum(dim=1) >= 1).all()


def test_mask_prunes_the_lowest_scores_and_respects_the_per_layer_floor():
    scores = torch.ones(4, 3)
    scores[0] = torch.tensor([0.01, 0.02, 0.03])  # layer 0 holds the three lowest heads
    mask = structured_mask(scores, torch.tensor([0.4, 0.1, 0.3, 0.2]), 0.3)  # 3 heads, floor(1.0) = 1 FFN block
    assert mask.head[0].tolist() == [False, False, True]  # its last head survives
    assert mask.heads_kept == 9 and mask.head[1:].sum() == 8
    assert mask.ffn.tolist() == [True, False, True, True]


def test_masks_are_nested_across_sparsities():
    torch.manual_seed(2)
    heads, ffn = torch.rand(6, 12), torch.rand(6)
    masks = [structured_mask(heads, ffn, s / 20) for s in range(0, 19)]
    for lower, higher in zip(masks, masks[1:]):
        assert not (higher.head & ~lower.head).any() and not (higher.ffn & ~lower.ffn).any()


def test_sparsity_outside_unit_interval_is_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        units_to_prune(1.0, 10)


def test_layer_normalisation_gives_unit_rows():
    normalised = normalize_by_layer(torch.tensor([[3.0, 4.0], [0.0, 2.0]]))
    assert torch.allclose(normalised, torch.tensor([[0.6, 0.8], [0.0, 1.0]]))


def _ticket() -> StructuredMask:
    head = torch.ones(6, 12, dtype=torch.bool)
    head[0, :11] = False  # one head left in layer 0
    head[3, [2, 5, 7]] = False
    ffn = torch.tensor([True, False, True, True, False, True])
    return StructuredMask(head, ffn)


def test_pruned_heads_and_ffn_blocks_contribute_exactly_zero(rte_model, rte_batch):
    """Scrambling every weight of the pruned units leaves the logits bit-for-bit unchanged."""
    inputs = {k: v for k, v in rte_batch.items() if k != "labels"}
    gates = UnitGates(rte_model)
    mask = _ticket()
    mask.set_gates(gates)
    try:
        with torch.no_grad():
            before = rte_model(**inputs).logits.clone()
            saved = {k: v.clone() for k, v in rte_model.state_dict().items()}
            layers = rte_model.bert.encoder.layer
            head_dim = 32
            torch.manual_seed(3)
            for layer, heads in enumerate(mask.head):
                for head in (~heads).nonzero().flatten().tolist():
                    rows = slice(head * head_dim, (head + 1) * head_dim)
                    for proj in (layers[layer].attention.self.query, layers[layer].attention.self.key,
                                 layers[layer].attention.self.value):
                        proj.weight[rows] = torch.randn_like(proj.weight[rows]) * 10
                        proj.bias[rows] = torch.randn_like(proj.bias[rows]) * 10
            for layer in (~mask.ffn).nonzero().flatten().tolist():
                for linear in (layers[layer].intermediate.dense, layers[layer].output.dense):
                    linear.weight.normal_(0, 10)
                    linear.bias.normal_(0, 10)
            after = rte_model(**inputs).logits
            assert torch.equal(before, after)
            rte_model.load_state_dict(saved)
    finally:
        gates.remove()


def test_gating_a_head_equals_zeroing_its_columns_of_the_output_projection(model_dir, rte_batch):
    task = get_task("rte")
    inputs = {k: v for k, v in rte_batch.items() if k != "labels"}
    gated, zeroed = load_model(model_dir, task, 0).eval(), load_model(model_dir, task, 0).eval()
    gates = UnitGates(gated)
    mask = _ticket()
    mask.set_gates(gates)
    with torch.no_grad():
        for layer, heads in enumerate(mask.head):
            attention_out = zeroed.bert.encoder.layer[layer].attention.output.dense
            for head in (~heads).nonzero().flatten().tolist():
                attention_out.weight[:, head * 32:(head + 1) * 32] = 0
            if not mask.ffn[layer]:
                zeroed.bert.encoder.layer[layer].output.dense.weight.zero_()
                zeroed.bert.encoder.layer[layer].output.dense.bias.zero_()
        assert torch.allclose(gated(**inputs).logits, zeroed(**inputs).logits, atol=1e-5)
    gates.remove()
    with torch.no_grad():  # hooks removed: the model is the dense one again
        assert not torch.allclose(gated(**inputs).logits, zeroed(**inputs).logits, atol=1e-5)


def test_importance_equals_finite_difference_of_the_loss(model_dir, rte_batch):
    """|dL/dξ| from autograd matches a central difference of the loss in each gate (float64)."""
    model = load_model(model_dir, get_task("rte"), 0).double().eval()
    head, ffn = unit_importance(model, [rte_batch]).of("per-batch")  # one batch: |d(mean loss)/dξ|
    assert head.shape == (6, 12) and ffn.shape == (6,)
    gates = UnitGates(model)
    eps = 1e-4

    def loss_with(which, index, delta):
        values = {"head": torch.ones(6, 12, dtype=torch.float64), "ffn": torch.ones(6, dtype=torch.float64)}
        values[which][index] += delta
        gates.set(values["head"], values["ffn"])
        with torch.no_grad():
            return model(**rte_batch).loss.item()

    for which, index, exact in (("head", (0, 3), head[0, 3]), ("head", (5, 11), head[5, 11]),
                                ("ffn", 2, ffn[2]), ("ffn", 5, ffn[5])):
        numeric = (loss_with(which, index, eps) - loss_with(which, index, -eps)) / (2 * eps)
        assert abs(numeric) == pytest.approx(float(exact), rel=1e-4, abs=1e-8)
    gates.remove()
    assert head.sum() > 0 and ffn.sum() > 0


def test_importance_leaves_the_model_unchanged(model_dir, rte_batch):
    model = load_model(model_dir, get_task("rte"), 0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    unit_importance(model, [rte_batch])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():  # no hook left: a fresh gate object starts at all-ones and changes nothing
        assert all(p.grad is None for p in model.parameters())
