"""GLUE data: load a task's train and dev splits and tokenise them, all through ``datasets``.

Data comes from a classic ``GLUE_DIR`` (``<glue_dir>/RTE/train.tsv`` ...) or, when no directory is
given, from the hub dataset ``nyu-mll/glue``. Tokenisation is a cached ``Dataset.map``; padding is
dynamic, done per batch by ``DataCollatorWithPadding``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import datasets
import torch
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from trainables.tasks import HUB_DATASET, GlueTask

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask", "labels")


@dataclass(frozen=True)
class DataSettings:
    """How much of a task a trial reads.

    Attributes:
        glue_dir: a classic GLUE directory, or ``None`` for the hub's ``nyu-mll/glue``.
        max_seq_length: tokens per example after truncation.
        max_train_examples: keep a seeded random subset of this many training examples (``None``: all).
        max_dev_examples: keep the first this many dev examples (``None``: all).
    """

    glue_dir: str | None
    max_seq_length: int
    max_train_examples: int | None = None
    max_dev_examples: int | None = None


class DataFileError(ValueError):
    """A classic GLUE file that cannot be read as the task's data; the message names the file, the line and what
    was expected."""


def check_classic_split(task: GlueTask, glue_dir: str, file: str) -> int:
    """Parse ``<glue_dir>/<task folder>/<file>`` as ``load_raw`` will and check every row before a study starts.

    Checks: the file exists and is not empty; its header (or, for header-less CoLA, each row) has the task's
    columns; every row has as many tab-separated fields as the header; every label is one of the task's labels
    (a name such as ``entailment``, a class id below ``num_labels``, or for STS-B a number).

    Returns:
        the number of examples (rows after the header).

    Raises:
        DataFileError: the first problem found, as ``<path> line <n>: <what was found>, expected <what>``.
    """
    spec = task.classic
    path = os.path.join(glue_dir, spec.folder, file)
    fix = "fix the file or point --glue-dir at an intact classic GLUE directory"
    if not os.path.isfile(path):
        raise DataFileError(f"{path} not found: {fix}")
    label_column = next(column for column, name in spec.columns.items() if name == "label")
    try:
        return _check_rows(task, path, label_column, fix)
    except UnicodeDecodeError as err:
        raise DataFileError(f"{path} is not UTF-8 text (byte {err.start} of a block is {err.object[err.start]:#04x}): "
                            f"convert it (iconv -t utf-8), or {fix}") from None


def _check_rows(task: GlueTask, path: str, label_column: str, fix: str) -> int:
    spec = task.classic
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = list(spec.names) if spec.names is not None else next(rows, None)
        if header is None:
            raise DataFileError(f"{path} is empty: expected a header row with {', '.join(spec.columns)}; {fix}")
        missing = [column for column in spec.columns if column not in header]
        if missing:
            raise DataFileError(f"{path} line 1: the header lacks column(s) {', '.join(missing)} (it has "
                                f"{', '.join(header) or 'none'}); {fix}")
        label_at = header.index(label_column)
        examples = 0
        for row in rows:
            line = rows.line_num
            if not row:  # a blank line: skipped by the loader too
                continue
            if len(row) != len(header):
                raise DataFileError(f"{path} line {line}: {len(row)} tab-separated fields, expected {len(header)} "
                                    f"({', '.join(header)}); {fix}")
            problem = _label_problem(task, row[label_at])
            if problem:
                raise DataFileError(f"{path} line {line}: {problem}; {fix}")
            examples += 1
    if examples == 0:
        raise DataFileError(f"{path} has no examples (a header and nothing else): {fix}")
    return examples


def _label_problem(task: GlueTask, value: str) -> str | None:
    """Why ``value`` is not a label of ``task`` (``None`` when it is one)."""
    if task.label_names is not None:
        if value not in task.label_names:
            return f"label {value!r}, expected one of {', '.join(task.label_names)}"
    elif task.is_regression:
        try:
            float(value)
        except ValueError:
            return f"label {value!r}, expected a number (a similarity score)"
    elif value not in {str(i) for i in range(task.num_labels)}:
        return f"label {value!r}, expected a class id in 0..{task.num_labels - 1}"
    return None


def _classic_split(task: GlueTask, glue_dir: str, file: str) -> datasets.Dataset:
    spec = task.classic
    path = os.path.join(glue_dir, spec.folder, file)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: point --glue-dir at a classic GLUE directory holding {spec.folder}/")
    # Quote characters are literal text in GLUE TSVs (quoting=3); "NA"/"null" are words, not missing values.
    options = dict(delimiter="\t", quoting=3, encoding="utf-8-sig", keep_default_na=False,
                   usecols=list(spec.columns))
    if spec.names is not None:
        options.update(column_names=list(spec.names), header=None)
    ds = datasets.load_dataset("csv", data_files={"split": path}, split="split", **options)
    ds = ds.rename_columns({k: v for k, v in spec.columns.items() if k != v})
    if task.label_names is not None:
        names = list(task.label_names)
        ds = ds.map(lambda b: {"label": [names.index(x) for x in b["label"]]}, batched=True)
    return ds


def load_raw(task: GlueTask, glue_dir: str | None) -> datasets.DatasetDict:
    """Load the train and dev splits of ``task`` with columns ``task.text_columns + ("label",)``.

    Labels are class ids (int) or, for STS-B, float scores in [0, 5].

    Raises:
        FileNotFoundError: ``glue_dir`` is given but lacks the task's files.
    """
    if glue_dir is None:
        hub = datasets.load_dataset(HUB_DATASET, task.hub_config)
        raw = datasets.DatasetDict(train=hub["train"], validation=hub[task.dev_split])
    else:
        raw = datasets.DatasetDict(
            train=_classic_split(task, glue_dir, task.classic.train_file),
            validation=_classic_split(task, glue_dir, task.classic.dev_file),
        )
    label_type = "float32" if task.is_regression else "int64"
    return raw.select_columns([*task.text_columns, "label"]).cast_column("label", datasets.Value(label_type))


def load_tokenized(task: GlueTask, tokenizer: PreTrainedTokenizerBase, settings: DataSettings,
                   seed: int = 0) -> datasets.DatasetDict:
    """Train and dev splits of ``task``, tokenised, unpadded, in torch format.

    Args:
        seed: picks the training subset when ``settings.max_train_examples`` is set.

    Returns:
        ``DatasetDict(train=..., validation=...)`` with columns among ``MODEL_INPUTS``.
    """
    raw = load_raw(task, settings.glue_dir)
    if settings.max_train_examples is not None and settings.max_train_examples < len(raw["train"]):
        raw["train"] = raw["train"].shuffle(seed=seed).select(range(settings.max_train_examples))
    if settings.max_dev_examples is not None and settings.max_dev_examples < len(raw["validation"]):
        raw["validation"] = raw["validation"].select(range(settings.max_dev_examples))

    def tokenize(batch):
        encoded = tokenizer(*[batch[c] for c in task.text_columns], truncation=True,
                            max_length=settings.max_seq_length)
        encoded["labels"] = batch["label"]
        return encoded

    tokenized = raw.map(tokenize, batched=True, remove_columns=raw["train"].column_names)
    keep = [c for c in MODEL_INPUTS if c in tokenized["train"].column_names]
    return tokenized.with_format("torch", columns=keep)


def collator(tokenizer: PreTrainedTokenizerBase) -> DataCollatorWithPadding:
    """Pads each batch to its longest example (dynamic padding)."""
    return DataCollatorWithPadding(tokenizer)


def batches(split: datasets.Dataset, collate, batch_size: int, device: torch.device | str = "cpu",
            shuffle_seed: int | None = None, workers: int = 0) -> DataLoader:
    """The batches of a tokenised split, as every fine-tune and evaluation of the project draws them.

    Args:
        split: a split of ``load_tokenized``.
        collate: ``collator(tokenizer)`` (pads each batch).
        batch_size: examples per batch.
        device: where the batches go: on a GPU they are collated into pinned memory, so the copy can overlap.
        shuffle_seed: shuffle with this seed (a new order every pass, the same sequence of orders for the same
            seed); ``None``: dev order.
        workers: worker processes that collate batches beside the training loop (``--data-workers``); kept alive
            between epochs. The order of examples is drawn in the main process, so the batches are the same
            with any number of workers.
    """
    # The order has its own generator, and so has the loader (it draws a seed for its worker processes at
    # every fresh iteration, but once only with persistent workers): the order and the global RNG (dropout)
    # are then the same with or without workers.
    sampler = (SequentialSampler(split) if shuffle_seed is None
               else RandomSampler(split, generator=torch.Generator().manual_seed(shuffle_seed)))
    return DataLoader(split, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                      generator=torch.Generator().manual_seed(shuffle_seed or 0),
                      pin_memory=torch.device(device).type == "cuda", num_workers=workers,
                      persistent_workers=workers > 0)
