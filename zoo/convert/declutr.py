"""DeCLUTR checkpoints (``JohnGiorgi/DeCLUTR``) -> :class:`zoo.models.text.SentenceEncoder` state dicts.

Two layouts hold the same transformer:

* ``declutr-hf`` — the Hub models (``johngiorgi/declutr-small``, ``-base``, ``-sci-base``): the
  ``save_pretrained`` of the MLM model, ``RobertaForMaskedLM`` (``roberta.*``, ``lm_head.*``) or
  ``BertForMaskedLM`` (``bert.*``, ``cls.*``), file ``pytorch_model.bin`` / ``model.safetensors``;
* ``declutr-allennlp`` — ``weights.th`` of the AllenNLP archives (``declutr-{small,base}.tar.gz``): the same
  keys under ``_text_field_embedder.token_embedder_tokens.transformer_model.``.

The encoder's keys become ``transformer.*``. The MLM head (``lm_head.*``, ``cls.*``), a pooler (never used
by mean pooling) and the ``position_ids`` / ``token_type_ids`` buffers of older ``transformers`` releases
are dropped; any other key is an error.
"""

from __future__ import annotations

import torch

from zoo.convert import register_converter
from zoo.serialization import unwrap_state_dict

__all__ = ["ALLENNLP_PREFIX", "convert_declutr_allennlp", "convert_declutr_hf"]

ALLENNLP_PREFIX = "_text_field_embedder.token_embedder_tokens.transformer_model."
_ENCODERS = ("roberta.", "bert.")
_DROPPED_HEADS = ("lm_head.", "cls.")
_DROPPED_PARTS = (".pooler.", "embeddings.position_ids", "embeddings.token_type_ids")


def _convert(state: dict[str, torch.Tensor], prefix: str, fmt: str) -> dict[str, torch.Tensor]:
    out, unmapped = {}, []
    for key, value in state.items():
        if not key.startswith(prefix):
            unmapped.append(key)
            continue
        key = key[len(prefix) :]
        encoder = next((p for p in _ENCODERS if key.startswith(p)), None)
        if key.startswith(_DROPPED_HEADS) or any(part in f".{key}" for part in _DROPPED_PARTS):
            continue
        if encoder is None:
            unmapped.append(prefix + key)
            continue
        out["transformer." + key[len(encoder) :]] = value
    if unmapped or not out:
        shown = ", ".join(unmapped[:10]) + (" ..." if len(unmapped) > 10 else "")
        raise KeyError(
            f"{fmt}: {len(unmapped)} keys of no RoBERTa/BERT encoder: {shown or 'no encoder keys'}"
        )
    return out


@register_converter("declutr-hf")
def convert_declutr_hf(raw: dict) -> dict[str, torch.Tensor]:
    """A ``*ForMaskedLM`` state dict (the Hub models) -> the sentence encoder's."""
    return _convert(unwrap_state_dict(raw, source="declutr-hf checkpoint"), "", "declutr-hf")


@register_converter("declutr-allennlp")
def convert_declutr_allennlp(raw: dict) -> dict[str, torch.Tensor]:
    """``weights.th`` of an AllenNLP DeCLUTR archive -> the sentence encoder's."""
    return _convert(
        unwrap_state_dict(raw, source="declutr-allennlp checkpoint"), ALLENNLP_PREFIX, "declutr-allennlp"
    )
