"""Multi-tower checkpoints: one weights file, several encoders (video + audio), each with its preprocessing."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

import zoo
from zoo.catalog import CatalogError, parse_entry
from zoo.data.audio_transforms import audio_features, audio_preset
from zoo.errors import UsageError
from zoo.models.towers import Towers
from zoo.registry import build

VIDEO_PREFIX, AUDIO_PREFIX = "video_network.", "audio_network."


@pytest.fixture(scope="module")
def networks() -> dict[str, torch.nn.Module]:
    """The two encoders of an audio-visual checkpoint laid out like GDT's: a tiny R3D and ResNet-9 audio."""
    torch.manual_seed(0)
    return {"video": build("r3d_tiny", num_classes=0), "audio": build("resnet9_audio")}


def file_state(networks: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    state = {f"{VIDEO_PREFIX}{k}": v for k, v in networks["video"].state_dict().items()}
    state |= {f"{AUDIO_PREFIX}{k}": v for k, v in networks["audio"].state_dict().items()}
    state["mlp_v.block_forward.2.weight"] = torch.randn(4, 64)  # a projection head no tower loads
    return state


def tower_entry(path: Path, **extra) -> dict:
    return {
        "towers": {
            "video": {
                "arch": "r3d_tiny",
                "arch_args": {"num_classes": 0},
                "prefix": VIDEO_PREFIX,
                "preprocess": {"num_frames": 4, "sampling_stride": 2, "size": 32},
            },
            "audio": {"arch": "resnet9_audio", "prefix": AUDIO_PREFIX, "preprocess": {"preset": "gdt"}},
        },
        "ignore_keys": ["mlp_*"],
        "weights": [{"file": {"path": str(path)}}],
        "license": "CC-BY-NC-4.0",
        **extra,
    }


@pytest.fixture
def av_catalog(make_catalog, networks, tmp_path):
    """A catalog whose entry 'av-demo' holds both towers in one file; returns a function to rewrite the file."""

    def write(state: dict[str, torch.Tensor], **extra) -> None:
        path = tmp_path / "av.safetensors"
        save_file(state, str(path))
        make_catalog({"av-demo": tower_entry(path, **extra)})

    write(file_state(networks))
    return write


def assert_same_weights(model: torch.nn.Module, reference: torch.nn.Module) -> None:
    loaded, expected = model.state_dict(), reference.state_dict()
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key


def test_load_gives_every_tower_with_its_weights(av_catalog, networks):
    model = zoo.load("av-demo")
    assert isinstance(model, Towers) and list(model) == ["video", "audio"] and not model.training
    assert model["video"] is model.video and type(model.audio) is type(networks["audio"])
    for modality, reference in networks.items():
        assert_same_weights(model[modality], reference)
    assert model.card.name == "av-demo"
    video, audio = torch.randn(2, 3, 4, 32, 32), torch.randn(2, 1, 40, 99)
    embeddings = model(video=video, audio=audio)
    assert embeddings["video"].shape == (2, 64) and embeddings["audio"].shape == (2, 512)
    networks["audio"].eval()
    expected = networks["audio"].forward_head(networks["audio"].forward_features(audio), pre_logits=True)
    torch.testing.assert_close(embeddings["audio"], expected, rtol=0, atol=0)
    with pytest.raises(UsageError, match="video, audio"):
        model(text=torch.zeros(2, 4))


def test_load_one_tower_gives_the_plain_backbone(av_catalog, networks):
    audio = zoo.load("av-demo", tower="audio")
    assert type(audio) is type(networks["audio"]) and not audio.training
    assert_same_weights(audio, networks["audio"])
    with pytest.raises(UsageError, match=r"no 'text' tower; it has: video, audio"):
        zoo.load("av-demo", tower="text")


def test_a_key_no_tower_claims_is_an_error_unless_ignored(av_catalog, networks):
    av_catalog(file_state(networks), ignore_keys=[])
    with pytest.raises(RuntimeError, match=r"belong to no tower .*'mlp_v\.block_forward\.2\.weight'"):
        zoo.load("av-demo")


def test_a_missing_key_is_named_with_its_tower(av_catalog, networks):
    state = file_state(networks)
    del state[f"{AUDIO_PREFIX}layer1.0.conv1.weight"]
    av_catalog(state)
    with pytest.raises(RuntimeError) as err:
        zoo.load("av-demo")
    message = str(err.value)
    assert "av-demo (audio tower, keys under 'audio_network.')" in message
    assert "missing keys ['layer1.0.conv1.weight']" in message


def test_an_unexpected_key_under_a_prefix_is_named(av_catalog, networks):
    state = file_state(networks) | {f"{VIDEO_PREFIX}extra.weight": torch.zeros(3)}
    av_catalog(state)
    for tower in ("video", None):
        with pytest.raises(RuntimeError, match=r"\(video tower, keys .*unexpected keys \['extra\.weight'\]"):
            zoo.load("av-demo", tower=tower)


def test_tower_classifier_keys_say_what_may_be_dropped(av_catalog, networks, tmp_path):
    """A file keeping an unused 1000-way audio fc (as GDT's do) loads into a head-less tower; declaring that
    the tower has no classifier keys makes the same fc keys an error."""
    with_fc = build("resnet9_audio", num_classes=1000)
    with_fc.load_state_dict(networks["audio"].state_dict(), strict=False)
    state = file_state(networks) | {f"{AUDIO_PREFIX}{k}": v for k, v in with_fc.state_dict().items()}
    av_catalog(state)
    assert_same_weights(zoo.load("av-demo", tower="audio"), networks["audio"])
    entry = tower_entry(tmp_path / "av.safetensors")
    entry["towers"]["audio"]["classifier_keys"] = []
    yaml_path = tmp_path / "checkpoints.yaml"
    yaml_path.write_text(yaml.safe_dump({"av-demo": entry}))
    from zoo import catalog as catalog_mod

    parsed = catalog_mod.parse_catalog(yaml_path)
    assert parsed["av-demo"].towers["audio"].classifier_keys == ()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(catalog_mod, "catalog", lambda: parsed)
        with pytest.raises(RuntimeError, match=r"unexpected keys \['fc\.bias', 'fc\.weight'\]"):
            zoo.load("av-demo", tower="audio")


def test_create_model_fine_tunes_one_tower(av_catalog, networks):
    video = zoo.create_model("r3d_tiny", pretrained="av-demo", tower="video", num_classes=5)
    assert video.fc.out_features == 5  # a new head, the trunk from the file
    torch.testing.assert_close(video.stem[0].weight, networks["video"].stem[0].weight, rtol=0, atol=0)
    audio = zoo.create_model("resnet9_audio", pretrained="av-demo")  # the only tower of that arch
    assert_same_weights(audio, networks["audio"])
    with pytest.raises(
        UsageError, match=r"\(audio tower\) is for architecture 'resnet9_audio', not 'r3d_tiny'"
    ):
        zoo.create_model("r3d_tiny", pretrained="av-demo", tower="audio")
    with pytest.raises(UsageError, match="holds several towers"):
        zoo.create_model("r2plus1d_tiny", pretrained="av-demo")


def test_transform_for_each_tower(av_catalog, tmp_path):
    from zoo.data.encode import index_pattern_frames, write_video
    from zoo.data.preprocess import AudioPreprocessor, ClipPreprocessor

    video_tf = zoo.transform_for("av-demo", tower="video")
    assert isinstance(video_tf, ClipPreprocessor) and (video_tf.num_frames, video_tf.size) == (4, 32)
    audio_tf = zoo.transform_for("av-demo", tower="audio")
    front_end, window, _ = audio_preset("gdt")
    assert isinstance(audio_tf, AudioPreprocessor) and audio_tf.front_end == front_end
    assert audio_tf.seconds == window.seconds == 1.0
    waveform = torch.rand(1, 3 * front_end.sample_rate) - 0.5
    expected = audio_features(waveform[:, : front_end.sample_rate], front_end)  # the first window.seconds
    torch.testing.assert_close(audio_tf(waveform), expected, rtol=0, atol=0)
    assert audio_tf(waveform).shape == (1, 40, 99)  # GDT's audio input (B, 1, 40, 99)
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(24000) / 24000)).astype(np.float32)[None]
    clip = write_video(
        tmp_path / "clip.mp4", index_pattern_frames(8, 32, 32), 8.0, audio=tone, sample_rate=24000
    )
    assert audio_tf(clip).shape == (1, 40, 99) and video_tf(clip).shape == (1, 3, 4, 32, 32)
    with pytest.raises(UsageError, match=r"several towers \(video, audio\); choose one with tower="):
        zoo.transform_for("av-demo")


def test_text_tower_transform_is_its_tokenizer(make_catalog):
    make_catalog(
        {
            "vt-demo": {
                "towers": {
                    "video": {"arch": "r3d_tiny", "prefix": "video."},
                    "text": {
                        "arch": "text_encoder",
                        "arch_args": {"config": {"model_type": "bert", "hidden_size": 32}},
                        "prefix": "text.",
                        "preprocess": {"tokenizer": "bytes", "max_length": 6},
                    },
                }
            }
        }
    )
    tokens = zoo.transform_for("vt-demo", tower="text")(["a red disc moves"])
    assert tokens["input_ids"].shape == (1, 6)


def test_audio_fields_are_checked_when_the_front_end_is_built(tmp_path, capsys):
    entry = tower_entry(tmp_path / "av.safetensors")
    entry["towers"]["audio"]["preprocess"] = {"preset": "gdt", "nfft": 512}
    with pytest.raises(CatalogError, match=r"entry 'av-bad', field 'towers\.audio\.preprocess'.*nfft"):
        zoo.api.entry_transform(parse_entry("av-bad", entry), "audio")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"av-bad": entry}))
    from zoo.cli import main

    assert main(["checkpoints", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "towers.audio.preprocess" in err and "nfft" in err


def test_single_architecture_entry_is_the_tower_of_its_modality(make_catalog, tiny_arch, tmp_path):
    model = build(tiny_arch)
    save_file(model.state_dict(), str(tmp_path / "tiny.safetensors"))
    make_catalog(
        {
            "tiny-demo": {
                "arch": tiny_arch,
                "weights": [{"file": {"path": str(tmp_path / "tiny.safetensors")}}],
            }
        }
    )
    assert torch.equal(zoo.load("tiny-demo", tower="video").body.weight, model.body.weight)
    with pytest.raises(UsageError, match=r"no 'audio' tower; it has: video"):
        zoo.load("tiny-demo", tower="audio")


def test_card_lists_the_towers(av_catalog):
    text = zoo.card("av-demo").to_markdown()
    assert "- architecture: towers video, audio" in text
    assert "| audio | `resnet9_audio` | 4.9M | `audio_network.*` | preset: gdt |" in text
    assert re.search(
        r"\| video \| `r3d_tiny` \{'num_classes': 0\} \| 0\.4M \| `video_network\.\*` \| num_frames: 4", text
    )
    assert "Keys not loaded: `mlp_*`" in text
    assert 'zoo.transform_for("av-demo", tower="audio")' in text and "model(video=video, audio=audio)" in text


def test_the_documented_examples_parse():
    """The multi-tower examples of docs/catalog.md are valid catalog entries."""
    text = (Path(__file__).parents[1] / "docs" / "catalog.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "towers:" in b]
    assert blocks
    for block in blocks:
        for name, raw in yaml.safe_load(block).items():
            entry = parse_entry(name, raw)
            assert entry.towers and parse_entry(name, entry.to_dict()) == entry


def test_zoo_models_lists_a_tower_entry(av_catalog, capsys):
    from zoo.cli import main

    assert main(["models", "av-*"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "av-demo" in line)
    assert "video: r3d_tiny + audio: resnet9_audio" in row and "5.3M" in row  # both towers' parameters


def test_tower_needs_a_pretrained_checkpoint():
    with pytest.raises(UsageError, match="give pretrained= too"):
        zoo.create_model("r3d_tiny", tower="video")


def test_video_classifier_starts_from_one_tower(av_catalog, networks):
    from zoo.methods.classifier import VideoClassifier

    for tower in (None, "video"):  # the tower built from the backbone, or named
        model = VideoClassifier("r3d_tiny", num_classes=3, init_from="av-demo", init_tower=tower)
        model.load_init_weights()
        assert model.model.fc.out_features == 3
        torch.testing.assert_close(
            model.model.stem[0].weight, networks["video"].stem[0].weight, rtol=0, atol=0
        )
    with pytest.raises(UsageError, match=r"is for architecture 'resnet9_audio', not 'r3d_tiny'"):
        VideoClassifier("r3d_tiny", num_classes=3, init_from="av-demo", init_tower="audio")


def test_a_tower_entry_publishes_and_its_folder_loads_every_tower(av_catalog, networks, tmp_path):
    from huggingface_hub import ModelCard

    from zoo.publish import publish

    plan = publish("av-demo", "org/av-demo", out_dir=tmp_path / "out", dry_run=True)
    loaded = zoo.load(str(plan.folder))
    assert set(loaded.keys()) == {"video", "audio"}
    assert_same_weights(loaded["video"], networks["video"])
    assert_same_weights(loaded["audio"], networks["audio"])
    card = ModelCard.load(plan.folder / "README.md")
    assert card.data.pipeline_tag == "feature-extraction"
    assert {"video", "audio", "r3d_tiny", "resnet9_audio"} <= set(card.data.tags)
    assert "keys `video_network." in card.text and "| audio.preset | gdt |" in card.text
    # a Towers module (e.g. after fine-tuning) publishes under the entry's prefixes
    plan = publish("av-demo", "org/av-demo", out_dir=tmp_path / "again", dry_run=True, model=loaded)
    assert_same_weights(zoo.load(str(plan.folder), tower="audio"), networks["audio"])


def test_a_tower_that_does_not_fit_its_weights_is_not_published(av_catalog, networks, tmp_path):
    from zoo.publish import publish

    loaded = zoo.load("av-demo")
    loaded["audio"] = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"weights for 'av-demo \(audio tower\)' do not fit resnet9_audio"):
        publish("av-demo", "org/av-demo", out_dir=tmp_path / "out", dry_run=True, model=loaded)


def test_zoo_eval_reads_the_video_tower(av_catalog, networks):
    from zoo.eval.commands import _preprocess, load_model

    assert_same_weights(load_model("av-demo"), networks["video"])
    assert_same_weights(load_model("av-demo", "audio"), networks["audio"])
    assert _preprocess("av-demo").num_frames == 4
