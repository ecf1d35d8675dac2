"""Every encoder family of the layout table, as tiny random models built offline (tests/families.py): each method,
control and rewinding point runs a trial; a structured ticket exports physically smaller with the gated model's
logits, into an ONNX model ONNX Runtime runs with the same logits and a folder stock transformers loads; ALBERT is
refused with its reason; a study on a non-BERT family runs through Ray, MLflow and ``search.export``."""

import json
import math
import subprocess
import sys

import pytest
import torch

from families import FAMILIES, build_family

from search.tools.export_forms import mark_ticket_code, onnx_logits, onnx_session, quiet_exporter, write_onnx
from trainables.config import TrialConfig
from trainables.model import encoder_layers, load_model, load_tokenizer, quiet_loading
from trainables.pruning.structured import StructuredMask
from trainables.tasks import get_task

FAMILY_NAMES = sorted(FAMILIES)


@pytest.fixture(scope="module")
def families(tmp_path_factory, wikitext_dir):
    root = tmp_path_factory.mktemp("families")
    with quiet_loading():
        return {name: str(build_family(name, root / name, wikitext_dir)) for name in FAMILY_NAMES}


def _batch(tokenizer, texts=("A man plays a guitar in the park.", "Hi."), pairs=("Someone makes music.", "A cat.")):
    return dict(tokenizer(list(texts), list(pairs), padding=True, return_tensors="pt"))


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_method_control_and_rewinding_point_runs_a_trial(family, families, glue_dir, wikitext_dir, tmp_path):
    from trainables.data import DataSettings
    from trainables.finetune import FinetuneSettings
    from trainables.trial import TrialContext, run_ticket_trial

    context = TrialContext(model=families[family], task="rte", seeds=(0,), cache_dir=str(tmp_path),
                           data=DataSettings(glue_dir, max_seq_length=32, max_train_examples=16, max_dev_examples=16),
                           finetune=FinetuneSettings(learning_rate=1e-4, epochs=1, batch_size=16, optimizer="adamw"))
    tamt = (("tamt_steps", 1), ("tamt_batch_size", 2), ("tamt_max_seq_length", 32),
            ("tamt_corpus", str(wikitext_dir / "valid.txt")))
    achieved = {}
    for config in (TrialConfig(0.5), TrialConfig(0.5, control="random"), TrialConfig(0.5, rewind="step:1", control="bad"),
                   TrialConfig(0.5, "magnitude"), TrialConfig(0.5, "magnitude", "step:1", "bad"), TrialConfig(0.3, "imp"),
                   TrialConfig(0.5, "tamt", options=tamt), TrialConfig(0.5, "tamt", options=(*tamt, ("tamt_objective", "mlm")))):
        reports = []
        run_ticket_trial(config, context, reports.append)
        last = reports[-1]
        assert last.epoch == 1 and math.isfinite(last.current.dev_score) and len(last.labels) == 16, config
        achieved[(config.method, config.control, config.options_dict.get("tamt_objective"))] = last.ticket.counts
    structured = achieved[("structured", "good", None)]
    assert structured["heads_kept"] < structured["total_heads"] or structured["ffn_kept"] < structured["total_ffn"]
    assert achieved[("structured", "random", None)]["heads_kept"] == structured["heads_kept"]  # a control keeps the count
    for key in (("magnitude", "good", None), ("magnitude", "bad", None), ("tamt", "good", None), ("tamt", "good", "mlm")):
        assert achieved[key]["achieved_sparsity"] == pytest.approx(0.5, abs=0.01), key  # per-matrix floor(s * n)
    assert achieved[("imp", "good", None)]["achieved_sparsity"] == pytest.approx(0.3, abs=0.01)


def _uneven_mask(model) -> StructuredMask:
    layout, layers = encoder_layers(model)
    heads = model.config.num_attention_heads
    head = torch.ones(len(layers), heads, dtype=torch.bool)
    head[0, 1:3] = False  # layer 0 keeps 2 of 4 heads, layer 1 keeps 3
    head[1, 3] = False
    return StructuredMask(head, torch.tensor([True, False]))  # layer 1 loses its FFN block


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_a_structured_ticket_exports_smaller_with_the_same_logits_in_pytorch_and_onnx_runtime(family, families,
                                                                                            tmp_path):
    folder = families[family]
    model = load_model(folder, get_task("rte"), seed=0).eval()
    tokenizer = load_tokenizer(folder)
    batch = _batch(tokenizer)
    mask = _uneven_mask(model)
    gates = mask.apply(model)
    with torch.no_grad():
        gated = model(**batch).logits
    gates.remove()
    with torch.no_grad():
        assert (model(**batch).logits - gated).abs().max() > 1e-6  # the gates did prune something
    exported = mask.export(model)
    assert type(exported) is type(model)  # the stock class, narrowed
    layout, layers = encoder_layers(exported)
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    for layer, kept in zip(layers, (2, 3)):
        assert layer.get_submodule(layout.attention_inputs[0]).out_features == layout.qkv_blocks * kept * head_dim
        assert layer.get_submodule(layout.head_projection).in_features == kept * head_dim
    assert layers[1].get_submodule(layout.ffn_input).out_features == 0
    assert sum(p.numel() for p in exported.parameters()) < sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        assert (exported(**batch).logits - gated).abs().max() < 1e-5

    out = tmp_path / "ticket"
    mark_ticket_code(exported.config, out)
    exported.save_pretrained(out)
    tokenizer.save_pretrained(out)
    with quiet_exporter():
        write_onnx(exported, tokenizer, out / "model.onnx")
    session = onnx_session(out / "model.onnx")
    longer = _batch(tokenizer, ["A longer sentence, with more words than the ones the model was traced with."] * 3,
                    ["Short."] * 3)
    for check in (batch, longer):  # other batch size and length: the ONNX axes are dynamic
        with torch.no_grad():
            expected = exported(**check).logits
        assert (torch.from_numpy(onnx_logits(session, check)) - expected).abs().max() < 1e-5


def test_every_familys_export_loads_with_stock_transformers_in_a_clean_process(families, tmp_path):
    """One clean interpreter (this project's packages blocked) loads every family's structured export with
    ``trust_remote_code=True`` and its unstructured (magnitude) export without remote code, and gets the stock
    class with the ticket's logits."""
    from trainables.pruning.magnitude import magnitude_mask
    from trainables.pruning.weights import PrunableSet, masked_weights

    expected = {}
    for family in FAMILY_NAMES:
        model = load_model(families[family], get_task("rte"), seed=0).eval()
        tokenizer = load_tokenizer(families[family])
        structured = _uneven_mask(model).export(model)
        mark_ticket_code(structured.config, tmp_path / family)
        unstructured = magnitude_mask(masked_weights(model, PrunableSet()), 0.5).export(model)
        assert not getattr(unstructured.config, "auto_map", None)
        for name, ticket in ((family, structured), (f"{family}-magnitude", unstructured)):
            ticket.save_pretrained(tmp_path / name)
            tokenizer.save_pretrained(tmp_path / name)
            with torch.no_grad():
                expected[name] = (type(model).__name__, ticket(**_batch(tokenizer)).logits)
    script = f"""
import json, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("trainables", "search", "spaces"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
seen = {{}}
for family in {sorted(expected)!r}:
    folder = {str(tmp_path)!r} + "/" + family
    structured = not family.endswith("-magnitude")  # remote code only where the folder's config names it
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=structured).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(["A man plays a guitar in the park.", "Hi."], ["Someone makes music.", "A cat."], padding=True,
                      return_tensors="pt")
    with torch.no_grad():
        seen[family] = [type(model).__name__, model(**batch).logits.tolist()]
print(json.dumps(seen))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    for family, (name, logits) in expected.items():
        assert seen[family][0] == name, family
        assert torch.allclose(torch.tensor(seen[family][1]), logits, atol=1e-5), family


def test_albert_is_refused_with_the_reason():
    from transformers import AlbertConfig

    from trainables.model import UnsupportedModelError, layout_for

    with pytest.raises(UnsupportedModelError, match="shares one layer's weights across all its layers"):
        layout_for(AlbertConfig())


def test_a_deberta_study_runs_through_ray_and_exports_smaller_with_onnx(families, glue_dir, tmp_path, capsys):
    """The whole path on a family other than BERT: a structured grid study through Ray Tune, Optuna and MLflow,
    then ``search.export`` of its ticket (PyTorch, ONNX, model card)."""
    from mlflow.tracking import MlflowClient

    from search.cli.study_command import main
    from search.tools.export import main as export

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["--task", "rte", "--budget", "smoke", "--model", families["deberta-v2"], "--glue-dir", glue_dir,
                 "--storage-path", str(tmp_path / "results"), "--mlflow-uri", uri, "--max-train-examples", "32",
                 "--max-dev-examples", "32", "--max-seq-length", "32", "--epochs", "1", "--seeds", "1",
                 "--cpus-per-trial", "1", "--num-trials", "2", "--search", "grid", "--sparsity-min", "0.5",
                 "--sparsity-max", "0.5", "--keep-weights", "all", "--study-name", "deberta"]) == 0
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("supertickets-rte").experiment_id])
    ticket = next(r for r in runs if r.data.tags.get("role") == "ticket")
    assert int(ticket.data.params["heads_kept"]) < int(ticket.data.params["total_heads"])
    out = tmp_path / "ticket"
    assert export(["--run-id", ticket.info.run_id, "--out", str(out), "--mlflow-uri", uri, "--no-log-model"]) == 0
    facts = json.loads((out / "ticket.json").read_text())
    assert facts["smaller"] and facts["remote_code"] and facts["checked_examples"] == 64
    assert facts["max_logit_difference"] < 1e-5 and facts["onnx_max_logit_difference"] < 1e-5
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "deberta-v2" and config["id2label"] == {"0": "entailment", "1": "not_entailment"}
    assert sum(config["ticket"]["heads_per_layer"]) == int(ticket.data.params["heads_kept"])
    card = (out / "README.md").read_text()
    assert "| method | structured |" in card and "trust_remote_code=True" in card and "onnxruntime" in card
    assert "load without remote code: onnxruntime.InferenceSession" in capsys.readouterr().out
    # by study name, the store found through --storage-path as the study recorded it (no --mlflow-uri)
    assert export(["--study", "deberta", "--ticket", "dense", "--storage-path", str(tmp_path / "results"), "--out",
                   str(tmp_path / "dense"), "--check-examples", "0", "--no-log-model"]) == 0
    dense = json.loads((tmp_path / "dense" / "ticket.json").read_text())
    assert not dense["smaller"] and not dense["remote_code"] and dense["sparsity"] == 0.0
