"""GDT: the transformations it builds, the loss it optimises, and samples without audio."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoo.errors import UsageError
from zoo.methods.gdt import GDT, MissingAudioError
from zoo.objectives.gdt import GDTPair, gdt_hypothesis_loss

B, K = 4, 2


def _method(hypothesis: int = 7, **kwargs) -> GDT:
    torch.manual_seed(0)
    return GDT(
        video_encoder="r3d_tiny",
        audio_encoder="resnet9_audio",
        hypothesis=hypothesis,
        proj_dropout=0.0,
        online_probe=False,
        **kwargs,
    )


def _batch(views: int = K) -> dict:
    g = torch.Generator().manual_seed(1)
    return {
        "video_views": torch.randn(B, views, 3, 4, 16, 16, generator=g),
        "audio_views": torch.randn(B, views, 1, 40, 99, generator=g),
        "audio_views_mask": torch.ones(B, views, 99, dtype=torch.bool),
        "label": torch.arange(B),
        "index": torch.arange(10, 10 + B),
    }


def test_loss_is_the_hypothesis_loss_over_reversed_and_shifted_clips():
    method = _method(hypothesis=7)  # invariant to reversal, variant to a shift
    batch = _batch()
    out = method.ssl_step(batch)

    def pair(view: int, reverse: bool) -> GDTPair:
        video, audio = batch["video_views"][:, view], batch["audio_views"][:, view]
        if reverse:
            video, audio = video.flip(2), audio.flip(3)  # frames (B, C, T, H, W), spectrogram (B, 1, F, S)
        v = method.heads["video"](
            method.encoders["video"].forward_head(method.encoders["video"].forward_features(video), True)
        )
        a = method.heads["audio"](
            method.encoders["audio"].forward_head(method.encoders["audio"].forward_features(audio), True)
        )
        return GDTPair(F.normalize(v, dim=1), F.normalize(a, dim=1))

    views = {
        "clip": pair(0, False),
        "reversed": pair(0, True),
        "shifted": pair(1, False),
        "shifted_reversed": pair(1, True),
    }
    expected = gdt_hypothesis_loss(views, "invariant", "variant", 0.07)
    torch.testing.assert_close(out["loss"], expected)
    assert out["features"].shape == (B, method.encoders["video"].num_features)


def test_reversal_hypotheses_need_one_clip_and_shift_hypotheses_two():
    out = _method(hypothesis=2).ssl_step(_batch(views=1))
    assert torch.isfinite(out["loss"])
    with pytest.raises(UsageError, match="num_views: 2, view_clips: distinct"):
        _method(hypothesis=4).ssl_step(_batch(views=1))


def test_hypothesis_outside_one_to_nine_is_refused():
    with pytest.raises(UsageError, match=r"hypothesis must be one of 1\.\.9"):
        _method(hypothesis=10)


def test_samples_without_audio_are_dropped_and_counted():
    method = _method(hypothesis=5)
    batch = _batch()
    batch["audio_views_mask"][1, 1] = False  # sample 1: its shifted clip has no sound
    kept = method.augment(batch)
    assert kept["index"].tolist() == [10, 12, 13]
    assert kept["video_views"].shape[0] == kept["audio_views"].shape[0] == kept["label"].shape[0] == 3
    torch.testing.assert_close(kept["audio_views"][1], batch["audio_views"][2])
    # the baseline uses the first clip only: the same sample keeps its place
    assert _method(hypothesis=1).augment(batch)["index"].tolist() == [10, 11, 12, 13]


def test_missing_audio_error_names_the_samples():
    batch = _batch()
    batch["audio_views_mask"][2] = False
    with pytest.raises(MissingAudioError, match=r"samples \[12\] have no audio"):
        _method(hypothesis=5, missing_audio="error").augment(batch)
    batch["audio_views_mask"][:] = False
    with pytest.raises(MissingAudioError, match="no sample of the batch has audio"):
        _method(hypothesis=5).augment(batch)


def test_video_text_variant_reads_word_vectors_from_a_file(tmp_path):
    import numpy as np

    vectors = np.random.default_rng(0).standard_normal((12, 5)).astype(np.float32)
    np.save(tmp_path / "words.npy", vectors)
    method = GDT(
        video_encoder="r3d_tiny",
        text_encoder="word_embedding_text",
        text_encoder_kwargs={"embeddings_path": str(tmp_path / "words.npy"), "num_features": 16},
        proj_dropout=0.0,
        online_probe=False,
    )
    text = method.encoders["text"]
    torch.testing.assert_close(text.word_embd.weight, torch.from_numpy(vectors))
    assert not text.word_embd.weight.requires_grad  # frozen, as the original
    ids = torch.tensor([[3, 7, 0, 0], [11, 2, 5, 0]])
    by_hand = torch.relu(text.fc1(torch.from_numpy(vectors)[ids])).amax(dim=1)  # max over every position
    torch.testing.assert_close(text.forward_head(text.forward_features({"input_ids": ids}), True), by_hand)
    batch = {"video": torch.randn(2, 3, 4, 16, 16), "text": {"input_ids": ids, "attention_mask": ids > 0}}
    out = method.ssl_step(batch)
    video = F.normalize(method.heads["video"](method.embed("video", batch["video"])), dim=1)
    words = F.normalize(method.heads["text"](by_hand), dim=1)
    torch.testing.assert_close(
        out["loss"], gdt_hypothesis_loss({"clip": GDTPair(video, words)}, "none", "none")
    )
    with pytest.raises(UsageError, match="hypothesis 1"):
        GDT(video_encoder="r3d_tiny", text_encoder="word_embedding_text", hypothesis=2)
    with pytest.raises(UsageError, match="no such word-vector file"):
        GDT(
            text_encoder="word_embedding_text",
            text_encoder_kwargs={"embeddings_path": str(tmp_path / "no.npy")},
        )
