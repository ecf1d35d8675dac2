"""The dense fine-tune is cached per key and reused; rewinding restores the exact weights."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file

from trainables.cache import DenseSpec, ensure_dense
from trainables.finetune import FinetuneSettings
from trainables.report import TrialReport
from trainables.rewinding import rewound_model
from trainables.tasks import get_task
from trainables.config import TrialConfig
from trainables.trial import TrialContext, run_ticket_trial


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def dense(tiny_spec, cache_root):
    return ensure_dense(tiny_spec, cache_root)


def test_second_request_with_the_same_key_reuses_the_cache(tiny_spec, cache_root, dense):
    assert dense.reused is False
    record = dense.directory / "record.json"
    stamp = record.stat().st_mtime_ns
    again = ensure_dense(tiny_spec, cache_root)
    assert again.reused is True and again.directory == dense.directory
    assert record.stat().st_mtime_ns == stamp  # nothing was recomputed or rewritten
    assert json.loads(record.read_text())["key"] == tiny_spec.key()


def test_key_changes_with_any_fine_tuning_setting(tiny_spec):
    other_seed = DenseSpec(**{**tiny_spec.__dict__, "seed": 1})
    other_lr = DenseSpec(**{**tiny_spec.__dict__, "finetune": FinetuneSettings(2e-4, 1, 16, "adamw")})
    assert len({tiny_spec.key(), other_seed.key(), other_lr.key()}) == 3


def test_importance_is_the_structured_method_s_own_entry_scored_on_the_dense_weights(tiny_spec, cache_root, dense,
                                                                                    model_dir):
    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer

    from trainables.data import collator, load_tokenized
    from trainables.model import load_model
    from trainables.pruning.structured import dense_importance, unit_importance

    assert not (dense.directory / "importance.safetensors").exists()  # the dense entry holds no method's scores
    scores = dense_importance(tiny_spec, dense, cache_root)
    entry = cache_root / "importance" / dense.directory.name / "importance.safetensors"
    stamp = entry.stat().st_mtime_ns
    head, ffn = scores.of("per-token")
    assert head.shape == (6, 12) and ffn.shape == (6,) and scores.examples == 32
    # the same numbers as scoring the fine-tuned dense weights by hand over the training split
    task = get_task("rte")
    model = load_model(model_dir, task, tiny_spec.seed)
    model.load_state_dict(dense.weights())
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train = load_tokenized(task, tokenizer, tiny_spec.data, seed=tiny_spec.seed)["train"]
    by_hand = unit_importance(model, DataLoader(train, batch_size=tiny_spec.finetune.batch_size,
                                                collate_fn=collator(tokenizer)))
    for estimator in by_hand.head:
        assert torch.allclose(scores.head[estimator], by_hand.head[estimator], rtol=1e-5, atol=1e-8)
        assert torch.allclose(scores.ffn[estimator], by_hand.ffn[estimator], rtol=1e-5, atol=1e-8)
    again = dense_importance(tiny_spec, dense, cache_root)
    assert entry.stat().st_mtime_ns == stamp and torch.equal(again.head["per-token"], head)  # read, not recomputed


def test_cached_dense_run_keeps_its_history(dense):
    assert len(dense.history) == 1 and 0.0 <= dense.history[0].dev_score <= 1.0
    assert len(dense.history[0].predictions) == len(dense.labels) == 32  # per-example dev predictions are kept
    assert dense.history[0].train_loss > 0


def test_rewinding_to_pretrained_restores_the_pretrained_weights(model_dir, dense):
    pretrained = load_file(f"{model_dir}/model.safetensors")
    model = rewound_model("pretrained", model_dir, get_task("rte"), 0, dense)
    encoder = model.bert.state_dict()
    compared = 0
    for name, tensor in pretrained.items():
        key = name.removeprefix("bert.")
        if key in encoder:
            assert torch.equal(encoder[key], tensor), name
            compared += 1
    assert compared >= 100  # every encoder weight, not a handful
    fine_tuned = dense.weights()
    moved = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(model.state_dict()[moved], fine_tuned[moved])  # fine-tuning did change it
    # the classifier starts where the dense run of the same seed started
    first = rewound_model("pretrained", model_dir, get_task("rte"), 0, dense)
    assert torch.equal(first.classifier.weight, model.classifier.weight)


def test_rewinding_none_keeps_the_fine_tuned_weights(model_dir, dense):
    model = rewound_model("none", model_dir, get_task("rte"), 0, dense)
    fine_tuned = dense.weights()
    assert all(torch.equal(v, fine_tuned[k]) for k, v in model.state_dict().items())


def test_unknown_rewinding_point_is_refused(model_dir, dense):
    with pytest.raises(ValueError, match="unknown rewinding point"):
        rewound_model("epoch:1", model_dir, get_task("rte"), 0, dense)


def _mask(report, seed: int) -> dict:
    """A structured ticket's mask of ``seed``, read back from the file the trial wrote."""
    path = next(p for p in report.ticket.mask_files if os.path.basename(p) == f"mask-seed-{seed}.json")
    with open(path) as file:
        return json.load(file)


def test_trial_reports_its_ticket_and_scores(tiny_spec, cache_root, dense):
    context = TrialContext(model=tiny_spec.model, task="rte", data=tiny_spec.data, finetune=tiny_spec.finetune,
                           seeds=(0,), cache_dir=str(cache_root))
    reports = []
    run_ticket_trial(TrialConfig(0.3, rewind="none"), context, reports.append)
    assert len(reports) == 1 and reports[0].planned_epochs == 1 and reports[0].epoch == 0
    report = reports[0]
    counts = report.ticket.counts
    assert (counts["heads_kept"], counts["ffn_kept"]) == (72 - 21, 6 - 1)
    assert sum(map(sum, _mask(report, 0)["head"])) == counts["heads_kept"]
    assert report.complete and report.current.train_loss is None  # evaluated once, nothing trained
    dense_reports = []
    run_ticket_trial(TrialConfig(0.0), context, dense_reports.append)
    last = dense_reports[-1]
    assert last.ticket.reused_dense is True  # sparsity 0 from pre-trained is the cached dense run
    assert last.current.dev_score == dense.history[-1].dev_score
    assert last.finished[0].predictions == last.finished[0].dense_predictions  # the dense model paired with itself
    assert last.mean_difference == 0.0


def test_trial_runs_seeds_one_after_another_each_paired_with_its_dense_run(tiny_spec, cache_root, dense):
    context = TrialContext(model=tiny_spec.model, task="rte", data=tiny_spec.data, finetune=tiny_spec.finetune,
                           seeds=(0, 1), cache_dir=str(cache_root))
    reports = []
    run_ticket_trial(TrialConfig(0.5), context, reports.append)
    assert [(r.seed, r.epoch, len(r.finished)) for r in reports] == [(0, 1, 1), (1, 1, 2)]
    assert [r.ends_seed for r in reports] == [True, True] and reports[-1].complete
    report = reports[-1]
    assert report.ticket.reused_dense is False
    assert (report.ticket.counts["heads_kept"], report.ticket.counts["ffn_kept"]) == (36, 4)  # 2 = floor(0.5*6*5/6)
    second = ensure_dense(DenseSpec(**{**tiny_spec.__dict__, "seed": 1}), cache_root)
    for seed, outcome in zip((0, 1), report.finished):
        reference = dense if seed == 0 else second
        assert outcome.seed == seed and outcome.dense_score == reference.history[-1].dev_score
        assert outcome.dense_predictions == reference.history[-1].predictions
        assert len(outcome.predictions) == len(report.labels) == 32 and outcome.train_losses[0] > 0
    assert report.mean_difference == pytest.approx(sum(o.dev_score - o.dense_score for o in report.finished) / 2)
    assert [os.path.basename(p) for p in report.ticket.mask_files] == ["mask-seed-0.json", "mask-seed-1.json"]
    assert TrialReport.from_tune(report.to_tune()) == report  # one conversion, both ways


def test_control_tickets_in_a_trial_match_the_good_counts(tiny_spec, cache_root, dense):
    context = TrialContext(model=tiny_spec.model, task="rte", data=tiny_spec.data, finetune=tiny_spec.finetune,
                           seeds=(0,), cache_dir=str(cache_root))
    masks = {}
    for control in ("good", "random", "bad"):
        reports = []
        run_ticket_trial(TrialConfig(0.3, rewind="none", control=control), context, reports.append)
        masks[control] = _mask(reports[0], 0)
        assert (reports[0].ticket.counts["heads_kept"], reports[0].ticket.counts["ffn_kept"]) == (51, 5)
    assert masks["good"]["head"] != masks["random"]["head"] != masks["bad"]["head"]
