import copy

import pytest
import torch

from zoo import registry
from zoo.catalog import CatalogError, FileSource, UrlSource, catalog, parse_catalog

GOOD = {
    "tiny-demo": {
        "arch": "zoo_test_tinynet",
        "arch_args": {"num_classes": 3},
        "weights": [
            {"url": {"url": "https://example.org/w.pth", "format": "tiny-pickle", "sha256": None}},
            {"file": {"path": "weights/tiny.safetensors", "sha256": "a" * 64}},
        ],
        "verified": False,
        "preprocess": {"num_frames": 8, "size": 64, "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]},
        "metrics": {
            "paper": [{"name": "top1", "value": 80.5, "dataset": "K400"}],
            "measured": [{"name": "top1", "value": 79.9, "dataset": "K400", "command": "zoo test ..."}],
        },
        "license": "CC-BY-NC-4.0",
        "paper": {"title": "A paper", "url": "https://arxiv.org/abs/1"},
    }
}


def write(tmp_path, entries):
    import yaml

    path = tmp_path / "checkpoints.yaml"
    path.write_text(yaml.safe_dump(entries))
    return path


def test_valid_entry_is_typed(tmp_path):
    entry = parse_catalog(write(tmp_path, GOOD))["tiny-demo"]
    assert isinstance(entry.weights[0], UrlSource) and entry.weights[0].format == "tiny-pickle"
    assert isinstance(entry.weights[1], FileSource)
    assert entry.preprocess.mean == (0.5, 0.5, 0.5)
    assert entry.metrics.paper[0].value == 80.5 and entry.metrics.measured[0].command
    assert entry.to_dict()["weights"][1] == {
        "file": {"path": "weights/tiny.safetensors", "format": "safetensors", "sha256": "a" * 64}
    }


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda e: e.update(archh="x"), "archh", "did you mean 'arch'"),
        (lambda e: e.pop("arch"), "arch", "is required"),
        (lambda e: e["preprocess"].update(num_frames="eight"), "preprocess.num_frames", "expected int"),
        (lambda e: e["preprocess"].update(sise=64), "preprocess", "did you mean 'size'"),
        (
            lambda e: e["weights"][1]["file"].update(sha256="XYZ"),
            "weights[1].file.sha256",
            "not a lowercase hex",
        ),
        (lambda e: e["weights"].append({"ftp": {}}), "weights[2]", "one of"),
        (lambda e: e["weights"][0]["url"].update(url="ftp://x"), "weights[0].url.url", "http"),
        (lambda e: e["metrics"]["measured"][0].pop("command"), "metrics.measured[0].command", "command"),
        (lambda e: e.update(verified=True), "verified", "no sha256"),
        (lambda e: e["preprocess"].update(channel_order="gbr"), "preprocess.channel_order", "rgb"),
        (lambda e: e["metrics"]["paper"][0].update(value="high"), "metrics.paper[0].value", "expected float"),
        (lambda e: e["preprocess"].update(num_frames=0), "preprocess.num_frames", ">= 1"),
        (lambda e: e["preprocess"].update(test_crops=2), "preprocess.test_crops", "three crops"),
        (lambda e: e["preprocess"].update(mean=[0.5]), "preprocess.mean", "1 or 3 values"),
        (lambda e: e["preprocess"].update(std=[0.2, 0.0, 0.2]), "preprocess.std", "> 0"),
    ],
)
def test_bad_field_names_entry_and_field(tmp_path, mutate, field, message):
    entries = copy.deepcopy(GOOD)
    mutate(entries["tiny-demo"])
    with pytest.raises(CatalogError) as err:
        parse_catalog(write(tmp_path, entries))
    text = str(err.value)
    assert "entry 'tiny-demo'" in text and f"field '{field}'" in text and message in text


def test_not_yaml(tmp_path):
    path = tmp_path / "checkpoints.yaml"
    path.write_text("a: [unclosed")
    with pytest.raises(CatalogError, match="not valid YAML"):
        parse_catalog(path)


def test_packaged_catalog_matches_registry():
    """Every shipped entry names a registered architecture whose arguments build."""
    entries = catalog()
    for name, entry in entries.items():
        assert registry.is_model(entry.arch), f"{name}: unknown arch {entry.arch}"
        with torch.device("meta"):
            registry.build(entry.arch, **entry.arch_args)
        for source in entry.weights:
            if source.format != "safetensors":
                from zoo.convert import converter_names

                assert source.format in converter_names(), f"{name}: no converter '{source.format}'"


def test_duplicate_entry_names_are_an_error_naming_both_lines(tmp_path):
    path = tmp_path / "checkpoints.yaml"
    path.write_text("tiny-a:\n  arch: zoo_test_tinynet\ntiny-b:\n  arch: x\ntiny-a:\n  arch: y\n")
    with pytest.raises(CatalogError, match=r"'tiny-a' is given twice, on lines 1 and 5"):
        parse_catalog(path)


def test_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    lines += ["tiny-bomb:", "  arch: zoo_test_tinynet", "  notes: *l8"]
    path = tmp_path / "checkpoints.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CatalogError, match=r"aliases .* expand it to \d+ values"):
        parse_catalog(path)


def test_small_aliases_still_parse(tmp_path):
    path = tmp_path / "checkpoints.yaml"
    path.write_text(
        "a:\n  arch: zoo_test_tinynet\n  paper: &p {title: T}\nb:\n  arch: zoo_test_tinynet\n  paper: *p\n"
    )
    assert parse_catalog(path)["b"].paper.title == "T"


def test_file_source_may_not_leave_the_package(tmp_path):
    bad = copy.deepcopy(GOOD)
    bad["tiny-demo"]["weights"][1]["file"]["path"] = "../../../etc/passwd"
    with pytest.raises(CatalogError, match=r"weights\[1\]\.file\.path.*leaves the zoo package"):
        parse_catalog(write(tmp_path, bad))


def test_checkpoints_validate_accepts_hub_sources(tmp_path, tiny_arch, capsys):
    from zoo.cli import main

    entries = copy.deepcopy(GOOD)
    entries["tiny-demo"]["weights"] = [{"hub": {"repo_id": "org/tiny"}}]
    assert main(["checkpoints", "validate", str(write(tmp_path, entries))]) == 0
    assert "1 entries valid" in capsys.readouterr().out
