"""CMD's modified last stage and motion predictor, against straightforward reference code."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoo import registry
from zoo.models.context_motion import MotionPredictor, context_motion_features


def _reference_stage(net, x):
    """The stage as the paper's figure reads: cat(even, odd frames of layer3) + upsampled layer4."""
    x = net.layer3(net.layer2(net.layer1(net.stem(x))))
    split = torch.cat([x[:, :, 0::2], x[:, :, 1::2]], dim=1)
    return F.interpolate(net.layer4(x), size=split.shape[2:], mode="nearest") + split


def test_modified_stage_matches_reference_and_keeps_layer3_resolution():
    torch.manual_seed(0)
    net = registry.build("r3d_tiny_cmd", num_classes=0).eval()
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        fused, last = context_motion_features(net, clip)
        torch.testing.assert_close(fused, _reference_stage(net, clip))
        torch.testing.assert_close(last, net.forward_features(clip))
    assert fused.shape == (2, 64, 1, 4, 4)  # layer3 (32, 2, 4, 4) split in two
    assert last.shape == (2, 64, 1, 2, 2)


def test_modified_stage_names_what_the_backbone_lacks():
    net = registry.build("r3d_tiny", num_classes=0)  # widths 16-32-48-64: layer4 is not twice layer3
    with pytest.raises(ValueError, match="twice the third"):
        context_motion_features(net, torch.randn(1, 3, 8, 32, 32))
    with pytest.raises(ValueError, match="even number"):
        context_motion_features(registry.build("r3d_tiny_cmd", num_classes=0), torch.randn(1, 3, 2, 32, 32))


def test_motion_predictor_predicts_one_vector_per_query_and_checks_the_memory():
    torch.manual_seed(0)
    predictor = MotionPredictor(64, memory_len=16, query_len=4, hidden_dim=32, num_heads=4).eval()
    fused = torch.randn(3, 64, 1, 4, 4)
    out = predictor(fused)
    assert out.shape == (3, 4, 32)
    assert not torch.allclose(out[:, 0], out[:, 1])  # the learned queries tell the positions apart
    # each sample is predicted from its own clip only
    torch.testing.assert_close(predictor(fused[1:2])[0], out[1])
    with pytest.raises(ValueError, match="16 positions"):
        predictor(torch.randn(1, 64, 2, 4, 4))


@pytest.mark.slow
def test_released_geometry_r2plus1d_26_gives_98_memory_positions():
    net = registry.build("r2plus1d_26", num_classes=0).eval()
    with torch.no_grad():
        fused, last = context_motion_features(net, torch.zeros(1, 3, 16, 112, 112))
    assert fused.shape == (1, 2048, 2, 7, 7) and last.shape == (1, 2048, 2, 4, 4)
