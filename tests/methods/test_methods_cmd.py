"""CMD: the motion targets' layout (positives first), the label layout of the motion loss, the released
defaults, and clear errors for batches that do not fit."""

from __future__ import annotations

import inspect

import pytest
import torch
from helpers import tiny_cmd

from zoo.errors import UsageError
from zoo.methods.cmd import CMD

TINY = tiny_cmd(hard_negatives=2)


@pytest.fixture(scope="module")
def model() -> CMD:
    torch.manual_seed(0)
    return CMD(**TINY)


def test_released_defaults():
    defaults = {k: p.default for k, p in inspect.signature(CMD.__init__).parameters.items()}
    assert defaults["encoder"] == "r2plus1d_26" and defaults["future_frames"] == 8
    assert defaults["temperature"] == 0.1 and defaults["hard_negatives"] == 3
    assert (defaults["lr"], defaults["lr_scaling"], defaults["reference_batch_size"]) == (5e-4, "linear", 1)
    assert defaults["optimizer"] == "sgd" and defaults["nesterov"] is True


def test_motion_targets_put_the_positive_windows_first(model):
    b, f, n = 3, 4, 3  # batch, frames per window, windows (1 + 2 hard negatives)
    cells = torch.zeros(b, 2, f * n, 4, 4)
    for sample in range(b):
        for window in range(n):
            cells[sample, :, window * f : (window + 1) * f] = 0.1 * (10 * sample + window)  # pixels
    targets = model.motion_targets(cells, (32, 32))
    assert targets.shape == (n * b, 2, f, 32, 32)  # cells repeated onto the clip's pixels
    for row in range(n * b):
        window, sample = divmod(row, b)  # (1 + N, B) flattened, as the released collate stacks them
        expected = min(0.1 * (10 * sample + window), 10.0) / 10.0  # clamped to ±10 px, divided by 10
        assert torch.allclose(targets[row], torch.full_like(targets[row], expected))


def test_each_prediction_has_its_own_position_of_its_own_future_as_positive(model):
    torch.manual_seed(1)
    model.eval()
    video = torch.randn(2, 3, 4, 32, 32)
    keyframe = torch.randn(2, 3, 32, 32)
    motion = torch.randn(3 * 2, 2, 4, 32, 32)
    with torch.no_grad():
        query, keys, context_query, context_key, _ = model.embeddings(video, keyframe, motion)
        q = model.motion_predictor.query_len
        assert query.shape == (2 * q, 16) and keys.shape == (3 * 2 * q, 16)
        # key rows b·Q .. b·Q + Q - 1 come from sample b's positive window alone
        alone = model.embeddings(video[1:], keyframe[1:], motion[1:2])[1]
        torch.testing.assert_close(keys[q : 2 * q], alone, atol=1e-5, rtol=1e-4)
    assert torch.allclose(query.norm(dim=1), torch.ones(len(query)))
    assert context_query.shape == context_key.shape == (2, 16)
    model.train()


def test_a_step_returns_both_losses_and_the_downstream_features(model):
    torch.manual_seed(2)
    batch = {
        "video": torch.randn(2, 3, 4, 32, 32),
        "keyframe": torch.randn(2, 3, 32, 32),
        "motion_vectors": torch.randn(2, 2, 12, 4, 4),
    }
    out = model.ssl_step(batch)
    torch.testing.assert_close(out["loss"], out["loss_motion"] + out["loss_context"])
    assert out["features"].shape == (2, 64)
    out["loss"].backward()
    assert model.motion_predictor.query_pos.weight.grad is not None
    assert model.encoders["motion_vectors"].stem[0].weight.grad is not None


def test_a_motion_window_of_the_wrong_length_names_the_data_setting(model):
    with pytest.raises(UsageError, match="motion_frames"):
        model.motion_targets(torch.zeros(1, 2, 8, 4, 4), (32, 32))


def test_nesterov_reaches_the_optimizer(model, monkeypatch):
    class Trainer:
        estimated_stepping_batches = 10
        num_training_batches = 10
        accumulate_grad_batches = 1
        world_size = 1
        datamodule = type("DM", (), {"batch_size": 4})()

    monkeypatch.setattr(CMD, "trainer", Trainer(), raising=False)
    config = model.configure_optimizers()
    groups = config["optimizer"].param_groups
    assert all(g["nesterov"] for g in groups)
    assert groups[0]["lr"] == pytest.approx(5e-4 * 4 / 10)  # 5e-4 × global batch, first warm-up step
