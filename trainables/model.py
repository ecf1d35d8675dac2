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
    """Where a model family keeps the modules the gates attach to and the physical removal slices: the one place
    families differ (``LAYOUTS``). Every path is dotted; ``layers`` and the embeddings are read from
    ``model.base_model``, the rest inside one transformer layer.

    Attributes:
        layers: the ``ModuleList`` of transformer layers.
        attention_inputs: the linear maps whose output rows are the heads' (query, key, value; or one fused QKV map),
            each with ``qkv_blocks`` stacked blocks of ``heads * head_dim`` rows.
        head_projection: the attention output map, whose *input* is the concatenated head outputs
            ``(batch, seq, heads * head_dim)``.
        ffn_input: the FFN's first map, ``ffn_input_blocks`` stacked blocks of FFN units (2: a gated GLU, ModernBERT).
        ffn_output: the FFN's second map, whose *output* is the FFN block's contribution before the residual.
        pooler: the pooler's linear map inside the base model (``None``: none there).
        word_embeddings: the word-embedding table.
        ffn_size: the config attribute holding the FFN width (DistilBERT: ``hidden_dim``).
        head_size: the config attribute holding the head size when it is not ``hidden / heads`` (``None``: it is).
        head_counts: ``(module, attribute)`` pairs inside a layer that hold the layer's number of heads; the removal
            sets them to the kept count.
        head_widths: ``(module, attribute)`` pairs holding ``heads * head_dim``; set likewise.
        optional_attention_inputs: more head-row maps a config may add (DeBERTa's separate position projections).
        head_bias: ``(module, argument)`` when the attention module receives a per-head bias
            ``(batch, heads, query, key)`` from outside the layer as its positional argument ``argument`` (MPNet's
            relative position bias, shared by all layers); the removal keeps the kept heads' slices of it.
    """

    layers: str
    attention_inputs: tuple[str, ...]
    head_projection: str
    ffn_input: str
    ffn_output: str
    pooler: str | None
    word_embeddings: str
    qkv_blocks: int = 1
    ffn_input_blocks: int = 1
    ffn_size: str = "intermediate_size"
    head_size: str | None = None
    head_counts: tuple[tuple[str, str], ...] = ()
    head_widths: tuple[tuple[str, str], ...] = ()
    optional_attention_inputs: tuple[str, ...] = ()
    head_bias: tuple[str, int] | None = None

    @property
    def matrices(self) -> tuple[str, ...]:
        """The linear maps unstructured pruning may thin, in the order query, key, value (or the fused QKV map),
        attention output, FFN in, FFN out (METHODS.md section 2)."""
        return (*self.attention_inputs, self.head_projection, self.ffn_input, self.ffn_output)

    def to_dict(self) -> dict:
        """JSON-ready form, written into an export's ``config.json`` so its loader needs no supertickets import."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


_BERT_SELF = "attention.self"
_BERT_LIKE = EncoderLayout(
    "encoder.layer", (f"{_BERT_SELF}.query", f"{_BERT_SELF}.key", f"{_BERT_SELF}.value"), "attention.output.dense",
    "intermediate.dense", "output.dense", "pooler.dense", "embeddings.word_embeddings",
    head_counts=((_BERT_SELF, "num_attention_heads"),), head_widths=((_BERT_SELF, "all_head_size"),))
_DISTILBERT = EncoderLayout(
    "transformer.layer", ("attention.q_lin", "attention.k_lin", "attention.v_lin"), "attention.out_lin",
    "ffn.lin1", "ffn.lin2", None, "embeddings.word_embeddings", ffn_size="hidden_dim",
    head_counts=(("attention", "n_heads"),))
_DEBERTA_V2 = EncoderLayout(
    "encoder.layer", (f"{_BERT_SELF}.query_proj", f"{_BERT_SELF}.key_proj", f"{_BERT_SELF}.value_proj"),
    "attention.output.dense", "intermediate.dense", "output.dense", None, "embeddings.word_embeddings",
    head_size="attention_head_size", head_counts=((_BERT_SELF, "num_attention_heads"),),
    head_widths=((_BERT_SELF, "all_head_size"),),
    optional_attention_inputs=(f"{_BERT_SELF}.pos_key_proj", f"{_BERT_SELF}.pos_query_proj"))
_MPNET = EncoderLayout(
    "encoder.layer", ("attention.attn.q", "attention.attn.k", "attention.attn.v"), "attention.attn.o",
    "intermediate.dense", "output.dense", None, "embeddings.word_embeddings",
    head_counts=(("attention.attn", "num_attention_heads"),), head_widths=(("attention.attn", "all_head_size"),),
    head_bias=("attention.attn", 2))
_MODERNBERT = EncoderLayout(
    "layers", ("attn.Wqkv",), "attn.Wo", "mlp.Wi", "mlp.Wo", None, "embeddings.tok_embeddings",
    qkv_blocks=3, ffn_input_blocks=2)

#: Model types (``config.model_type``) whose layout is known; anything else is refused up front (``REFUSED`` says
#: why for the families refused on purpose).
LAYOUTS: dict[str, EncoderLayout] = {
    "bert": _BERT_LIKE, "roberta": _BERT_LIKE, "xlm-roberta": _BERT_LIKE, "electra": _BERT_LIKE,
    "camembert": _BERT_LIKE, "distilbert": _DISTILBERT, "deberta-v2": _DEBERTA_V2, "mpnet": _MPNET,
    "modernbert": _MODERNBERT,
}

#: Encoder families refused on purpose, with the reason.
REFUSED: dict[str, str] = {
    "albert": ("ALBERT shares one layer's weights across all its layers, so a head, FFN block or weight cannot be "
               "pruned in one layer and kept in another: a mask shared across layers would make every ticket prune "
               "the same units at every depth, which is not the per-layer ticket of the papers (METHODS.md) and "
               "would rank units by importance summed over depths the papers never tested; use BERT, RoBERTa, "
               "DeBERTa-v2/v3 or another supported encoder"),
}


class UnsupportedModelError(ValueError):
    """The checkpoint is not a BERT-family encoder this project can gate."""


def layout_for(config: PretrainedConfig) -> EncoderLayout:
    """The layout of ``config``'s model family.

    Raises:
        UnsupportedModelError: the model type is not one of ``LAYOUTS`` (``REFUSED`` says why for some) or is
            configured as a decoder.
    """
    if config.model_type in REFUSED:
        raise UnsupportedModelError(f"model type {config.model_type!r} is not supported: {REFUSED[config.model_type]}")
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
    """Counts and sizes of the prunable structured units: ``num_layers`` x ``num_heads`` heads of ``head_dim`` each,
    one FFN block of ``ffn_size`` units per layer, on a residual stream of ``hidden`` features."""

    num_layers: int
    num_heads: int
    hidden: int = 0
    head_dim: int = 0
    ffn_size: int = 0
    ffn_input_blocks: int = 1

    @property
    def total_heads(self) -> int:
        """``num_layers * num_heads``."""
        return self.num_layers * self.num_heads

    @property
    def head_weights(self) -> int:
        """Weights one head owns: its rows of Q, K and V and its columns of the attention output
        (``4 * head_dim * hidden``, fused QKV maps included)."""
        return 4 * self.head_dim * self.hidden

    @property
    def ffn_weights(self) -> int:
        """Weights one FFN block owns: both (or, gated, all three) FFN matrices."""
        return (self.ffn_input_blocks + 1) * self.hidden * self.ffn_size

    @property
    def layer_weights(self) -> int:
        """Weights of one layer's prunable matrices: every head's and the FFN block's."""
        return self.num_heads * self.head_weights + self.ffn_weights


def encoder_shape(config: PretrainedConfig) -> EncoderShape:
    """Layers, heads per layer and unit sizes, from the config (``num_hidden_layers``, ``num_attention_heads``,
    ``hidden_size`` and the layout's FFN-width and head-size attributes).

    Raises:
        UnsupportedModelError: the model type has no layout (``layout_for``).
    """
    layout = layout_for(config)
    hidden, heads = config.hidden_size, config.num_attention_heads
    head_dim = (getattr(config, layout.head_size, None) if layout.head_size else None) or hidden // heads
    return EncoderShape(config.num_hidden_layers, heads, hidden, head_dim, getattr(config, layout.ffn_size),
                        layout.ffn_input_blocks)


def encoder_layers(model: nn.Module) -> tuple[EncoderLayout, list[nn.Module]]:
    """The layout of ``model`` and its transformer layers, in order (layer 0 nearest the embeddings)."""
    layout = layout_for(model.config)
    layers = operator.attrgetter(layout.layers)(model.base_model)
    return layout, list(layers)


def submodule(layer: nn.Module, path: str) -> nn.Module:
    """``layer``'s submodule at the dotted ``path``."""
    return operator.attrgetter(path)(layer)
