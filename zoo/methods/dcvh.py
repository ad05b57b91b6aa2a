"""DCVH: Discriminative Cross-View Binary Representation Learning.

Liu, Qi, WACV 2018, https://arxiv.org/abs/1804.01233 (no code or weights were published).

Method, as far as the abstract says it: an image tower and a text tower (CNN-based non-linear hashing
functions), each topped by a Direct Binary Embedding layer (DBE, Liu et al. 2017) that learns binary
codes directly from continuous activations without a quantisation loss; a multi-label classification
loss on the codes of both views (the label information is what makes the codes discriminative); and
view alignment by minimising the Hamming distance between the codes of an image and its text,
computed through a differentiable bit-wise XOR. One code serves cross-view retrieval (image→text,
text→image), image→image retrieval and tagging. At test time the relaxed codes are thresholded to bits.

Only the abstracts of DCVH and of the DBE paper could be read, so every field below beyond those
statements is the zoo's decision (an argument with a default), not the paper's:

* towers (``image_encoder``, ``text_encoder``): any registered backbone; the paper's image CNN and its
  text network are not known here (the DBE paper used a ResNet) — zoo's choice.
* ``num_bits``: the code length; the paper's lengths are not known here (the zoo measures 16/32/64).
* DBE layer ``tanh(ReLU(BN(W h + b)))`` in [0, 1) (``dbe_batch_norm``), bits where a code exceeds
  ``threshold`` 0.5: DBE and the "continuous relaxation without quantisation loss" follow the paper;
  the formula and the threshold are zoo's reading (:mod:`zoo.models.binary_embedding`).
* multi-label loss on both views' codes: the joint cross-entropy of the DBE paper's abstract, softmax CE
  against the normalised labels plus binary CE (``softmax_weight`` 1, ``bce_weight`` 1, ``pos_weight``
  None: unweighted) — the abstract names the two terms; their weights are zoo's choice.
* ``shared_classifier``: one linear classifier reads the codes of both views (zoo's choice: a shared
  label space ties the meaning of each bit across views); False gives each view its own.
* alignment: the soft XOR ``a(1−b) + (1−a)b`` summed over bits, between an image and its own text only
  (no negatives) — "Hamming distance minimisation" with "bit-wise XOR" follows the paper, the relaxation
  is zoo's; divided by the number of bits (``normalize_hamming``, zoo's choice, so that
  ``alignment_weight`` λ = 1 (zoo's choice) means the same at every code length).
* total ``L = L_cls(image) + L_cls(text) + λ L_align`` — the sum is zoo's choice.

Retrieval is evaluated by :func:`cross_view_map` (Hamming ranking, mAP over items that share a label).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from zoo.catalog import Paper
from zoo.eval.hashing import hashing_map
from zoo.methods.base import SSLMethod
from zoo.models.binary_embedding import DirectBinaryEmbedding, binarize
from zoo.objectives.hashing import joint_multilabel_loss, soft_hamming_distance

__all__ = ["DCVH", "cross_view_map", "random_projection_codes"]

VIEWS = ("image", "text")


class DCVH(SSLMethod):
    """DCVH over ``batch["image"]``, ``batch["text"]`` and ``batch["multilabel"]``.

    Args:
        image_encoder: registered image backbone (``resnet10``, ``resnet50``, ...).
        image_encoder_kwargs: its arguments.
        text_encoder: registered text encoder (``text_encoder``).
        text_encoder_kwargs: its arguments (``model_name_or_path`` or ``config``, ``pooling``).
        num_bits: code length K.
        num_labels: labels Y of the multi-label loss (None: the data module's ``classes`` at setup).
        shared_classifier: one classifier over both views' codes (False: one per view).
        alignment_weight: λ of the Hamming alignment term.
        normalize_hamming: divide the soft Hamming distance by K.
        softmax_weight: weight of the softmax term of the multi-label loss.
        bce_weight: weight of its binary cross-entropy term.
        pos_weight: weight of positive labels in the binary term (None: unweighted).
        dbe_batch_norm: batch normalisation inside the DBE layers.
        threshold: relaxed code value above which a bit is 1.
        **kwargs: optimisation settings of :class:`~zoo.methods.base.SSLMethod`.
    """

    paper = Paper(
        "Discriminative Cross-View Binary Representation Learning (WACV 2018)",
        "https://arxiv.org/abs/1804.01233",
    )
    checkpoints = "dcvh*"

    def __init__(
        self,
        image_encoder: str = "resnet10",
        image_encoder_kwargs: dict[str, Any] | None = None,
        text_encoder: str = "text_encoder",
        text_encoder_kwargs: dict[str, Any] | None = None,
        num_bits: int = 32,
        num_labels: int | None = None,
        shared_classifier: bool = True,
        alignment_weight: float = 1.0,
        normalize_hamming: bool = True,
        softmax_weight: float = 1.0,
        bce_weight: float = 1.0,
        pos_weight: float | None = None,
        dbe_batch_norm: bool = True,
        threshold: float = 0.5,
        **kwargs: Any,
    ):
        kwargs.setdefault("online_probe", False)  # image–text pairs carry multi-labels, not a class
        super().__init__(**kwargs)
        towers = {
            "image": self.add_encoder("image", image_encoder, image_encoder_kwargs),
            "text": self.add_encoder("text", text_encoder, text_encoder_kwargs),
        }
        self.hash_layers = nn.ModuleDict(
            {
                view: DirectBinaryEmbedding(tower.num_features, num_bits, dbe_batch_norm, threshold)
                for view, tower in towers.items()
            }
        )
        self.classifiers: nn.ModuleDict | None = None
        if num_labels:
            self._build_classifiers(num_labels)

    def _build_classifiers(self, num_labels: int) -> None:
        k = self.hparams.num_bits
        if self.hparams.shared_classifier:
            shared = nn.Linear(k, num_labels)
            self.classifiers = nn.ModuleDict({view: shared for view in VIEWS})
        else:
            self.classifiers = nn.ModuleDict({view: nn.Linear(k, num_labels) for view in VIEWS})

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.classifiers is not None:
            return
        classes = getattr(getattr(self.trainer, "datamodule", None), "classes", None)
        if not classes:
            raise ValueError(
                "DCVH needs num_labels, or a data module with `classes` (e.g. ImageTextDataModule)"
            )
        self.hparams.num_labels = len(classes)  # saved with checkpoints: reloads build the classifiers
        self._build_classifiers(len(classes))

    def relaxed_codes(self, view: str, x: torch.Tensor | Mapping) -> torch.Tensor:
        """Relaxed codes (B, K) in [0, 1) of images (B, C, H, W) or text tokens (B, L)."""
        return self.hash_layers[view](self.embed(view, x))

    @torch.no_grad()
    def codes(self, view: str, x: torch.Tensor | Mapping) -> torch.Tensor:
        """Binary codes (B, K) in {0, 1} of images (B, C, H, W) or text tokens (B, L)."""
        return binarize(self.relaxed_codes(view, x), self.hparams.threshold)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Binary codes (B, K) of images (B, C, H, W)."""
        return self.codes("image", images)

    def _losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        hp = self.hparams
        hint = "give the data module ImageTextDataModule"
        inputs = {view: self.require(batch, view, hint) for view in VIEWS}
        labels = self.require(batch, "multilabel", hint)  # (B, Y) multi-hot
        if self.classifiers is None:
            raise ValueError("DCVH has no classifiers yet: give num_labels or fit with a data module")
        features = {view: self.embed(view, x) for view, x in inputs.items()}  # (B, F) per view
        relaxed = {view: self.hash_layers[view](h) for view, h in features.items()}  # (B, K) in [0, 1)
        out = {
            f"{view}_cls_loss": joint_multilabel_loss(
                self.classifiers[view](b), labels, hp.softmax_weight, hp.bce_weight, hp.pos_weight
            )
            for view, b in relaxed.items()
        }
        out["align_loss"] = soft_hamming_distance(  # soft-XOR Hamming of each image and its text
            relaxed["image"], relaxed["text"], normalize=hp.normalize_hamming
        ).mean()
        out["loss"] = out["image_cls_loss"] + out["text_cls_loss"] + hp.alignment_weight * out["align_loss"]
        bits = {view: binarize(b.detach(), hp.threshold) for view, b in relaxed.items()}
        out["bit_agreement"] = (bits["image"] == bits["text"]).float().mean()
        out["features"] = features["image"]
        return out

    def ssl_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self._losses(batch)

    def ssl_validation_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        out = self._losses(batch)
        del out["features"]
        return out


def random_projection_codes(features: torch.Tensor, num_bits: int, seed: int = 0) -> torch.Tensor:
    """Bits (N, K) in {0, 1} of sign random projections (LSH) of centred features (N, D).

    The baseline of learned hashing: ``sign((x − mean) R)`` with R (D, K) drawn from N(0, 1).

    Args:
        features: (N, D) features.
        num_bits: K.
        seed: seed of R.
    """
    generator = torch.Generator().manual_seed(seed)
    projection = torch.randn(features.shape[1], num_bits, generator=generator, dtype=torch.float64)
    centred = features.double() - features.double().mean(dim=0, keepdim=True)
    return (centred @ projection > 0).to(torch.int8)


def cross_view_map(
    query: Mapping[str, torch.Tensor],
    query_labels: torch.Tensor,
    database: Mapping[str, torch.Tensor],
    database_labels: torch.Tensor,
    top_k: int | None = None,
) -> dict[str, float]:
    """mAP (percent) of Hamming ranking for image→text, text→image and image→image.

    A database item is relevant when it shares a label with the query.

    Args:
        query: ``{"image": (Q, K), "text": (Q, K)}`` query codes in {0, 1}.
        query_labels: (Q, Y) multi-hot labels of the queries.
        database: ``{"image": (N, K), "text": (N, K)}`` database codes in {0, 1}.
        database_labels: (N, Y) multi-hot labels of the database.
        top_k: rank cut-off (None: the whole database).
    """
    tasks = {
        "image→text": ("image", "text"),
        "text→image": ("text", "image"),
        "image→image": ("image", "image"),
    }
    return {
        task: next(iter(hashing_map(query[q], query_labels, database[d], database_labels, top_k).values()))
        for task, (q, d) in tasks.items()
    }
