"""benchmarks/scene_bias.py and benchmarks/elo_search.py: the pieces that are not a training run."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from zoo.eval.features import FeatureSet, save_features

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scene_bias():
    return _load("scene_bias")


@pytest.fixture(scope="module")
def elo_search():
    return _load("elo_search")


def _stripes(period: float, frames: int = 4, size: int = 32) -> torch.Tensor:
    """A grey clip (1, 3, T, H, W) of vertical stripes of ``period`` pixels."""
    x = torch.arange(size, dtype=torch.float32)
    frame = torch.sin(2 * math.pi * x / period).expand(size, size)  # (H, W)
    return frame.expand(1, 3, frames, size, size).clone()


def test_spectrum_reads_the_first_frame_texture_not_the_motion(scene_bias) -> None:
    spectrum = scene_bias.FirstFrameSpectrum()
    fine, coarse = _stripes(3.0), _stripes(16.0)
    moved = fine.clone()
    moved[:, :, 1:] = torch.randn_like(moved[:, :, 1:])  # the later frames carry anything at all
    descriptors = spectrum(torch.cat([fine, coarse, moved]))
    assert descriptors.shape == (3, scene_bias.FirstFrameSpectrum.bands + 3)
    torch.testing.assert_close(descriptors[0], descriptors[2])
    bands = scene_bias.FirstFrameSpectrum.bands
    # fine stripes put their power in a higher frequency band than coarse ones
    assert descriptors[0, :bands].argmax() > descriptors[1, :bands].argmax()


def test_elo_is_benchmarked_on_its_rgb_clips_alone(scene_bias) -> None:
    assert "elo" in scene_bias.METHODS
    data_args = scene_bias._recipe("elo")[2]
    assert {"audio", "motion_vectors"} <= set(data_args)
    kept = {k for k in data_args if k not in scene_bias.EVAL_DROP}
    assert not kept & {"audio", "audio_seconds", "motion_vectors"}


def test_pearson_interval(elo_search) -> None:
    low, high = elo_search.pearson_interval(-0.3, 12)
    assert -1 < low < -0.3 < high < 1
    wide, narrow = elo_search.pearson_interval(-0.3, 8), elo_search.pearson_interval(-0.3, 100)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    assert all(math.isnan(v) for v in elo_search.pearson_interval(0.5, 3))
    # the interval of r just above the threshold excludes 0, just below it does not
    threshold = elo_search.significant_r(12)
    assert (
        elo_search.pearson_interval(threshold + 1e-3, 12)[0]
        > 0
        > elo_search.pearson_interval(threshold - 1e-3, 12)[0]
    )


def test_linear_probe_on_the_proxy_runs_cached_features(elo_search, tmp_path: Path) -> None:
    classes = elo_search.SYNTH["num_classes"]

    class Proxy:  # what ProxyTraining leaves: candidate_NNN/features/*-{train,test}-*.safetensors
        work_dir, evaluated = tmp_path, 0

        def __call__(self, weights):
            folder = tmp_path / f"candidate_{self.evaluated:03d}" / "features"
            self.evaluated += 1
            for split, n in (("train", 40), ("test", 20)):
                labels = torch.arange(n) % classes
                features = torch.nn.functional.one_hot(labels, classes).float() * (weights["a"] - 0.5)
                save_features(
                    FeatureSet(features, labels, torch.arange(n)), folder / f"last-{split}-x.safetensors"
                )
            return {"fitness": 0.1, "knn_top1": 50.0}

    evaluate = elo_search.with_linear_probe(Proxy())
    separable, collapsed = evaluate({"a": 1.0}), evaluate({"a": 0.5})
    assert separable == {"fitness": 0.1, "knn_top1": 50.0, "linear_top1": pytest.approx(100.0)}
    assert collapsed["linear_top1"] <= 100 / classes + 1e-3
