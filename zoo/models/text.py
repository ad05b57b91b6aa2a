"""Text encoder: any Hugging Face ``transformers`` encoder, pooled over its attention mask.

The encoder is ``AutoModel.from_pretrained`` of a local folder or a Hub id, or ``AutoModel.from_config``
of a config (a ``PretrainedConfig`` or a dict with ``model_type``: random weights, nothing downloaded).
Token states (B, L, H) are pooled into one vector per text: ``"mean"`` over the real tokens,
``"cls"`` the first token, or ``"max"`` over the real tokens. ``transformers`` is the optional extra
``zoo[text]``; it is imported when an encoder is built.

:class:`SentenceEncoder` is a mean-pooled encoder that carries its ``transformers`` tokenizer, so
``encode(list_of_str)`` gives sentence embeddings (DeCLUTR's README recipe); :class:`MaskedLMHead` is the
BERT/RoBERTa masked-language-model head over an encoder's token states, its decoder tied to the word
embeddings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

from zoo.errors import UsageError
from zoo.models.base import Backbone
from zoo.registry import register_model

__all__ = ["MaskedLMHead", "MissingExtraError", "SentenceEncoder", "TextEncoder", "masked_pool"]

Pooling = Literal["mean", "cls", "max"]
POOLINGS = ("mean", "cls", "max")


class MissingExtraError(UsageError, ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as err:
        raise MissingExtraError(
            "text encoders need the `transformers` package: pip install 'zoo[text]'"
        ) from err
    return transformers


def masked_pool(tokens: torch.Tensor, attention_mask: torch.Tensor | None, pooling: Pooling) -> torch.Tensor:
    """Pool token states (B, L, H) into (B, H) over the tokens where ``attention_mask`` (B, L) is 1."""
    if pooling == "cls":
        return tokens[:, 0]
    if attention_mask is None:
        return tokens.mean(dim=1) if pooling == "mean" else tokens.amax(dim=1)
    mask = attention_mask.to(torch.bool).unsqueeze(-1)  # (B, L, 1)
    if pooling == "max":
        return tokens.masked_fill(~mask, torch.finfo(tokens.dtype).min).amax(dim=1)
    counts = mask.sum(dim=1).clamp(min=1)  # (B, 1)
    return (tokens * mask).sum(dim=1) / counts


class TextEncoder(Backbone):
    """A ``transformers`` encoder with mask-aware pooling and an optional classifier.

    ``forward_features(input_ids, attention_mask)`` returns the pooled (B, H) text embedding (the
    pooling needs the mask, so it happens there); :meth:`token_features` gives the token states.
    Both also accept the tokenizer's output (a mapping with ``input_ids`` and ``attention_mask``).

    Args:
        model_name_or_path: a local folder or a Hub id for ``AutoModel.from_pretrained``.
        config: a ``PretrainedConfig``, or a dict with ``model_type`` and its fields (random weights).
        pooling: "mean", "cls" or "max".
        num_classes: classifier outputs; 0 for none (the embedding comes out).
        drop_rate: dropout before the classifier.
        local_files_only: never reach the network (``from_pretrained``'s flag).
    """

    modality = "text"

    def __init__(
        self,
        model_name_or_path: str | None = None,
        config: Any = None,
        pooling: Pooling = "mean",
        num_classes: int = 0,
        drop_rate: float = 0.0,
        local_files_only: bool = False,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise UsageError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if (model_name_or_path is None) == (config is None):
            raise UsageError("a text encoder needs exactly one of `model_name_or_path` and `config`")
        transformers = _transformers()
        if model_name_or_path is not None:
            self.transformer = transformers.AutoModel.from_pretrained(
                model_name_or_path, local_files_only=local_files_only
            )
        else:
            if isinstance(config, Mapping):
                fields = dict(config)
                if "model_type" not in fields:
                    raise UsageError("a text encoder `config` dict needs a `model_type` (e.g. 'bert')")
                config = transformers.AutoConfig.for_model(fields.pop("model_type"), **fields)
            self.transformer = transformers.AutoModel.from_config(config)
        self.pooling = pooling
        self.num_features = self.transformer.config.hidden_size
        self.drop = nn.Dropout(drop_rate)
        self.num_classes = num_classes
        self.fc: nn.Module = self.make_classifier(num_classes)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        super().set_grad_checkpointing(enable)
        # transformers >= 5 names it "activation checkpointing"; older releases "gradient checkpointing"
        prefix = "activation" if hasattr(self.transformer, "activation_checkpointing_enable") else "gradient"
        if enable:
            getattr(self.transformer, f"{prefix}_checkpointing_enable")({"use_reentrant": False})
        else:
            getattr(self.transformer, f"{prefix}_checkpointing_disable")()

    def token_features(
        self, input_ids: torch.Tensor | Mapping, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Token states (B, L, H) of token ids (B, L)."""
        if isinstance(input_ids, Mapping):
            input_ids, attention_mask = input_ids["input_ids"], input_ids.get("attention_mask")
        return self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def forward_features(
        self, input_ids: torch.Tensor | Mapping, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The pooled text embedding (B, H)."""
        if isinstance(input_ids, Mapping):
            input_ids, attention_mask = input_ids["input_ids"], input_ids.get("attention_mask")
        tokens = self.token_features(input_ids, attention_mask)  # (B, L, H)
        return masked_pool(tokens, attention_mask, self.pooling)

    def forward(
        self, input_ids: torch.Tensor | Mapping, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.forward_head(self.forward_features(input_ids, attention_mask))


@register_model
def text_encoder(**kwargs) -> TextEncoder:
    """Any ``transformers`` encoder by name, folder or config; without either, a BERT-base config
    (110M params, random weights)."""
    if "model_name_or_path" not in kwargs and "config" not in kwargs:
        kwargs["config"] = {"model_type": "bert"}
    return TextEncoder(**kwargs)


class SentenceEncoder(TextEncoder):
    """A mean-pooled text encoder with its tokenizer: ``encode(["a text", ...])`` -> embeddings (N, H).

    The embedding is the mean of the last layer's token states over every non-padding token, special tokens
    included (DeCLUTR's ``BagOfEmbeddingsEncoder(averaged=True)`` and its README recipe). The transformer's
    pooler is never used, so it is not built (its weights are not part of the state dict).

    Args:
        model_name_or_path: a local folder or a Hub id for ``AutoModel.from_pretrained``.
        config: a ``PretrainedConfig``, or a dict with ``model_type`` and its fields (random weights).
        tokenizer: a ``transformers`` tokenizer folder or Hub id (``AutoTokenizer``), read on the first
            :meth:`encode`; None: ``model_name_or_path``'s.
        max_length: most tokens per text, special tokens included (None: the tokenizer's maximum).
        local_files_only: never reach the network (``from_pretrained``'s flag).
        **kwargs: :class:`TextEncoder` arguments (``num_classes``, ``drop_rate``).
    """

    def __init__(
        self,
        model_name_or_path: str | None = None,
        config: Any = None,
        tokenizer: str | None = None,
        max_length: int | None = None,
        local_files_only: bool = False,
        **kwargs: Any,
    ):
        super().__init__(model_name_or_path, config, "mean", local_files_only=local_files_only, **kwargs)
        if getattr(self.transformer, "pooler", None) is not None:
            self.transformer.pooler = None  # BERT/RoBERTa skip a missing pooler
        self.tokenizer_name = tokenizer or model_name_or_path
        self.max_length = max_length
        self.local_files_only = local_files_only
        self._tokenizer: Any = None

    @property
    def tokenizer(self) -> Any:
        """The ``transformers`` tokenizer (read once, on first use)."""
        if self._tokenizer is None:
            if self.tokenizer_name is None:
                raise UsageError("this sentence encoder was built from a config: give it a `tokenizer`")
            self._tokenizer = _transformers().AutoTokenizer.from_pretrained(
                self.tokenizer_name, local_files_only=self.local_files_only
            )
        return self._tokenizer

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """Sentence embeddings (N, H) of ``texts``, on the encoder's device.

        Args:
            texts: the N texts.
            batch_size: texts per forward pass.
        """
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, not one string")
        device = next(self.parameters()).device
        chunks = []
        for start in range(0, len(texts), batch_size):
            inputs = self.tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            chunks.append(
                self.forward_features(inputs["input_ids"].to(device), inputs["attention_mask"].to(device))
            )
        return torch.cat(chunks) if chunks else torch.empty(0, self.num_features, device=device)


class MaskedLMHead(nn.Module):
    """The BERT/RoBERTa MLM head: dense -> GELU -> LayerNorm -> vocabulary logits, decoder tied to the
    encoder's word embeddings.

    Args:
        encoder: the :class:`TextEncoder` whose token states the head reads.
    """

    def __init__(self, encoder: TextEncoder):
        super().__init__()
        config = encoder.transformer.config
        embeddings = encoder.transformer.get_input_embeddings()  # (V, H)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=getattr(config, "layer_norm_eps", 1e-12))
        self.decoder = nn.Linear(config.hidden_size, embeddings.num_embeddings)
        self.decoder.weight = embeddings.weight  # tied, as in the pre-trained models

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits (B, L, V) of token states (B, L, H)."""
        return self.decoder(self.layer_norm(nn.functional.gelu(self.dense(tokens))))


@register_model
def sentence_encoder(**kwargs) -> SentenceEncoder:
    """A mean-pooled ``transformers`` encoder with ``encode(list_of_str)``; without a name or config, a
    BERT-base config (random weights)."""
    if "model_name_or_path" not in kwargs and "config" not in kwargs:
        kwargs["config"] = {"model_type": "bert"}
    return SentenceEncoder(**kwargs)
