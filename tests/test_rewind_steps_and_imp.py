"""``step:K`` rewinding restores the exact step-K weights; IMP levels are exact, nested and computed once."""

import json
from dataclasses import asdict
import math
import threading

import pytest
import torch
from safetensors.torch import load_file

from trainables.cache import ensure_dense, ensure_step, fine_tune
from trainables.model import load_model
from trainables.pruning import imp
from trainables.pruning.imp import ImpSchedule
from trainables.pruning.tickets import TicketRequest
from trainables.rewinding import rewind_step, rewound_model
from trainables.tasks import get_task
from trainables.config import TrialConfig
from trainables.trial import TrialContext, run_ticket_trial

PRUNABLE = 6 * (4 * 384 * 384 + 2 * 384 * 1536)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def dense(tiny_spec, cache_root):
    return ensure_dense(tiny_spec, cache_root, steps=(1,))  # the study asks for step:1 up front


def test_step_checkpoint_is_the_exact_weights_after_k_steps(tiny_spec, dense, model_dir):
    model = load_model(model_dir, get_task("rte"), 0)
    fine_tune(tiny_spec, model, stop_after=1)  # one optimiser step from the same seed, by hand
    saved = dense.step_weights(1)
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    rewound = rewound_model("step:1", model_dir, get_task("rte"), 0, dense)
    assert all(torch.equal(v, saved[k]) for k, v in rewound.state_dict().items())
    pretrained = load_model(model_dir, get_task("rte"), 0).state_dict()
    final = dense.weights()
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(saved[name], pretrained[name]) and not torch.equal(saved[name], final[name])


def test_a_step_the_cache_lacks_is_replayed_to_the_same_weights(tiny_spec, dense, tmp_path):
    other = ensure_dense(tiny_spec, tmp_path)  # the same dense run, cached without any step
    assert not (other.directory / "steps").exists()
    path = ensure_step(tiny_spec, other, 1)
    replayed, saved = load_file(path), dense.step_weights(1)
    assert all(torch.equal(replayed[k], saved[k]) for k in saved)
    with pytest.raises(ValueError, match="outside the dense fine-tune's 1..2 steps"):
        ensure_step(tiny_spec, other, 3)


@pytest.mark.parametrize("point,step", [("pretrained", None), ("none", None), ("step:200", 200)])
def test_rewinding_points_parse(point, step):
    assert rewind_step(point) == step


@pytest.mark.parametrize("point", ["step:0", "step:x", "epoch:1", "Pretrained"])
def test_bad_rewinding_points_are_refused(point):
    with pytest.raises(ValueError, match="unknown rewinding point"):
        rewind_step(point)


def test_imp_schedule_derives_rounds_from_the_target():
    chen = ImpSchedule(0.1, "original")
    assert chen.levels_to(0.3) == [0.1, 0.2, 0.3]
    assert chen.levels_to(0.35) == [0.1, 0.2, 0.3, 0.35]  # a last, smaller round to the exact target
    assert chen.levels_to(0.0) == []
    prasanna = ImpSchedule(0.1, "remaining")
    levels = prasanna.levels_to(0.5)
    assert len(levels) == math.ceil(math.log(1 - 0.5) / math.log(1 - 0.1))  # 7 rounds
    assert levels[:2] == [0.1, 0.19] and levels[-1] == 0.5


def _request(tiny_spec, dense, cache_root, sparsity, rewind="pretrained"):
    return TicketRequest(tiny_spec, dense, sparsity, "good", rewind, {"imp_rate": 0.2}, str(cache_root))


def test_imp_levels_are_exact_nested_and_reused(tiny_spec, dense, cache_root, monkeypatch):
    calls = []
    real = imp.fine_tune
    monkeypatch.setattr(imp, "fine_tune", lambda *a, **k: calls.append(k.get("label")) or real(*a, **k))
    low = imp.make_ticket(_request(tiny_spec, dense, cache_root, 0.2, rewind="none"))
    assert calls == []  # one round from the dense fine-tune, no level fine-tune needed for rewind=none
    high = imp.make_ticket(_request(tiny_spec, dense, cache_root, 0.5))
    assert calls == ["IMP level 0.2000", "IMP level 0.4000", "IMP level 0.5000"]
    assert high.info["imp_levels"] == "0.2,0.4,0.5" and high.replay is not None
    for ticket, sparsity in ((low, 0.2), (high, 0.5)):
        assert ticket.mask.total == PRUNABLE
        assert ticket.mask.total - ticket.mask.kept == math.floor(sparsity * PRUNABLE)
    assert all(not (high.mask.masks[n] & ~low.mask.masks[n]).any() for n in low.mask.masks)  # nested
    again = imp.make_ticket(_request(tiny_spec, dense, cache_root, 0.4))
    assert len(calls) == 3  # every level came from the cache
    (record,) = cache_root.glob("imp/*/*/level-0.400000/trained/record.json")
    assert [asdict(e) for e in again.replay] == json.loads(record.read_text())["history"]  # the level's own fine-tune is replayed


def test_concurrent_trials_compute_a_level_once(tiny_spec, cache_root, tmp_path, monkeypatch):
    dense = ensure_dense(tiny_spec, cache_root)
    calls = []
    real = imp.fine_tune
    monkeypatch.setattr(imp, "fine_tune", lambda *a, **k: calls.append(k.get("label")) or real(*a, **k))
    masks, errors = [], []

    def trial():
        try:
            masks.append(imp.make_ticket(TicketRequest(tiny_spec, dense, 0.3, "good", "pretrained",
                                                       {"imp_rate": 0.3}, str(tmp_path))).mask)
        except Exception as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=trial) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and calls == ["IMP level 0.3000"]
    assert all(torch.equal(masks[0].masks[n], masks[1].masks[n]) for n in masks[0].masks)


def test_imp_and_tamt_have_no_controls_and_the_registry_refuses_them(tiny_spec, dense, cache_root):
    from trainables.pruning.registry import METHODS, get_method

    for name in ("imp", "tamt"):
        with pytest.raises(ValueError, match=f"{name} has no 'random' control"):
            METHODS[name].make_ticket(TicketRequest(tiny_spec, dense, 0.3, "random", "pretrained", {},
                                                    str(cache_root)))
    with pytest.raises(ValueError, match="unknown method 'obd'"):
        get_method("obd")


def test_a_trial_rewound_to_step_k_reports_the_achieved_sparsity(tiny_spec, cache_root, dense):
    context = TrialContext(model=tiny_spec.model, task="rte", data=tiny_spec.data, finetune=tiny_spec.finetune,
                           seeds=(0,), cache_dir=str(cache_root))
    reports = []
    run_ticket_trial(TrialConfig(0.4, "magnitude", "step:1", "bad"), context,
                     reports.append)
    report = reports[-1]
    assert report.ticket.counts["achieved_sparsity"] == pytest.approx(0.4, abs=1e-6) and report.ticket.replayed is False
    assert report.ticket.counts["weights_kept"] == PRUNABLE - math.floor(0.4 * PRUNABLE)
    files = report.ticket.mask_files
    assert len(files) == 1 and files[0].endswith("mask-seed-0.safetensors")
