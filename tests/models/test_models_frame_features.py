"""Per-frame 2D features: (B, C, T, H, W) -> (B, T, F), equal to running the 2D backbone on each frame."""

from __future__ import annotations

import torch

from zoo import registry
from zoo.models.frame_features import FrameFeatures
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
