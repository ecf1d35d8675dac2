"""The forms an exported ticket takes beside its PyTorch weights: the structured ticket's loader file, the ONNX
model and the model card (README.md). ``search.tools.export`` decides what to write; this module writes it.

The ONNX model comes from ``torch.onnx.export(dynamo=True)``, the exporter PyTorch maintains (optimum-onnx 0.1.0,
the newest at the time of writing, requires transformers < 4.58); ONNX Runtime runs it with no Python code from the
folder. Batch size and sequence length stay dynamic.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

#: The export's loader for structured tickets (``trainables/export_files/modeling_ticket.py``), copied beside
#: the weights and named by the config's ``auto_map``.
TICKET_CODE = Path(__file__).resolve().parents[2] / "trainables" / "export_files" / "modeling_ticket.py"
TICKET_CLASS = "modeling_ticket.TicketForSequenceClassification"
ONNX_FILE = "model.onnx"


def mark_ticket_code(config, folder: Path) -> None:
    """Make ``AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)`` load the
    structured ticket saved in ``folder``: the loader file is copied there and ``config.auto_map`` names it (call
    before ``save_pretrained``, which writes the config)."""
    config.auto_map = {"AutoModelForSequenceClassification": TICKET_CLASS}
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TICKET_CODE, folder / TICKET_CODE.name)


def input_names(model, tokenizer) -> list[str]:
    """The tokenizer outputs ``model.forward`` takes (``input_ids``, ``attention_mask``, maybe ``token_type_ids``),
    in the tokenizer's order: the ONNX model's inputs."""
    import inspect

    accepted = inspect.signature(model.forward).parameters
    return [name for name in tokenizer.model_input_names if name in accepted]


@contextmanager
def quiet_exporter():
    """Silence the ONNX exporter's progress lines and its warnings about operators of packages not installed
    (torchvision's): an export prints its own summary."""
    import io
    import logging
    import warnings
    from contextlib import redirect_stdout

    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def write_onnx(model, tokenizer, path: Path) -> None:
    """Export ``model`` (a sequence classifier in eval mode) to the ONNX file ``path``: inputs named as the
    tokenizer's (``input_names``), int64 of shape ``(batch, sequence)``, both dynamic; one output ``logits`` of
    shape ``(batch, num_labels)``, float32.

    Raises:
        RuntimeError (or the exporter's own error): the model could not be traced.
    """
    import torch

    names = input_names(model, tokenizer)
    sample = tokenizer(["An example sentence to trace the model with.", "Another one."],
                       ["A second segment.", "And its pair, a little longer than the first."], padding=True,
                       return_tensors="pt")
    sample = {name: sample[name].to(next(model.parameters()).device) for name in names}
    dims = {name: {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")} for name in names}
    with torch.no_grad():
        program = torch.onnx.export(model, (), kwargs=sample, input_names=names, output_names=["logits"],
                                    dynamic_shapes=dims, dynamo=True, verbose=False, report=False)
    program.save(str(path))


def onnx_session(path: Path):
    """An ONNX Runtime session on the CPU for the ONNX model ``path``."""
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def onnx_logits(session, batch: dict):
    """Logits of an ONNX Runtime ``session`` (``onnx_session``) on a tokenized ``batch`` (tensors or arrays, extra
    keys ignored). Returns a float32 ``numpy`` array of shape ``(batch, num_labels)``."""
    import numpy as np

    wanted = {i.name for i in session.get_inputs()}
    feed = {name: np.asarray(value.cpu() if hasattr(value, "cpu") else value, dtype=np.int64)
            for name, value in batch.items() if name in wanted}
    return session.run(["logits"], feed)[0]


def model_card(facts, study: dict) -> str:
    """The model card (``README.md``) of an export.

    Args:
        facts: the ``ExportedTicket`` written.
        study: what the study says of this ticket: ``task``, ``metric``, ``pretrained``, ``kept`` (kept units, a
            phrase), ``achieved`` (fraction), ``dev_score``, ``dense_dev_score``, ``difference``,
            ``difference_low``, ``difference_high`` (points, or None), ``verdict`` (the study's verdict line, or
            ""), ``seeds`` (count), ``dev_examples``, ``study_command``, ``export_command``.
    """
    def points(value):
        return "-" if value is None else f"{value:+.1f}"

    interval = (f"{points(study['difference'])} points [{points(study['difference_low'])}, "
                f"{points(study['difference_high'])}]" if study.get("difference") is not None else "not measured")
    structured = facts.smaller
    loads = [f"- **ONNX** (`{ONNX_FILE}`): ONNX Runtime, no remote code: "
             f"`onnxruntime.InferenceSession('{ONNX_FILE}')`, inputs {', '.join(facts.onnx_inputs)}; output `logits`."
             if facts.onnx_bytes else "- **ONNX**: not written (the exporter failed; see ticket.json)"]
    if structured:
        loads.append("- **PyTorch**: `AutoModelForSequenceClassification.from_pretrained(folder, "
                     "trust_remote_code=True)` runs `modeling_ticket.py` from this folder (about 150 lines: it "
                     "builds the stock model and removes the pruned units; read it first). Without remote code, "
                     "the stock class cannot hold an uneven number of heads per layer and refuses the weights.")
    else:
        loads.append("- **PyTorch**: `AutoModelForSequenceClassification.from_pretrained(folder)`, the stock class, "
                     "no remote code (the pruned weights are zeros).")
    lines = [
        "---", "library_name: transformers", "pipeline_tag: text-classification",
        "tags: [supertickets, lottery-ticket, pruning, " + ("structured-pruning" if structured else "sparse") + "]",
        "---", "",
        f"# {facts.method} ticket, sparsity {facts.sparsity:.2f}, {study['task'].upper()}", "",
        f"A lottery ticket of `{study['pretrained']}` found by supertickets and fine-tuned on GLUE "
        f"{study['task'].upper()} (seed {facts.seed}).", "",
        "| | |", "| --- | --- |",
        f"| method | {facts.method} |",
        f"| sparsity (requested, achieved) | {facts.sparsity:.2f}, {study['achieved']:.3f} |",
        f"| kept | {study['kept']} |",
        f"| parameters | {facts.parameters:,} of the dense {facts.dense_parameters:,} "
        f"({100 * facts.parameters / facts.dense_parameters:.1f} %), non-zero {facts.nonzero_parameters:,} |",
        f"| dev {study['metric']}, mean over the study's seeds (ticket; dense) | {_score(study['dev_score'])}; "
        f"{_score(study['dense_dev_score'])} |",
        f"| difference from dense | {interval} (95 % interval over {study['seeds']} seed(s) and "
        f"{study['dev_examples']} dev examples) |",
        "", "## The study's verdict", "", study["verdict"] or "(none recorded)", "",
        "## Load it", "", *loads, "",
        "Checked at export: the reloaded PyTorch model's and ONNX Runtime's logits against the ticket as the study "
        f"evaluated it on {facts.checked_examples} dev examples: max |difference| "
        f"{_small(facts.max_logit_difference)} (PyTorch), {_small(facts.onnx_max_logit_difference)} (ONNX).", "",
        "## Reproduce", "", f"Study: `{study['study_command'] or 'unknown'}`", "",
        f"Export: `{study['export_command']}`", "",
    ]
    return "\n".join(lines)


def _score(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _small(value) -> str:
    return "not checked" if value is None else f"{value:.1e}"
