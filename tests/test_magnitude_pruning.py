"""One-shot global magnitude tickets and their controls on the shared MiniLM (METHODS.md sections 2-3)."""

import math

import pytest
import torch

from trainables.model import load_model
from trainables.pruning.magnitude import global_mask, magnitude_mask
from trainables.pruning.weights import PrunableSet, WeightMask, bake, masked_weights, prunable_weights
from trainables.tasks import get_task

LAYER = 4 * 384 * 384 + 2 * 384 * 1536  # Q, K, V, attention output, FFN in, FFN out of one MiniLM layer


@pytest.fixture(scope="module")
def model(model_dir):
    return load_model(model_dir, get_task("rte"), 0)


@pytest.fixture(scope="module")
def weights(model):
    return masked_weights(model)


def test_prunable_set_is_the_six_matrices_per_layer_and_never_the_classifier(model):
    names = list(prunable_weights(model))
    assert len(names) == 6 * 6 and sum(p.numel() for p in prunable_weights(model).values()) == 6 * LAYER
    assert not any("classifier" in n or "bias" in n or "LayerNorm" in n for n in names)
    wider = prunable_weights(model, PrunableSet(pooler=True, embeddings=True))
    assert set(wider) - set(names) == {"bert.pooler.dense.weight", "bert.embeddings.word_embeddings.weight"}


@pytest.mark.parametrize("sparsity", [0.1, 0.37, 0.5, 0.9])
def test_global_magnitude_prunes_exactly_the_smallest_weights(weights, sparsity):
    mask = magnitude_mask(weights, sparsity)
    assert mask.total - mask.kept == math.floor(sparsity * 6 * LAYER)
    pruned = torch.cat([weights[n].abs()[~m] for n, m in mask.masks.items()])
    kept = torch.cat([weights[n].abs()[m] for n, m in mask.masks.items()])
    assert pruned.max() <= kept.min()  # global: one threshold over every matrix
    per_matrix = mask.matrix_sparsity().values()
    assert max(per_matrix) - min(per_matrix) > 0.05  # ... so matrices end up at different sparsities


def test_controls_keep_the_good_count_bad_is_the_reversed_ranking_random_is_seeded(weights):
    good = magnitude_mask(weights, 0.5)
    bad = magnitude_mask(weights, 0.5, "bad")
    random = magnitude_mask(weights, 0.5, "random", seed=3)
    assert good.kept == bad.kept == random.kept
    pruned_bad = torch.cat([weights[n].abs()[~m] for n, m in bad.masks.items()])
    kept_bad = torch.cat([weights[n].abs()[m] for n, m in bad.masks.items()])
    assert pruned_bad.min() >= kept_bad.max()  # bad prunes the largest weights
    again = magnitude_mask(weights, 0.5, "random", seed=3)
    other = magnitude_mask(weights, 0.5, "random", seed=4)
    assert all(torch.equal(random.masks[n], again.masks[n]) for n in weights)
    assert not all(torch.equal(random.masks[n], other.masks[n]) for n in weights)
    overlap = sum(int((random.masks[n] & good.masks[n]).sum()) for n in weights) / good.kept
    assert 0.45 < overlap < 0.55  # uniform: half of the good ticket's kept weights, as chance predicts


def test_nested_masks_keep_earlier_pruning(weights):
    first = magnitude_mask(weights, 0.2)
    shuffled = {n: torch.rand(w.shape) for n, w in weights.items()}  # a later level ranks differently
    second = global_mask(shuffled, 0.4, within=first)
    assert all(not (second.masks[n] & ~first.masks[n]).any() for n in weights)  # a subset of the first
    assert second.total - second.kept == math.floor(0.4 * second.total)
    with pytest.raises(ValueError, match="levels must grow"):
        global_mask(shuffled, 0.1, within=first)


def test_a_masked_model_keeps_pruned_weights_at_zero_through_training(model_dir, rte_batch):
    model = load_model(model_dir, get_task("rte"), 0)
    mask = magnitude_mask(masked_weights(model), 0.6)
    mask.apply(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    model.train()
    for _ in range(2):
        model(**rte_batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    effective = masked_weights(model)
    assert all(torch.all(effective[n][~m] == 0) for n, m in mask.masks.items())
    moved = masked_weights(load_model(model_dir, get_task("rte"), 0))
    name = "encoder.layer.0.attention.self.query.weight"
    kept = mask.masks[name]
    assert not torch.equal(effective[name][kept], moved[name][kept])  # the kept weights did train
    baked = bake(model).state_dict()
    assert not any(k.endswith("_orig") or k.endswith("_mask") for k in baked)
    assert torch.all(baked["bert." + name][~kept] == 0)


def test_mask_file_round_trip(weights, tmp_path):
    mask = magnitude_mask(weights, 0.3)
    again = WeightMask.load(mask.save(tmp_path / "mask.safetensors"))
    assert again.kept == mask.kept and all(torch.equal(again.masks[n], mask.masks[n]) for n in weights)
    assert mask.summary()["achieved_sparsity"] == pytest.approx(0.3, abs=1e-6)


def test_min_keep_floor_never_empties_a_matrix_and_keeps_the_exact_count(caplog):
    """A tiny matrix of small weights (like MiniLM's pooler beside the encoder) is emptied by a plain global
    ranking at 50 %; the floor keeps its largest weights and takes the difference from the others."""
    torch.manual_seed(0)
    scores = {"big": torch.rand(100, 100) + 1.0, "small": torch.rand(10, 10) * 0.5}
    plain = global_mask(scores, 0.5)
    assert int(plain.masks["small"].sum()) == 0
    with caplog.at_level("WARNING"):
        floored = global_mask(scores, 0.5, min_keep=0.03)
    assert floored.total - floored.kept == plain.total - plain.kept == 5050  # the same count, exactly
    kept_small = floored.masks["small"]
    assert int(kept_small.sum()) == 3  # ceil(0.03 * 100)
    assert set(torch.topk(scores["small"].flatten(), 3).indices.tolist()) == set(
        kept_small.flatten().nonzero().flatten().tolist())  # its 3 largest
    assert "small" in caplog.text and "below 5 %" in caplog.text  # 3 % kept: named in a warning
    with pytest.raises(ValueError, match="min-keep-per-matrix"):
        global_mask(scores, 0.99, min_keep=0.5)


def test_min_keep_floor_respects_imps_previous_level():
    torch.manual_seed(1)
    scores = {"a": torch.rand(20, 20), "b": torch.rand(20, 20) * 0.1}
    first = global_mask(scores, 0.4, min_keep=0.1)
    second = global_mask({k: torch.rand_like(v) * (0.1 if k == "b" else 1) for k, v in scores.items()}, 0.7,
                         within=first, min_keep=0.1)
    for name in scores:
        assert not (second.masks[name] & ~first.masks[name]).any()  # nested
        assert int(second.masks[name].sum()) >= 40  # ceil(0.1 * 400)
    assert second.total - second.kept == 560
