"""Exported tickets on the shared MiniLM (issue 10): a structured ticket physically smaller with the gated model's
logits, an unstructured one with its zeros exactly where the mask says, both loaded by a clean Python process."""

import json
import subprocess
import sys

import pytest
import torch

from search.tools.export_forms import mark_ticket_code
from trainables.model import load_model, quiet_loading
from trainables.pruning.magnitude import magnitude_mask
from trainables.pruning.structured import StructuredMask
from trainables.pruning.weights import PrunableSet, masked_weights
from trainables.tasks import get_task


@pytest.fixture
def model(model_dir):
    return load_model(model_dir, get_task("rte"), seed=0).eval()


def _logits(model, batch):
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def _mask_uneven() -> StructuredMask:
    head = torch.ones(6, 12, dtype=torch.bool)
    head[0, [1, 5, 7]] = False  # 9 heads left
    head[2, :11] = False  # one head left
    head[5, 3] = False
    ffn = torch.tensor([True, False, True, True, True, False])
    return StructuredMask(head, ffn)


def _clean_load(folder, tmp_path, trust: bool) -> dict:
    """Load ``folder`` in a fresh interpreter started outside the repository, with this project's packages
    blocked from import, and return what it saw."""
    script = f"""
import json, sys
class Block:  # this project's code must not be needed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("trainables", "search", "spaces"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained({str(folder)!r}, trust_remote_code={trust}).eval()
tokenizer = AutoTokenizer.from_pretrained({str(folder)!r})
with torch.no_grad():
    logits = model(**tokenizer(["A man plays a guitar."], ["Someone makes music."], return_tensors="pt")).logits
print(json.dumps({{"class": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters()),
                  "logits": logits.tolist()}}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_structured_ticket_exports_physically_smaller_with_the_gated_models_logits(model, rte_batch, tokenizer,
                                                                                        tmp_path):
    mask = _mask_uneven()
    gates = mask.apply(model)
    gated = _logits(model, rte_batch)
    gates.remove()
    dense_parameters = sum(p.numel() for p in model.parameters())
    exported = mask.export(model)
    hidden, inner, head_dim = 384, 1536, 32
    pruned_heads, pruned_ffn = int((~mask.head).sum()), int((~mask.ffn).sum())
    # each pruned head: its rows of Q, K, V (weights and biases) and its columns of the attention output;
    # each pruned FFN block: both matrices and both biases (a closed gate multiplied the output bias too)
    removed = pruned_heads * (4 * head_dim * hidden + 3 * head_dim) + pruned_ffn * (2 * hidden * inner + inner + hidden)
    assert sum(p.numel() for p in exported.parameters()) == dense_parameters - removed
    assert exported.config.ticket["heads_per_layer"] == [9, 12, 1, 12, 12, 11]
    assert exported.config.ticket["intermediate_per_layer"] == [1536, 0, 1536, 1536, 1536, 0]
    assert torch.allclose(_logits(exported, rte_batch), gated, atol=1e-5)

    mark_ticket_code(exported.config, tmp_path / "ticket")
    exported.save_pretrained(tmp_path / "ticket")
    tokenizer.save_pretrained(tmp_path / "ticket")
    config = json.loads((tmp_path / "ticket" / "config.json").read_text())
    assert config["model_type"] == "bert" and config["auto_map"] == {
        "AutoModelForSequenceClassification": "modeling_ticket.TicketForSequenceClassification"}
    seen = _clean_load(tmp_path / "ticket", tmp_path, trust=True)
    assert seen["class"] == "BertForSequenceClassification"  # the stock class, narrowed by the folder's loader
    assert seen["parameters"] == dense_parameters - removed
    with torch.no_grad():
        expected = exported(**tokenizer(["A man plays a guitar."], ["Someone makes music."], return_tensors="pt"))
    assert torch.allclose(torch.tensor(seen["logits"]), expected.logits, atol=1e-5)


def test_a_stock_load_of_a_structured_export_without_remote_code_is_refused(model, tokenizer, tmp_path):
    from transformers import AutoModelForSequenceClassification

    exported = _mask_uneven().export(model)
    mark_ticket_code(exported.config, tmp_path / "ticket")
    exported.save_pretrained(tmp_path / "ticket")
    with pytest.raises((RuntimeError, ValueError)), quiet_loading():  # the shapes do not fit stock BERT
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "ticket")


def test_an_unstructured_ticket_exports_with_zeros_exactly_where_the_mask_says(model, rte_batch, tokenizer,
                                                                               tmp_path):
    mask = magnitude_mask(masked_weights(model, PrunableSet()), 0.6)
    mask.apply(model)
    masked = _logits(model, rte_batch)
    exported = mask.export(model)
    assert type(exported).__name__ == "BertForSequenceClassification"
    assert not any(name.endswith(("_orig", "_mask")) for name in exported.state_dict())
    state = exported.base_model.state_dict()
    for name, keep in mask.masks.items():
        weight = state[name]
        assert int((weight[~keep] != 0).sum()) == 0 and int((weight[keep] == 0).sum()) <= 2  # kept stay (rare 0)
    assert torch.allclose(_logits(exported, rte_batch), masked, atol=1e-6)
    exported.save_pretrained(tmp_path / "ticket")
    tokenizer.save_pretrained(tmp_path / "ticket")
    seen = _clean_load(tmp_path / "ticket", tmp_path, trust=False)  # stock BERT: no remote code
    assert seen["class"] == "BertForSequenceClassification"
    with torch.no_grad():
        expected = exported(**tokenizer(["A man plays a guitar."], ["Someone makes music."], return_tensors="pt"))
    assert torch.allclose(torch.tensor(seen["logits"]), expected.logits, atol=1e-5)
