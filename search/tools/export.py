"""Export a study's ticket as a standalone Hugging Face model: ``python -m search.export``.

    python -m search.export --study rte-structured-... --ticket super --out super-ticket/
    python -m search.export --run-id 3f2a... [--seed 1] --out ticket/

Reads the child run's fine-tuned weights (``weights/seed-<k>.safetensors``, kept by ``--keep-weights``) and mask
(``mask/mask-seed-<k>.*``), bakes the mask in with the method's ``export`` (``trainables.pruning.registry.METHODS``) and
writes a folder holding the ticket in three forms, for every encoder family of the layout table:

- PyTorch (``config.json``, ``model.safetensors``, the tokenizer): a structured ticket physically smaller (its
  pruned heads and FFN units removed, ``trainables.pruning.shrink``); the stock class cannot hold an uneven number
  of heads per layer, so the folder carries ``modeling_ticket.py`` and its config's ``auto_map`` names it:
  ``from_pretrained(folder, trust_remote_code=True)``. An unstructured ticket is the stock class with the zeros
  baked in: no remote code.
- ONNX (``model.onnx``, ``torch.onnx.export(dynamo=True)``): ONNX Runtime runs it with no code at all.
- A model card (``README.md``): task, method, sparsity, kept units, the verdict with its interval, seeds, dev
  examples and the commands; ``ticket.json`` holds the same facts for programs, label names are in the config.

No code from a model folder runs: the study's model is refused when it ships code of its own unless
``--trust-remote-code`` is given, its ``auto_map`` is never copied into an export, and this project reloads an
export with its own classes (``load_export``). The export is reloaded from the folder and its dev logits (PyTorch
and ONNX Runtime) compared with the masked ticket's; the folder is logged to the child run as an MLflow
``transformers`` model (``mlflow models serve`` can serve it).
Bad input: one line, exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from search.errors import UsageError
from search.tools.export_forms import (ONNX_FILE, input_names, mark_ticket_code, model_card, onnx_logits,
                                       onnx_session, quiet_exporter, write_onnx)

#: ``--ticket`` values and the verdict role (``search.verdict.analysis.Verdict.named``) each reads.
TICKETS = {"super": "best_super", "sparsest-super": "sparsest_super", "winning": "winning", "dense": "dense"}


@dataclass(frozen=True)
class ExportedTicket:
    """What ``export_ticket`` wrote.

    Attributes:
        folder: the export folder.
        run_id: the child run it came from.
        seed: the seed whose fine-tune was exported.
        method: the pruning method.
        sparsity: the trial's sparsity (fraction).
        smaller: physically smaller than the dense model (pruned units removed) or not (zeros baked in).
        remote_code: the PyTorch form needs ``trust_remote_code=True`` to load with transformers' auto classes (its
            config has an ``auto_map``); the ONNX form never does.
        parameters: parameters of the exported model.
        dense_parameters: parameters of the dense model it was pruned from.
        nonzero_parameters: parameters that are not exactly 0.
        checkpoint_bytes: size of ``model.safetensors``.
        bitmask_bytes: for an unstructured ticket, the size a bitmask form would take (fp32 non-zeros plus one bit
            per weight of the masked matrices; computed, not written: no maintained format loads it, see the
            README), else ``None``.
        max_logit_difference: largest |logit difference| between the reloaded export and the masked ticket on
            ``checked_examples`` dev examples (``None`` when no dev data was found).
        checked_examples: dev examples compared.
        onnx_bytes: size of ``model.onnx`` (0: the ONNX exporter failed, ``onnx_error`` says why).
        onnx_inputs: the ONNX model's input names.
        onnx_max_logit_difference: largest |logit difference| between ONNX Runtime and the masked ticket on the
            same dev examples (``None`` when not checked).
        onnx_error: why no ONNX model was written, or ``""``.
        logged_model_uri: the MLflow model's URI, or ``""`` when not logged.
    """

    folder: str
    run_id: str
    seed: int
    method: str
    sparsity: float
    smaller: bool
    remote_code: bool
    parameters: int
    dense_parameters: int
    nonzero_parameters: int
    checkpoint_bytes: int
    bitmask_bytes: int | None
    max_logit_difference: float | None
    checked_examples: int
    onnx_bytes: int = 0
    onnx_inputs: tuple[str, ...] = ()
    onnx_max_logit_difference: float | None = None
    onnx_error: str = ""
    logged_model_uri: str = ""


def find_run(client, study: str, ticket: str) -> str:
    """The child run id of ``ticket`` (a ``TICKETS`` key) in the study called ``study``.

    Raises:
        UsageError: no such study, or its verdict named no such ticket.
    """
    parents = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                 f"tags.`supertickets.study` = '{study}'", order_by=["attributes.start_time DESC"])
    if not parents:
        raise UsageError(f"no study called {study!r} in this MLflow store: pass --mlflow-uri, or the --study-name "
                         "the study ran under")
    parent = parents[0]
    role = TICKETS[ticket]
    if role == "dense":
        dense = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' "
                                   "and tags.role = 'dense'", order_by=["attributes.start_time DESC"])
        if dense:
            return dense[0].info.run_id
        raise UsageError(f"study {study} has no dense run")
    run_id = parent.data.tags.get(f"{role}.run_id")
    if not run_id:
        named = [k for k, r in TICKETS.items() if parent.data.tags.get(f"{r}.run_id")]
        raise UsageError(f"study {study}'s verdict ({parent.data.tags.get('verdict', 'none')}) names no {ticket} "
                         f"ticket: choose --ticket {' or '.join(named + ['dense'])}, or --run-id of a child run")
    return run_id


def export_ticket(client, run_id: str, out: Path, seed: int | None = None, check_examples: int = 64,
                  log_model: bool = True) -> ExportedTicket:
    """Export the fine-tuned ticket of child run ``run_id`` to the new folder ``out``.

    Args:
        client: an ``MlflowClient`` on the study's store.
        run_id: a child run whose weights were kept (tag ``weights=logged``).
        out: the folder to create; it must not exist, or be empty. Written aside and renamed when complete.
        seed: which seed's fine-tune (default: the lowest kept).
        check_examples: dev examples on which the reloaded export's logits are compared with the masked
            ticket's (0: no check).
        log_model: also log the folder to the run as an MLflow ``transformers`` model (artifact path ``model``).

    Returns:
        what was written and checked.

    Raises:
        UsageError: unknown run, no kept weights, no such seed, ``out`` in the way, or a model the method cannot
            export.
    """
    import mlflow
    import torch
    from safetensors.torch import load_file
    from trainables.pruning.registry import get_method
    from trainables.model import UnsupportedModelError, check_remote_code, load_model, load_tokenizer, quiet_loading
    from trainables.tasks import get_task

    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise UsageError(f"no run {run_id!r} in this MLflow store: pass --mlflow-uri, or copy the id from the MLflow "
                         "UI") from None
    params = run.data.params
    if "method" not in params:
        raise UsageError(f"run {run_id} is not a trial of a study (no method param): pass a child run's id")
    kept = sorted(int(a.path.rsplit("-", 1)[1].split(".")[0]) for a in client.list_artifacts(run_id, "weights")
                  if a.path.endswith(".safetensors"))
    if not kept:
        raise UsageError(f"run {run_id} ({run.info.run_name}) has no fine-tuned weights: a study keeps those of the "
                         "dense run and of the tickets its verdict names (run it with --keep-weights all to keep "
                         "every ticket's)")
    seed = kept[0] if seed is None else seed
    if seed not in kept:
        raise UsageError(f"--seed {seed}: run {run_id} kept seeds {', '.join(map(str, kept))}")
    out = Path(out).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {out} exists and is not an empty folder: choose a new folder")
    method, task = get_method(params["method"]), get_task(params["task"])
    try:
        check_remote_code(params["model"])  # before anything is loaded from the study's model folder
    except UnsupportedModelError as err:
        raise UsageError(str(err)) from None
    with tempfile.TemporaryDirectory(prefix="supertickets-export-") as scratch:
        weights_file = client.download_artifacts(run_id, f"weights/seed-{seed}.safetensors", scratch)
        mask_file = client.download_artifacts(run_id, f"mask/mask-seed-{seed}.{method.mask_type.suffix}", scratch)
        mask = method.mask_type.load(mask_file)
        with quiet_loading():
            model = load_model(params["model"], task, seed)
        model.eval()
        dense_parameters = sum(p.numel() for p in model.parameters())
        try:
            reference, exported = _ticket_models(model, mask, load_file(weights_file))
        except ValueError as err:
            raise UsageError(str(err)) from None
        partial = out.with_name(f".{out.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            if getattr(exported.config, "auto_map", None):  # the source model's own code: an export never names it
                del exported.config.auto_map
            if getattr(exported.config, "ticket", None):  # structured: its loader travels with the weights
                mark_ticket_code(exported.config, partial)
            names = task.class_names  # in config.json, in pipeline outputs and in the ONNX model's card
            exported.config.id2label = dict(enumerate(names))
            exported.config.label2id = {name: index for index, name in enumerate(names)}
            tokenizer = load_tokenizer(params["model"])
            with quiet_loading():
                exported.save_pretrained(partial)
                tokenizer.save_pretrained(partial)
            with quiet_loading():
                reloaded = load_export(partial).eval()
            onnx = _write_onnx(reloaded, tokenizer, partial)
            dev = _dev_batches(tokenizer, task, _glue_dir(client, run), check_examples)
            difference, onnx_difference = _compare(reference, reloaded, partial / ONNX_FILE if onnx.bytes else None, dev)
            parameters = sum(p.numel() for p in reloaded.parameters())
            nonzero = sum(int(torch.count_nonzero(p)) for p in reloaded.parameters())
            remote_code = bool(getattr(reloaded.config, "auto_map", None))
            facts = ExportedTicket(str(out), run_id, seed, params["method"], float(params["sparsity"]),
                                   parameters < dense_parameters, remote_code,
                                   parameters, dense_parameters, nonzero, (partial / "model.safetensors").stat().st_size,
                                   mask.bitmask_bytes(reloaded), difference, sum(len(b["input_ids"]) for b in dev),
                                   onnx.bytes, onnx.inputs, onnx_difference, onnx.error)
            (partial / "README.md").write_text(model_card(facts, _card_facts(client, run, task, params, seed, out)))
            (partial / "ticket.json").write_text(json.dumps({**asdict(facts), "run_name": run.info.run_name,
                                                             "task": task.name, "pretrained": params["model"],
                                                             "params": params}, indent=2))
            if out.exists():
                out.rmdir()
            partial.rename(out)
        except BaseException:  # nothing half-written is left beside --out
            shutil.rmtree(partial, ignore_errors=True)
            raise
    if log_model:
        facts = _log_model(client.tracking_uri, run_id, out, facts)
        record = json.loads((out / "ticket.json").read_text())
        (out / "ticket.json").write_text(json.dumps({**record, "logged_model_uri": facts.logged_model_uri}, indent=2))
    return facts


def _ticket_models(model, mask, state: dict):
    """The ticket as the study evaluated it, and its export, from the pre-trained ``model`` (full size) and a
    trial's fine-tuned weights ``state``: full-size weights (a ticket trained masked) are loaded into ``model``,
    which is then masked (reference) and exported; weights of a ticket trained physically smaller fit only its
    export, which is then its own reference.

    Raises:
        ValueError: the mask does not fit the model, or the weights fit neither form.
    """
    shapes = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    if all(shapes.get(name) == tuple(value.shape) for name, value in state.items()):
        model.load_state_dict(state)
        reference = copy.deepcopy(model)
        mask.apply(reference)  # gated units, masked weights
        return reference, mask.export(model)
    exported = mask.export(model)
    try:
        exported.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"the run's weights fit neither the model nor its ticket: {str(err).splitlines()[0]}") from None
    return copy.deepcopy(exported).eval(), exported


def load_export(folder: str | Path):
    """Load an exported ticket with this project's code only, never with code found in ``folder``: a structured
    ticket (its config maps to ``modeling_ticket``) through ``TicketForSequenceClassification`` imported from this
    package (the stock class of its family, narrowed to the kept units), any other as the stock class of its
    ``model_type``, with ``trust_remote_code`` off; only when the user passed ``--trust-remote-code`` for a model
    with code of its own is that code (copied into the export by ``save_pretrained``) used.

    Raises:
        UsageError: the folder's config maps to code this project did not write.
    """
    from transformers import AutoModelForSequenceClassification

    from trainables.export_files.modeling_ticket import TicketForSequenceClassification
    from trainables.model import own_modules, remote_code_trusted

    mapped = own_modules(str(folder))
    if mapped == {"modeling_ticket"}:
        return TicketForSequenceClassification.from_pretrained(folder)
    if mapped and not remote_code_trusted():
        raise UsageError(f"{folder} maps to code this project did not write ({', '.join(sorted(mapped))}): it is not "
                         "a supertickets export, or its model's code needs --trust-remote-code")
    # the source model's own code, which the user trusted with --trust-remote-code (save_pretrained copies it)
    return AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=bool(mapped))


@dataclass(frozen=True)
class _Onnx:
    bytes: int
    inputs: tuple[str, ...]
    error: str


def _write_onnx(model, tokenizer, folder: Path) -> _Onnx:
    """``model.onnx`` in ``folder``; an exporter failure is recorded, not raised (the PyTorch forms stand)."""
    path = folder / ONNX_FILE
    try:
        with quiet_exporter():
            write_onnx(model, tokenizer, path)
    except Exception as err:  # noqa: BLE001 - the exporter raises many kinds; the PyTorch export stands without it
        from search.errors import failure_summary

        path.unlink(missing_ok=True)
        return _Onnx(0, (), failure_summary(err))
    return _Onnx(path.stat().st_size, tuple(input_names(model, tokenizer)), "")


def _card_facts(client, run, task, params: dict, seed: int, out: Path) -> dict:
    """What the model card says of the ticket, read from its run and the study's parent run."""
    metrics, tags = run.data.metrics, run.data.tags
    parent = client.get_run(tags["mlflow.parentRunId"]) if tags.get("mlflow.parentRunId") else None
    parent_params = parent.data.params if parent else {}
    if "heads_kept" in params:
        kept = (f"{params['heads_kept']}/{params['total_heads']} heads, {params['ffn_kept']}/{params['total_ffn']} "
                "FFN blocks")
    else:
        kept = f"{100 * (1 - float(params.get('achieved_sparsity', params['sparsity']))):.1f} % of the prunable weights"
    dense = parent.data.tags.get("dense.dev_score") if parent else None
    return {"task": task.name, "metric": task.primary_metric, "pretrained": params["model"], "kept": kept,
            "achieved": float(params.get("achieved_sparsity", params["sparsity"])),
            "dev_score": metrics.get("dev_score"), "dense_dev_score": float(dense) if dense else None,
            "difference": _points(metrics.get("paired_difference")),
            "difference_low": metrics.get("difference_low"), "difference_high": metrics.get("difference_high"),
            "verdict": parent.data.tags.get("verdict.line", "") if parent else "",
            "seeds": len(params.get("seeds", "0").split(",")),
            "dev_examples": _dev_examples(client, run, task, parent_params.get("data.max_dev_examples")),
            "study_command": tags.get("supertickets.command", ""),
            "export_command": f"python -m search.export --run-id {run.info.run_id} --seed {seed} --out {out}"}


def _dev_examples(client, run, task, cap: str | None) -> str:
    """How many dev examples the study scored: its ``--max-dev-examples`` cap, else its dev split's size."""
    from trainables.data import load_raw

    glue = _glue_dir(client, run)
    total = len(load_raw(task, glue)["validation"]) if glue else None
    if cap not in (None, "None", ""):
        return str(min(int(cap), total) if total else int(cap))
    return str(total) if total else "all the"


def _points(difference: float | None) -> float | None:
    """A paired difference as MLflow holds it (a fraction of the metric) in points."""
    return None if difference is None else 100 * difference


def _glue_dir(client, run) -> str | None:
    parent = run.data.tags.get("mlflow.parentRunId")
    if not parent:
        return None
    glue = client.get_run(parent).data.params.get("glue_dir")
    return glue if glue and glue != "None" and os.path.isdir(glue) else None


def _dev_batches(tokenizer, task, glue_dir: str | None, examples: int) -> list[dict]:
    """The first ``examples`` dev examples, tokenized in batches of 16 (empty: no check, or no dev data found)."""
    from trainables.data import load_raw

    if not examples or glue_dir is None:
        return []
    dev = load_raw(task, glue_dir)["validation"]
    dev = dev.select(range(min(examples, len(dev))))
    batches = []
    for start in range(0, len(dev), 16):
        rows = dev[start:start + 16]
        batches.append(dict(tokenizer(*(rows[c] for c in task.text_columns), padding=True, truncation=True,
                                      max_length=128, return_tensors="pt")))
    return batches


def _compare(reference, exported, onnx: Path | None, dev: list[dict]) -> tuple[float | None, float | None]:
    """Largest |logit difference| from ``reference`` (the masked ticket) of the reloaded PyTorch export and of
    ONNX Runtime on ``model.onnx``, over the ``dev`` batches (``None``: not checked)."""
    import torch

    if not dev:
        return None, None
    session = None if onnx is None else onnx_session(onnx)
    worst, worst_onnx = 0.0, None if session is None else 0.0
    with torch.no_grad():
        for batch in dev:
            expected = reference(**batch).logits
            worst = max(worst, float((expected - exported(**batch).logits).abs().max()))
            if session is not None:
                got = torch.from_numpy(onnx_logits(session, batch))
                worst_onnx = max(worst_onnx, float((expected - got).abs().max()))
    return worst, worst_onnx


def _log_model(uri: str, run_id: str, folder: Path, facts: ExportedTicket) -> ExportedTicket:
    """Log ``folder`` to the run as an MLflow ``transformers`` model (artifact path ``model``), as a
    ``text-classification`` pipeline.

    MLflow 3.17 with transformers 5 cannot log a checkpoint *folder* (its task lookup expects a class where
    transformers 5 has a name) and infers a torchvision requirement it cannot pin, so a pipeline is logged with
    the requirements pinned here."""
    import mlflow
    import torch
    import transformers
    from transformers import pipeline

    from trainables.model import load_tokenizer, quiet_loading

    with quiet_loading():
        model = load_export(folder)
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity(logging.CRITICAL)  # "not supported for text-classification": it is
        try:
            classify = pipeline("text-classification", model=model, tokenizer=load_tokenizer(folder))
        finally:
            transformers.logging.set_verbosity(verbosity)
    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"transformers=={transformers.__version__}"]
    mlflow.set_tracking_uri(uri)
    logging.getLogger("mlflow.transformers").setLevel(logging.ERROR)  # no model card or licence on a local folder
    with mlflow.start_run(run_id=run_id), quiet_loading():
        info = mlflow.transformers.log_model(transformers_model=classify, name="model", pip_requirements=requirements)
    return ExportedTicket(**{**asdict(facts), "logged_model_uri": info.model_uri})


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m search.export`` command line (its errors are ``UsageError``: one line, exit 2)."""
    from search.cli.flags import add_store_flags
    from search.errors import OneLineParser

    parser = OneLineParser(
        prog="python -m search.export",
        description="Export a study's fine-tuned ticket as a Hugging Face model folder (config with label names, "
                    "weights, tokenizer), an ONNX model (model.onnx) and a model card (README.md): structured tickets "
                    "physically smaller, unstructured ones with their zeros baked in. ONNX Runtime loads model.onnx "
                    "with no remote code; in PyTorch an unstructured ticket loads as the stock class, a structured "
                    "one with AutoModelForSequenceClassification.from_pretrained(FOLDER, trust_remote_code=True).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m search.export --study rte-structured-20261122-101500 --ticket super --out st/\n"
               "  python -m search.export --run-id 3f2a9c... --seed 1 --out ticket/")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", help="the MLflow child run of the ticket (its weights must have been kept)")
    which.add_argument("--study", help="the study's name (--study-name); use with --ticket")
    parser.add_argument("--ticket", choices=tuple(TICKETS),
                        help="with --study: the ticket its verdict named (super: the best super ticket, default; "
                             "sparsest-super; winning; dense: the dense baseline)")
    parser.add_argument("--seed", type=int, help="which seed's fine-tune (default: the lowest kept)")
    parser.add_argument("--out", required=True, help="the folder to write (new, or empty)")
    add_store_flags(parser, storage="with --study and no --mlflow-uri, the study's folder there says which MLflow "
                                    "store it logged to",
                    mlflow="where the study's runs are")
    parser.add_argument("--check-examples", type=int, default=64,
                        help="dev examples on which the export's logits are compared with the masked ticket's "
                             "(default 64; 0: no check)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="load a study's model that ships code of its own (its config's auto_map), as "
                             "transformers' trust_remote_code; off: such a model is refused. Only for code you trust")
    parser.add_argument("--no-log-model", action="store_true", help="do not log the export to the run as an MLflow model")
    return parser


def check_args(args: argparse.Namespace) -> str:
    """The parsed flags checked before MLflow is opened (nothing is created); returns the tracking URI.

    Raises:
        UsageError: a value out of range, contradictory flags, a study name that is no folder name, an ``--out``
            in the way, or a tracking URI that holds no MLflow store.
    """
    from search.cli.flags import resolve_storage
    from search.cli.preflight import check_folder, check_mlflow_uri, check_study_name

    if args.check_examples < 0:
        raise UsageError(f"--check-examples {args.check_examples} must be at least 0 (0: no check)")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed {args.seed} must be 0 or more (a seed the run kept; default the lowest)")
    if args.run_id is not None and not args.run_id.strip():
        raise UsageError("--run-id is empty: copy a child run's id from the MLflow UI, or pass --study")
    if args.run_id is not None and args.ticket is not None:
        raise UsageError(f"--ticket {args.ticket} picks a ticket of --study, but --run-id names the run already: "
                         "drop one of them")
    if args.study is not None:
        check_study_name(args.study, "--study")
    if not args.out.strip():
        raise UsageError("--out is empty: pass the folder to write (new, or empty)")
    out = Path(args.out).expanduser().absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {args.out} exists and is not an empty folder: choose a new folder")
    check_folder(out, "--out")
    if args.mlflow_uri is None and args.study is not None:  # the store the study recorded, as compare reads it
        from search.study.state import StudyState

        storage, _ = resolve_storage(args.storage_path)
        state = StudyState.read(Path(storage) / args.study) if "://" not in storage else None
        if state is not None:
            return check_mlflow_uri(state.tracking_uri, existing=True)
    return check_mlflow_uri(args.mlflow_uri, existing=True)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 exported, 2 bad input: one line on stderr, nothing written,
    1 a failure: one line)."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        args = build_parser().parse_args(argv)
        uri = check_args(args)
        from mlflow.tracking import MlflowClient

        from trainables.model import trust_remote_code

        trust_remote_code(args.trust_remote_code)

        client = MlflowClient(uri)
        run_id = args.run_id or find_run(client, args.study, args.ticket or "super")
        facts = export_ticket(client, run_id, Path(args.out), args.seed, args.check_examples, not args.no_log_model)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a failure (disk full, server gone): the partial folder was not renamed into place
        from search.errors import failure_summary

        print(f"failed (exit 1): {failure_summary(err)}; no half-written folder is left. Fix the cause and export "
              "again", file=sys.stderr)
        return 1
    print(describe(facts))
    return 0


def describe(facts: ExportedTicket) -> str:
    """The export in a few lines: what, how big, checked how, and which form loads how (with or without remote
    code)."""
    kind = "physically smaller (pruned units removed)" if facts.smaller else "zeros baked in"
    lines = [f"exported {facts.method} ticket s={facts.sparsity:.2f} (run {facts.run_id[:8]}, seed {facts.seed}) to "
             f"{facts.folder}: {kind}",
             f"  parameters {facts.parameters:,} of the dense {facts.dense_parameters:,} "
             f"({100 * facts.parameters / facts.dense_parameters:.1f}%), non-zero {facts.nonzero_parameters:,}",
             f"  model.safetensors {facts.checkpoint_bytes / 1e6:.1f} MB"
             + (f"; a bitmask form would take {facts.bitmask_bytes / 1e6:.1f} MB" if facts.bitmask_bytes else "")
             + (f"; {ONNX_FILE} {facts.onnx_bytes / 1e6:.1f} MB" if facts.onnx_bytes else "")]
    if facts.max_logit_difference is not None:
        onnx = ("" if facts.onnx_max_logit_difference is None
                else f", ONNX Runtime {facts.onnx_max_logit_difference:.2e}")
        lines.append(f"  max |logit - ticket's logit| on {facts.checked_examples} dev examples: reloaded PyTorch "
                     f"{facts.max_logit_difference:.2e}{onnx}")
    if facts.logged_model_uri:
        lines.append(f"  MLflow model: {facts.logged_model_uri}")
    if facts.onnx_bytes:
        lines.append(f"  load without remote code: onnxruntime.InferenceSession({str(Path(facts.folder) / ONNX_FILE)!r})")
    else:
        lines.append(f"  no {ONNX_FILE}: the ONNX exporter failed ({facts.onnx_error})")
    if facts.remote_code:
        lines.append(f"  load in PyTorch: AutoModelForSequenceClassification.from_pretrained({facts.folder!r}, "
                     "trust_remote_code=True) (runs the folder's modeling_ticket.py: the stock class cannot hold "
                     "uneven heads per layer)")
    else:
        lines.append(f"  load in PyTorch without remote code: "
                     f"AutoModelForSequenceClassification.from_pretrained({facts.folder!r})")
    lines.append(f"  model card: {Path(facts.folder) / 'README.md'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
