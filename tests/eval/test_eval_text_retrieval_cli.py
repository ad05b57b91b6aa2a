"""``zoo eval retrieval --captions``: text↔video retrieval of a method checkpoint over a manifest with several
captions per video in several languages; bad caption files are named with their line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_fit_override

from zoo.cli import main
from zoo.data.datamodule import VideoDataModule
from zoo.data.text import build_tokenizer
from zoo.errors import UsageError
from zoo.eval.commands import read_captions
from zoo.eval.retrieval import text_video_retrieval
from zoo.methods.supportset import SupportSet

RECIPE = Path(__file__).parents[2] / "configs" / "supportset" / "synthmotion.yaml"


@pytest.fixture
def supportset_run(tmp_path, tiny_synth_data):
    """A two-step support-set checkpoint and the tiny SynthMotion folder it was trained on."""
    override = tiny_fit_override(tmp_path, tiny_synth_data)
    assert main(["fit", "--config", str(RECIPE), "--config", str(override)]) == 0
    return tmp_path / "ckpt" / "last.ckpt", Path(tiny_synth_data["synth_root"])


def _cli(capsys, *argv: str) -> str:
    assert (
        main(["eval", "retrieval", *argv, "--workers", "0", "--frames", "8", "--stride", "4", "--size", "32"])
        == 0
    )
    return capsys.readouterr().out


def test_text_video_retrieval_per_language_equals_the_method_embeddings(supportset_run, capsys):
    checkpoint, root = supportset_run
    out = _cli(
        capsys, "--model", str(checkpoint), "--data", str(root), "--captions", "--languages", "en", "de"
    )
    for row in ("all/text_to_video", "all/video_to_text", "en/text_to_video", "de/video_to_text"):
        assert row in out
    assert "MedR" in out and "R@10" in out
    figures = json.loads(
        _cli(
            capsys,
            "--model",
            str(checkpoint),
            "--data",
            str(root),
            "--captions",
            "--languages",
            "en",
            "de",
            "--json",
        )
        .strip()
        .splitlines()[-1]
    )
    # independently: the method's own towers over the test clips and their en/de captions
    model = SupportSet.load_from_checkpoint(checkpoint).eval()
    stems = [Path(row["path"]).stem for row in csv.DictReader((root / "test.csv").open())]
    rows = [c for c in json.loads((root / "captions.json").read_text()) if c["lang"] in ("en", "de")]
    rows = [c for c in rows if c["video_id"] in stems]
    datamodule = VideoDataModule(
        test_manifest=str(root / "test.csv"), num_frames=8, stride=4.0, size=32, batch_size=64, num_workers=0
    )
    datamodule.setup("test")
    with torch.no_grad():
        batch = next(iter(datamodule.test_dataloader()))
        v = model.encode_video(batch["video"])
        t = model.encode_text(build_tokenizer("bytes", max_length=64)([c["caption"] for c in rows]))
    expected = text_video_retrieval(
        t @ F.normalize(v, dim=1).T,
        torch.tensor([stems.index(c["video_id"]) for c in rows]),
        [c["lang"] for c in rows],
    )
    assert figures.keys() >= {"en/text_to_video/R@1", "de/video_to_text/MedR", "text_to_video/R@5"}
    for key, value in expected.items():
        assert figures[key] == pytest.approx(value, abs=1e-6), key


def test_missing_languages_and_long_captions_are_reported_once(supportset_run, capsys, tmp_path):
    checkpoint, root = supportset_run
    rows = json.loads((root / "captions.json").read_text())
    first_test = next(r["video_id"] for r in rows if r["video_id"].startswith("test"))
    kept = [r for r in rows if not (r["lang"] == "de" and r["video_id"] == first_test)]
    long_row = next(n for n, r in enumerate(kept) if r["video_id"] == first_test)
    kept[long_row] = {**kept[long_row], "caption": "x" * 200}
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps(kept))
    out = _cli(capsys, "--model", str(checkpoint), "--data", str(root), "--captions", str(captions))
    assert out.count("have no de caption") == 1 and f"(first: {first_test})" in out
    test_texts = [r["caption"] for r in kept if r["video_id"].startswith("test")]
    too_long = sum(len(t.encode()) + 2 > 64 for t in test_texts)  # bytes + bos/eos
    assert out.count("truncated") == 1
    assert f"{too_long} of {len(test_texts)} captions truncated to 64 tokens" in out


def test_bad_caption_files_name_the_file_and_line(tmp_path):
    bad = tmp_path / "captions.csv"
    bad.write_text("video_id,caption,lang\nv1,a red disc,en\nv2,  ,de\n")
    with pytest.raises(UsageError, match=r"captions\.csv, line 3: empty caption for video 'v2'"):
        read_captions(bad)
    assert read_captions(_ok(tmp_path), ["de"]) == [("v2", "eine Scheibe", "de")]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps([{"video_id": "v1", "caption": "x"}, {"caption": "y"}]))
    with pytest.raises(UsageError, match=r"broken\.json, item 1: needs 'video_id' and 'caption'"):
        read_captions(broken)
    with pytest.raises(UsageError, match="no caption file"):
        read_captions(tmp_path / "absent.json")


def _ok(tmp_path: Path) -> Path:
    path = tmp_path / "ok.csv"
    path.write_text("video_id,caption,lang\nv1,a red disc,en\nv2,eine Scheibe,de\n")
    return path
