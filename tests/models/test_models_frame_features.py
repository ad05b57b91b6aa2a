"""Per-frame 2D features: (B, C, T, H, W) -> (B, T, F), equal to running the 2D backbone on each frame; the
small per-frame convnet and its spatial max pooling."""

from __future__ import annotations

import pytest
import torch

from zoo import registry
from zoo.models.frame_features import FrameFeatures, SmallConvNet, coordinate_maps
from zoo.models.resnet import BasicBlock, ResNet


def test_each_frame_goes_through_the_2d_backbone():
    torch.manual_seed(0)
    image_net = ResNet(BasicBlock, (1, 1, 1, 1), num_classes=5, in_chans=2).eval()
    model = FrameFeatures(image_net, num_classes=3).eval()
    assert model.num_features == 512 and model.in_chans == 2
    clip = torch.randn(2, 2, 3, 32, 32)
    with torch.no_grad():
        sequence = model.forward_features(clip)
        assert sequence.shape == (2, 3, 512)
        for b in range(2):
            for t in range(3):
                frame = image_net.forward_head(
                    image_net.forward_features(clip[b : b + 1, :, t]), pre_logits=True
                )
                assert torch.allclose(sequence[b, t], frame[0], atol=1e-5)
        assert torch.allclose(model.forward_head(sequence, pre_logits=True), sequence.mean(dim=1))
        assert model(clip).shape == (2, 3)


def test_frames_per_batch_changes_nothing_but_memory():
    torch.manual_seed(0)
    whole = registry.build("frame_resnet18").eval()
    chunked = registry.build("frame_resnet18", frames_per_batch=3).eval()
    chunked.load_state_dict(whole.state_dict())
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.allclose(whole.forward_features(clip), chunked.forward_features(clip), atol=1e-5)


def test_registered_backbone_by_name_with_arguments():
    model = FrameFeatures("resnet10", backbone_args={"in_chans": 1})
    assert model.backbone.conv1.weight.shape[1] == 1 and model.backbone.num_classes == 0


def _same_weights(**kwargs) -> tuple[SmallConvNet, SmallConvNet]:
    torch.manual_seed(0)
    peak = SmallConvNet(spatial_pool="max", **kwargs).eval()
    mean = SmallConvNet(spatial_pool="avg", **kwargs).eval()
    mean.load_state_dict(peak.state_dict())
    return peak, mean


def test_small_convnet_pools_its_last_map_by_max_or_average():
    peak, mean = _same_weights(widths=(8, 16), in_chans=6)
    image = torch.randn(2, 6, 16, 16)
    with torch.no_grad():
        last = peak.forward_features(image)
        assert last.shape == (2, 16, 8, 8)  # one 2×2 max pooling between the two convolutions
        torch.testing.assert_close(peak.forward_head(last, pre_logits=True), last.amax(dim=(2, 3)))
        torch.testing.assert_close(mean.forward_head(last, pre_logits=True), last.mean(dim=(2, 3)))
    with pytest.raises(ValueError, match="spatial_pool: expected 'max' or 'avg', got 'sum'"):
        SmallConvNet(spatial_pool="sum")


def test_max_pooling_keeps_a_small_object_that_averaging_dilutes():
    """A 4×4 object on a 32×32 frame covers a few cells of the last 8×8 map: the spatial mean moves by a
    fraction of what the spatial max moves."""
    peak, mean = _same_weights()
    empty = torch.zeros(1, 3, 32, 32)
    with_object = empty.clone()
    with_object[:, :, 12:16, 20:24] = 1.0
    with torch.no_grad():
        moved_by_max = (peak(with_object) - peak(empty)).norm()
        moved_by_mean = (mean(with_object) - mean(empty)).norm()
    assert moved_by_max > 3 * moved_by_mean > 0


def _object_at(row: int, col: int) -> torch.Tensor:
    image = torch.zeros(1, 3, 32, 32)
    image[:, :, row : row + 4, col : col + 4] = 1.0
    return image


def test_position_pooling_appends_the_soft_argmax_of_the_saliency_map():
    net = SmallConvNet(widths=(8, 16), position_pool=True).eval()
    assert net.num_features == 18  # 16 pooled features, then x and y
    with torch.no_grad():
        net.saliency.weight.fill_(10.0)
        net.saliency.bias.zero_()
        last = torch.zeros(1, 16, 8, 8)
        last[:, :, 2, 6] = 5.0  # a single strong cell: row 2, column 6
        pooled = net.forward_head(last, pre_logits=True)
    torch.testing.assert_close(pooled[0, :16], last.amax(dim=(2, 3))[0])
    expected = torch.tensor([-1 + 2 * 6 / 7, -1 + 2 * 2 / 7])  # (x, y) of that cell
    torch.testing.assert_close(pooled[0, 16:], expected, atol=1e-3, rtol=0)
    grid = coordinate_maps(torch.zeros(2, 7, 3, 5))  # (B, 2, H, W): x then y
    assert grid.shape == (2, 2, 3, 5)
    torch.testing.assert_close(grid[0, :, 0, 0], torch.tensor([-1.0, -1.0]))  # top left
    torch.testing.assert_close(grid[0, :, 2, 4], torch.tensor([1.0, 1.0]))  # bottom right


def test_position_pooling_tells_where_the_object_is():
    """With a spatial max, an object moved by a multiple of the network's stride (4 px) gives the same
    features: a sequence of them cannot hold a trajectory. The soft-argmax position tells the two apart."""
    torch.manual_seed(0)
    plain = SmallConvNet().eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(_object_at(8, 8)), plain(_object_at(8, 16)))
    located = SmallConvNet(widths=(8, 16), position_pool=True).eval()
    with torch.no_grad():
        located.saliency.weight.fill_(10.0)
        left, right = torch.zeros(2, 1, 16, 8, 8)
        left[:, :, 3, 1] = right[:, :, 3, 5] = 5.0  # the same object in column 1, then column 5
        left = located.forward_head(left, pre_logits=True)  # (1, 16 + 2)
        right = located.forward_head(right, pre_logits=True)
    torch.testing.assert_close(left[:, :16], right[:, :16])  # the same pooled features
    torch.testing.assert_close(left[:, 17], right[:, 17])  # and the same height (y)
    assert right[0, 16] - left[0, 16] > 1.0  # x grows to the right


def test_frame_convnet_reads_frames_with_their_differences():
    model = registry.build("frame_convnet", backbone_args={"in_chans": 6}).eval()
    assert model.in_chans == 6 and model.num_features == 128
    assert sum(p.numel() for p in model.parameters()) < 200_000  # a fraction of ResNet-10's 4.9 M
    with torch.no_grad():
        assert model.forward_features(torch.randn(2, 6, 4, 32, 32)).shape == (2, 4, 128)  # (B, T, F)
