"""TAMT (Liu et al. 2022): exact per-matrix sparsity after a reset, a training step that moves the scores and
lowers the distillation loss, a cached task-agnostic mask, and a clear error for MLM without an MLM head."""

import math

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

from trainables.pruning import tamt
from trainables.pruning.magnitude import magnitude_mask
from trainables.pruning.tamt import MissingMlmHeadError, TamtSettings, TamtTrainer, ensure_mask
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
    return TamtSettings(**{"corpus": corpus, "steps": 2, "batch_size": 4, "max_seq_length": 32,
                           "learning_rate": 3e-4, "reset_every": 1000, **changes})


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
