"""Frozen word embeddings → FC → ReLU → max over words: the text tower of GDT's video–text model.

GDT on HowTo100M (Patrick et al. 2021; the ``Text_Encoder`` of the original) embeds each token id with
a frozen table of word vectors (word2vec, 300-d, a 66,250-word vocabulary in which id 0 pads), maps
every word to 2048 features with one linear layer and ReLU, and max-pools over all positions of the
padded sequence (padding included, as the original does). Token ids come from a word-level tokenizer
whose vocabulary numbers the words as the embedding table does.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import UsageError
from zoo.models.base import Backbone
from zoo.registry import register_model
from zoo.serialization import safe_torch_load

__all__ = ["WordEmbeddingTextEncoder", "load_word_vectors"]


def load_word_vectors(path: str | Path) -> torch.Tensor:
    """A (vocabulary, dim) float table from a ``.npy`` array or a ``.pth``/``.pt`` tensor file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"embeddings_path: no such word-vector file: {path}")
    table = torch.from_numpy(np.load(path)) if path.suffix == ".npy" else safe_torch_load(path)
    if not isinstance(table, torch.Tensor) or table.ndim != 2:
        raise UsageError(
            f"{path}: word vectors must be one (vocabulary, dim) tensor, got {type(table).__name__}"
        )
    return table.float()


class WordEmbeddingTextEncoder(Backbone):
    """Token ids (B, L) (or a tokenizer's ``{"input_ids": ...}``) → (B, num_features).

    Args:
        embeddings_path: word vectors to load (``.npy`` or a tensor file); ``None``: a random table of
            ``num_embeddings`` × ``embedding_dim`` (weights then come from a checkpoint).
        num_embeddings: vocabulary size (with the padding id 0).
        embedding_dim: word-vector size.
        num_features: width of the per-word linear layer, the pooled feature size.
        num_classes: classifier outputs; 0 for none.
    """

    modality = "text"

    def __init__(
        self,
        embeddings_path: str | None = None,
        num_embeddings: int = 66250,
        embedding_dim: int = 300,
        num_features: int = 2048,
        num_classes: int = 0,
    ):
        super().__init__()
        if embeddings_path is not None:
            table = load_word_vectors(embeddings_path)
            num_embeddings, embedding_dim = table.shape
            self.word_embd = nn.Embedding.from_pretrained(table, freeze=True)
        else:
            self.word_embd = nn.Embedding(num_embeddings, embedding_dim)
            self.word_embd.weight.requires_grad_(False)  # frozen, as the original
        self.fc1 = nn.Linear(embedding_dim, num_features)
        self.num_features = num_features
        self.num_classes = num_classes
        self.drop = nn.Identity()
        self.fc: nn.Module = self.make_classifier(num_classes)

    def forward_features(self, x: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        ids = x["input_ids"] if isinstance(x, Mapping) else x  # (B, L)
        with torch.no_grad():
            words = self.word_embd(ids)  # (B, L, E)
        return F.relu(self.fc1(words))  # (B, L, F)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Max over the words (every position, padding included): (B, L, F) -> (B, F)."""
        return x.amax(dim=1)


@register_model
def word_embedding_text(**kwargs) -> WordEmbeddingTextEncoder:
    """GDT's video–text text tower: frozen 300-d word vectors → Linear 2048 → ReLU → max over words."""
    return WordEmbeddingTextEncoder(**kwargs)
