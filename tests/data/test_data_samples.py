"""Sample types: documents with DeCLUTR spans, image–text pairs, multiple-choice QA, tracklets and PK batches."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import generate_synth, make_image_text, tiny_synth
from PIL import Image

from zoo.data.batch import check_batch
from zoo.data.datamodules import DocumentDataModule
from zoo.data.formats import ManifestError, parse_mars, parse_tvqa
from zoo.data.samplers import RandomClipSampler
from zoo.data.samples import (
    DocumentDataset,
    ImageTextDataset,
    MultipleChoiceQADataset,
    PKSampler,
    ShortDocumentWarning,
    TrackletDataset,
    WhitespaceTokenizer,
    collate_documents,
    collate_image_text,
    collate_multiple_choice,
    collate_tracklets,
    read_image_text,
    sample_anchor_positive_spans,
    synthmotion_qa_records,
    synthmotion_tracklet_records,
)
from zoo.data.text import ByteTokenizer
from zoo.data.transforms import build_transform
from zoo.errors import UsageError


def tokenize(texts: list[str]) -> dict[str, torch.Tensor]:
    """A stand-in tokenizer: one id per word (its length + 1), padded with 0."""
    ids = [[len(w) + 1 for w in text.split()] for text in texts]
    length = max(len(row) for row in ids)
    input_ids = torch.zeros(len(ids), length, dtype=torch.long)
    for row, values in enumerate(ids):
        input_ids[row, : len(values)] = torch.tensor(values)
    return {"input_ids": input_ids, "attention_mask": (input_ids > 0).long()}


def positions(span: str) -> list[int]:
    """The token positions of a span of a document made of tokens ``t0 t1 t2 ...``."""
    return [int(token[1:]) for token in span.split()]


# ------------------------------------------------------------------------------------------------------
# documents


def test_documents_from_a_text_file_and_jsonl(tmp_path: Path):
    (tmp_path / "docs.txt").write_text("first document here\n\nsecond one\n")
    (tmp_path / "docs.jsonl").write_text('{"text": "a b"}\n{"text": "c"}\n')
    text = DocumentDataset(tmp_path / "docs.txt")
    assert len(text) == 2 and text[1] == {"text": "second one", "index": 1}
    assert DocumentDataset(tmp_path / "docs.jsonl")[0]["text"] == "a b"
    batch = collate_documents([text[0], text[1]], tokenize)
    check_batch(batch, required=("text", "index"), owner="test")
    assert batch["text"]["input_ids"].shape == (2, 3)
    assert collate_documents([text[0]])["text"] == ["first document here"]


def test_a_bad_jsonl_line_is_named(tmp_path: Path):
    (tmp_path / "docs.jsonl").write_text('{"text": "a b"}\n{"body": "c"}\n')
    with pytest.raises(ManifestError, match=r"docs\.jsonl, line 2: needs a string field 'text'"):
        DocumentDataset(tmp_path / "docs.jsonl")


DOCUMENT = " ".join(f"t{i}" for i in range(200))


def test_declutr_spans_anchors_apart_positives_near_them():
    dataset = DocumentDataset([DOCUMENT] * 3, num_anchors=2, num_positives=3, max_span_len=24, min_span_len=4)
    for epoch in range(20):
        dataset.set_epoch(epoch)
        sample = dataset[1]
        assert len(sample["anchors"]) == 2 and len(sample["positives"]) == 6
        anchors = [positions(a) for a in sample["anchors"]]
        assert all(4 <= len(a) <= 24 for a in anchors)
        assert not set(anchors[0]) & set(anchors[1])  # anchors never overlap
        assert all(a == list(range(a[0], a[-1] + 1)) for a in anchors)  # contiguous spans
        for k, positive in enumerate(sample["positives"]):
            anchor, span = anchors[k // 3], positions(positive)  # anchor-major
            assert 4 <= len(span) <= 24
            assert anchor[0] - len(span) <= span[0] <= anchor[-1] + 1  # overlaps or touches its anchor


def test_declutr_span_draws_are_a_function_of_seed_epoch_and_index():
    dataset = DocumentDataset([DOCUMENT] * 2, num_anchors=1, max_span_len=40, min_span_len=4, seed=5)
    assert dataset[0] == dataset[0]
    first = dataset[0]["anchors"]
    dataset.set_epoch(1)
    assert dataset[0]["anchors"] != first
    assert (
        DocumentDataset([DOCUMENT] * 2, num_anchors=1, max_span_len=40, min_span_len=4, seed=6)[0]
        != dataset[0]
    )


def test_declutr_strategies_subsuming_and_adjacent():
    tokens = DOCUMENT.split()
    for seed in range(30):
        rng = np.random.RandomState(seed)
        anchors, positives = sample_anchor_positive_spans(tokens, 2, 2, 30, 5, "subsuming", rng)
        for k, positive in enumerate(positives):
            assert set(positions(positive)) <= set(positions(anchors[k // 2]))
        anchors, positives = sample_anchor_positive_spans(tokens, 2, 2, 30, 5, "adjacent", rng)
        for k, positive in enumerate(positives):
            anchor, span = positions(anchors[k // 2]), positions(positive)
            assert span[-1] + 1 == anchor[0] or span[0] == anchor[-1] + 1
            assert span[0] > 0  # as coded: an adjacent positive never starts at token 0


def test_declutr_first_anchor_in_an_end_block_near_the_minimum_length():
    """As coded: with few blocks left per anchor, the anchor's block is the first or the last one."""
    tokens = [f"t{i}" for i in range(3 * 8 * 2)]  # the minimum for 3 anchors of at most 8 tokens
    blocks = set()
    for seed in range(40):
        anchors, _ = sample_anchor_positive_spans(tokens, 3, 1, 8, 2, None, np.random.RandomState(seed))
        blocks.add(positions(anchors[0])[0] // 8)
    assert blocks == {0, 5}


def test_declutr_collate_stacks_anchors_with_their_documents():
    dataset = DocumentDataset([DOCUMENT] * 2, num_anchors=2, num_positives=2, max_span_len=30, min_span_len=5)
    batch = collate_documents([dataset[0], dataset[1]], tokenize)
    check_batch(batch, required=("text", "caption_to_video", "index"), owner="DeCLUTR")
    assert batch["text"]["input_ids"].shape[0] == 4 and batch["caption_to_video"].tolist() == [0, 0, 1, 1]
    assert batch["positives"]["input_ids"].shape[0] == 8
    raw = collate_documents([dataset[0]])
    assert raw["text"] == dataset[0]["anchors"] and raw["positives"] == dataset[0]["positives"]


def test_documents_too_short_for_the_spans_are_left_out_with_a_warning(tmp_path: Path):
    (tmp_path / "docs.txt").write_text(f"{DOCUMENT}\ntoo short\n{DOCUMENT}\n")
    with pytest.warns(ShortDocumentWarning, match=r"left out 1 of 3 .*docs\.txt, line 2"):
        dataset = DocumentDataset(tmp_path / "docs.txt", num_anchors=1, max_span_len=50, min_span_len=5)
    assert len(dataset) == 2
    with pytest.raises(UsageError, match="no documents"), pytest.warns(ShortDocumentWarning):
        DocumentDataset(["short"], num_anchors=1, max_span_len=50, min_span_len=5)


# one word of 60 UTF-8 bytes (20 three-byte characters), and 42 one-letter words (83 bytes)
UNSPACED = "视频里一个青色的菱形沿逆时针方向转圈视频"
SPACED = " ".join("abcdefg"[i % 7] for i in range(42))


def test_declutr_spans_are_counted_in_the_models_tokens(tmp_path: Path):
    """The length check and the span lengths use the span tokenizer: bytes here, not whitespace words."""
    (tmp_path / "docs.txt").write_text(f"{UNSPACED}\n{SPACED}\n", encoding="utf-8")
    spans = dict(num_anchors=1, num_positives=3, max_span_len=15, min_span_len=6)
    with pytest.warns(ShortDocumentWarning, match=r"left out 1 of 2 .*docs\.txt, line 1"):
        by_words = DocumentDataset(tmp_path / "docs.txt", **spans)  # 1 word < 30, 42 words >= 30
    assert by_words.documents == [SPACED]
    by_bytes = DocumentDataset(tmp_path / "docs.txt", span_tokenizer=ByteTokenizer(), **spans)
    assert by_bytes.documents == [UNSPACED, SPACED]  # 60 and 83 bytes >= 30
    with pytest.warns(ShortDocumentWarning, match=r"left out 1 of 2 .*docs\.txt, line 1"):
        DocumentDataset(
            tmp_path / "docs.txt", span_tokenizer=ByteTokenizer(), **{**spans, "max_span_len": 40}
        )
    for epoch in range(5):
        by_bytes.set_epoch(epoch)
        for index, document in enumerate(by_bytes.documents):
            sample = by_bytes[index]
            for span in sample["anchors"] + sample["positives"]:
                assert span in document  # decoded back to a piece of the text, no character cut
                assert len(span.encode("utf-8")) <= 15
            if index == 0:  # no spaces to strip: each span has exactly its drawn number of bytes, >= 6
                assert all(len(s.encode("utf-8")) >= 6 for s in sample["anchors"] + sample["positives"])


def test_declutr_datamodule_samples_spans_with_its_tokenizer(tmp_path: Path):
    (tmp_path / "docs.txt").write_text(f"{UNSPACED}\n{UNSPACED}\n", encoding="utf-8")
    module = DocumentDataModule(
        str(tmp_path / "docs.txt"), num_anchors=1, max_span_len=15, min_span_len=6, tokenizer="bytes",
        batch_size=2, num_workers=0, persistent_workers=False,
    )  # fmt: skip
    batch = next(iter(module.train_dataloader()))
    anchors = batch["text"]["input_ids"]  # (2, L): bos, the span's bytes, eos
    lengths = batch["text"]["attention_mask"].sum(1) - 2
    assert ((lengths >= 6) & (lengths <= 15)).all()
    for row, length in zip(anchors, lengths, strict=True):
        assert ByteTokenizer().decode(row.tolist()) in UNSPACED and len(row) >= length


def test_sampler_without_a_span_tokenizer_joins_words_with_spaces():
    dataset = DocumentDataset([DOCUMENT], num_anchors=1, max_span_len=20, min_span_len=4)
    explicit = DocumentDataset([DOCUMENT], num_anchors=1, max_span_len=20, min_span_len=4,
                               span_tokenizer=WhitespaceTokenizer())  # fmt: skip
    assert dataset[0] == explicit[0] and all(a in DOCUMENT for a in dataset[0]["anchors"])


# ------------------------------------------------------------------------------------------------------
# image–text pairs


def test_image_text_pairs_with_multi_hot_labels(tmp_path: Path):
    dataset = ImageTextDataset(make_image_text(tmp_path), transform=build_transform("eval", size=12))
    assert dataset.classes == ["sky", "grass", "water", "sun"]
    sample = dataset[0]
    assert sample["image"].shape == (3, 12, 12) and sample["text"] == "a red sunset"
    assert sample["multilabel"].tolist() == [1.0, 0.0, 0.0, 1.0]
    red = sample["image"][:, 6, 6] * torch.tensor([0.229, 0.224, 0.225]) + torch.tensor([0.485, 0.456, 0.406])
    torch.testing.assert_close(red, torch.tensor([1.0, 0.0, 0.0]), atol=1e-2, rtol=0)
    batch = collate_image_text([dataset[i] for i in range(3)], tokenize)
    check_batch(batch, required=("image", "text", "index"), owner="DCVH")
    assert batch["multilabel"].shape == (3, 4) and batch["multilabel"].sum(1).tolist() == [2, 1, 2]
    assert batch["text"]["input_ids"].shape == (3, 5)


def test_image_text_csv_with_integer_labels(tmp_path: Path):
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    (tmp_path / "pairs.csv").write_text("image,text,labels\nx.png,dark,0;2\nx.png,also dark,\n")
    records, classes = read_image_text(tmp_path / "pairs.csv")
    assert classes == ["0", "1", "2"]
    assert [r.extra["multilabel"].tolist() for r in records] == [[1, 0, 1], [0, 0, 0]]


def test_an_unknown_label_is_named(tmp_path: Path):
    path = make_image_text(tmp_path)
    path.write_text(path.read_text().replace('"sun"', '"moon"'))
    with pytest.raises(ManifestError, match=r"pairs\.jsonl, line 1: label 'moon' is not one of 4 classes"):
        read_image_text(path)


def test_an_unreadable_image_is_skipped_and_counted(tmp_path: Path):
    path = make_image_text(tmp_path)
    (tmp_path / "green.png").write_bytes(b"not an image")
    dataset = ImageTextDataset(path, transform=build_transform("eval", size=8), max_error_fraction=0.5)
    with pytest.warns(UserWarning, match=r"green\.png"):
        sample = dataset[1]
    assert sample["index"] != 1 and dataset.error_stats()["bad_records"] == 1


# ------------------------------------------------------------------------------------------------------
# multiple-choice QA and tracklets on a tiny SynthMotion


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    synth = tiny_synth(
        num_classes=2, train_per_class=2, val_per_class=0, test_per_class=0, qa_per_clip=2, qa_choices=4,
        reid_identities=6, reid_cameras=2, reid_tracklets=2, languages=("en",), captions_per_language=1,
    )  # fmt: skip
    return generate_synth(tmp_path_factory.mktemp("synth_samples"), synth)


def test_synthmotion_qa_items_text_only(synth: Path):
    records = synthmotion_qa_records(synth, "train")
    items = [json.loads(line) for line in (synth / "qa.jsonl").read_text().splitlines()]
    assert len(records) == len(items) == 8
    dataset = MultipleChoiceQADataset(records)
    sample = dataset[3]
    assert sample["question"] == items[3]["question"] and sample["answers"] == items[3]["answers"]
    assert sample["answer"] == items[3]["answer_idx"]
    batch = collate_multiple_choice([dataset[i] for i in range(4)], tokenize)
    check_batch(batch, required=("answers", "answer", "text", "index"), owner="multiple-choice QA")
    assert batch["answers"]["input_ids"].shape[:2] == (4, 4)
    expected = tokenize([f"{items[1]['question']} {a}" for a in items[1]["answers"]])["input_ids"]
    row = batch["answers"]["input_ids"][1]
    assert torch.equal(row[:, : expected.shape[1]], expected) and not row[:, expected.shape[1] :].any()
    raw = collate_multiple_choice([dataset[0], dataset[1]])
    assert (
        raw["text"] == [items[0]["question"], items[1]["question"]]
        and raw["answers"][1] == items[1]["answers"]
    )


def test_qa_items_with_their_clip(synth: Path):
    dataset = MultipleChoiceQADataset(synthmotion_qa_records(synth), RandomClipSampler(num_frames=4))
    sample = dataset[0]
    assert sample["video"].shape == (3, 4, 32, 32) and sample["answer"] >= 0
    batch = collate_multiple_choice([dataset[0], dataset[2]], tokenize)
    check_batch(batch, required=("video", "answers", "answer"), owner="multiple-choice QA")


def test_tvqa_items_and_a_batch_of_uneven_answer_counts(tmp_path: Path):
    items = [
        {"q": "Who speaks?", "a0": "A", "a1": "B", "a2": "C", "a3": "D", "a4": "E", "answer_idx": 2, "vid_name": "v1"},
        {"q": "Where?", "a0": "x", "a1": "y", "a2": "z", "a3": "w", "a4": "v", "answer_idx": 0, "vid_name": "v2"},
    ]  # fmt: skip
    (tmp_path / "tvqa_train.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    records, _ = parse_tvqa(tmp_path, "train")
    dataset = MultipleChoiceQADataset(records)
    assert dataset[0]["answer"] == 2 and dataset[1]["answers"] == ["x", "y", "z", "w", "v"]
    uneven = dict(dataset[1], answers=["x", "y"])
    with pytest.raises(UsageError, match=r"as many answers each, got \[2, 5\]"):
        collate_multiple_choice([dataset[0], uneven], tokenize)


def test_synthmotion_tracklets_carry_identity_and_camera(synth: Path):
    records = synthmotion_tracklet_records(synth, "train")
    dataset = TrackletDataset(records, RandomClipSampler(num_frames=4), build_transform("eval", size=24))
    assert len(dataset) == 3 * 2 * 2 and sorted(set(dataset.identities)) == [0, 1, 2]
    batch = collate_tracklets([dataset[i] for i in range(len(dataset))])
    check_batch(batch, required=("video", "identity", "camera", "index"), owner="re-ID")
    assert batch["video"].shape == (12, 3, 4, 24, 24)
    names = [r.path.stem for r in records]  # {identity:04d}C{camera}T{tracklet:04d}
    assert batch["identity"].tolist() == [int(n[:4]) for n in names]
    assert batch["camera"].tolist() == [int(n[5]) for n in names]
    query = synthmotion_tracklet_records(synth, "query")
    assert {r.extra["pid"] for r in query} == {3, 4, 5}


def test_mars_frame_tracklets(tmp_path: Path):
    for pid, cam, tracklet, frames in ((1, 1, 1, 5), (1, 2, 1, 3), (2, 1, 1, 4)):
        folder = tmp_path / "bbox_train" / f"{pid:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(frames):
            Image.new("RGB", (8, 16), (f * 40, pid * 60, cam * 80)).save(
                folder / f"{pid:04d}C{cam}T{tracklet:04d}F{f + 1:03d}.jpg"
            )
    records, _ = parse_mars(tmp_path, "train")
    dataset = TrackletDataset(records, RandomClipSampler(num_frames=4, short_video="loop"))
    batch = collate_tracklets([dataset[i] for i in range(3)])
    check_batch(batch, required=("video", "identity", "camera"), owner="re-ID")
    assert batch["video"].shape == (3, 3, 4, 16, 8)
    assert batch["identity"].tolist() == [1, 1, 2] and batch["camera"].tolist() == [1, 2, 1]
    assert batch["frame_indices"][1, 0].tolist() == [0, 1, 2, 0]  # 3 frames, looped to 4


def test_tracklet_records_without_identity_are_named(tmp_path: Path):
    from zoo.data.formats import VideoRecord

    with pytest.raises(UsageError, match=r"tracklet record 0 .*needs integer extra 'pid' and 'camera'"):
        TrackletDataset([VideoRecord(tmp_path / "t.mp4", 0, extra={"camera": 1})], RandomClipSampler(4))


# ------------------------------------------------------------------------------------------------------
# PK batches


IDENTITIES = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4, 5, 5, 5]  # identity of each tracklet


def test_pk_batches_hold_p_identities_k_tracklets_each():
    sampler = PKSampler(IDENTITIES, p=3, k=2, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 2
    seen = set()
    for batch in batches:
        counts = Counter(IDENTITIES[i] for i in batch)
        assert len(batch) == 6 and len(counts) == 3 and set(counts.values()) == {2}
        seen |= set(counts)
    assert seen == set(range(6))  # every identity once per epoch
    lonely = next(b for b in batches if 3 in {IDENTITIES[i] for i in b})
    assert [i for i in lonely if IDENTITIES[i] == 3] == [9, 9]  # one tracklet: repeated
    for batch in batches:  # identities with >= k tracklets: distinct ones
        for identity in {IDENTITIES[i] for i in batch}:
            if IDENTITIES.count(identity) >= 2:
                assert len({i for i in batch if IDENTITIES[i] == identity}) == 2


def test_pk_batches_change_with_the_epoch_and_split_over_ranks():
    sampler = PKSampler(IDENTITIES, p=2, k=2, seed=0)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    ranks = [PKSampler(IDENTITIES, p=2, k=2, seed=0, num_replicas=2, rank=r) for r in range(2)]
    per_rank = [list(r) for r in ranks]
    assert len(per_rank[0]) == len(per_rank[1]) == 1
    assert per_rank[0] + per_rank[1] == first[:2]
    with pytest.raises(UsageError, match="needs 4 identities per rank"):
        PKSampler([0, 1, 2], p=4, k=2)
