"""The GLUE task table: what each task reads, predicts and is scored by.

A task is data, not a branch in the code (as in Hugging Face's ``run_glue.py``). Each entry says where
the task lives in the classic ``GLUE_DIR`` layout (``download_glue_data.py``) and on the hub
(``nyu-mll/glue``), which columns hold the text and the label, and which metric is the *primary dev
score* that a study maximises.

Primary dev scores (chosen to match the figures Prasanna et al. 2020 report, METHODS.md section 3):
RTE, SST-2, QNLI, MNLI, QQP: accuracy; MRPC: accuracy (F1 is logged beside it); CoLA: Matthews
correlation; STS-B: Pearson correlation (Spearman is logged beside it). All are fractions, not percent.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClassicFiles:
    """Where and how a task is stored in the classic GLUE directory.

    ``columns`` maps a column of the TSV file to the name the hub uses for it; only those columns are
    read. ``names`` gives the column names of a file without a header row (CoLA).
    """

    folder: str
    train_file: str
    dev_file: str
    columns: dict[str, str]
    names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task.

    Attributes:
        name: lower-case task name used on the command line (``rte``).
        hub_config: configuration name in the hub dataset ``nyu-mll/glue``.
        text_columns: one or two text columns fed to the tokenizer as a (pair of) sequence(s).
        num_labels: number of classes; 1 means regression (STS-B, scores 0-5).
        label_names: string labels of the classic files in the order of the hub's integer labels,
            or ``None`` when the classic files already hold integers (or floats).
        metrics: metric names computed on the dev set (see ``trainables.metrics``).
        primary_metric: the metric maximised by the search and reported as "dev score".
        dev_split: the hub's name of the dev split.
        classic: the task's layout in a classic GLUE directory.
    """

    name: str
    hub_config: str
    text_columns: tuple[str, ...]
    num_labels: int
    label_names: tuple[str, ...] | None
    metrics: tuple[str, ...]
    primary_metric: str
    classic: ClassicFiles
    dev_split: str = "validation"

    @property
    def class_names(self) -> tuple[str, ...]:
        """The output names an exported model's config carries (``id2label``), in the hub's label order: the
        classic files' labels where they are words, the hub's ``ClassLabel`` names otherwise, and one name for
        STS-B's single regression output (a similarity score, 0-5)."""
        return self.label_names or _CLASS_NAMES[self.name]

    @property
    def is_regression(self) -> bool:
        """True for STS-B: one output, mean-squared-error loss, correlation metrics."""
        return self.num_labels == 1


#: The hub dataset the tasks come from when no classic GLUE directory is given.
HUB_DATASET = "nyu-mll/glue"
_ENTAILMENT = ("entailment", "not_entailment")
#: Class names of the tasks whose classic files hold integers (``nyu-mll/glue``'s ``ClassLabel`` names).
_CLASS_NAMES = {"mrpc": ("not_equivalent", "equivalent"), "cola": ("unacceptable", "acceptable"),
                "stsb": ("similarity",), "sst2": ("negative", "positive"), "qqp": ("not_duplicate", "duplicate")}

TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask(
            name="rte", hub_config="rte", text_columns=("sentence1", "sentence2"), num_labels=2,
            label_names=_ENTAILMENT, metrics=("accuracy",), primary_metric="accuracy",
            classic=ClassicFiles("RTE", "train.tsv", "dev.tsv",
                                 {"sentence1": "sentence1", "sentence2": "sentence2", "label": "label"}),
        ),
        GlueTask(
            name="mrpc", hub_config="mrpc", text_columns=("sentence1", "sentence2"), num_labels=2,
            label_names=None, metrics=("accuracy", "f1"), primary_metric="accuracy",
            classic=ClassicFiles("MRPC", "train.tsv", "dev.tsv",
                                 {"#1 String": "sentence1", "#2 String": "sentence2", "Quality": "label"}),
        ),
        GlueTask(
            name="cola", hub_config="cola", text_columns=("sentence",), num_labels=2,
            label_names=None, metrics=("mcc", "accuracy"), primary_metric="mcc",
            classic=ClassicFiles("CoLA", "train.tsv", "dev.tsv", {"sentence": "sentence", "label": "label"},
                                 names=("source", "label", "original_label", "sentence")),
        ),
        GlueTask(
            name="stsb", hub_config="stsb", text_columns=("sentence1", "sentence2"), num_labels=1,
            label_names=None, metrics=("pearson", "spearman"), primary_metric="pearson",
            classic=ClassicFiles("STS-B", "train.tsv", "dev.tsv",
                                 {"sentence1": "sentence1", "sentence2": "sentence2", "score": "label"}),
        ),
        GlueTask(
            name="sst2", hub_config="sst2", text_columns=("sentence",), num_labels=2,
            label_names=None, metrics=("accuracy",), primary_metric="accuracy",
            classic=ClassicFiles("SST-2", "train.tsv", "dev.tsv", {"sentence": "sentence", "label": "label"}),
        ),
        GlueTask(
            name="qnli", hub_config="qnli", text_columns=("question", "sentence"), num_labels=2,
            label_names=_ENTAILMENT, metrics=("accuracy",), primary_metric="accuracy",
            classic=ClassicFiles("QNLI", "train.tsv", "dev.tsv",
                                 {"question": "question", "sentence": "sentence", "label": "label"}),
        ),
        GlueTask(
            name="mnli", hub_config="mnli", text_columns=("premise", "hypothesis"), num_labels=3,
            label_names=("entailment", "neutral", "contradiction"), metrics=("accuracy",),
            primary_metric="accuracy", dev_split="validation_matched",
            classic=ClassicFiles("MNLI", "train.tsv", "dev_matched.tsv",
                                 {"sentence1": "premise", "sentence2": "hypothesis", "gold_label": "label"}),
        ),
        GlueTask(
            name="qqp", hub_config="qqp", text_columns=("question1", "question2"), num_labels=2,
            label_names=None, metrics=("accuracy", "f1"), primary_metric="accuracy",
            classic=ClassicFiles("QQP", "train.tsv", "dev.tsv",
                                 {"question1": "question1", "question2": "question2", "is_duplicate": "label"}),
        ),
    )
}

# Spellings users type that name the same task.
_ALIASES = {"sts-b": "stsb", "sst-2": "sst2"}


def get_task(name: str) -> GlueTask:
    """Return the task called ``name`` (case-insensitive; ``sts-b`` and ``sst-2`` accepted).

    Raises:
        KeyError: the name is not a GLUE task this project knows; the message lists the known ones.
    """
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in TASKS:
        raise KeyError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}")
    return TASKS[key]
