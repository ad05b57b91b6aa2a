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
        for arch, arch_args in entry.architectures:
            assert registry.is_model(arch), f"{name}: unknown arch {arch}"
            with torch.device("meta"):
                registry.build(arch, **arch_args)
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


# --- entries with several towers ---------------------------------------------------------------

TOWERS = {
    "av-demo": {
        "towers": {
            "video": {
                "arch": "r3d_tiny",
                "prefix": "video_network.",
                "preprocess": {"num_frames": 8, "size": 64},
            },
            "audio": {
                "arch": "resnet9_audio",
                "prefix": "audio_network.",
                "preprocess": {"preset": "gdt", "seconds": 2.0, "n_filters": 64},
                "classifier_keys": ["fc."],
            },
            "text": {"arch": "text_encoder", "prefix": "text_network.", "preprocess": {"tokenizer": "bytes"}},
        },
        "ignore_keys": ["mlp_*"],
        "license": "MIT",
    }
}


def test_towers_are_typed_and_round_trip(tmp_path):
    from zoo.catalog import AudioPreprocess, Preprocess, TextPreprocess, parse_entry

    entry = parse_catalog(write(tmp_path, TOWERS))["av-demo"]
    assert sorted(entry.towers) == ["audio", "text", "video"] and entry.arch is None
    video, audio, text = (entry.towers[m] for m in ("video", "audio", "text"))
    assert isinstance(video.preprocess, Preprocess) and video.preprocess.num_frames == 8
    assert audio.preprocess == AudioPreprocess(preset="gdt", seconds=2.0, front_end={"n_filters": 64})
    assert text.preprocess == TextPreprocess(tokenizer="bytes") and audio.classifier_keys == ("fc.",)
    assert video.classifier_keys is None and entry.ignore_keys == ("mlp_*",)
    assert sorted(entry.architectures) == [("r3d_tiny", {}), ("resnet9_audio", {}), ("text_encoder", {})]
    assert parse_entry("av-demo", entry.to_dict()) == entry  # what a published folder's config.json holds


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (
            lambda e: e["towers"].update(vidoe=e["towers"].pop("video")),
            "towers.vidoe",
            "did you mean 'video'",
        ),
        (lambda e: e["towers"]["audio"].pop("arch"), "towers.audio.arch", "is required"),
        (lambda e: e["towers"]["video"].update(prefx="v."), "towers.video.prefx", "did you mean 'prefix'"),
        (lambda e: e["towers"]["video"].update(prefix="audio_network.x"), "towers.video.prefix", "both"),
        (lambda e: e["towers"]["audio"].update(prefix=""), "towers.text.prefix", "audio.prefix ''"),
        (
            lambda e: e["towers"]["video"]["preprocess"].update(num_frames=0),
            "towers.video.preprocess.num_frames",
            ">= 1",
        ),
        (
            lambda e: e["towers"]["video"]["preprocess"].update(modality="audio"),
            "towers.video.preprocess.modality",
            "video",
        ),
        (
            lambda e: e["towers"]["audio"]["preprocess"].update(seconds=0),
            "towers.audio.preprocess.seconds",
            "> 0",
        ),
        (
            lambda e: e["towers"]["audio"]["preprocess"].update(preset=3),
            "towers.audio.preprocess.preset",
            "expected str",
        ),
        (lambda e: e["towers"]["text"]["preprocess"].pop("tokenizer"), "towers.text.preprocess", "tokenizer"),
        (
            lambda e: e["towers"]["text"]["preprocess"].update(max_length=1),
            "towers.text.preprocess.max_length",
            ">= 2",
        ),
        (
            lambda e: e["towers"]["text"]["preprocess"].update(tokeniser="x"),
            "towers.text.preprocess",
            "did you mean 'tokenizer'",
        ),
        (
            lambda e: e["towers"]["audio"].update(classifier_keys="fc."),
            "towers.audio.classifier_keys",
            "list",
        ),
        (lambda e: e["towers"].clear(), "towers", "expected a mapping"),
        (lambda e: e.update(arch="r3d_tiny"), "arch", "per tower"),
        (lambda e: e.update(preprocess={}), "preprocess", "per tower"),
        (lambda e: e.update(ignore_keys="mlp_*"), "ignore_keys", "list"),
    ],
)
def test_bad_tower_field_names_entry_and_field(tmp_path, mutate, field, message):
    entries = copy.deepcopy(TOWERS)
    mutate(entries["av-demo"])
    with pytest.raises(CatalogError) as err:
        parse_catalog(write(tmp_path, entries))
    text = str(err.value)
    assert "entry 'av-demo'" in text and f"field '{field}'" in text and message in text, text


def test_misspelt_tower_arch_is_named_by_validate_not_at_reading(tmp_path, capsys):
    """Reading the catalog imports no model (``zoo card`` stays fast); ``zoo checkpoints validate`` and
    loading check every tower's architecture."""
    from zoo.cli import main

    entries = copy.deepcopy(TOWERS)
    entries["av-demo"]["towers"]["audio"]["arch"] = "resnet9_audo"
    path = write(tmp_path, entries)
    assert parse_catalog(path)["av-demo"].towers["audio"].arch == "resnet9_audo"
    assert main(["checkpoints", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "entry 'av-demo', field 'towers.audio.arch'" in err and "resnet9_audio" in err, err


def test_motion_vector_towers_take_two_channel_statistics(tmp_path):
    entries = {
        "mv": {
            "towers": {"motion_vectors": {"arch": "r3d_10_mv", "preprocess": {"mean": [0, 0], "std": [1, 1]}}}
        }
    }
    assert parse_catalog(write(tmp_path, entries))["mv"].towers["motion_vectors"].preprocess.mean == (
        0.0,
        0.0,
    )
    entries["mv"]["towers"]["motion_vectors"]["preprocess"] = {"mean": [0, 0, 0], "std": [1, 1, 1]}
    with pytest.raises(CatalogError, match=r"towers\.motion_vectors\.preprocess\.mean.*1 or 2 values"):
        parse_catalog(write(tmp_path, entries))


def test_ignore_keys_need_towers(tmp_path):
    entries = copy.deepcopy(GOOD)
    entries["tiny-demo"]["ignore_keys"] = ["head.*"]
    with pytest.raises(CatalogError, match=r"field 'ignore_keys': is for an entry with towers"):
        parse_catalog(write(tmp_path, entries))
