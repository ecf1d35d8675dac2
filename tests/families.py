"""Tiny randomly initialised encoders of every family the layout table supports, built offline: the config from
transformers (2 layers, 4 heads of width 8, FFN 64, 160 positions), a WordPiece tokenizer trained with the
``tokenizers`` library on the first lines of the shared wikitext-2, and random weights, saved as a Hugging Face
folder a study loads with ``--model``.

The tokenizer is one ``PreTrainedTokenizerFast`` shape for all: ``[CLS] a [SEP] b [SEP]``, with token type ids
only for the families whose embeddings use them (BERT and ELECTRA; RoBERTa's single type and DistilBERT's,
MPNet's and ModernBERT's missing ones would be broken by them), as their own tokenizers do.
"""

from __future__ import annotations

from pathlib import Path

#: model_type -> (config class name, extra config fields, tokenizer returns token_type_ids)
FAMILIES: dict[str, tuple[str, dict, bool]] = {
    "bert": ("BertConfig", {}, True),
    "roberta": ("RobertaConfig", {"type_vocab_size": 1}, False),
    "xlm-roberta": ("XLMRobertaConfig", {"type_vocab_size": 1}, False),
    "camembert": ("CamembertConfig", {"type_vocab_size": 1}, False),
    "electra": ("ElectraConfig", {"embedding_size": 32}, True),
    "distilbert": ("DistilBertConfig", {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64}, False),
    "deberta-v2": ("DebertaV2Config", {"relative_attention": True, "position_buckets": 16, "max_relative_positions": 32,
                                       "pos_att_type": ["p2c", "c2p"], "position_biased_input": False,
                                       "type_vocab_size": 0, "share_att_key": True}, False),
    "mpnet": ("MPNetConfig", {}, False),
    "modernbert": ("ModernBertConfig", {"global_attn_every_n_layers": 1, "local_attention": 16,
                                        "attn_implementation": "eager"}, False),
}

_SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
          "max_position_embeddings": 160}
_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_tokenizer(wikitext: Path, vocab_size: int = 600):
    """A WordPiece tokenizer trained on the first 2,000 lines of ``wikitext/valid.txt`` (lower-cased).

    Returns:
        a ``tokenizers.Tokenizer`` whose ids 0-4 are ``[PAD] [UNK] [CLS] [SEP] [MASK]``.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    lines = (wikitext / "valid.txt").read_text(encoding="utf-8").splitlines()[:2000]
    tokenizer.train_from_iterator(lines, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=_SPECIALS))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[(t, i) for i, t in enumerate(
            _SPECIALS) if t in ("[CLS]", "[SEP]")])
    return tokenizer


def build_family(model_type: str, folder: Path, wikitext: Path, seed: int = 0) -> Path:
    """Write a tiny random ``model_type`` encoder (masked-LM head included, so TAMT can use it) to ``folder``.

    Returns:
        ``folder``, ready for ``--model``.
    """
    import torch
    import transformers
    from transformers import AutoModelForMaskedLM, PreTrainedTokenizerFast

    class_name, extra, token_types = FAMILIES[model_type]
    raw = train_tokenizer(wikitext)
    fields = {**_SIZES, **extra, "vocab_size": raw.get_vocab_size(), "pad_token_id": 0}
    if model_type == "distilbert":
        fields = {k: v for k, v in fields.items() if k not in _SIZES or k == "max_position_embeddings"}
    if model_type == "modernbert":
        fields.update(cls_token_id=2, sep_token_id=3, bos_token_id=2, eos_token_id=3)
    attn = fields.pop("attn_implementation", None)
    config = getattr(transformers, class_name)(**fields)
    torch.manual_seed(seed)
    model = AutoModelForMaskedLM.from_config(config, **({"attn_implementation": attn} if attn else {}))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    names = ["input_ids", "token_type_ids", "attention_mask"] if token_types else ["input_ids", "attention_mask"]
    PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]", model_input_names=names,
                            model_max_length=128).save_pretrained(folder)
    return folder
