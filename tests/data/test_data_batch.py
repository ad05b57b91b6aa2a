"""The batch contract: real batches fit it, and a batch that breaks it is named precisely."""

from __future__ import annotations

import pytest
import torch

from zoo.data.batch import (
    CONTRACT,
    BatchContractError,
    MissingBatchKeyError,
    check_batch,
    contract_table,
)
from zoo.data.datamodule import VideoDataModule


def _tokens(*shape: int) -> dict[str, torch.Tensor]:
    return {
        "input_ids": torch.ones(shape, dtype=torch.long),
        "attention_mask": torch.ones(shape, dtype=torch.long),
    }


def test_datamodule_batches_fit_the_contract(tiny_synth_data):
    module = VideoDataModule(**{**tiny_synth_data, "num_views": 2, "size": 16})
    module.setup("fit")
    train = next(iter(module.train_dataloader()))
    check_batch(train, required=["video_views", "label", "index", "frame_indices"], owner="test")
    check_batch(next(iter(module.val_dataloader())), required=["video"], owner="test")


def test_missing_key_names_key_owner_and_batch():
    with pytest.raises(
        MissingBatchKeyError, match=r"GDT needs batch key 'audio_views'; the batch has \['video'\]"
    ):
        check_batch({"video": torch.zeros(2, 3, 4, 8, 8)}, required=["audio_views"], owner="GDT")


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (
            {"video": torch.zeros(2, 4, 8, 8)},
            r"batch\['video'\] must be \(B, C, T, H, W\), got shape \(2, 4, 8, 8\)",
        ),
        ({"label": torch.zeros(2)}, r"batch\['label'\] must be int, got torch.float32"),
        ({"text": ["a caption"]}, r"batch\['text'\] must be tokenised"),
        (
            {"text": {"en": {"input_ids": torch.ones(2, 3, dtype=torch.long)}}},
            r"batch\['text.en'\] has no 'attention_mask'",
        ),
        (
            {"text": _tokens(2, 3, 4, 5)},
            r"batch\[.text.input_ids.\] must be \(B, L\), got shape \(2, 3, 4, 5\)",
        ),
    ],
)
def test_wrong_shapes_and_dtypes_are_named(batch, message):
    with pytest.raises(BatchContractError, match=message):
        check_batch(batch, owner="test")


def test_several_captions_and_languages():
    check_batch({"text": _tokens(5, 7), "caption_to_video": torch.tensor([0, 0, 1, 1, 1])})
    check_batch({"text": {"en": _tokens(2, 7), "de": _tokens(2, 9)}})
    check_batch({"answers": _tokens(2, 4, 9), "answer": torch.tensor([1, 3])})


def test_every_key_is_documented():
    table = contract_table()
    assert all(f"`{key}`" in table for key in CONTRACT)
    assert len(table.splitlines()) == len(CONTRACT) + 2


@pytest.mark.parametrize("captions_per_video", [1, 2, "all"])
def test_tokenised_captions_fit_the_contract(captions_per_video):
    from zoo.data.text import build_tokenizer
    from zoo.data.text_collate import tokenize_captions

    samples = [
        {"en": ["a dot slides left", "left it goes"], "de": ["ein Punkt"]},
        {"en": ["up"], "de": ["hoch"]},
    ]
    out = tokenize_captions(samples, build_tokenizer("bytes"), captions_per_video, languages=["en", "de"])
    check_batch(out, required=["text", "text_language"], owner="test")
    if captions_per_video == "all":
        assert out["caption_to_video"].tolist() == [0, 0, 0, 1, 1]
