import pytest
from torch import nn

import zoo
from zoo import registry


def test_register_and_create(tiny_arch):
    assert tiny_arch in zoo.list_models("zoo_test_*")
    model = zoo.create_model(tiny_arch, num_classes=5)
    assert model.head.out_features == 5


def test_fnmatch_filters(tiny_arch):
    assert zoo.list_models("zoo_test_tiny*") == [tiny_arch]
    assert zoo.list_models(["nothing*", "zoo_test_*"]) == [tiny_arch]
    assert zoo.list_models("no_such_*") == []


def test_unknown_name_suggests_closest(tiny_arch):
    with pytest.raises(registry.UnknownNameError, match="Did you mean: zoo_test_tinynet"):
        zoo.create_model("zoo_test_tinynte")


def test_duplicate_registration_is_an_error(tiny_arch):
    def zoo_test_tinynet(**kwargs) -> nn.Module:
        return nn.Identity()

    with pytest.raises(ValueError, match="registered twice"):
        registry.register_model(zoo_test_tinynet)


def test_every_registered_arch_builds_on_meta():
    """Each factory builds with its defaults (on the meta device, so size does not matter)."""
    import torch

    names = registry.model_names()
    assert names, "no architecture registered"
    for name in names:
        with torch.device("meta"):
            model = registry.build(name)
        assert sum(p.numel() for p in model.parameters()) > 0, name
