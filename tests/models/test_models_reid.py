"""The re-ID network: ST²N's restricted warp, its frame + temporal-context parameters, TRL's generic and
frame-specific parts combined residually, the average-pooling baseline, and one-frame tracklets."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.errors import UsageError
from zoo.models.reid import (
    ReIDNet,
    SpatialTemporalTransformer,
    TemporalResidualLearning,
    TrackletTooShortError,
    context_of_others,
    restricted_affine,
)


@pytest.mark.parametrize("family", ["translation", "scale_translation", "affine"])
def test_zero_parameters_are_the_identity_transform(family):
    params = torch.zeros(3, {"translation": 2, "scale_translation": 3, "affine": 6}[family])
    torch.testing.assert_close(restricted_affine(params, family), torch.eye(2, 3).expand(3, 2, 3))


def test_scale_translation_matrix_follows_its_formula():
    params = torch.tensor([[0.4, -0.2, 0.7]])
    got = restricted_affine(params, "scale_translation", max_scale_change=0.5, max_shift=0.25)
    s, tx, ty = 1 + 0.5 * math.tanh(0.4), 0.25 * math.tanh(-0.2), 0.25 * math.tanh(0.7)
    torch.testing.assert_close(got, torch.tensor([[[s, 0.0, tx], [0.0, s, ty]]]))
    with pytest.raises(ValueError, match="scale_translation takes 3 parameters, got 2"):
        restricted_affine(params[:, :2], "scale_translation")


def test_an_untrained_st2n_leaves_every_frame_as_it_is():
    st2n = SpatialTemporalTransformer(feature_dim=6)
    video = torch.rand(2, 3, 4, 10, 12)  # (B, C, T, H, W)
    torch.testing.assert_close(st2n(video, torch.randn(2, 4, 6)), video)


def test_a_translation_moves_the_frame_by_whole_pixels():
    st2n = SpatialTemporalTransformer(feature_dim=4, family="translation", max_shift=0.9)
    width = 16
    shift_pixels = 2  # output(x) = input(x + tx·W/2): tx = 2·shift/W moves the content left by `shift` pixels
    with torch.no_grad():
        st2n.localisation[-1].bias.copy_(torch.tensor([math.atanh(2 * shift_pixels / width / 0.9), 0.0]))
    video = torch.rand(1, 3, 2, 8, width)
    warped = st2n(video, torch.zeros(1, 2, 4))
    torch.testing.assert_close(warped[..., : width - shift_pixels], video[..., shift_pixels:])


def test_st2n_parameters_come_from_the_frame_and_the_other_frames():
    torch.manual_seed(0)
    st2n = SpatialTemporalTransformer(feature_dim=5, hidden_dim=8)
    torch.nn.init.normal_(st2n.localisation[-1].weight)  # away from the identity start
    descriptors = torch.randn(1, 4, 5)  # (B, T, D)
    theta = st2n.transforms(descriptors)  # (B, T, 2, 3)
    for changed in (0, 2):  # the frame itself, then another frame of the tracklet
        other = descriptors.clone()
        other[0, changed] += 1.0
        assert not torch.allclose(st2n.transforms(other)[0, 0], theta[0, 0])
    others = descriptors.clone()
    others[0, 1:] = others[0, 1:].flip(0)  # the same other frames in another order: same context
    torch.testing.assert_close(st2n.transforms(others)[0, 0], theta[0, 0])
    assert theta[0, :, 0, 1].abs().max() == 0 and theta[0, :, 1, 0].abs().max() == 0  # no rotation / shear


def test_context_is_the_mean_of_the_other_frames():
    x = torch.randn(2, 5, 3)
    expected = torch.stack(
        [torch.stack([x[b, [s for s in range(5) if s != t]].mean(0) for t in range(5)]) for b in range(2)]
    )
    torch.testing.assert_close(context_of_others(x), expected)


def test_st2n_has_fewer_parameters_than_a_standard_stn():
    restricted = SpatialTemporalTransformer(feature_dim=32, family="scale_translation")
    standard = SpatialTemporalTransformer(feature_dim=32, family="affine")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(restricted) == count(standard) - 3 * (128 + 1)


def _zero(lstm: torch.nn.LSTM) -> None:
    with torch.no_grad():
        for p in lstm.parameters():
            p.zero_()


def test_trl_adds_the_generic_part_to_each_frame_specific_part():
    torch.manual_seed(0)
    trl = TemporalResidualLearning(input_dim=6, hidden_dim=4).eval()
    features = torch.randn(2, 5, 6)  # (B, T, F)
    generic, _ = trl.generic(features)
    specific, _ = trl.specific(features)
    z = trl(features)
    torch.testing.assert_close(z, generic.mean(dim=1, keepdim=True) + specific)  # z_t = ḡ + r_t
    _zero(
        trl.specific
    )  # an all-zero LSTM outputs zeros: only the generic part is left, the same on every frame
    z = trl(features)
    torch.testing.assert_close(z, z[:, :1].expand_as(z))
    torch.testing.assert_close(z[:, 0], generic.mean(dim=1))


def test_trl_lstms_read_the_tracklet_both_ways_and_other_combinations():
    torch.manual_seed(0)
    trl = TemporalResidualLearning(input_dim=6, hidden_dim=4, generic="per_frame")
    features = torch.randn(1, 5, 6)
    later = features.clone()
    later[0, -1] += 1.0
    assert not torch.allclose(trl(features)[0, 0], trl(later)[0, 0])  # frame 0 sees the last frame
    earlier = features.clone()
    earlier[0, 0] += 1.0
    assert not torch.allclose(trl(features)[0, -1], trl(earlier)[0, -1])  # and the last frame the first
    concat = TemporalResidualLearning(input_dim=6, hidden_dim=4, combine="concat")
    assert concat(features).shape == (1, 5, 16) and concat.output_dim == 16
    with pytest.raises(UsageError, match="combine 'sum' or 'concat'"):
        TemporalResidualLearning(6, combine="product")


def test_average_pooling_baseline_is_the_mean_of_per_frame_features():
    torch.manual_seed(0)
    net = ReIDNet("resnet10", use_st2n=False, use_trl=False).eval()
    video = torch.randn(2, 3, 3, 32, 32)
    per_frame = torch.stack([net.backbone(video[:, :, t]) for t in range(3)], dim=1)  # (B, T, F)
    torch.testing.assert_close(
        net.forward_head(net.forward_features(video), pre_logits=True), per_frame.mean(1)
    )
    max_net = ReIDNet("resnet10", use_st2n=False, use_trl=False, temporal_pool="max").eval()
    max_net.load_state_dict(net.state_dict())
    torch.testing.assert_close(max_net.forward_head(max_net.forward_features(video), True), per_frame.amax(1))


def test_untrained_st2n_does_not_change_the_embedding():
    torch.manual_seed(0)
    aligned = ReIDNet("resnet10", use_st2n=True, use_trl=True, trl_hidden_dim=8).eval()
    plain = ReIDNet("resnet10", use_st2n=False, use_trl=True, trl_hidden_dim=8).eval()
    plain.load_state_dict({k: v for k, v in aligned.state_dict().items() if not k.startswith("st2n.")})
    video = torch.randn(2, 3, 4, 32, 32)
    torch.testing.assert_close(aligned.forward_features(video), plain.forward_features(video))


def test_training_signal_reaches_st2n_and_both_lstms_and_the_classifier():
    torch.manual_seed(0)
    net = ReIDNet("resnet10", num_classes=3, trl_hidden_dim=8)
    embedding = net.forward_head(net.forward_features(torch.randn(4, 3, 4, 32, 32)), pre_logits=True)
    logits = net.classify(embedding)
    assert embedding.shape == (4, 16) and logits.shape == (4, 3)
    (F.cross_entropy(logits, torch.tensor([0, 1, 2, 0])) + embedding.pow(2).mean()).backward()
    for name in ("st2n.localisation.2.weight", "trl.generic.weight_ih_l0", "trl.specific.weight_hh_l0_reverse",
                 "fc.weight", "backbone.conv1.weight"):  # fmt: skip
        grad = dict(net.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_a_one_frame_tracklet_is_a_named_error():
    net = ReIDNet("resnet10", use_st2n=False, trl_hidden_dim=8)
    with pytest.raises(TrackletTooShortError, match="at least 2 frames, got 1"):
        net.forward_features(torch.randn(2, 3, 1, 32, 32))
    with pytest.raises(TrackletTooShortError, match="temporal context needs a tracklet of at least 2 frames"):
        ReIDNet("resnet10", use_trl=False).forward_features(torch.randn(2, 3, 1, 32, 32))
    assert issubclass(TrackletTooShortError, UsageError)
    baseline = ReIDNet("resnet10", use_st2n=False, use_trl=False)  # average pooling needs no other frame
    assert baseline.forward_features(torch.randn(2, 3, 1, 32, 32)).shape == (2, 1, 512)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"st2n_transform": "rotation"}, "st2n transform must be one of"),
        ({"temporal_pool": "median"}, "temporal_pool must be 'mean' or 'max'"),
        ({"trl_generic": "first"}, "trl generic must be 'mean' or 'per_frame'"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(UsageError, match=message):
        ReIDNet("resnet10", **kwargs)
