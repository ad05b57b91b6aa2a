"""zoo.load / zoo.create_model end to end on weights the tests make themselves."""

import hashlib

import pytest
import torch
from safetensors.torch import save_file

import zoo
from zoo.registry import build


@pytest.fixture
def tiny_weights(tmp_path, tiny_arch):
    torch.manual_seed(0)
    model = build(tiny_arch, num_classes=3)
    path = tmp_path / "tiny.safetensors"
    save_file(model.state_dict(), str(path))
    return model, path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_load_by_name_verifies_and_attaches_card(make_catalog, tiny_arch, tiny_weights):
    model, path, digest = tiny_weights
    make_catalog(
        {
            "tiny-demo": {
                "arch": tiny_arch,
                "arch_args": {"num_classes": 3},
                "verified": True,
                "weights": [{"file": {"path": str(path), "sha256": digest}}],
                "license": "MIT",
            }
        }
    )
    loaded = zoo.load("tiny-demo")
    assert not loaded.training
    assert loaded.card.name == "tiny-demo" and "MIT" in str(loaded.card)
    x = torch.randn(2, 4)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_wrong_sha256_refuses(make_catalog, tiny_arch, tiny_weights):
    _, path, _ = tiny_weights
    make_catalog(
        {"tiny-demo": {"arch": tiny_arch, "weights": [{"file": {"path": str(path), "sha256": "0" * 64}}]}}
    )
    from zoo.hub import ChecksumError

    with pytest.raises(ChecksumError, match=r"tiny\.safetensors"):
        zoo.load("tiny-demo")


def test_new_num_classes_reinitialises_only_the_head(make_catalog, tiny_arch, tiny_weights):
    model, path, digest = tiny_weights
    make_catalog(
        {
            "tiny-demo": {
                "arch": tiny_arch,
                "arch_args": {"num_classes": 3},
                "weights": [{"file": {"path": str(path), "sha256": digest}}],
            }
        }
    )
    net = zoo.create_model(tiny_arch, pretrained="tiny-demo", num_classes=7)
    assert net.head.out_features == 7
    torch.testing.assert_close(net.body.weight, model.body.weight)


def test_weights_that_do_not_fit_are_an_error(make_catalog, tiny_arch, tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"body.weight": torch.zeros(8, 5), "body.bias": torch.zeros(8)}, str(path))
    make_catalog({"tiny-demo": {"arch": tiny_arch, "weights": [{"file": {"path": str(path)}}]}})
    with pytest.raises(RuntimeError, match="do not fit"):
        zoo.load("tiny-demo")


def test_arch_mismatch_is_an_error(make_catalog, tiny_arch, tiny_weights):
    make_catalog({"tiny-demo": {"arch": tiny_arch}})
    with pytest.raises(ValueError, match="is for architecture"):
        zoo.create_model("some_other_arch", pretrained="tiny-demo")


def test_import_is_light():
    """`import zoo` must not import torch or Lightning."""
    import subprocess
    import sys

    code = "import sys, zoo; print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
