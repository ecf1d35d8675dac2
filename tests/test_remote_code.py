"""No code from a model folder runs unless the user passes --trust-remote-code; exports are reloaded with this
project's own classes, never with code found in the folder."""

import json
from pathlib import Path

import pytest
import torch

from search.cli.study_command import main
from search.errors import UsageError
from search.tools.export import load_export
from search.tools.export_forms import mark_ticket_code
from trainables.model import REMOTE_CODE_ENV, load_model, own_code
from trainables.pruning.magnitude import magnitude_mask
from trainables.pruning.structured import StructuredMask
from trainables.pruning.weights import PrunableSet, masked_weights
from trainables.tasks import get_task


def _model_with_code(root: Path, model_dir: str, marker: Path, where: str = "config.json") -> Path:
    """A copy of the shared model (weights linked) whose ``where`` maps to ``evil.py``, which writes ``marker``
    when imported."""
    folder = root / "with-code"
    folder.mkdir()
    for item in Path(model_dir).iterdir():
        (folder / item.name).symlink_to(item)
    (folder / where).unlink()
    config = json.loads((Path(model_dir) / where).read_text())
    config["auto_map"] = ({"AutoConfig": "evil.EvilConfig", "AutoModelForSequenceClassification": "evil.EvilModel"}
                          if where == "config.json" else {"AutoTokenizer": ["evil.EvilTokenizer", None]})
    (folder / where).write_text(json.dumps(config))
    (folder / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast\n"
        "class EvilConfig(BertConfig):\n    pass\n"
        "class EvilModel(BertForSequenceClassification):\n    config_class = EvilConfig\n"
        "class EvilTokenizer(BertTokenizerFast):\n    pass\n")
    return folder


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(REMOTE_CODE_ENV, "0")  # restored (unset) after the test, whatever the study sets
    return tmp_path


@pytest.mark.parametrize("where", ["config.json", "tokenizer_config.json"])
def test_a_model_that_ships_code_is_refused_without_the_flag_and_its_code_never_runs(where, workdir, tmp_path_factory,
                                                                                    model_dir, glue_dir, capsys):
    marker = tmp_path_factory.mktemp("marker") / "ran"
    folder = _model_with_code(tmp_path_factory.mktemp("model"), model_dir, marker, where)
    assert main(["--task", "rte", "--model", str(folder), "--glue-dir", glue_dir, "--budget", "smoke"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ships code of its own (auto_map -> evil)" in err and "--trust-remote-code" in err
    assert not marker.exists()  # nothing of evil.py was imported
    assert list(workdir.iterdir()) == []


def test_the_flag_lets_transformers_run_the_models_code(workdir, tmp_path_factory, model_dir, glue_dir):
    from search.cli.settings import build_settings
    from search.cli.study_command import parser

    marker = tmp_path_factory.mktemp("marker") / "ran"
    folder = _model_with_code(tmp_path_factory.mktemp("model"), model_dir, marker)
    settings = build_settings(parser().parse_args(["--task", "rte", "--model", str(folder), "--glue-dir", glue_dir,
                                                   "--budget", "smoke", "--trust-remote-code"]))
    assert settings.trust_remote_code and marker.read_text() == "ran"  # the user's choice, as in transformers
    import os

    assert os.environ[REMOTE_CODE_ENV] == "1"  # forwarded to the Ray workers (search.study.orchestrate)


def test_an_export_is_reloaded_with_this_projects_class_and_foreign_code_is_refused(tmp_path, model_dir):
    model = load_model(model_dir, get_task("rte"), seed=0).eval()
    head = torch.ones(6, 12, dtype=torch.bool)
    head[1, :5] = False
    structured = StructuredMask(head, torch.ones(6, dtype=torch.bool)).export(model)
    mark_ticket_code(structured.config, tmp_path / "structured")
    structured.save_pretrained(tmp_path / "structured")
    mapped = own_code(str(tmp_path / "structured"))
    assert {str(v).rsplit(".", 1)[0] for v in mapped.values()} == {"modeling_ticket"}
    (tmp_path / "structured" / "modeling_ticket.py").write_text("raise SystemExit('the folder copy ran')\n")
    reloaded = load_export(tmp_path / "structured")  # this package's class: the folder's copy is never imported
    assert type(reloaded).__name__ == "BertForSequenceClassification"  # the stock class, narrowed
    assert reloaded.config.ticket["heads_per_layer"][1] == 7
    assert reloaded.base_model.encoder.layer[1].attention.self.query.out_features == 7 * 32

    unstructured = magnitude_mask(masked_weights(model, PrunableSet()), 0.5).export(load_model(model_dir, get_task("rte"), 0))
    unstructured.config.auto_map = {"AutoModelForSequenceClassification": "evil.EvilModel"}
    unstructured.save_pretrained(tmp_path / "foreign")
    with pytest.raises(UsageError, match="maps to code this project did not write \\(evil\\)"):
        load_export(tmp_path / "foreign")
