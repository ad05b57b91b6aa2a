"""One backbone contract over the whole registry: every architecture of zoo.models, built on the meta
device (no memory, no init cost), answers forward_features / forward_head / reset_classifier /
set_grad_checkpointing with the documented shapes."""

from __future__ import annotations

import pytest
import torch

from zoo import registry
from zoo.models.base import Backbone

BATCH = 2
# text_encoder's default is a BERT-base config; a tiny one keeps the meta build quick
BUILD_ARGS = {
    "text_encoder": {
        "config": {
            "model_type": "bert",
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "vocab_size": 100,
        }
    }
}

# Orthoformer picks its landmarks from the data (torch.nonzero has no meta kernel): its tiny variant
# runs for real on small clips, the full-size one is checked for structure and classifier only.
REAL_INPUT = {"orthoformer_tiny": (BATCH, 3, 8, 64, 64)}
STRUCTURE_ONLY = {"orthoformer_b16_224"}


def zoo_architectures() -> list[str]:
    return [n for n in registry.model_names() if registry.get_factory(n).__module__.startswith("zoo.models.")]


def example_input(name: str, model: Backbone) -> torch.Tensor:
    if name in REAL_INPUT:
        return torch.randn(REAL_INPUT[name])
    if model.modality == "text":
        return torch.zeros(BATCH, 8, dtype=torch.long, device="meta")  # token ids (B, L)
    shapes = {
        "video": (BATCH, model.in_chans, 16, 112, 112),  # C3D's original head needs 16×112×112
        "image": (BATCH, model.in_chans, 64, 64),
        "audio": (BATCH, model.in_chans, 40, 99),  # log-mel (B, 1, F, T) as GDT feeds it
    }
    return torch.empty(shapes[model.modality], device="meta")


def test_the_registry_lists_every_backbone_family():
    names = set(zoo_architectures())
    expected = {
        "r2plus1d_18",
        "r2plus1d_18_vmz",
        "r2plus1d_26",
        "r3d_34",
        "r3d_10_mv",
        "i3d",
        "c3d",
        "c3d_bn",
    }
    expected |= {"resnet10", "resnet9_audio", "resnet18_audio", "text_encoder", "frame_resnet18"}
    expected |= {"motionformer_b16_224", "resnet50"}
    assert expected <= names


@pytest.mark.parametrize("name", zoo_architectures())
def test_backbone_contract(name):
    device = "cpu" if name in REAL_INPUT else "meta"
    with torch.device(device):
        model = registry.build(name, **BUILD_ARGS.get(name, {})).eval()
    assert isinstance(model, Backbone)
    assert model.modality in ("video", "image", "audio", "text")
    assert model.num_features > 0
    assert sum(p.numel() for p in model.parameters()) > 0
    run = name not in STRUCTURE_ONLY
    x = example_input(name, model) if run else None
    with torch.device(device), torch.no_grad():
        if run:
            features = model.forward_features(x)
            pooled = model.forward_head(features, pre_logits=True)
            assert pooled.shape == (BATCH, model.num_features)

        model.reset_classifier(5)
        assert model.num_classes == 5
        classifier = {f"{model.classifier_name}.{k}" for k in model.get_classifier().state_dict()}
        assert classifier and all(k.startswith(model.classifier_keys) for k in classifier)
        assert classifier <= set(model.state_dict())
        if run:
            assert model(x).shape == (BATCH, 5)

        model.reset_classifier(0)
        assert not any(k.startswith(model.classifier_keys) for k in model.state_dict())
        if run:
            assert model(x).shape == (BATCH, model.num_features)
    model.set_grad_checkpointing(True)
    assert model.grad_checkpointing
    model.set_grad_checkpointing(False)
    assert not model.grad_checkpointing
