"""zoo.load / zoo.create_model end to end on weights the tests make themselves."""

import hashlib

import pytest
import torch
from safetensors.torch import save_file

import zoo
from zoo.hub import UnsafeFolderError
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


# --- names, paths and folders ------------------------------------------------------------------


def _folder(tmp_path, tiny_weights, tiny_arch, **config):
    import json

    _, path, digest = tiny_weights
    folder = tmp_path / "pub"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(path.read_bytes())
    config = {"arch": tiny_arch, "arch_args": {"num_classes": 3}, "weights_sha256": digest, **config}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_folder_named_like_an_entry_does_not_shadow_it(
    make_catalog, tiny_arch, tiny_weights, tmp_path, monkeypatch
):
    model, path, digest = tiny_weights
    make_catalog(
        {"tiny-demo": {"arch": tiny_arch, "weights": [{"file": {"path": str(path), "sha256": digest}}]}}
    )
    shadow = tmp_path / "cwd" / "tiny-demo"
    shadow.mkdir(parents=True)
    save_file(
        {k: torch.zeros_like(v) for k, v in model.state_dict().items()}, str(shadow / "model.safetensors")
    )
    (shadow / "config.json").write_text(f'{{"arch": "{tiny_arch}"}}')
    monkeypatch.chdir(tmp_path / "cwd")
    loaded = zoo.load("tiny-demo")  # the catalog entry, not the folder
    assert torch.equal(loaded.body.weight, model.body.weight)
    with pytest.raises(UnsafeFolderError, match="no weights_sha256"):  # ./name is the folder
        zoo.load("./tiny-demo")


def test_unknown_name_that_is_a_local_folder_says_how_to_write_the_path(tmp_path, monkeypatch):
    (tmp_path / "my-model").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KeyError, match=r"\./my-model"):
        zoo.load("my-model")


def test_published_folder_loads_and_is_verified(tmp_path, tiny_weights, tiny_arch):
    model, _, _ = tiny_weights
    folder = _folder(tmp_path, tiny_weights, tiny_arch)
    loaded = zoo.load(str(folder))
    assert torch.equal(loaded.head.bias, model.head.bias)
    assert torch.equal(zoo.load(folder).head.bias, model.head.bias)  # a Path object is a path
    assert zoo.create_model(tiny_arch, pretrained=str(folder)).head.out_features == 3


@pytest.mark.parametrize("weights_file", ["../outside.safetensors", "/etc/hostname", "link.safetensors"])
def test_folder_weights_may_not_leave_the_folder(tmp_path, tiny_weights, tiny_arch, weights_file):
    _, path, _ = tiny_weights
    folder = _folder(tmp_path, tiny_weights, tiny_arch, weights_file=weights_file)
    (tmp_path / "outside.safetensors").write_bytes(path.read_bytes())
    (folder / "link.safetensors").symlink_to(tmp_path / "outside.safetensors")
    with pytest.raises(UnsafeFolderError, match=r"config\.json"):
        zoo.load(str(folder))


def test_folder_without_sha256_says_what_is_missing(tmp_path, tiny_weights, tiny_arch):
    _, _, digest = tiny_weights
    folder = _folder(tmp_path, tiny_weights, tiny_arch, weights_sha256=None)
    with pytest.raises(UnsafeFolderError) as err:
        zoo.create_model(tiny_arch, pretrained=str(folder))
    assert "weights_sha256" in str(err.value) and digest in str(err.value)


# --- weights content ------------------------------------------------------------------------------


def test_nonfinite_weights_are_refused_unless_allowed(tmp_path, tiny_arch):
    from zoo.errors import NonFiniteWeightsError

    state = build(tiny_arch).state_dict()
    state["body.bias"][1] = float("nan")
    state["head.weight"][0, 0] = float("inf")
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(NonFiniteWeightsError) as err:
        zoo.create_model(tiny_arch, pretrained=str(path))
    assert str(path) in str(err.value) and "body.bias" in str(err.value) and "head.weight" in str(err.value)
    model = zoo.create_model(tiny_arch, pretrained=str(path), allow_nonfinite=True)
    assert torch.isnan(model.body.bias[1])


def test_cast_dtypes_are_named_in_a_warning(tmp_path, tiny_arch):
    from zoo.errors import WeightsDtypeWarning

    state = build(tiny_arch).state_dict()
    state["body.weight"] = state["body.weight"].half()
    path = tmp_path / "half.safetensors"
    save_file(state, str(path))
    with pytest.warns(WeightsDtypeWarning, match=r"body\.weight \(torch\.float16 -> torch\.float32\)"):
        zoo.create_model(tiny_arch, pretrained=str(path))


@pytest.mark.parametrize("content", [b"", b"\x00" * 10, b"not weights at all"])
def test_unreadable_weights_file_names_itself(tmp_path, tiny_arch, content):
    from zoo.errors import WeightsFileError

    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsFileError, match=str(path)):
        zoo.create_model(tiny_arch, pretrained=str(path))
