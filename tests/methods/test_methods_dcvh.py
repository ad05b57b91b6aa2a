"""DCVH: the soft-XOR Hamming distance, the joint multi-label loss, the DBE layer, the method's step, the
SynthMotion image–text pairs it trains on, random-projection hashing and cross-view mAP."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from helpers import generate_synth, make_image_text, tiny_bert, tiny_synth

from zoo.data.batch import MissingBatchKeyError
from zoo.data.datamodules import ImageTextDataModule, synthmotion_image_text, synthmotion_image_text_classes
from zoo.data.formats import ManifestError
from zoo.data.samples import read_image_text
from zoo.eval.hashing import hamming_distances, hashing_map
from zoo.methods.dcvh import DCVH, cross_view_map, random_projection_codes
from zoo.models.binary_embedding import DirectBinaryEmbedding, binarize
from zoo.objectives.hashing import joint_multilabel_loss, soft_hamming_distance, soft_xor

TINY_BERT = {"config": tiny_bert(vocab_size=259, max_position_embeddings=32)}


# --- soft XOR ---------------------------------------------------------------------------------------


def test_soft_hamming_equals_hamming_on_bits():
    bits = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)))  # all 16 codes of 4 bits
    expected = hamming_distances(bits, bits).double()  # (16, 16) counted bit by bit
    distance = soft_hamming_distance(bits[:, None, :], bits[None, :, :]).double()
    torch.testing.assert_close(distance, expected, rtol=0, atol=0)
    assert distance[0, 15] == 4 and distance[3, 3] == 0
    torch.testing.assert_close(
        soft_hamming_distance(bits[:, None, :], bits[None], normalize=True).double(), expected / 4
    )


def test_soft_xor_has_gradient_between_bits():
    a = torch.tensor([0.2, 0.7, 0.5], requires_grad=True)
    b = torch.tensor([0.9, 0.1, 0.3])
    soft_xor(a, b).sum().backward()
    torch.testing.assert_close(a.grad, 1 - 2 * b)  # d/da [a(1-b) + (1-a)b]


# --- joint multi-label loss -------------------------------------------------------------------------


def test_joint_multilabel_loss_matches_reference_math():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, -2.0]])
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    rows = []
    for z, y in zip(logits.tolist(), targets.tolist()):
        log_norm = math.log(sum(math.exp(v) for v in z))
        rows.append(-sum(t / sum(y) * (v - log_norm) for v, t in zip(z, y)))
    softmax_term = sum(rows) / 2
    bce = [
        -(t * math.log(1 / (1 + math.exp(-v))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-v))))
        for z, y in zip(logits.tolist(), targets.tolist())
        for v, t in zip(z, y)
    ]
    bce_term = sum(bce) / len(bce)
    assert joint_multilabel_loss(logits, targets).item() == pytest.approx(softmax_term + bce_term, rel=1e-6)
    assert joint_multilabel_loss(logits, targets, bce_weight=0).item() == pytest.approx(
        softmax_term, rel=1e-6
    )
    assert joint_multilabel_loss(logits, targets, softmax_weight=0, bce_weight=2).item() == pytest.approx(
        2 * bce_term, rel=1e-6
    )


def test_joint_multilabel_loss_skips_unlabelled_rows_in_the_softmax_term():
    logits = torch.tensor([[2.0, -1.0], [0.3, 0.1]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # the second sample has no label
    loss = joint_multilabel_loss(logits, targets, bce_weight=0)
    assert loss.item() == pytest.approx(-torch.log_softmax(logits[0], 0)[0].item(), rel=1e-6)
    with pytest.raises(ValueError, match="differ in shape"):
        joint_multilabel_loss(logits, targets[:, :1])


# --- DBE layer ----------------------------------------------------------------------------------------


def test_dbe_codes_lie_in_zero_one_and_bits_threshold_them():
    torch.manual_seed(0)
    layer = DirectBinaryEmbedding(8, 16)
    codes = layer(torch.randn(32, 8))
    assert codes.shape == (32, 16) and codes.min() >= 0 and codes.max() < 1
    assert (codes == 0).any() and (codes > 0.5).any()  # the ReLU zeroes some, BN turns about half on
    bits = layer.bits(torch.randn(4, 8))
    assert bits.dtype == torch.int8 and set(bits.unique().tolist()) <= {0, 1}
    torch.testing.assert_close(
        binarize(torch.tensor([0.2, 0.5, 0.51])), torch.tensor([0, 0, 1], dtype=torch.int8)
    )
    with pytest.raises(ValueError, match="num_bits"):
        DirectBinaryEmbedding(8, 0)


# --- the method ---------------------------------------------------------------------------------------


def _tiny_dcvh(**kwargs) -> DCVH:
    return DCVH(text_encoder_kwargs=TINY_BERT, num_bits=8, num_labels=5, lr=1e-3, optimizer="adamw", **kwargs)


def _batch(b: int = 4) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "image": torch.randn(b, 3, 16, 16, generator=g),
        "text": {"input_ids": torch.randint(3, 259, (b, 7), generator=g), "attention_mask": torch.ones(b, 7)},
        "multilabel": (torch.rand(b, 5, generator=g) > 0.5).float(),
        "index": torch.arange(b),
    }


def test_dcvh_step_sums_its_terms_and_trains_both_towers():
    torch.manual_seed(0)
    model = _tiny_dcvh(alignment_weight=0.5)
    out = model.ssl_step(_batch())
    expected = out["image_cls_loss"] + out["text_cls_loss"] + 0.5 * out["align_loss"]
    torch.testing.assert_close(out["loss"], expected)
    assert 0 <= out["align_loss"] <= 1  # normalised by the bits
    out["loss"].backward()
    for name in (
        "encoders.image.conv1.weight",
        "encoders.text.transformer.embeddings.word_embeddings.weight",
    ):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    assert model.classifiers["image"] is model.classifiers["text"]  # one shared label space


def test_dcvh_alignment_pulls_the_paired_codes_together():
    """With the alignment term alone, a few steps make the codes of each image and its text agree more."""
    torch.manual_seed(0)
    model = _tiny_dcvh(softmax_weight=0, bce_weight=0, shared_classifier=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = _batch(8)
    losses = []
    for _ in range(15):
        loss = model.ssl_step(batch)["align_loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert model.classifiers["image"] is not model.classifiers["text"]


def test_dcvh_codes_are_bits_and_bad_batches_name_the_key():
    model = _tiny_dcvh().eval()
    batch = _batch()
    for view in ("image", "text"):
        codes = model.codes(view, batch[view])
        assert codes.shape == (4, 8) and set(codes.unique().tolist()) <= {0, 1}
    with pytest.raises(MissingBatchKeyError, match=r"multilabel.*ImageTextDataModule"):
        model.ssl_step({k: v for k, v in batch.items() if k != "multilabel"})


def test_dcvh_without_labels_asks_for_them():
    model = DCVH(text_encoder_kwargs=TINY_BERT, num_bits=8)
    with pytest.raises(ValueError, match="num_labels"):
        model.ssl_step(_batch())


# --- hashing evaluation --------------------------------------------------------------------------------


def test_random_projection_codes_are_signs_of_centred_projections():
    features = torch.randn(20, 6, generator=torch.Generator().manual_seed(1))
    codes = random_projection_codes(features, 16, seed=3)
    projection = torch.randn(6, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    expected = ((features.double() - features.double().mean(0)) @ projection > 0).to(torch.int8)
    torch.testing.assert_close(codes, expected, rtol=0, atol=0)
    assert codes.float().mean().item() == pytest.approx(0.5, abs=0.2)  # centred: about half the bits on


def test_cross_view_map_ranks_each_direction():
    labels = torch.eye(4)[[0, 1, 2, 3, 0, 1]]  # (6, 4) one label each
    words = torch.tensor([[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1]], dtype=torch.int8)
    images = words[[0, 1, 2, 3, 0, 1]]
    texts = images.clone()  # aligned views: the same code for an image and its text
    result = cross_view_map(
        {"image": images, "text": texts}, labels, {"image": images, "text": texts}, labels
    )
    assert result == {"image→text": 100.0, "text→image": 100.0, "image→image": 100.0}
    shuffled = {"image": images, "text": texts[[3, 2, 1, 0, 5, 4]]}  # text codes of other labels
    result = cross_view_map(shuffled, labels, shuffled, labels)
    assert result["image→image"] == 100.0 and result["image→text"] < 100.0
    assert result["image→text"] == hashing_map(images, labels, shuffled["text"], labels)["mAP"]


# --- SynthMotion image–text pairs and bad manifests ------------------------------------------------------


def test_synthmotion_image_text_pairs_carry_shape_colour_and_motion(tmp_path):
    root = generate_synth(
        tmp_path / "synth", tiny_synth(num_classes=2, train_per_class=2, val_per_class=0, test_per_class=1)
    )
    records = synthmotion_image_text(root, "train")
    classes = synthmotion_image_text_classes(2)
    captions = json.loads((root / "captions.json").read_text())
    with open(root / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(records) == len(rows) == 4
    for record, row in zip(records, rows):
        on = [classes[i] for i in record.extra["multilabel"].nonzero()[0]]
        assert on == [f"shape:{row['shape']}", f"color:{row['color']}", f"motion:{row['label_name']}"]
        stem = Path(row["path"]).stem
        assert record.caption == [
            c["caption"] for c in captions if c["video_id"] == stem and c["lang"] == "en"
        ]
    module = ImageTextDataModule(
        synth=tiny_synth(num_classes=2, train_per_class=2, val_per_class=0, test_per_class=1),
        synth_root=str(root),
        size=32,
        batch_size=4,
        num_workers=0,
    )
    assert module.classes == classes and module.has_split("test") and not module.has_split("val")
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["multilabel"].shape == (4, len(classes))
    assert (batch["multilabel"].sum(1) == 3).all()


def test_image_text_manifest_with_an_empty_text_names_the_line(tmp_path):
    manifest = make_image_text(tmp_path / "pairs")
    lines = manifest.read_text().splitlines()
    lines[1] = json.dumps({"image": "green.png", "text": "  ", "labels": ["grass"]})
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=r"pairs\.jsonl, line 2: field 'text' is empty"):
        read_image_text(manifest)
