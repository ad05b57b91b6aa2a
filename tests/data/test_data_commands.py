"""``zoo data synth | check | info | tokenizer``: exit codes and what they print."""

import argparse
import json

import pytest

from zoo.data.commands import configure
from zoo.data.encode import index_pattern_frames, write_video


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="zoo data")
    configure(parser)
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # rich tables do not wrap long paths


@pytest.fixture
def manifest(tmp_path):
    frames = index_pattern_frames(12, 32, 32)
    for i in range(3):
        write_video(tmp_path / f"ok{i}.mp4", frames, 12.0)
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    (tmp_path / "classes.txt").write_text("a\nb\n")
    rows = ["path,label,caption", "ok0.mp4,0,first", "ok1.mp4,1,", "ok2.mp4,1,"]
    (tmp_path / "good.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "mixed.csv").write_text("\n".join([*rows, "broken.mp4,0,", "absent.mp4,1,"]) + "\n")
    return tmp_path


def test_check_passes_on_good_files(manifest, capsys):
    assert _run("check", str(manifest / "good.csv"), "--workers", "1") == 0
    assert "all 3 videos decode" in capsys.readouterr().out


def test_check_lists_every_bad_file_with_its_reason(manifest, capsys):
    assert _run("check", str(manifest / "mixed.csv")) == 1
    out = capsys.readouterr().out
    assert "2 unreadable of 5" in out
    assert str(manifest / "broken.mp4") in out and str(manifest / "absent.mp4") in out
    assert "no such file" in out
    assert "ok0.mp4" not in out.split("unreadable")[1]


def test_check_reads_what_training_reads(odd_media, tmp_path, capsys):
    """MPEG-PS with B-frames passed the check but not training; a VFR clip's window was refused by both."""
    rows = ["path,label,start,end", f"{odd_media['mpeg_ps']},0,,", f"{odd_media['vfr_mkv']},1,3.0,"]
    (tmp_path / "odd.csv").write_text("\n".join(rows) + "\n")
    assert _run("check", str(tmp_path / "odd.csv"), "--workers", "1") == 0
    assert "all 2 videos decode" in capsys.readouterr().out


def test_check_runs_the_training_loading_path(manifest, monkeypatch):
    """The check loads a record through VideoDataset, as training does: what fails there fails here."""
    from zoo.data import datasets
    from zoo.data.commands import check_record
    from zoo.data.formats import VideoRecord

    def refuse(self, index, np_rng, torch_gen):
        raise datasets.VideoDecodeError(self.records[index].path, "refused by the training path")

    record = VideoRecord(manifest / "ok0.mp4", 0)
    assert check_record(record) is None
    monkeypatch.setattr(datasets.VideoDataset, "_load", refuse)
    assert "refused by the training path" in check_record(record)


def test_info_refuses_a_huge_label_in_one_line(tmp_path):
    """``zoo data info`` was killed by memory: class names were built up to label 10**20."""
    from zoo.data.formats import ManifestError

    (tmp_path / "m.csv").write_text("path,label\nx.mp4,99999999999999999999\n")
    with pytest.raises(ManifestError, match=r"m\.csv, line 2: label 99999999999999999999 would make"):
        _run("info", str(tmp_path / "m.csv"))


def test_info_summarises(manifest, capsys):
    assert _run("info", str(manifest / "mixed.csv"), "--probe", "1") == 0
    out = capsys.readouterr().out
    assert "records" in out and " 5 " in out
    assert "missing files" in out and "records per class" in out
    assert "h264" in out  # the probed video's codec


def test_synth_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "synth"
    code = _run(
        "synth", str(out), "--seed", "1", "--size", "32", "--frames", "8", "--classes", "2",
        "--train-per-class", "1", "--val-per-class", "1", "--test-per-class", "1",
        "--long-videos", "0", "--reid-identities", "0", "--languages", "en", "--no-audio", "--workers", "1",
    )  # fmt: skip
    assert code == 0 and str(out) in capsys.readouterr().out
    meta = json.loads((out / "synthmotion.json").read_text())
    assert (
        meta["config"]["seed"] == 1
        and meta["config"]["num_classes"] == 2
        and meta["config"]["audio"] is False
    )
    assert (out / "classes.txt").read_text().split() == ["slide_left", "slide_right"]
    assert _run("check", str(out / "train.csv")) == 0


def test_bad_arguments_exit_through_argparse(manifest):
    with pytest.raises(SystemExit):
        _run("check", str(manifest / "good.csv"), "--format", "nope")
    with pytest.raises(SystemExit):
        _run("explode")


def test_tokenizer_trains_on_caption_files_of_chosen_languages(tmp_path, capsys):
    from zoo.data.text import build_tokenizer

    captions = [
        {"video_id": f"v{i}", "caption": text, "lang": lang}
        for i in range(20)
        for lang, text in [("en", f"a red circle slides left {i}"), ("de", f"ein roter Kreis gleitet {i}")]
    ]
    (tmp_path / "captions.json").write_text(json.dumps(captions))
    (tmp_path / "more.txt").write_text("ein blaues Quadrat springt\n\n")
    out = tmp_path / "tok"
    assert _run("tokenizer", str(out), str(tmp_path / "captions.json"), str(tmp_path / "more.txt"),
                "--languages", "de", "--vocab-size", "300") == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert (
        "21 captions" in printed and str(out / "tokenizer.json") in printed
    )  # 20 German lines + the .txt line
    tokenizer = build_tokenizer(str(out), max_length=16)
    ids = tokenizer(["ein roter Kreis"])["input_ids"]
    assert ids.shape[0] == 1 and ids.shape[1] <= 16 and tokenizer.decode(ids[0]).strip() == "ein roter Kreis"


def test_tokenizer_reads_synthmotion_captions(tmp_path, monkeypatch, capsys):
    from zoo.data import synthmotion

    root = tmp_path / "synth"
    root.mkdir()
    (root / "captions.json").write_text(json.dumps([{"video_id": "a", "caption": "a square", "lang": "en"}]))
    monkeypatch.setattr(synthmotion, "ensure", lambda config: root)  # the default set takes minutes to make
    assert _run("tokenizer", str(tmp_path / "tok.json"), "--synth", "--vocab-size", "280") == 0
    assert (tmp_path / "tok.json").is_file() and "1 captions" in capsys.readouterr().out


def test_tokenizer_needs_some_text(tmp_path):
    from zoo.errors import UsageError

    with pytest.raises(UsageError, match="FILES"):
        _run("tokenizer", str(tmp_path / "tok"))


def test_zoo_data_alone_prints_its_help(capsys):
    """It printed argparse's "the following arguments are required: SUBCOMMAND" and exited 2."""
    from zoo.cli import main

    assert main(["data"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: zoo data")
    assert all(command in out for command in ("synth", "check", "info", "tokenizer"))
