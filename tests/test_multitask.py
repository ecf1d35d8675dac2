"""Tickets-Share (Liang et al. 2021, section 5): masked multi-task steps, the task sampler, the multi-task
statistics and a smoke run of two tasks through Ray, on the shared model and real GLUE data."""

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from transformers import AutoTokenizer

from search.multitask.command import main
from search.verdict.statistics import multitask_interval, paired_difference
from trainables.data import DataSettings, collator, load_tokenized
from trainables.finetune import FinetuneSettings
from trainables.multitask import MultiTaskRun, TaskSampling, shared_models
from trainables.pruning.structured import StructuredMask
from trainables.pruning.weights import WeightMask
from trainables.tasks import get_task

TASKS = ("rte", "mrpc")


@pytest.fixture(scope="module")
def splits(model_dir, glue_dir):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    data = DataSettings(glue_dir, 32, max_train_examples=16, max_dev_examples=16)
    return {t: load_tokenized(get_task(t), tokenizer, data) for t in TASKS}, collator(tokenizer)


def _run(model_dir, splits, masks: dict):
    """A two-task run whose RTE batches go through ``masks['rte']`` (MRPC: dense), AdamW with weight decay (so a
    zero gradient alone would still move a weight)."""
    sets, collate = splits
    models = shared_models(model_dir, [get_task(t) for t in TASKS], seed=0)
    first = models["rte"]
    switches = {t: (None if masks.get(t) is None else masks[t].switch(first)) for t in TASKS}
    settings = FinetuneSettings(learning_rate=1e-3, epochs=1, batch_size=8, optimizer="adamw", weight_decay=0.01,
                                precision="fp32")
    run = MultiTaskRun(models, {t: sets[t]["train"] for t in TASKS}, collate, settings, 0, torch.device("cpu"),
                       TaskSampling(), switches)
    return run, models, switches


def _state(run, param):
    state = run.optimisation.optimizer.state.get(param, {})
    return {k: v.clone() for k, v in state.items() if torch.is_tensor(v) and v.shape == param.shape}


def _check_held(run, switch, models):
    """MRPC (dense) step, then an RTE step: the weights RTE's ticket prunes (and their Adam moments) stay exactly,
    the others of the same tensors move; then an MRPC step moves the RTE-pruned weights."""
    batch = {t: next(iter(run.loaders[t])) for t in TASKS}
    run.train_step("mrpc", batch["mrpc"])  # Adam moments everywhere
    assert models["rte"].base_model is models["mrpc"].base_model  # one shared encoder
    before = {p: (p.detach().clone(), _state(run, p)) for p in switch.pruned}
    run.train_step("rte", batch["rte"])
    moved_kept = 0
    for param, where in switch.pruned.items():
        weights, state = before[param]
        assert torch.equal(param.detach()[where], weights[where])  # exactly unchanged
        for key, value in _state(run, param).items():
            assert torch.equal(value[where], state[key][where])
        moved_kept += int((param.detach()[~where] != weights[~where]).sum())
    assert moved_kept > 0  # the weights RTE's ticket keeps were updated
    before = {p: p.detach().clone() for p in switch.pruned}
    run.train_step("mrpc", batch["mrpc"])
    changed = sum(int((p.detach()[w] != before[p][w]).sum()) for p, w in switch.pruned.items())
    assert changed > 0.9 * sum(int(w.sum()) for w in switch.pruned.values())  # a task keeping them updates them


def test_a_structured_ticket_leaves_its_pruned_heads_and_ffn_unchanged_and_a_dense_task_updates_them(model_dir,
                                                                                                        splits):
    head = torch.ones(6, 12, dtype=torch.bool)
    head[0, :3] = False
    head[4, 7] = False
    ffn = torch.ones(6, dtype=torch.bool)
    ffn[2] = False
    run, models, switches = _run(model_dir, splits, {"rte": StructuredMask(head, ffn)})
    switch = switches["rte"]
    layer0 = models["rte"].base_model.encoder.layer[0]
    query = layer0.attention.self.query
    assert switch.pruned[query.weight][:96].all() and not switch.pruned[query.weight][96:].any()  # 3 heads x 32
    assert switch.pruned[layer0.attention.output.dense.weight][:, :96].all()  # the heads' columns
    ffn2 = models["rte"].base_model.encoder.layer[2]
    assert switch.pruned[ffn2.intermediate.dense.weight].all() and switch.pruned[ffn2.output.dense.bias].all()
    _check_held(run, switch, models)


def test_an_unstructured_ticket_masks_only_its_batches_and_holds_its_pruned_weights(model_dir, splits):
    generator = torch.Generator().manual_seed(0)
    names = ["encoder.layer.1.attention.self.value.weight", "encoder.layer.3.intermediate.dense.weight"]
    encoder = shared_models(model_dir, [get_task("rte")], 0)["rte"].base_model
    masks = {n: torch.rand(encoder.get_parameter(n).shape, generator=generator) > 0.5 for n in names}
    run, models, switches = _run(model_dir, splits, {"rte": WeightMask(masks)})
    value = models["rte"].base_model.encoder.layer[1].attention.self.value
    run.use("rte")
    models["rte"](**next(iter(run.loaders["rte"])))  # the forward recomputes weight = weight_orig * mask
    assert torch.equal(value.weight == 0, ~masks[names[0]] | (value.weight_orig == 0))
    run.use("mrpc")
    assert bool(value.weight_mask.all())  # MRPC's batches see the dense matrix
    _check_held(run, switches["rte"], models)


def test_a_dense_multitask_run_holds_nothing_and_both_heads_are_their_own(model_dir, splits):
    run, models, switches = _run(model_dir, splits, {})
    assert switches == {"rte": None, "mrpc": None}
    assert models["rte"].classifier is not models["mrpc"].classifier
    encoder = list(models["rte"].base_model.parameters())
    before = [p.detach().clone() for p in encoder]
    run.train_step("rte", next(iter(run.loaders["rte"])))
    assert all(not torch.equal(a, p.detach()) for a, p in zip(before, encoder))  # every encoder tensor trained


def test_the_sampler_draws_tasks_in_the_stated_proportions():
    batches = {"rte": 156, "mrpc": 230, "sst2": 2105}
    sizes = {"rte": 2490, "mrpc": 3668, "sst2": 67349}
    proportional = TaskSampling()
    order = proportional.schedule(batches, sizes, seed=0, epoch=0)
    assert {t: order.count(t) for t in batches} == batches  # every batch once: proportional to size, exactly
    assert order != proportional.schedule(batches, sizes, seed=0, epoch=1)  # a new mix every epoch
    assert order == proportional.schedule(batches, sizes, seed=0, epoch=0)  # from seed and epoch alone
    tempered = TaskSampling(temperature=2.0)
    p = tempered.probabilities(sizes)
    expected = {t: np.sqrt(n) / sum(np.sqrt(list(sizes.values()))) for t, n in sizes.items()}
    assert p == pytest.approx(expected)
    draws = [t for epoch in range(20) for t in tempered.schedule(batches, sizes, seed=1, epoch=epoch)]
    assert len(draws) == 20 * sum(batches.values())
    for task, probability in expected.items():
        share = draws.count(task) / len(draws)
        assert abs(share - probability) < 4 * np.sqrt(probability * (1 - probability) / len(draws))
    with pytest.raises(ValueError, match="at least 1"):
        TaskSampling(temperature=0.5)


def test_the_multitask_interval_is_the_verdicts_for_one_task_and_averages_tasks():
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 2, 60), rng.integers(0, 2, 40)]
    ticket = [np.where(rng.random((3, 60)) < 0.7, labels[0], 1 - labels[0]),
              np.where(rng.random((3, 40)) < 0.8, labels[1], 1 - labels[1])]
    dense = [np.where(rng.random((3, 60)) < 0.6, labels[0], 1 - labels[0]),
             np.where(rng.random((3, 40)) < 0.8, labels[1], 1 - labels[1])]
    one = multitask_interval(["accuracy"], [ticket[0]], [labels[0]], [dense[0]])
    verdict = paired_difference("accuracy", ticket[0], dense[0], labels[0])
    assert (one.mean, one.low, one.high) == pytest.approx((verdict.mean, verdict.low, verdict.high))
    both = multitask_interval(["accuracy", "mcc"], ticket, labels, dense)
    per_task = [np.mean([(t[s] == y).mean() - (d[s] == y).mean() for s in range(3)])
                for t, d, y in zip(ticket[:1], dense[:1], labels[:1])]
    from sklearn.metrics import matthews_corrcoef

    per_task.append(np.mean([matthews_corrcoef(labels[1], ticket[1][s]) - matthews_corrcoef(labels[1], dense[1][s])
                             for s in range(3)]))
    assert both.mean == pytest.approx(np.mean(per_task))
    assert both.low < both.mean < both.high and both.seeds == 3 and both.examples == 100
    score = multitask_interval(["accuracy"], [ticket[0]], [labels[0]])
    assert score.mean == pytest.approx(np.mean([(ticket[0][s] == labels[0]).mean() for s in range(3)]))


@pytest.mark.parametrize("flags, message", [
    (["--tasks", "rte"], "at least two different tasks"),
    (["--tasks", "rte,qqq"], "unknown task 'qqq'"),
    (["--tasks", "rte,mrpc", "--study", "cola=x"], "TASK=NAME with TASK one of --tasks"),
    (["--tasks", "rte,mrpc", "--arms", "both"], "--arms both"),
    (["--tasks", "rte,mrpc", "--sampling-temperature", "0.5"], "at least 1"),
    (["--tasks", "rte,mrpc", "--resume"], "--resume needs --name"),
    (["--tasks", "rte,mrpc", "--storage-path", "s3://bucket/x"], "takes a folder"),
    (["--tasks", "rte,mrpc", "--learning-rate", "0"], "--learning-rate 0 must be a positive number"),  # the study's check
    (["--tasks", "rte,mrpc", "--seeds", "0"], "--seeds 0 must be at least 1"),
    (["--tasks", "rte,mrpc", "--max-seq-length", "4"], "--max-seq-length 4 must be at least 8"),
    (["--tasks", "rte,mrpc", "--mlflow-uri", "foo://x"], "unknown scheme"),
    (["--tasks", "rte,mrpc", "--glue-dir", "/nonexistent"], "/nonexistent/RTE/train.tsv not found"),
    (["--tasks", "rte,mrpc", "--name", "bad/name"], "--name 'bad/name' must be one folder name"),
])
def test_bad_multitask_input_is_one_line_and_exit_2(flags, message, tmp_path, model_dir, glue_dir):
    errors = io.StringIO()
    with redirect_stderr(errors):
        assert main(["--model", model_dir, "--glue-dir", glue_dir, "--storage-path", str(tmp_path / "r"),
                     "--mlflow-uri", f"sqlite:///{tmp_path}/m.db", *flags]) == 2
    assert message in errors.getvalue() and len(errors.getvalue().strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def _finished_study(client, experiment, task, model, name, mask=None, role="best_super"):
    """The MLflow records a finished study leaves (parent with its verdict tags and summary.json; the child run of
    the ticket in ``role`` with its per-seed masks), written through MLflow's API for a test that reads them."""
    parent = client.create_run(experiment, run_name=name, tags={"supertickets.study": name, "role": "study"})
    pid = parent.info.run_id
    client.log_param(pid, "task", task)
    client.log_param(pid, "model", model)
    summary = {"settings": {"budget": "smoke"},
               "verdict": {"kind": "super" if mask is not None and role == "best_super" else "none"},
               "dense": {"seed_scores": {"0": 0.5, "1": 0.52}}, "best_super": None, "winning": None, "best": None}
    if mask is not None:
        child = client.create_run(experiment, run_name="s=0.20", tags={"mlflow.parentRunId": pid, "role": "ticket"})
        cid = child.info.run_id
        client.log_param(cid, "method", "structured")
        client.log_param(cid, "sparsity", 0.2)
        for seed in (0, 1):
            path = mask.save(f"/tmp/mask-seed-{seed}.json")
            client.log_artifact(cid, str(path), "mask")
        client.set_terminated(cid)
        if role == "best_super":
            client.set_tag(pid, "best_super.run_id", cid)
        low = 0.01 if role == "best_super" else -0.02
        summary[role] = {"run_id": cid, "sparsity": 0.2, "seed_scores": {"0": 0.55, "1": 0.56},
                         "difference": {"mean": 0.045, "low": low, "high": 0.08}}
    client.log_dict(pid, summary, "summary.json")
    client.set_terminated(pid)
    return pid


@pytest.mark.parametrize("share", ["super", "winning", "best"])
def test_share_picks_the_verdicts_ticket_in_that_role_and_a_study_without_one_gives_a_dense_task(share, tmp_path):
    from search.multitask.shared_tickets import find_study, read_ticket

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("supertickets-cola")
    head = torch.ones(6, 12, dtype=torch.bool)
    head[0, :3] = False
    mask = StructuredMask(head, torch.ones(6, dtype=torch.bool))
    _finished_study(client, experiment, "cola", "/models/m", "cola-study", mask, role="best")  # no super ticket
    ticket, single = read_ticket(client, find_study(client, "cola", "/models/m", None, uri), tmp_path / "masks", share)
    assert ticket.role == share and single.verdict == "none" and single.dense_scores == {0: 0.5, 1: 0.52}
    if share == "best":  # the candidate with the largest mean difference, though its interval includes 0
        assert (ticket.method, ticket.sparsity, sorted(ticket.mask_files)) == ("structured", 0.2, ["0", "1"])
        assert torch.equal(StructuredMask.load(ticket.mask_file(1)).head, head)
        assert single.ticket_scores == {0: 0.55, 1: 0.56} and single.ticket_sparsity == 0.2
    else:  # the verdict names no super (or winning) ticket: the task trains densely, nothing downloaded
        assert ticket.dense and not single.ticket_scores and not (tmp_path / "masks").exists()


def test_a_smoke_run_of_two_tasks_through_ray_writes_the_parent_arm_runs_and_table(tmp_path, model_dir, glue_dir):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("supertickets-rte")
    head = torch.ones(6, 12, dtype=torch.bool)
    head[:, :4] = False  # a third of the heads
    ffn = torch.ones(6, dtype=torch.bool)
    ffn[5] = False
    studied = str(Path(model_dir).resolve())  # a study records its model as an absolute path, links resolved
    _finished_study(client, experiment, "rte", studied, "rte-old", None)
    _finished_study(client, experiment, "rte", studied, "rte-study", StructuredMask(head, ffn))
    common = ["--tasks", "rte,mrpc", "--model", model_dir, "--glue-dir", glue_dir, "--mlflow-uri", uri,
              "--storage-path", str(tmp_path / "results"), "--budget", "smoke", "--max-train-examples", "32",
              "--max-dev-examples", "24", "--max-seq-length", "32", "--epochs", "1", "--seeds", "2",
              "--cpus-per-trial", "1"]
    errors = io.StringIO()
    with redirect_stderr(errors):  # MRPC has no finished study: one line naming the command, nothing written
        assert main([*common, "--name", "missing"]) == 2
    assert "no finished study of task mrpc" in errors.getvalue() and "python -m search.run --task mrpc" in errors.getvalue()
    assert not (tmp_path / "results" / "multitask" / "missing").exists()
    _finished_study(client, experiment, "mrpc", studied, "mrpc-study", None)  # no super ticket: MRPC trains densely
    out = io.StringIO()
    with redirect_stdout(out):
        assert main([*common, "--name", "mt"]) == 0
    text = out.getvalue()
    assert "rte: structured super ticket s=0.20" in text and "from study rte-study" in text  # the newest study
    assert "mrpc: dense (its study named no super ticket)" in text
    folder = tmp_path / "results" / "multitask" / "mt"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["dev_examples"] == {"rte": 24, "mrpc": 24}
    for arm in ("tickets-share", "multitask-dense"):
        for task in TASKS:
            scores = summary["per_seed"][arm][task]
            assert set(scores) == {"0", "1"}
            assert summary["scores"][arm][task]["mean"] == pytest.approx(np.mean(list(scores.values())))
    assert (folder / "tickets_share.png").stat().st_size > 0 and "TS - MT" in (folder / "table.txt").read_text()
    mt = client.get_experiment_by_name("supertickets-multitask")
    runs = client.search_runs([mt.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("role") == "multitask")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and sorted(c.data.tags["role"] for c in children) == \
        ["multitask-dense", "tickets-share"]
    assert parent.data.params["ticket.rte"].startswith("structured super ticket")
    for child in children:
        assert {"rte_dev_score", "mrpc_dev_score", "average_dev_score"} <= set(child.data.metrics)
    loss = {c.data.tags["role"]: c.data.metrics["rte_train_loss_seed0"] for c in children}
    assert loss["tickets-share"] != loss["multitask-dense"]  # RTE's batches ran through its ticket in one arm only
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.json", "table.txt", "tickets_share.png"} <= names
    errors = io.StringIO()
    with redirect_stderr(errors):  # the same name again without --resume
        assert main([*common, "--name", "mt"]) == 2
    assert "add --resume" in errors.getvalue()
