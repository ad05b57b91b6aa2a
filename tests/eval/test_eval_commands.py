"""``zoo eval`` end to end on tiny real videos: every protocol runs; a method checkpoint and the
architecture name with the same seed give the same figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from zoo.cli import main
from zoo.data.encode import write_video


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    """Two classes: a bright square moving right (0) or down (1); 8 train and 4 test videos."""
    root = tmp_path_factory.mktemp("tiny_videos")
    for split, n in (("train", 8), ("test", 4)):
        rows = []
        for i in range(n):
            label = i % 2
            frames = np.full((10, 32, 32, 3), 40, np.uint8)
            for t in range(10):
                a, b = 2 + 2 * t, 12 + i % 3
                if label == 0:
                    frames[t, b : b + 8, a : a + 8] = 230
                else:
                    frames[t, a : a + 8, b : b + 8] = 230
            write_video(root / f"{split}_{i}.mp4", frames, fps=10)
            rows.append(f"{split}_{i}.mp4,{label}")
        (root / f"{split}.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    (root / "classes.txt").write_text("right\ndown\n")
    return root


def _run(capsys, *argv: str) -> dict:
    common = [
        "--frames",
        "4",
        "--stride",
        "2",
        "--size",
        "32",
        "--workers",
        "0",
        "--batch-size",
        "4",
        "--json",
    ]
    assert main(["eval", *argv, *common]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_all_protocols(manifests, capsys):
    knn = _run(capsys, "knn", "--model", "r3d_tiny", "--data", str(manifests), "--k", "3")
    assert knn["clips"] == {"train": 8, "test": 4} and 0 <= knn["top1"] <= 100
    linear = _run(capsys, "linear", "--model", "r3d_tiny", "--data", str(manifests))
    assert linear["train_top1"] == 100.0  # 8 points in 64 dimensions are separable
    retrieval = _run(capsys, "retrieval", "--model", "r3d_tiny", "--data", str(manifests), "--ks", "1", "8")
    assert retrieval["R@8"] == 100.0 and 0 <= retrieval["R@1"] <= 100
    clustering = _run(
        capsys, "clustering", "--model", "r3d_tiny", "--data", str(manifests), "--clusters", "2"
    )
    assert -1 <= clustering["ari"] <= 1 and 0 <= clustering["nmi"] <= 1


def test_checkpoint_and_seeded_architecture_agree(manifests, capsys, tmp_path):
    from zoo import registry

    torch.manual_seed(3)
    encoder = registry.build("r3d_tiny", num_classes=0)
    checkpoint = {
        "state_dict": {f"encoders.video.{k}": v for k, v in encoder.state_dict().items()},
        "zoo_encoders": {"video": {"arch": "r3d_tiny", "kwargs": {}, "probe": True}},
    }
    torch.save(checkpoint, tmp_path / "method.ckpt")
    from zoo.eval.features import load_features

    ckpt_cache, arch_cache = tmp_path / "ckpt_cache", tmp_path / "arch_cache"
    ckpt = str(tmp_path / "method.ckpt")
    from_ckpt = _run(capsys, "knn", "--model", ckpt, "--data", str(manifests), "--cache-dir", str(ckpt_cache))
    from_arch = _run(
        capsys,
        "knn",
        "--model",
        "r3d_tiny",
        "--seed",
        "3",
        "--data",
        str(manifests),
        "--cache-dir",
        str(arch_cache),
    )
    assert from_ckpt["top1"] == from_arch["top1"]
    ckpt_files, arch_files = (
        sorted(ckpt_cache.glob("*.safetensors")),
        sorted(arch_cache.glob("*.safetensors")),
    )
    assert len(ckpt_files) == len(arch_files) == 2  # train and test features
    for a, b in zip(ckpt_files, arch_files):
        assert torch.equal(load_features(a).features, load_features(b).features)


def test_missing_checkpoint_is_a_clear_error(manifests, capsys):
    assert main(["eval", "knn", "--model", "nowhere.ckpt", "--data", str(manifests)]) == 2
    assert "nowhere.ckpt" in capsys.readouterr().err
