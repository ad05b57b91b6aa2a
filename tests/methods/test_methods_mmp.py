"""MMP: the conditional cross-lingual term against reference math, the choice of the triple (x, v, y), the
three terms and their switches, clear errors for captions that are missing or not by language."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_bert

from zoo.data.text import ByteTokenizer
from zoo.data.text_collate import tokenize_captions
from zoo.errors import UsageError
from zoo.methods.mmp import MMP, ConditionalFusion, conditional_cross_lingual_loss
from zoo.objectives.infonce import cross_modal_info_nce_loss

pytest.importorskip("transformers")

LANGUAGES = ["en", "de", "zh"]
TINY_BERT = tiny_bert(max_position_embeddings=64)
CAPTIONS = [
    {"en": ["a red disc", "the red disc"], "de": ["eine rote Scheibe"], "zh": ["红色的圆盘"]},
    {"en": ["a blue ring"], "de": ["ein blauer Ring", "blauer Ring"]},
    {"en": ["a green cross"], "zh": ["绿色的十字"]},
]


def _model(**kwargs) -> MMP:
    torch.manual_seed(0)
    return MMP(
        text_encoder_kwargs={"config": TINY_BERT},
        embed_dim=8,
        tp_width=16,
        tp_heads=2,
        fusion_hidden_dim=16,
        online_probe=False,
        **{"languages": LANGUAGES, **kwargs},
    )


def _batch(captions=CAPTIONS) -> dict:
    batch = tokenize_captions(captions, ByteTokenizer(48), "all", LANGUAGES)
    batch["video"] = torch.randn(len(captions), 3, 8, 32, 32)  # (B, C, T, H, W)
    batch["index"] = torch.tensor([10, 11, 12])[: len(captions)]
    return batch


def test_conditional_loss_equals_reference_math():
    torch.manual_seed(0)
    b, d = 4, 6
    x, y, v = torch.randn(b, d), torch.randn(b, d), torch.randn(b, d)
    fusion = ConditionalFusion(d, 10)
    tau = 0.1
    total = 0.0
    for i in range(b):  # row i: every candidate fused with video v_i
        for query, keys in ((x, y), (y, x)):
            anchor = F.normalize(fusion(query[i], v[i]), dim=-1)
            logits = (
                torch.stack([F.normalize(fusion(keys[j], v[i]), dim=-1) @ anchor for j in range(b)]) / tau
            )
            total = total - torch.log_softmax(logits, dim=0)[i]
    expected = total / (2 * b)
    torch.testing.assert_close(conditional_cross_lingual_loss(x, y, v, fusion, tau), expected)


def test_the_conditional_term_cannot_be_won_by_the_video_alone():
    """Every candidate of a row shares its video: a fusion that ignores the text scores chance exactly."""
    b, d = 5, 4

    class VideoOnly(torch.nn.Module):
        def forward(self, text, video):
            return (video + 0 * text).expand(*torch.broadcast_shapes(text.shape, video.shape))

    x, y, v = torch.randn(b, d), torch.randn(b, d), torch.randn(b, d)
    loss = conditional_cross_lingual_loss(x, y, v, VideoOnly(), 0.1)
    torch.testing.assert_close(loss, torch.tensor(b).log())


def test_pairs_are_a_pivot_caption_and_another_language_caption_of_the_same_video():
    model = _model()
    batch = _batch()
    names = [LANGUAGES[i] for i in batch["text_language"].tolist()]
    for draw in (False, True):
        for _ in range(5 if draw else 1):
            x_rows, y_rows = model.select_pairs(batch, draw=draw)
            assert batch["caption_to_video"][x_rows].tolist() == [0, 1, 2]
            assert batch["caption_to_video"][y_rows].tolist() == [0, 1, 2]
            assert [names[i] for i in x_rows] == ["en"] * 3
            assert all(names[i] != "en" for i in y_rows)
    x_rows, y_rows = model.select_pairs(batch, draw=False)  # the first of each: caption-major order
    assert [names[i] for i in y_rows] == ["de", "de", "zh"]
    only_zh = _model(pair_languages=["zh"])
    with pytest.raises(UsageError, match="dataset index 11 has no caption in zh"):
        only_zh.select_pairs(batch, draw=False)


def test_a_video_without_a_pivot_caption_is_named():
    captions = [CAPTIONS[0], {"de": ["ein Ring"], "zh": ["圆环"]}]
    with pytest.raises(UsageError, match="dataset index 11 has no caption in en"):
        _model().select_pairs(_batch(captions), draw=False)


def test_captions_not_by_language_are_a_clear_error():
    model = _model(languages=None)
    with pytest.raises(UsageError, match="languages"):
        model.select_pairs(_batch(), draw=False)
    batch = _batch()
    del batch["caption_to_video"]
    with pytest.raises(UsageError, match=r"caption_to_video.*captions_per_video: all"):
        _model().ssl_step(batch)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pair_languages": ["en", "de"]}, "holds the pivot_language"),
        ({"video_tokens": "grid"}, "video_tokens"),
    ],
)
def test_bad_settings_are_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        _model(**kwargs)


def _terms(model: MMP, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x, y, v embeddings of the same pairs as the step draws (same seed)."""
    torch.manual_seed(1)
    x_rows, y_rows = model.select_pairs(batch, draw=True)
    text = model.embed_text({k: v[torch.cat([x_rows, y_rows])] for k, v in batch["text"].items()})
    return (*text.chunk(2), model.embed_video(batch["video"]))


def test_step_is_the_weighted_sum_of_the_three_terms():
    model = _model(inter_weight=0.5, intra_weight=2.0, conditional_weight=3.0)
    batch = _batch()
    x, y, v = _terms(model, batch)
    torch.manual_seed(1)
    out = model.ssl_step(batch)
    inter = cross_modal_info_nce_loss(x, v, 0.05) + cross_modal_info_nce_loss(y, v, 0.05)
    intra = cross_modal_info_nce_loss(x, y, 0.05)
    conditional = conditional_cross_lingual_loss(x, y, v, model.fusion, 0.05)
    torch.testing.assert_close(out["inter_loss"], inter)
    torch.testing.assert_close(out["intra_loss"], intra)
    torch.testing.assert_close(out["conditional_loss"], conditional)
    torch.testing.assert_close(out["loss"], 0.5 * inter + 2.0 * intra + 3.0 * conditional)
    assert out["features"].shape == (3, model.encoders["video"].num_features)
    out["loss"].backward()
    for part in (
        model.encoders["video"],
        model.encoders["text"],
        model.video_pool,
        model.text_pool,
        model.fusion,
    ):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_text_only_pairs_keep_translations_away_from_the_video():
    model = _model(intra_weight=0.0, conditional_weight=0.0, video_paired_translations=False)
    assert model.fusion is None
    batch = _batch()
    x, _, v = _terms(model, batch)
    torch.manual_seed(1)
    out = model.ssl_step(batch)
    assert set(out) == {"loss", "inter_loss", "features"}
    torch.testing.assert_close(out["loss"], cross_modal_info_nce_loss(x, v, 0.05))


def test_validation_reports_in_batch_retrieval_per_language():
    model = _model().eval()
    metrics = model.ssl_validation_step(_batch())
    assert set(metrics) == {"en_t2v_R1", "de_t2v_R1", "zh_t2v_R1"}
    assert all(0.0 <= float(value) <= 100.0 for value in metrics.values())
