"""The head/FFN importance estimators pinned to independent references on real RTE pairs, and Liang et al.'s
(heads, FFN blocks) counts."""

import dataclasses

import pytest
import torch
from transformers import BertConfig

from trainables.gates import UnitGates
from trainables.model import encoder_layers, load_model, submodule
from trainables.pruning.structured import (ESTIMATORS, ffn_blocks_to_prune, structured_mask, unit_importance,
                                           units_to_prune)
from trainables.tasks import get_task


@pytest.fixture(scope="module")
def model64(model_dir):
    """The shared model with an RTE head, in float64 so the references agree to ~1e-10."""
    return load_model(model_dir, get_task("rte"), 0).double().eval()


def _rows(batch, rows):
    return {k: v[rows] for k, v in batch.items()}


def test_per_example_equals_a_loop_over_single_examples(model64, rte_batch):
    """Michel et al.'s eq. 2 computed the slow way: one example per backward pass, |dL(x)/dξ|, averaged."""
    scores = unit_importance(model64, [rte_batch])
    gates = UnitGates(model64)
    head_sum, ffn_sum = torch.zeros(6, 12, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    for row in range(8):
        head, ffn = gates.track_gradients()
        loss = model64(**_rows(rte_batch, slice(row, row + 1))).loss
        head_grad, ffn_grad = torch.autograd.grad(loss, [head, ffn])
        head_sum += head_grad.abs()
        ffn_sum += ffn_grad.abs()
    gates.remove()
    head, ffn = scores.of("per-example")
    assert scores.examples == 8
    torch.testing.assert_close(head, (head_sum / 8).float(), rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(ffn, (ffn_sum / 8).float(), rtol=1e-5, atol=1e-9)


def test_per_token_equals_liangs_mask_head_backward(model64, rte_batch):
    """Liang et al.'s ``MaskHead``/``MaskFFN`` backward: per token, |Σ_i dL/d out_i · out_i| over a head's slice
    of the context (or the FFN output), summed over tokens; here one example at a time from captured tensors."""
    layout, layers = encoder_layers(model64)
    captured = {}

    def keep_input(index):
        def hook(module, inputs):
            inputs[0].retain_grad()
            captured[("head", index)] = inputs[0]
        return hook

    def keep_output(index):
        def hook(module, inputs, output):
            output.retain_grad()
            captured[("ffn", index)] = output
        return hook

    handles = []
    for index, layer in enumerate(layers):
        handles.append(submodule(layer, layout.head_projection).register_forward_pre_hook(keep_input(index)))
        handles.append(submodule(layer, layout.ffn_output).register_forward_hook(keep_output(index)))
    head_ref, ffn_ref = torch.zeros(6, 12, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    try:
        for row in range(8):
            example = _rows(rte_batch, slice(row, row + 1))
            model64.zero_grad()
            model64(**example).loss.backward()
            real = example["attention_mask"][0].bool()
            for index in range(6):
                context = captured[("head", index)][0][real]  # (tokens, 12 * 32)
                grad = captured[("head", index)].grad[0][real]
                per_head = (context * grad).view(-1, 12, 32).sum(-1)  # (tokens, heads)
                head_ref[index] += per_head.abs().sum(0)
                out, out_grad = captured[("ffn", index)][0][real], captured[("ffn", index)].grad[0][real]
                ffn_ref[index] += (out * out_grad).sum(-1).abs().sum()
    finally:
        for handle in handles:
            handle.remove()
        model64.zero_grad(set_to_none=True)
    head, ffn = unit_importance(model64, [rte_batch]).of("per-token")
    torch.testing.assert_close(head, (head_ref / 8).float(), rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(ffn, (ffn_ref / 8).float(), rtol=1e-5, atol=1e-9)


def test_per_example_and_per_token_do_not_depend_on_the_batch_size(model64, rte_batch):
    whole = unit_importance(model64, [rte_batch])
    pairs = unit_importance(model64, [_rows(rte_batch, slice(i, i + 2)) for i in range(0, 8, 2)])
    for estimator in ("per-token", "per-example"):
        for a, b in zip(whole.of(estimator), pairs.of(estimator)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9)
    # the batch form is not: signs cancel differently inside batches of 8 and of 2 (and it sums over batches)
    batch8, batch2 = whole.of("per-batch")[0], pairs.of("per-batch")[0] / 4
    assert not torch.allclose(batch8, batch2, rtol=1e-2)
    assert (batch8 <= pairs.of("per-example")[0] + 1e-7).all()  # |mean| <= mean |.|: cancellation only


def test_every_estimator_is_cached_and_non_negative(model64, rte_batch):
    scores = unit_importance(model64, [rte_batch])
    assert set(scores.head) == set(ESTIMATORS) == set(scores.ffn)
    for estimator in ESTIMATORS:
        head, ffn = scores.of(estimator)
        assert head.shape == (6, 12) and ffn.shape == (6,) and (head >= 0).all() and head.sum() > 0
    with pytest.raises(ValueError, match="per-token, per-example, per-batch"):
        scores.of("per-layer")


LIANG_BERT_BASE = {0.1: (14, 1), 0.2: (28, 2), 0.3: (43, 3), 0.4: (57, 4), 0.5: (72, 5), 0.6: (86, 6),
                   0.7: (100, 7), 0.8: (115, 8)}  # scripts/rewind_{rte,mrpc}_winning.sh
LIANG_BERT_LARGE = {0.05: (19, 1), 0.1: (38, 2), 0.2: (76, 4), 0.3: (115, 6), 0.35: (134, 7),
                    0.4: (153, 8)}  # construct_mtl_mask.py, the large model's task2num


@pytest.mark.parametrize("layers, heads, table", [(12, 12, LIANG_BERT_BASE), (24, 16, LIANG_BERT_LARGE)])
def test_counts_reproduce_liangs_published_pairs(layers, heads, table):
    config = BertConfig(num_hidden_layers=layers, num_attention_heads=heads, hidden_size=heads * 4,
                        intermediate_size=heads * 16)
    torch.manual_seed(0)
    for sparsity, (n_heads, n_ffn) in table.items():
        assert units_to_prune(sparsity, layers * heads) == n_heads
        assert ffn_blocks_to_prune(sparsity, config.num_hidden_layers) == n_ffn
        mask = structured_mask(torch.rand(layers, heads), torch.rand(layers), sparsity)
        assert (layers * heads - mask.heads_kept, layers - mask.ffn_kept) == (n_heads, n_ffn)


def test_importance_check_measures_removal_and_ranks_a_perfect_estimator_first(model_dir, rte_batch):
    """The diagnostic's loss change of removing a head equals the loss with that head's context slice zeroed
    by hand, and an 'estimator' equal to the actual effects scores Spearman 1."""
    from search.tools.importance_check import check_estimators, removal_effects
    from trainables.pruning.structured import UnitImportance

    model = load_model(model_dir, get_task("rte"), 0).double().eval()
    effects = removal_effects(model, [rte_batch], "cpu")
    layout, layers = encoder_layers(model)

    def zero_head(module, inputs):
        context = inputs[0].clone()
        context[..., 5 * 32:6 * 32] = 0  # head 5 of layer 2
        return (context, *inputs[1:])

    handle = submodule(layers[2], layout.head_projection).register_forward_pre_hook(zero_head)
    with torch.no_grad():
        by_hand = float(model(**rte_batch).loss) - effects.base_loss
    handle.remove()
    assert float(effects.head[2, 5]) == pytest.approx(by_hand, abs=1e-9) and effects.examples == 8
    # scores whose per-layer normalisation is the identity and whose order is the effects' order: rho = 1
    oracle = effects.head - effects.head.min() + 1
    oracle = oracle / oracle.norm(dim=1, keepdim=True)
    perfect = UnitImportance({e: oracle for e in ESTIMATORS}, {e: effects.ffn for e in ESTIMATORS}, 8)
    rows = check_estimators(perfect, dataclasses.replace(effects, head=oracle * 3.0))
    assert all(r.heads_rho == pytest.approx(1.0) and r.ffn_rho == pytest.approx(1.0) for r in rows)


def test_importance_check_bad_input_is_one_line_and_exit_2(capsys, model_dir, glue_dir):
    from search.tools.importance_check import main

    assert main(["--task", "rte", "--model", model_dir, "--glue-dir", glue_dir, "--seed", "-1"]) == 2
    assert capsys.readouterr().err.strip() == "error: --seed -1 must be 0 or more"
    assert main(["--task", "rte", "--model", model_dir, "--glue-dir", glue_dir, "--out", "/no/such/dir/x.json"]) == 2
    assert "its folder does not exist" in capsys.readouterr().err
