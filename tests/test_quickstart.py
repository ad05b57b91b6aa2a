"""`zoo quickstart` end to end on a very small SynthMotion set (the full run: README, ~minutes)."""

from zoo.cli import main

SMALL = {
    "train_per_class": 2,
    "val_per_class": 1,
    "test_per_class": 1,
    "long_videos": 0,
    "reid_identities": 0,
    "audio": False,
    "qa_per_clip": 0,
}


def test_quickstart_reports_both_runs_and_writes_the_plot(tmp_path, monkeypatch, capsys):
    from zoo import quickstart

    monkeypatch.setenv("ZOO_DATA", str(tmp_path / "data"))
    top1 = quickstart.run(tmp_path / "qs", epochs=1, synth=SMALL)
    assert set(top1) == {"pretrained", "scratch"} and all(0 <= v <= 100 for v in top1.values())
    out = capsys.readouterr().out
    assert "fine-tuned from motionformer-tiny-synthmotion" in out and "from scratch" in out
    plot = tmp_path / "qs" / "quickstart.png"
    assert plot.stat().st_size > 10_000  # curves + confusion matrix
    assert (tmp_path / "qs" / "pretrained" / "config.yaml").is_file()  # the resolved Lightning CLI config


def test_quickstart_command_is_wired(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["quickstart", "--help"])
    assert "--epochs" in capsys.readouterr().out
