"""Loading a BERT-family encoder and finding its prunable units.

The number of layers and heads per layer are read from the model's config, never assumed to be
BERT-base's (12 x 12); the FFN size is read from the module itself.
"""

from __future__ import annotations

import operator
import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, PretrainedConfig
from transformers.utils import logging as hf_logging

from trainables.tasks import GlueTask


@dataclass(frozen=True)
class EncoderLayout:
    """Where a model family keeps the modules the gates attach to.

    Attributes:
        layers: dotted path, from ``model.base_model``, to the ``ModuleList`` of transformer layers.
        head_projection: dotted path, inside a layer, to the linear map whose *input* is the
            concatenated head outputs ``(batch, seq, heads * head_dim)`` (BERT: ``attention.output.dense``).
        ffn_output: dotted path, inside a layer, to the FFN's second linear map, whose *output* is the
            FFN block's contribution before the residual connection (BERT: ``output.dense``).
        matrices: dotted paths, inside a layer, of the linear maps whose weights unstructured pruning may
            remove, in the order query, key, value, attention output, FFN in, FFN out (METHODS.md section 2).
        pooler: dotted path, from ``model.base_model``, of the pooler's linear map (``None``: no pooler).
        word_embeddings: dotted path, from ``model.base_model``, of the word-embedding table.
    """

    layers: str
    head_projection: str
    ffn_output: str
    matrices: tuple[str, ...]
    pooler: str | None
    word_embeddings: str


_BERT_LIKE = EncoderLayout("encoder.layer", "attention.output.dense", "output.dense",
                           ("attention.self.query", "attention.self.key", "attention.self.value",
                            "attention.output.dense", "intermediate.dense", "output.dense"),
                           "pooler.dense", "embeddings.word_embeddings")
_DISTILBERT = EncoderLayout("transformer.layer", "attention.out_lin", "ffn.lin2",
                            ("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin",
                             "ffn.lin1", "ffn.lin2"),
                            None, "embeddings.word_embeddings")

#: Model types (``config.model_type``) whose layout is known; anything else is refused up front.
LAYOUTS: dict[str, EncoderLayout] = {
    "bert": _BERT_LIKE, "roberta": _BERT_LIKE, "xlm-roberta": _BERT_LIKE, "electra": _BERT_LIKE,
    "camembert": _BERT_LIKE, "distilbert": _DISTILBERT,
}


class UnsupportedModelError(ValueError):
    """The checkpoint is not a BERT-family encoder this project can gate."""


def layout_for(config: PretrainedConfig) -> EncoderLayout:
    """The layout of ``config``'s model family.

    Raises:
        UnsupportedModelError: the model type is not one of ``LAYOUTS`` or is configured as a decoder.
    """
    if config.model_type not in LAYOUTS or getattr(config, "is_decoder", False):
        raise UnsupportedModelError(
            f"model type {config.model_type!r} is not a supported encoder: use a BERT-family encoder "
            f"({', '.join(LAYOUTS)})")
    return LAYOUTS[config.model_type]


#: Set to ``1`` by ``--trust-remote-code`` (``trust_remote_code``) and forwarded to Ray's workers: transformers may
#: then run a model folder's or hub repository's own Python (its config's ``auto_map``). Off by default, as in
#: transformers; every loader here passes the choice explicitly, so transformers never asks on a terminal.
REMOTE_CODE_ENV = "SUPERTICKETS_TRUST_REMOTE_CODE"


def trust_remote_code(trusted: bool) -> None:
    """Let (or forbid) the loaders of this process and of the Ray workers it starts run a model's own code."""
    os.environ[REMOTE_CODE_ENV] = "1" if trusted else "0"


def remote_code_trusted() -> bool:
    """Whether ``--trust-remote-code`` was given (``trust_remote_code``)."""
    return os.environ.get(REMOTE_CODE_ENV) == "1"


def own_code(model: str, config: PretrainedConfig | None = None) -> dict:
    """The classes a model maps to code of its own: the ``auto_map`` of a local folder's ``config.json`` and
    ``tokenizer_config.json`` (read as JSON, nothing imported), else of ``config`` (a hub model's); empty for a
    model transformers builds from its own library."""
    import json

    found: dict = {}
    if os.path.isdir(model):
        for name in ("config.json", "tokenizer_config.json"):
            try:
                with open(os.path.join(model, name), encoding="utf-8") as handle:
                    found.update(json.load(handle).get("auto_map") or {})
            except (OSError, ValueError, AttributeError):
                pass  # a missing or unreadable file is reported by the model checks
    elif config is not None:
        found.update(getattr(config, "auto_map", None) or {})
    return found


def own_modules(model: str, config: PretrainedConfig | None = None) -> set[str]:
    """The Python modules a model's ``auto_map`` names (``own_code``): ``{"modeling_x"}``; an entry may be a
    ``[slow, fast]`` pair (tokenizers) or ``"repo--module.Class"`` (code in another hub repository)."""
    names = set()
    for value in own_code(model, config).values():
        for entry in value if isinstance(value, (list, tuple)) else [value]:
            if entry:
                names.add(str(entry).rsplit(".", 1)[0])
    return names


def check_remote_code(model: str, config: PretrainedConfig | None = None) -> None:
    """Refuse a model that ships code of its own unless ``--trust-remote-code`` was given. Without the flag its
    code would not run (transformers would build the library's class of its ``model_type`` instead), so the model
    studied would silently not be the one its authors wrote.

    Raises:
        UnsupportedModelError: an ``auto_map`` (``own_modules``) and remote code not trusted.
    """
    modules = sorted(own_modules(model, config))
    if modules and not remote_code_trusted():
        raise UnsupportedModelError(f"model {model} ships code of its own (auto_map -> {', '.join(modules)}), which "
                                    "supertickets does not run unless you pass --trust-remote-code: pass it only for "
                                    "a model you trust, or use one transformers builds itself")


def load_config(model_name_or_path: str) -> PretrainedConfig:
    """The Hugging Face config of a hub id or local directory (raises ``OSError`` when unreachable)."""
    return AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=remote_code_trusted())


def load_tokenizer(model_name_or_path: str):
    """The model's tokenizer (its own code only with ``--trust-remote-code``)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_name_or_path, trust_remote_code=remote_code_trusted())


#: The weight files ``from_pretrained`` looks for in a local directory, in its order of preference.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def check_local_model(path: str) -> None:
    """Check that the local Hugging Face directory ``path`` has loadable weights and a tokenizer, cheaply: a
    safetensors file's header is read and its data length checked against the file (a truncated copy fails
    here, not in the first trial); the tokenizer is loaded.

    Raises:
        UnsupportedModelError: no weight file, a corrupt or truncated one, or no loadable tokenizer; the
            message names the file or what is missing.
    """
    from safetensors import SafetensorError, safe_open

    found = [name for name in WEIGHT_FILES if os.path.isfile(os.path.join(path, name))]
    if not found:
        raise UnsupportedModelError(f"model {path} has a config.json but no weights ({' or '.join(WEIGHT_FILES)}): "
                                    "copy the whole Hugging Face model directory, or pass --model with another")
    if found[0] == "model.safetensors":
        weights = os.path.join(path, found[0])
        try:
            with safe_open(weights, "pt") as handle:
                handle.keys()
        except (SafetensorError, OSError) as err:
            raise UnsupportedModelError(f"model weights {weights} are unreadable ({str(err).splitlines()[0]}): "
                                        "copy the file again, or pass --model with an intact model") from None
    fix = "copy the tokenizer files (tokenizer.json or vocab.txt, tokenizer_config.json) beside the weights"
    try:
        with quiet_loading():
            tokens = len(load_tokenizer(path))
    except (OSError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnsupportedModelError(f"model {path} has no loadable tokenizer ({first[:200]}): {fix}") from None
    vocabulary = getattr(load_config(path), "vocab_size", 0) or 0
    if tokens < vocabulary // 2:  # transformers builds an empty tokenizer when the vocabulary files are missing
        raise UnsupportedModelError(f"model {path}'s tokenizer has {tokens} tokens for a vocabulary of {vocabulary} "
                                    f"(its vocabulary files are missing): {fix}")


def load_model(model_name_or_path: str, task: GlueTask, seed: int) -> nn.Module:
    """The pre-trained encoder with a new classification (or regression) head.

    The head's initial weights are drawn from ``seed``, so the same seed always gives the same starting
    point: this is the ``pretrained`` rewinding point of a trial with that seed.
    """
    torch.manual_seed(seed)
    kwargs = {"num_labels": task.num_labels}
    if task.is_regression:
        kwargs["problem_type"] = "regression"
    # The load report would flag the new classifier as MISSING on every trial: expected, so not shown.
    with quiet_loading():
        return AutoModelForSequenceClassification.from_pretrained(model_name_or_path, **kwargs,
                                                                  trust_remote_code=remote_code_trusted())


@contextmanager
def quiet_loading():
    """Silence Hugging Face's load report and its per-load progress bar (trials load models many times)."""
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


@dataclass(frozen=True)
class EncoderShape:
    """Counts of prunable structured units: ``num_layers`` x ``num_heads`` heads, one FFN block per layer."""

    num_layers: int
    num_heads: int

    @property
    def total_heads(self) -> int:
        """``num_layers * num_heads``."""
        return self.num_layers * self.num_heads


def encoder_shape(config: PretrainedConfig) -> EncoderShape:
    """Layers and heads per layer, from the config (``num_hidden_layers``, ``num_attention_heads``)."""
    return EncoderShape(config.num_hidden_layers, config.num_attention_heads)


def encoder_layers(model: nn.Module) -> tuple[EncoderLayout, list[nn.Module]]:
    """The layout of ``model`` and its transformer layers, in order (layer 0 nearest the embeddings)."""
    layout = layout_for(model.config)
    layers = operator.attrgetter(layout.layers)(model.base_model)
    return layout, list(layers)


def submodule(layer: nn.Module, path: str) -> nn.Module:
    """``layer``'s submodule at the dotted ``path``."""
    return operator.attrgetter(path)(layer)
