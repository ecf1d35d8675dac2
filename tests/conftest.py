"""Shared fixtures: the shared pre-trained model and GLUE data (read from ../shared, never copied)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODEL = SHARED / "models" / "all-MiniLM-L6-v2"
GLUE = SHARED / "data" / "glue"


@pytest.fixture(scope="session")
def model_dir() -> str:
    if not MODEL.is_dir():
        pytest.fail(f"{MODEL} missing: the tests need ../shared beside the checkout")
    return str(MODEL)


@pytest.fixture(scope="session")
def glue_dir() -> str:
    return str(GLUE)


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
