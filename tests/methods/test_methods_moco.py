"""MoCo, BE and DSM: the anchor disturbance, the intra-video column, the queue and the triplet variant."""

from __future__ import annotations

import pytest
import torch

from zoo.methods.be import BE
from zoo.methods.dsm import DSM
from zoo.methods.moco import MoCo

TINY = {"encoder": "r3d_tiny", "queue_size": 16, "online_probe": False}


def _batch(views: int = 3) -> dict:
    torch.manual_seed(0)
    return {"video_views": torch.rand(2, views, 3, 4, 16, 16), "index": torch.arange(2)}


@pytest.mark.parametrize("method", [BE, DSM])
def test_only_the_anchor_is_disturbed(method):
    batch = _batch()
    options = {"warp_shift_range": (0.15, 0.3)} if method is DSM else {}  # 16 px: shifts of 2-4 pixels
    out = method(**TINY, **options).augment(batch)["video_views"]
    assert not torch.equal(out[:, 0], batch["video_views"][:, 0])
    assert torch.equal(out[:, 1:], batch["video_views"][:, 1:])
    assert torch.equal(MoCo(**TINY).augment(batch)["video_views"], batch["video_views"])


def test_moco_defaults_follow_the_code_and_the_queue_holds_its_keys_after_the_step():
    model = BE(**TINY)
    assert model.hparams.momentum_tau == model.hparams.momentum_tau_final == 0.999
    assert model.hparams.temperature == 0.07 and model.hparams.intra_video_negative
    out = model.ssl_step(_batch())
    assert out["loss"].ndim == 0 and out["features"].shape == (2, model.encoders["video"].num_features)
    queue = model.queues["moco"]
    staged = queue._staged[0]
    assert queue.flush() == 2 and torch.equal(queue.keys[:2], staged)
    torch.testing.assert_close(staged.norm(dim=1), torch.ones(2))


def test_intra_video_column_needs_the_third_view():
    with pytest.raises(ValueError, match=r"needs 3 views.*view_clips: intra_video"):
        DSM(**TINY).ssl_step(_batch(views=2))
    assert MoCo(**TINY).ssl_step(_batch(views=2))["loss"].isfinite()


def test_triplet_variant_has_no_momentum_encoder_or_queue_and_trains_every_branch():
    model = BE(**TINY, objective="triplet")
    assert not model.momentum_encoders and not model.queues
    loss = model.ssl_step(_batch())["loss"]
    loss.backward()
    assert all(p.grad is not None for p in model.encoders["video"].parameters() if p.requires_grad)
