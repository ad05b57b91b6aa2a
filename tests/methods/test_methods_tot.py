"""TOT: the loss against independent math (Sinkhorn on exp(s/ε) ⊙ prior, written out in NumPy), the
released code's flags, prototype freezing, segmentation metrics in validation, a learning signal on
synthetic ordered videos, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer

from zoo.errors import UsageError
from zoo.eval.segmentation import segmentation_metrics
from zoo.methods.tot import TOT
from zoo.objectives.temporal_coherence import temporal_coherence_loss


def _reference_codes(
    scores: np.ndarray, lengths: list[int], epsilon: float, sigma: float | None
) -> np.ndarray:
    """TOT's eq. 4-6 written out: kernel exp(s/ε) ⊙ Gaussian order prior per video, 3 Sinkhorn rounds."""
    kernel = np.exp(scores / epsilon)  # (N, K)
    clusters = scores.shape[1]
    if sigma is not None:
        blocks = []
        for n in lengths:
            i, j = np.arange(n)[:, None], np.arange(clusters)[None, :]
            cost = (np.abs(i / n - j / clusters) / np.sqrt(1 / n**2 + 1 / clusters**2)) ** 2
            blocks.append(np.exp(-cost / (2 * sigma**2)))
        kernel = kernel * np.concatenate(blocks)
    q = kernel.T / kernel.sum()  # (K, N)
    for _ in range(3):
        q *= (1 / clusters) / q.sum(axis=1, keepdims=True)
        q *= (1 / q.shape[1]) / q.sum(axis=0, keepdims=True)
    return (q / q.sum(axis=0, keepdims=True)).T  # (N, K), rows sum to 1


def _batch(videos: int = 2, frames: int = 8, dim: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "features": torch.randn(videos, frames, dim, generator=g),
        "mask": torch.ones(videos, frames, dtype=torch.bool),
        "index": torch.arange(videos),
    }


@pytest.mark.parametrize("temporal", [True, False])
def test_cluster_loss_is_cross_entropy_to_temporal_ot_codes(temporal):
    torch.manual_seed(0)
    model = TOT(feature_dim=6, num_clusters=3, embed_dim=4, temporal_ot=temporal, coherence_loss=False)
    with torch.no_grad():  # larger prototypes than the init: codes far from uniform
        model.network.prototype_layer.weight.normal_(0, 3)
    batch = _batch()
    out = model.ssl_step(batch)
    _, scores = model(batch["features"])
    flat = scores.detach().reshape(-1, 3).double()
    codes = _reference_codes(flat.numpy(), [8, 8], 0.08, 1.5 if temporal else None)
    log_probs = torch.log_softmax(flat / 0.1, dim=1).numpy()
    expected = -(codes * log_probs).sum(axis=1).mean()
    assert out["cluster_loss"].item() == pytest.approx(expected, rel=1e-5)
    assert out["loss"].item() == pytest.approx(expected, rel=1e-5)  # released flags: no coherence term
    assert "coherence_loss" not in out


def test_the_temporal_prior_changes_the_codes():
    scores = 0.05 * torch.randn(16, 3, generator=torch.Generator().manual_seed(0)).double().numpy()
    with_prior = _reference_codes(scores, [16], 0.08, 1.5)
    without = _reference_codes(scores, [16], 0.08, None)
    assert np.abs(with_prior - without).max() > 0.1  # the reference itself is not blind to the flag


def test_coherence_loss_is_added_by_default():
    model = TOT(feature_dim=6, num_clusters=3, embed_dim=4)
    batch = _batch(frames=16)
    torch.manual_seed(3)
    out = model.ssl_step(batch)
    torch.manual_seed(3)
    expected = temporal_coherence_loss(model.network.embed(batch["features"]), 4, 0.01)
    assert out["coherence_loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert out["loss"].item() == pytest.approx((out["cluster_loss"] + expected).item(), rel=1e-6)


class _Loader(torch.utils.data.Dataset):
    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]


def _fit(model: TOT, batches: list[dict], steps: int) -> None:
    loader = torch.utils.data.DataLoader(_Loader(batches), batch_size=None, shuffle=False)
    trainer = Trainer(
        max_steps=steps,
        max_epochs=1000,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(model, loader)


@pytest.mark.parametrize("freeze,moves", [(2, False), (1, True)])
def test_prototypes_stay_fixed_for_the_first_steps(freeze, moves):
    torch.manual_seed(0)
    model = TOT(feature_dim=6, num_clusters=3, embed_dim=4, freeze_prototypes_steps=freeze, lr=0.1)
    prototypes, fc1 = model.network.prototypes.detach().clone(), model.network.fc1.weight.detach().clone()
    _fit(model, [_batch(frames=16, seed=s) for s in range(2)], steps=2)
    assert not torch.equal(model.network.fc1.weight.detach(), fc1)
    assert torch.equal(model.network.prototypes.detach(), prototypes) != moves


def _ordered_videos(count: int, seed: int, dim: int = 6, clusters: int = 3, noise: float = 0.6):
    """Videos of ``clusters`` sub-actions in order, random lengths; features: the sub-action's mean + noise."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(clusters, dim)) * 2
    videos = []
    for _ in range(count):
        labels = np.repeat(np.arange(clusters), rng.integers(15, 40, size=clusters))
        features = means[labels] + noise * rng.normal(size=(len(labels), dim))
        videos.append((torch.tensor(features, dtype=torch.float32), torch.tensor(labels)))
    return videos


def _sorted_sample(features: torch.Tensor, frames: int, rng: np.random.Generator) -> torch.Tensor:
    return features[np.sort(rng.integers(0, len(features), size=frames))]


def test_validation_logs_mof_f1_and_edit_globally_and_per_activity():
    model = TOT(feature_dim=6, num_clusters=3, embed_dim=4)
    videos = [(f, s, 0) for f, s in _ordered_videos(3, seed=0)] + [
        (f, s, 1) for f, s in _ordered_videos(2, seed=1)
    ]
    for features, segments, activity in videos:
        model._collect(
            "val",
            {
                "features": features[None],
                "segments": segments[None],
                "mask": torch.ones(1, len(features), dtype=torch.bool),
                "label": torch.tensor([activity]),
            },
        )
    logged = {}
    model.log = lambda name, value, **kwargs: logged.__setitem__(name, value)
    model._log_segmentation("val")
    predictions = model.segment([v[0] for v in videos[:3]]) + model.segment([v[0] for v in videos[3:]])
    expected = segmentation_metrics(predictions, [v[1] for v in videos], "dataset", [0, 0, 0, 1, 1])
    assert {k: logged[f"val/{k}"] for k in expected} == pytest.approx(expected)
    first = segmentation_metrics(predictions[:3], [v[1] for v in videos[:3]], "dataset")
    assert logged["val/activity0_MoF"] == pytest.approx(first["MoF"])
    assert {"val/activity1_F1@50", "val/Edit"} <= set(logged)


@pytest.mark.slow
def test_tot_learns_ordered_sub_actions():
    """A learning signal: on videos of three ordered sub-actions, TOT's segmentation beats the untrained
    network's by a wide margin (MoF with Hungarian matching over the videos)."""
    torch.manual_seed(0)
    videos = _ordered_videos(8, seed=0)
    rng = np.random.default_rng(0)
    batches = [
        {"features": torch.stack([_sorted_sample(videos[(2 * i + k) % 8][0], 32, rng) for k in range(2)])}
        for i in range(200)
    ]

    def mof(model: TOT) -> float:
        predictions = model.segment([f for f, _ in videos])
        return segmentation_metrics(predictions, [s for _, s in videos], "dataset")["MoF"]

    model = TOT(feature_dim=6, num_clusters=3, embed_dim=8, freeze_prototypes_steps=20, lr=0.01)
    untrained = mof(model)
    _fit(model, batches, steps=200)
    trained = mof(model)
    assert trained > 90 and trained > untrained + 20, (untrained, trained)


def test_bad_input_is_named():
    model = TOT(feature_dim=6, num_clusters=3, embed_dim=4)
    with pytest.raises(UsageError, match=r"feature_dim=6.*set model feature_dim to 5"):
        model.ssl_step({"features": torch.randn(2, 8, 5)})
    padded = _batch(frames=16)
    padded["mask"][1, 12:] = False
    with pytest.raises(UsageError, match="coherence loss needs videos of equal length"):
        model.ssl_step(padded)
    with pytest.raises(UsageError, match="go together"):
        TOT(feature_dim=6, num_clusters=3, background_percentile=45)
    with pytest.raises(UsageError, match="decode_order"):
        TOT(feature_dim=6, num_clusters=3, decode_order="random")
    assert math.isfinite(model.ssl_step(_batch(frames=16))["loss"].item())
