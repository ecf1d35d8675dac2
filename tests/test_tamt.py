"""TAMT (Liu et al. 2022): exact per-matrix sparsity after a reset, a training step that moves the scores and
lowers the distillation loss, a cached task-agnostic mask, and a clear error for MLM without an MLM head."""

import math

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

from trainables.pruning import tamt
from trainables.pruning.magnitude import magnitude_mask
from trainables.pruning.tamt import (PAPER_STEPS, BertAdam, MissingMlmHeadError, TamtSettings, TamtTrainer,
                                     ensure_mask)
from trainables.pruning.tickets import TicketRequest
from trainables.pruning.weights import PrunableSet


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, wikitext_dir):
    """A small text file: 'any text file' works as the corpus (lines from the shared WikiText-2)."""
    lines = (wikitext_dir / "valid.txt").read_text().splitlines()[:400]
    path = tmp_path_factory.mktemp("corpus") / "sample.txt"
    path.write_text("\n".join(lines))
    return str(path)


def _settings(corpus, **changes):
    """This project's first recipe (global magnitude init), unless ``recipe`` says otherwise."""
    return TamtSettings(**{"recipe": "global-magnitude", "corpus": corpus, "steps": 2, "batch_size": 4,
                           "max_seq_length": 32, "learning_rate": 3e-4, "reset_every": 1000, **changes})


@pytest.fixture(scope="module")
def trainer(model_dir, corpus):
    return TamtTrainer(model_dir, 0.5, _settings(corpus), PrunableSet(), seed=0)


@pytest.fixture(scope="module")
def batch(trainer):
    blocks = tamt.corpus_blocks(trainer.settings.corpus, trainer.tokenizer, 32)
    return trainer.collate([blocks[i] for i in range(8)])


def test_initial_mask_is_the_global_magnitude_mask(trainer):
    student = trainer.student  # a bare encoder: mask names are its module names
    originals = {name: student.get_submodule(name.rsplit(".", 1)[0]).parametrizations.weight.original.detach()
                 for name in trainer.masker.masks}
    expected = magnitude_mask(originals, 0.5)
    current = trainer.masker.current()
    assert all(torch.equal(current.masks[n], expected.masks[n]) for n in expected.masks)
    assert all(not p.requires_grad for p in originals.values())  # the pre-trained weights stay frozen


def test_kd_steps_move_the_scores_and_lower_the_loss(trainer, batch):
    before = [s.detach().clone() for s in trainer.masker.scores()]
    first = trainer.loss(batch).item()
    assert first > 0  # the magnitude-initialised ticket differs from the dense model
    losses = [trainer.step(batch) for _ in range(4)] + [trainer.loss(batch).item()]
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.masker.scores()))
    assert losses[0] == pytest.approx(first) and all(b < a for a, b in zip(losses, losses[1:]))


def test_reset_gives_every_matrix_exactly_the_target_sparsity(trainer):
    trainer.masker.reset()
    mask = trainer.masker.current()
    for name, m in mask.masks.items():
        assert m.numel() - int(m.sum()) == math.floor(0.5 * m.numel()), name
    ties = torch.zeros(10)  # a reset must be exact even when every score ties
    mask_module = tamt.ThresholdMask(ties)
    mask_module.reset(0.3)
    assert int((~mask_module.binary()).sum()) == 3


def test_the_mask_is_trained_once_and_shared_by_every_task(model_dir, corpus, tiny_spec, tmp_path):
    settings = _settings(corpus)
    first, record = ensure_mask(model_dir, 0.4, settings, PrunableSet(), 0, tmp_path)
    assert record["reused"] is False and len(record["losses"]) == 2
    options = {f"tamt_{k}": v for k, v in settings.__dict__.items()}
    for task in ("mrpc", "stsb"):  # the key holds no task: both reuse the stored mask
        spec = type(tiny_spec)(**{**tiny_spec.__dict__, "task": task})
        ticket = tamt.make_ticket(TicketRequest(spec, None, 0.4, "good", "pretrained", options, str(tmp_path)))
        assert ticket.info["tamt_reused"] is True
        assert all(torch.equal(ticket.mask.masks[n], first.masks[n]) for n in first.masks)
    assert first.total - first.kept == sum(math.floor(0.4 * m.numel()) for m in first.masks.values())


def test_mlm_objective_needs_an_mlm_head(model_dir, corpus):
    with pytest.raises(MissingMlmHeadError, match="no masked-LM head.*--tamt-objective kd"):
        TamtTrainer(model_dir, 0.5, _settings(corpus, objective="mlm"), PrunableSet(), seed=0)


def test_mlm_objective_trains_where_the_head_exists(model_dir, corpus, tmp_path):
    config = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128)
    BertForMaskedLM(config).save_pretrained(tmp_path)  # a tiny checkpoint with an MLM head
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(tmp_path)
    trainer = TamtTrainer(str(tmp_path), 0.5, _settings(corpus, objective="mlm"), PrunableSet(), seed=0)
    losses = trainer.train()
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    mask = trainer.masker.current()
    assert all(m.numel() - int(m.sum()) == math.floor(0.5 * m.numel()) for m in mask.masks.values())


# --- the paper recipe (llyx97/TAMT) ---

def test_paper_recipe_starts_from_each_matrixs_own_magnitude_mask_with_binary_scores(model_dir, corpus):
    """Every masked matrix, the pooler and the word embeddings included, starts at exactly floor(s * n)
    pruned (its smallest |w|), with scores 0.02 kept / 0 pruned and threshold 0.01; dropout is on."""
    trainer = TamtTrainer(model_dir, 0.5, _settings(corpus, recipe="paper"), PrunableSet(True, True), seed=0)
    masks = trainer.masker.masks
    assert "pooler.dense.weight" in masks and "embeddings.word_embeddings.weight" in masks and len(masks) == 38
    for name, mask in masks.items():
        module = trainer.student.get_submodule(to_module(name))
        weight = module.parametrizations.weight.original.detach()
        kept = mask.binary()
        assert weight.numel() - int(kept.sum()) == math.floor(0.5 * weight.numel()), name
        assert weight.abs()[~kept].max() <= weight.abs()[kept].min(), name  # the smallest |w| of this matrix
        assert mask.scores.detach().unique().tolist() == pytest.approx([0.0, 0.02])
        assert float(mask.tau) == pytest.approx(0.01)
    assert trainer.student.training and trainer.teacher.training


def to_module(name):
    return name.rsplit(".", 1)[0]


def test_paper_reset_schedule_is_theirs_at_their_length_and_scaled_at_ours(model_dir, tmp_path):
    theirs = TamtSettings(steps=PAPER_STEPS)
    assert theirs.interval == 100 and theirs.lr == pytest.approx(2e-5)
    assert [k for k in range(1, 450) if theirs.resets_after(k)] == [1, 99, 199, 299, 399]  # (k + 1) % 100, k = 1
    ours = TamtSettings(steps=200)
    assert ours.interval == 1 and ours.lr == pytest.approx(2e-5 * PAPER_STEPS / 200)  # same total movement
    old = TamtSettings(recipe="global-magnitude")
    assert old.interval == 50 and old.lr == 3e-4 and [k for k in range(1, 120) if old.resets_after(k)] == [50, 100]
    # a corpus of 3 batches of 4 blocks: the end of each pass resets too (train_kd.py's epoch end), then the end
    text = tmp_path / "three.txt"
    text.write_text("\n".join(["the " * 30] * 13))  # 390 one-piece tokens: 13 blocks of 30 (+ [CLS], [SEP])
    settings = _settings(str(text), recipe="paper", steps=5, reset_every=1000, learning_rate=1e-3)
    trainer = TamtTrainer(model_dir, 0.5, settings, PrunableSet(), seed=0)
    blocks = len(tamt.corpus_blocks(str(text), trainer.tokenizer, 32))
    assert blocks == 13  # three full batches of 4 per pass (the last incomplete one is skipped)
    trainer.train()
    assert trainer.reset_steps == [1, 3, 5]  # step 1, the end of the first pass, the end


def test_bert_adam_has_no_bias_correction_and_decoupled_decay():
    """BERT's Adam: the first update is lr * (0.1 g / sqrt(0.001 g^2)) = lr * 3.162 per coordinate (AdamW's
    bias-corrected first step is lr * 1), plus lr * decay * p; gradients are clipped to norm 1 first."""
    p = torch.nn.Parameter(torch.tensor([0.02, 0.0]))
    optimizer = BertAdam([p], lr=1e-3, weight_decay=0.01, max_grad_norm=1.0, eps=0.0)
    p.grad = torch.tensor([30.0, -40.0])  # norm 50: clipped to (0.6, -0.8), direction kept
    optimizer.step()
    step = 0.1 / math.sqrt(0.001)
    assert p.detach().tolist() == pytest.approx([0.02 - 1e-3 * (step + 0.01 * 0.02), 1e-3 * step], rel=1e-5)


def test_paper_recipe_is_the_study_default_and_every_method_prunes_its_set(model_dir, glue_dir):
    from search.cli.study_command import parser
    from search.cli.settings import build_settings

    base = ["--task", "rte", "--model", model_dir, "--glue-dir", glue_dir, "--budget", "smoke"]
    both = build_settings(parser().parse_args([*base, "--method", "magnitude,tamt"])).options
    assert both["tamt_recipe"] == "paper" and both["prune_pooler"] and both["prune_embeddings"]
    assert PrunableSet.from_options(both).describe().endswith("+ pooler + word embeddings")
    alone = build_settings(parser().parse_args([*base, "--method", "magnitude"])).options
    assert not alone["prune_pooler"] and not alone["prune_embeddings"] and alone["min_keep_per_matrix"] == 0.01
    chosen = build_settings(parser().parse_args([*base, "--method", "tamt", "--no-prune-embeddings"])).options
    assert chosen["prune_pooler"] and not chosen["prune_embeddings"]
