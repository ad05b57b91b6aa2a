"""Support-set bottlenecks: the loss is the contrastive term + λ·cross-captioning, it trains, and bad batches
are named; the SynthMotion recipes of the text-video methods keep their captions true of the clips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_bert

from zoo.data.batch import MissingBatchKeyError
from zoo.data.text import build_tokenizer
from zoo.data.transforms import build_transform
from zoo.methods.supportset import SupportSet
from zoo.objectives.infonce import cross_modal_info_nce_loss
from zoo.objectives.ranking import max_margin_ranking_loss

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY_BERT = tiny_bert(vocab_size=259, hidden_size=32, intermediate_size=64, max_position_embeddings=64)
CAPTIONS = [
    "a red disc moves left",
    "a blue square moves up",
    "a green ring bounces",
    "a white cross circles",
]


def _method(**kwargs) -> SupportSet:
    torch.manual_seed(0)
    args = dict(
        text_encoder_kwargs={"config": TINY_BERT},
        embed_dim=16,
        decoder_depth=1,
        decoder_heads=2,
        online_probe=False,
        optimizer="adam",
        lr=1e-3,
    )
    return SupportSet(**{**args, **kwargs})


def _batch() -> dict:
    torch.manual_seed(1)
    return {"video": torch.randn(4, 3, 4, 16, 16), "text": build_tokenizer("bytes", max_length=32)(CAPTIONS)}


def test_loss_is_the_contrastive_term_plus_lambda_times_the_captioning_term():
    batch = _batch()
    model = _method(caption_weight=0.5).eval()
    out = model.ssl_step(batch)
    t, v = model.encode_text(batch["text"]), model.encode_video(batch["video"])
    torch.testing.assert_close(
        out["contrastive_loss"], max_margin_ranking_loss(t @ v.T, 0.2, reduction="mean")
    )
    torch.testing.assert_close(out["loss"], out["contrastive_loss"] + 0.5 * out["caption_loss"])
    assert out["features"].shape == (4, model.encoders["video"].num_features)


def test_infonce_option_and_lambda_zero_has_no_decoder():
    batch = _batch()
    model = _method(contrastive="infonce", caption_weight=0.0).eval()
    assert model.decoder is None and model.support_attention is None
    out = model.ssl_step(batch)
    t, v = model.encode_text(batch["text"]), model.encode_video(batch["video"])
    torch.testing.assert_close(out["loss"], cross_modal_info_nce_loss(t, v, 0.05))
    assert "caption_loss" not in out


def test_cross_captioning_of_a_caption_ignores_its_own_video():
    model = _method().eval()
    text = _batch()["text"]
    t = model.encode_text(text).detach()
    v = torch.nn.functional.normalize(torch.randn(4, 16), dim=1).requires_grad_()
    _, attention = model.cross_captioning_loss(t, v, text)
    assert torch.all(attention.diagonal() == 0)
    one = {k: x[:1] for k, x in text.items()}
    loss, _ = model.cross_captioning_loss(t[:1], v, one)  # caption 0 against the support set of 4
    loss.backward()
    assert torch.all(v.grad[0] == 0) and v.grad[1:].abs().sum() > 0


def test_a_few_steps_on_one_batch_lower_both_terms():
    batch = _batch()
    model = _method()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model.ssl_step(batch)
    for _ in range(30):
        optimizer.zero_grad()
        model.ssl_step(batch)["loss"].backward()
        optimizer.step()
    last = model.ssl_step(batch)
    assert last["caption_loss"] < 0.8 * first["caption_loss"]
    assert last["contrastive_loss"] < first["contrastive_loss"]


def test_validation_reports_in_batch_text_to_video_r1():
    figures = _method().eval().ssl_validation_step(_batch())
    assert 0 <= float(figures["t2v_R@1"]) <= 100 and set(figures) >= {"loss", "caption_loss"}


def test_bad_batches_name_what_is_wrong():
    model = _method().eval()
    with pytest.raises(MissingBatchKeyError, match=r"'text'.*text: true"):
        model.ssl_step({"video": torch.randn(4, 3, 4, 16, 16)})
    batch = _batch()
    batch["text"] = {k: x[:, None].expand(-1, 2, -1) for k, x in batch["text"].items()}  # (B, K, L)
    with pytest.raises(ValueError, match="one caption per video"):
        model.ssl_step(batch)
    with pytest.raises(ValueError, match="attention variant"):
        _method(attention="nearest")


@pytest.mark.parametrize("method", ["supportset", "mmp"])
def test_synthmotion_recipe_never_mirrors_training_clips(method):
    """SynthMotion captions say "to the left", "clockwise": a mirrored clip would make its caption false."""
    data = yaml.safe_load((CONFIGS / method / "synthmotion.yaml").read_text())["data"]["init_args"]
    transform = build_transform(data.get("train_transform", "train"), size=data["size"])
    ramp = torch.linspace(0, 255, 48).to(torch.uint8)  # brighter to the right
    clip = ramp.view(1, 1, 48, 1).expand(4, 48, 48, 3).contiguous()  # (T, H, W, C)
    torch.manual_seed(0)
    for _ in range(20):
        out = transform(clip)  # (C, T, H, W)
        assert out[..., : out.shape[-1] // 2].mean() < out[..., out.shape[-1] // 2 :].mean()
