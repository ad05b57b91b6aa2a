"""bf16 mixed precision on CPU: the logits of the contrastive losses stay in float32 under autocast, a few bf16
steps of a method track its float32 steps, and ``zoo fit --trainer.precision bf16-mixed`` trains a recipe.

Tolerance: over three AdamW steps from the same weights on the same batch, each bf16 step's loss is within
5 % (or 0.02) of the float32 step's (bf16 keeps 8 significant bits: about 0.4 % per product, more through a network).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import generate_synth, tiny_fit_override
from test_methods_ddp import CONFIGS, SYNTH, _batch, _model

from zoo.cli import main
from zoo.objectives.infonce import fp32_logits, info_nce_loss
from zoo.serialization import safe_torch_load

STEPS = 3
LOSS_RTOL = 0.05
LOSS_ATOL = 0.02  # for losses near 0 (MoCo before its own keys enter the queue)


def test_contrastive_logits_stay_float32_under_bf16_autocast():
    g = torch.Generator().manual_seed(0)
    query = F.normalize(torch.randn(16, 64, generator=g), dim=1)
    keys = F.normalize(torch.randn(16, 64, generator=g), dim=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = fp32_logits(query.bfloat16(), keys, 0.1)
        plain = query @ keys.T / 0.1  # what autocast makes of the product
        loss = info_nce_loss(query, keys, 0.1)
    assert logits.dtype == torch.float32 and loss.dtype == torch.float32
    exact = query.bfloat16().float() @ keys.T / 0.1
    assert plain.dtype == torch.bfloat16
    assert (logits - exact).abs().max() < 1e-5 < (plain.float() - exact).abs().max()
    torch.testing.assert_close(loss, info_nce_loss(query, keys, 0.1))


def _losses(recipe: str, batch: dict, bf16: bool) -> list[float]:
    model = _model(recipe).float()
    batch = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in batch.items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.ssl_step(batch)["loss"]
        assert loss.dtype == torch.float32
        loss.backward()
        optimizer.step()
        for queue in model.queues.values():
            queue.flush()
        losses.append(loss.item())
    return losses


@pytest.mark.slow  # data for six recipes and twelve short runs: about a minute of CPU
@pytest.mark.parametrize("recipe", ["simclr", "moco", "cmd", "declutr", "selavi", "xdc"])
def test_bf16_steps_track_float32(recipe, tmp_path):
    generate_synth(tmp_path / "synth", SYNTH)
    batch = _batch(recipe, tmp_path / "synth")
    full, mixed = _losses(recipe, batch, bf16=False), _losses(recipe, batch, bf16=True)
    assert len(set(full)) == STEPS, f"{recipe}: the steps do not change the loss: {full}"
    for step, (a, b) in enumerate(zip(full, mixed)):
        assert b == pytest.approx(a, rel=LOSS_RTOL, abs=LOSS_ATOL), (
            f"{recipe} step {step}: bf16 {b} vs fp32 {a}"
        )


@pytest.mark.slow  # one short `zoo fit`
def test_zoo_fit_trains_in_bf16_mixed_precision(tmp_path, tiny_synth_data):
    override = tiny_fit_override(tmp_path, tiny_synth_data)
    recipe = CONFIGS / "simclr" / "synthmotion.yaml"
    args = ["fit", "--config", str(recipe), "--config", str(override), "--trainer.precision", "bf16-mixed"]
    assert main([*args, "--trainer.accelerator", "cpu"]) == 0
    checkpoint = safe_torch_load(tmp_path / "ckpt" / "last.ckpt")
    assert checkpoint["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())
