"""`zoo quickstart` end to end on a very small SynthMotion set (the full run: README, ~minutes)."""

import torch

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
    assert "near chance after 1 epochs is expected" in out
    for run in ("pretrained", "scratch"):  # the output says where each run's logs and metrics are
        metrics = (tmp_path / "qs" / run / "metrics.csv").resolve()
        assert metrics.is_file() and f"{run} run: metrics per epoch {metrics}," in out


def test_quickstart_plot_shows_the_chance_level():
    import matplotlib.pyplot as plt

    from zoo import quickstart

    classes = ["a", "b", "c", "d"]
    run = {
        "curve": [(0, 0.25), (1, 0.5)],
        "label": torch.tensor([0, 1, 2, 3]),
        "pred": torch.tensor([0, 1, 2, 0]),
    }
    fig = quickstart._figure(
        {"pretrained": {**run, "classes": classes}, "scratch": {**run, "classes": classes}}
    )
    curves = fig.axes[0]
    (chance,) = [line for line in curves.get_lines() if line.get_label().startswith("chance")]
    assert set(chance.get_ydata()) == {25.0} and chance.get_label() == "chance (25.0%)"
    assert "chance (25.0%)" in [t.get_text() for t in curves.get_legend().get_texts()]
    plt.close(fig)


def test_quickstart_command_is_wired(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["quickstart", "--help"])
    assert "--epochs" in capsys.readouterr().out
