"""Shared fixtures: the shared pre-trained model and GLUE data (read from ../shared, never copied)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from search.study.local_ray import keep_ray_on_loopback  # noqa: E402

keep_ray_on_loopback()  # the tests' own Ray instances too, before anything imports ray

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODEL = SHARED / "models" / "all-MiniLM-L6-v2"
GLUE = SHARED / "data" / "glue"
WIKITEXT = SHARED / "data" / "wikitext-2"


@pytest.fixture(scope="session")
def model_dir() -> str:
    if not MODEL.is_dir():
        pytest.fail(f"{MODEL} missing: the tests need ../shared beside the checkout")
    return str(MODEL)


@pytest.fixture(scope="session")
def glue_dir() -> str:
    return str(GLUE)


@pytest.fixture(scope="session")
def wikitext_dir() -> Path:
    return WIKITEXT


@pytest.fixture(scope="session")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="session")
def rte_batch(tokenizer, glue_dir):
    """8 real RTE training pairs, padded, with labels."""
    from trainables.data import DataSettings, collator, load_tokenized
    from trainables.tasks import get_task

    data = load_tokenized(get_task("rte"), tokenizer, DataSettings(glue_dir, 64, 8, 8))
    return collator(tokenizer)([data["train"][i] for i in range(8)])


@pytest.fixture(scope="session")
def tiny_spec(model_dir, glue_dir):
    """A dense fine-tune that takes seconds: 32 RTE pairs, 32 tokens, one epoch of 2 steps."""
    from trainables.cache import DenseSpec
    from trainables.data import DataSettings
    from trainables.finetune import FinetuneSettings

    return DenseSpec(model=model_dir, task="rte", seed=0,
                     finetune=FinetuneSettings(learning_rate=1e-4, epochs=1, batch_size=16, optimizer="adamw"),
                     data=DataSettings(glue_dir, max_seq_length=32, max_train_examples=32, max_dev_examples=32))


@pytest.fixture(autouse=True)
def _remote_code_off(monkeypatch):
    """Every test starts without --trust-remote-code, whatever an earlier test's study set (the variable is what
    a study forwards to its Ray workers: trainables.model.REMOTE_CODE_ENV)."""
    from trainables.model import REMOTE_CODE_ENV

    monkeypatch.setenv(REMOTE_CODE_ENV, "0")
