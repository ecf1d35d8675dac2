"""Control tickets: random and bad prune exactly as many units as the good ticket (Prasanna et al. 2020)."""

import pytest
import torch

from trainables.pruning.controls import control_scores
from trainables.pruning.structured import structured_mask


@pytest.fixture
def scores():
    torch.manual_seed(5)
    return torch.rand(6, 12), torch.rand(6)


def _mask(scores, control, seed=0, sparsity=0.3):
    return structured_mask(*control_scores(scores, control, seed), sparsity)


@pytest.mark.parametrize("sparsity", [0.1, 0.3, 0.6, 0.95])
def test_controls_keep_the_good_tickets_counts_and_a_head_per_layer(scores, sparsity):
    good = _mask(scores, "good", sparsity=sparsity)
    for control in ("random", "bad"):
        mask = _mask(scores, control, sparsity=sparsity)
        assert (mask.heads_kept, mask.ffn_kept) == (good.heads_kept, good.ffn_kept)
        assert (mask.head.sum(dim=1) >= 1).all()


def test_bad_prunes_the_most_important_units(scores):
    head, ffn = scores
    bad = _mask(scores, "bad")
    pruned = head[~bad.head]
    assert pruned.min() > head[bad.head].median()  # what bad removes ranks above what it keeps
    assert set((~bad.ffn).nonzero().flatten().tolist()) == {int(ffn.argmax())}  # 1 of 6 blocks: the top one
    good = _mask(scores, "good")
    assert not (bad.head == good.head).all()


def test_random_is_reproducible_from_its_seed_and_ignores_the_scores(scores):
    first, again = _mask(scores, "random", seed=7), _mask(scores, "random", seed=7)
    assert torch.equal(first.head, again.head) and torch.equal(first.ffn, again.ffn)
    other_seed = _mask(scores, "random", seed=8)
    assert not torch.equal(first.head, other_seed.head)
    other_scores = _mask((torch.rand(6, 12), torch.rand(6)), "random", seed=7)
    assert torch.equal(first.head, other_scores.head)


def test_unknown_control_is_refused(scores):
    with pytest.raises(ValueError, match="unknown control 'worst'"):
        control_scores(scores, "worst", 0)
