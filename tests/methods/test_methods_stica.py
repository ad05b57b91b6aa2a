"""STiCA: transformer pooling, feature crops, the crop and audio-visual terms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.methods.stica import STiCA
from zoo.models.feature_crops import FeatureCrop, FeatureCropSampler, crop_feature_map
from zoo.models.transformer_pooling import TransformerPooling
from zoo.objectives.gdt import cross_view_nce_loss, stica_crop_loss

# --- transformer pooling ---------------------------------------------------------------------------


def _reference_pooling(pool: TransformerPooling, feature_map: torch.Tensor, tokens: int) -> torch.Tensor:
    """Token 0 of the post-norm, q/k-only transformer, sample by sample, with plain tensor ops."""
    outs = []
    for sample in feature_map:  # (C, T', H, W)
        x = F.adaptive_avg_pool1d(sample.mean(dim=(2, 3))[None], tokens)[0].T  # (N, C)
        for layer in pool.transformer:
            heads = layer.mha.num_heads
            d = x.shape[1] // heads
            q, k = layer.mha.q_lin(x), layer.mha.k_lin(x)
            attended = []
            for h in range(heads):
                qh, kh, vh = q[:, h * d : (h + 1) * d], k[:, h * d : (h + 1) * d], x[:, h * d : (h + 1) * d]
                attended.append(torch.softmax(qh @ kh.T / math.sqrt(d), dim=-1) @ vh)  # values = tokens
            x = layer.norm1(x + torch.cat(attended, dim=1))
            x = layer.norm2(x + layer.ffn.lin2(F.gelu(layer.ffn.lin1(x))))
        outs.append(x[0])
    return torch.stack(outs)


def test_pooling_is_token_zero_of_a_post_norm_qk_transformer():
    torch.manual_seed(0)
    pool = TransformerPooling(dim=16, num_layers=2, num_heads=4, ffn_dim=32).eval()
    assert not any("v_lin" in n or "out_lin" in n for n, _ in pool.named_parameters())
    feature_map = torch.randn(3, 16, 4, 3, 3)
    torch.testing.assert_close(pool(feature_map, 4), _reference_pooling(pool, feature_map, 4))
    crop = feature_map[:, :, 1:4]  # a temporal crop is stretched back to the map's 4 tokens
    torch.testing.assert_close(pool(crop, 4), _reference_pooling(pool, crop, 4))


@pytest.mark.parametrize("time", [4, 8])
def test_pooling_never_mixes_samples(time):
    """The original's trap: transformer_time_dim != T made its view mix samples. Here each sample's
    output depends on that sample alone, whatever the map's (or the crop's) temporal size."""
    torch.manual_seed(0)
    pool = TransformerPooling(dim=16, num_layers=1, num_heads=2, ffn_dim=32).eval()
    feature_map = torch.randn(4, 16, time, 2, 2)
    changed = feature_map.clone()
    changed[1:] = torch.randn_like(changed[1:])
    for crop in (feature_map, feature_map[:, :, : time // 2]):
        other = changed[:, :, : crop.shape[2]]
        torch.testing.assert_close(pool(crop, time)[0], pool(other, time)[0])
        assert not torch.allclose(pool(crop, time)[1], pool(other, time)[1])


def test_zero_layers_is_global_average_pooling():
    feature_map = torch.randn(2, 8, 3, 2, 2)
    torch.testing.assert_close(
        TransformerPooling(8, num_layers=0)(feature_map, 3), feature_map.mean(dim=(2, 3, 4))
    )


# --- feature crops -------------------------------------------------------------------------------


def test_default_sizes_follow_the_original():
    sampler = FeatureCropSampler()
    assert sampler.sizes(4, 7) == ((6, 4), (3, 2))
    assert sampler.sizes(8, 7) == ((6, 4), (6, 4))
    with pytest.raises(ValueError, match="temporal crop sizes"):
        FeatureCropSampler(temporal_sizes=(3, 2)).sizes(2, 7)


def test_offsets_reach_every_position_unless_the_original_is_asked_for():
    g = torch.Generator().manual_seed(0)
    ours = [FeatureCropSampler(2, 0, 2, 0).sample((4, 7, 7), g) for _ in range(200)]
    original = [
        FeatureCropSampler(2, 0, 2, 0, original_offsets=True).sample((4, 7, 7), g) for _ in range(200)
    ]
    starts = {c.height[0] for s in ours for c in s["spatial_large"]}
    assert starts == {0, 1}  # a 6-wide window on 7 cells starts at 0 or 1
    assert {c.time[0] for s in ours for c in s["temporal_large"]} == {0, 1}
    # np.random.randint(0, 7 - 6): the large crops are always [0:6, 0:6] and [0:3]
    assert {(c.height, c.width) for s in original for c in s["spatial_large"]} == {((0, 6), (0, 6))}
    assert {c.time for s in original for c in s["temporal_large"]} == {(0, 3)}


def test_crop_is_a_window_of_the_map():
    feature_map = torch.randn(2, 3, 4, 7, 7)
    crop = crop_feature_map(feature_map, FeatureCrop((1, 3), (2, 6), (0, 4)))
    torch.testing.assert_close(crop, feature_map[:, :, 1:3, 2:6, 0:4])


# --- the method ------------------------------------------------------------------------------------


def _unit(seed: int, n: int = 4, d: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)


def test_crop_loss_counts_the_original_terms():
    view1 = {"spatial_large": [_unit(0), _unit(1)], "spatial_small": [_unit(2)], "temporal_large": [_unit(3)]}
    view2 = {
        "spatial_large": [_unit(4), _unit(5)],
        "spatial_small": [_unit(6), _unit(7)],
        "temporal_large": [_unit(8)],
    }
    view1["temporal_small"], view2["temporal_small"] = [], [_unit(9)]
    expected = [
        cross_view_nce_loss(view1["spatial_large"][0], view2["spatial_small"][0], 0.5, symmetric=False),
        cross_view_nce_loss(view1["spatial_large"][0], view2["spatial_small"][1], 0.5, symmetric=False),
        cross_view_nce_loss(view2["spatial_large"][1], view1["spatial_large"][1], 0.5),  # large-large
        cross_view_nce_loss(view1["spatial_large"][1], view2["spatial_small"][0], 0.5, symmetric=False),
        cross_view_nce_loss(view1["spatial_large"][1], view2["spatial_small"][1], 0.5, symmetric=False),
        cross_view_nce_loss(view1["temporal_large"][0], view2["temporal_small"][0], 0.5, symmetric=False),
    ]
    torch.testing.assert_close(stica_crop_loss(view1, view2, 0.5), torch.stack(expected).mean())


def test_cross_view_term_by_hand():
    v, a = _unit(0), _unit(1)
    by_hand = 0.5 * (
        F.cross_entropy(a @ v.T / 0.1, torch.arange(4)) + F.cross_entropy(v @ a.T / 0.1, torch.arange(4))
    )
    torch.testing.assert_close(cross_view_nce_loss(v, a, 0.1), by_hand)


def test_step_is_alpha_weighted_crop_and_audio_visual_terms():
    torch.manual_seed(0)
    method = STiCA(
        video_encoder="r3d_tiny",
        video_encoder_kwargs={"stem_stride": 1},
        num_layers=1,
        proj_dropout=0.0,
        spatial_large=2,
        spatial_small=1,
        temporal_large=1,
        temporal_small=1,
        online_probe=False,
    )
    crops = FeatureCropSampler(2, 1, 1, 1).sample((1, 4, 4), torch.Generator().manual_seed(0))
    method.crops.sample = lambda shape, generator=None: crops
    batch = {
        "video_views": torch.randn(3, 2, 3, 8, 32, 32),
        "audio_views": torch.randn(3, 2, 1, 257, 99),
        "audio_views_mask": torch.ones(3, 2, 99, dtype=torch.bool),
    }
    out = method.ssl_step(batch)
    audio = method.project("audio", batch["audio_views"][:, 0])[1]
    views = [method.view_embeddings(batch["video_views"][:, i], crops) for i in range(2)]
    loss_av = 0.5 * sum(cross_view_nce_loss(v[2], audio, 0.1) for v in views)
    loss_crops = stica_crop_loss(views[0][1], views[1][1], 0.5)
    torch.testing.assert_close(out["loss"], 0.5 * loss_crops + 0.5 * loss_av)
    assert out["features"].shape == (3, 64)
