"""SeLaVi: the self-labelling math against an independent transcription of the paper's iteration, the
loss, modality alignment, the Gaussian marginal, the schedule, silent clips, and a tiny run through Lightning."""

from __future__ import annotations

import itertools
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from zoo.data.datamodule import VideoDataModule
from zoo.methods.selavi import AudioMissingInBatchError, SeLaVi
from zoo.objectives.self_labelling import (
    gaussian_cluster_sizes,
    marginal_from_sizes,
    match_cluster_order,
    order_cluster_sizes,
    self_label,
    self_label_schedule,
)
from zoo.serialization import safe_torch_load


def _reference_labels(p_video, p_audio, lamb, r):
    """SeLaVi's optimize_L_sk as the paper states it, in plain loops: P = (p_v ⊙ p_a)^(λ/2),
    α = r / (Pᵀβ), β = c / (Pα), err checked every 10 steps, stop at err < 0.1 or 2000 steps."""
    kernel = (p_video * p_audio).double() ** (lamb / 2)
    n = len(kernel)
    beta = torch.full((n,), 1.0 / n, dtype=torch.float64)
    err, step = 1e6, 0
    while err > 0.1 and step < 2000:
        alpha = r / (beta @ kernel)
        beta_new = (1.0 / n) / (kernel @ alpha)
        if step % 10 == 0:
            err = float((beta / beta_new - 1).abs().sum())
        beta, step = beta_new, step + 1
    plan = beta[:, None] * kernel * alpha[None, :]
    labels = plan.argmax(1)
    cost = -float(torch.log(kernel[torch.arange(n), labels]).sum()) / (lamb * n)
    return labels, cost


@pytest.mark.parametrize("gauss", [False, True])
def test_self_label_matches_the_reference_iteration(gauss):
    g = torch.Generator().manual_seed(0)
    n, k = 200, 7
    p_video = F.softmax(torch.randn(n, k, generator=g) * 2, 1).double()
    p_audio = F.softmax(torch.randn(n, k, generator=g) * 2, 1).double()
    sizes = gaussian_cluster_sizes(n, k, 0.1, generator=g) if gauss else torch.ones(k, dtype=torch.float64)
    r = marginal_from_sizes(sizes)
    labels, cost = _reference_labels(p_video, p_audio, 20.0, r)
    result = self_label(p_video * p_audio, 20.0, r)
    assert torch.equal(result.labels, labels)
    assert result.cost == pytest.approx(cost, rel=1e-12)
    assert len(result.labels.unique()) > 1


def test_marginal_is_the_inverse_of_the_sizes_and_uniform_for_equal_sizes():
    sizes = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    torch.testing.assert_close(
        marginal_from_sizes(sizes), torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64) / 7
    )
    torch.testing.assert_close(marginal_from_sizes(torch.ones(5)), torch.full((5,), 0.2, dtype=torch.float64))


def test_gaussian_sizes_scale_with_n_over_k_and_clamp_only_when_asked():
    g = torch.Generator().manual_seed(1)
    sizes = gaussian_cluster_sizes(10_000, 100, 0.1, generator=g)
    assert sizes.mean() == pytest.approx(100, rel=0.05) and 5 < sizes.std() < 15
    wide = gaussian_cluster_sizes(10, 10, 5.0, generator=torch.Generator().manual_seed(0))
    clamped = gaussian_cluster_sizes(10, 10, 5.0, clamp=True, generator=torch.Generator().manual_seed(0))
    assert bool((wide < 1).any()) and bool((clamped >= 1).all())


def test_size_order_original_places_in_draw_order_by_mass_sorts():
    sizes = torch.tensor([30.0, 10.0, 20.0], dtype=torch.float64)
    probs = torch.tensor([[0.1, 0.7, 0.2], [0.1, 0.6, 0.3]])  # masses: 0.2, 1.3, 0.5 -> order 0, 2, 1
    # original: size i on the i-th lightest cluster (the code's sort over a length-1 dimension is a no-op)
    assert order_cluster_sizes(sizes, probs, "original").tolist() == [30.0, 20.0, 10.0]
    assert order_cluster_sizes(sizes, probs, "by_mass").tolist() == [10.0, 30.0, 20.0]


def test_modality_alignment_recovers_a_permutation_of_the_clusters():
    g = torch.Generator().manual_seed(0)
    p_video = F.softmax(torch.randn(300, 12, generator=g) * 3, 1)
    shuffle = torch.randperm(12, generator=g)
    p_audio = p_video[:, shuffle]  # the audio head learnt the same clusters in another order
    perm = match_cluster_order(p_video, p_audio, generator=g)
    torch.testing.assert_close(p_audio[:, perm], p_video)
    # nothing to gain: the identity stays
    assert match_cluster_order(p_video, p_video, generator=g).tolist() == list(range(12))


def test_schedule_starts_at_zero_is_denser_early_and_never_reaches_the_end():
    points = self_label_schedule(1000, 11, 1.5)
    assert points[0] == 0 and points[-1] == pytest.approx(1000)
    gaps = [b - a for a, b in itertools.pairwise(points)]
    assert all(x < y for x, y in itertools.pairwise(gaps))
    assert sum(p < 1000 for p in points) == 10  # solves run at steps 0..999
    with pytest.raises(ValueError, match="num_solves"):
        self_label_schedule(10, 1)


def _tiny(**kwargs) -> SeLaVi:
    args = {
        "video_encoder": "r3d_tiny",
        "num_clusters": 5,
        "heads": 3,
        "head_hidden_dim": 16,
        "head_groups": 1,
        "online_probe": False,
        "marginal": "uniform",
    }
    return SeLaVi(**{**args, **kwargs})


def _batch(b=4, silent=()):
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(b, 6, dtype=torch.bool)
    audio = torch.randn(b, 1, 16, 6, generator=g)
    for i in silent:
        mask[i] = False
        audio[i] = 0
    return {
        "video": torch.randn(b, 3, 4, 16, 16, generator=g),
        "audio": audio,
        "audio_mask": mask,
        "index": torch.arange(b),
        "label": torch.arange(b) % 2,
    }


def test_loss_is_the_mean_cross_entropy_of_both_modalities_to_the_shared_labels():
    torch.manual_seed(0)
    model = _tiny().eval()  # no dropout: the reference recomputes the same logits
    batch = _batch()
    model.selflabels.resize(4)
    labels = torch.tensor([[0, 1, 2], [3, 4, 0], [1, 1, 1], [2, 3, 4]])
    model.selflabels.update(batch["index"], labels, gather=False)
    out = model.ssl_step(batch)
    video_logits, audio_logits = model(batch["video"], batch["audio"])  # (H, B, K)
    expected = 0.5 * torch.stack([F.cross_entropy(video_logits[h], labels[:, h]) for h in range(3)]).mean()
    expected += 0.5 * torch.stack([F.cross_entropy(audio_logits[h], labels[:, h]) for h in range(3)]).mean()
    torch.testing.assert_close(out["loss"], expected)
    assert out["audio_missing"] == 0


def test_silent_clips_leave_the_audio_term_and_can_be_refused():
    torch.manual_seed(0)
    model = _tiny().eval()
    batch = _batch(silent=(1, 3))
    model.selflabels.resize(4)
    labels = torch.tensor([[0, 1, 2], [3, 4, 0], [1, 1, 1], [2, 3, 4]])
    model.selflabels.update(batch["index"], labels, gather=False)
    out = model.ssl_step(batch)
    sound = torch.tensor([0, 2])
    audio_logits = model.head_logits("audio", model.embed("audio", batch["audio"][sound]))
    audio_loss = torch.stack([F.cross_entropy(audio_logits[h], labels[sound, h]) for h in range(3)]).mean()
    torch.testing.assert_close(out["loss_audio"], audio_loss)
    assert float(out["audio_missing"]) == 0.5
    strict = _tiny(missing_audio="raise")
    strict.selflabels.resize(4)
    strict.selflabels.update(batch["index"], labels, gather=False)
    with pytest.raises(AudioMissingInBatchError, match=r"2 clip\(s\) without audio.*\[1, 3\]"):
        strict.ssl_step(batch)


def test_a_clustering_aligns_audio_heads_labels_every_head_and_uses_video_alone_for_silent_clips():
    torch.manual_seed(0)
    model = _tiny(heads=2)
    model.eval()
    n, k = 40, 5
    g = torch.Generator().manual_seed(3)
    video_features = torch.randn(n, 64, generator=g)
    audio_features = torch.randn(n, 512, generator=g)
    has_sound = torch.ones(n, dtype=torch.bool)
    has_sound[:5] = False
    model.selflabels.resize(n)
    before = [model.heads["audio"][h](audio_features) for h in range(2)]
    model._generator = torch.Generator().manual_seed(0)
    model._pass_heads = [1, 0]
    outputs = {
        "index": torch.arange(n),
        "video_features": video_features,
        "audio_features": audio_features,
        "has_sound": has_sound,
    }
    model.on_dataset_pass(outputs)
    labels = model.selflabels.labels
    assert bool((labels >= 0).all()) and labels.shape == (n, 2)
    for h in range(2):
        p_video = F.softmax(model.heads["video"][h](video_features).double(), 1)
        after = model.heads["audio"][h](audio_features)
        # the audio head's clusters were permuted (rows of its last layer), nothing else changed
        assert sorted(after[0].tolist()) == pytest.approx(sorted(before[h][0].tolist()))
        p_audio = F.softmax(after.double(), 1)
        probs = p_video * torch.where(has_sound[:, None], p_audio, p_video)
        expected = self_label(probs, 20.0, marginal_from_sizes(torch.ones(k))).labels
        assert torch.equal(labels[:, h], expected)
    # alignment happens at the first clustering only
    model.solves_done = 1
    snapshot = model.heads["audio"][0].classifier.weight.clone()
    model.on_dataset_pass(outputs)
    assert torch.equal(model.heads["audio"][0].classifier.weight, snapshot)


def test_gauss_marginal_is_drawn_once_per_head_and_kept(tmp_path):
    model = _tiny(marginal="gauss", align_modalities=False)
    model.eval()
    n = 30
    model.selflabels.resize(n)
    model._generator = torch.Generator().manual_seed(0)
    model._pass_heads = [0, 1, 2]
    outputs = {
        "index": torch.arange(n),
        "video_features": torch.randn(n, 64),
        "audio_features": torch.randn(n, 512),
        "has_sound": torch.ones(n, dtype=torch.bool),
    }
    model.on_dataset_pass(outputs)
    sizes = model.cluster_sizes.clone()
    assert bool(model.cluster_sizes_drawn)
    assert not torch.equal(sizes[0], sizes[1])  # per head
    assert sizes.sum(1).mean() == pytest.approx(n, rel=0.2)  # N(1, 0.1)·N/K per cluster
    model.on_dataset_pass(outputs)
    # kept (only re-placed on the clusters): the same multiset of sizes per head
    torch.testing.assert_close(model.cluster_sizes.sort(1).values, sizes.sort(1).values)


def _synth_datamodule(root: Path, audio: bool) -> VideoDataModule:
    synth = {
        "num_classes": 2,
        "train_per_class": 4,
        "val_per_class": 1,
        "test_per_class": 1,
        "size": 32,
        "num_frames": 8,
        "long_videos": 0,
        "reid_identities": 0,
        "audio": audio,
        "qa_per_clip": 0,
    }
    return VideoDataModule(
        synth=synth,
        synth_root=str(root),
        num_frames=4,
        size=32,
        batch_size=4,
        num_workers=0,
        persistent_workers=False,
        audio=True,
        audio_front_end={"kind": "log_mel", "n_filters": 16, "hop": 320},
        audio_window={"seconds": 0.5},
    )


@pytest.mark.parametrize("audio", [True, False], ids=["sound", "silent"])
def test_fit_clusters_on_schedule_and_resumes_its_labels(tmp_path, audio):
    L.seed_everything(0)
    model = _tiny(num_solves=4, heads=2, head_groups=2, marginal="gauss", bn_warmup_batches=1)
    trainer = L.Trainer(
        max_steps=6,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, _synth_datamodule(tmp_path / "synth", audio))
    # schedule 6·linspace(0,1,4)^1.5 = 0, 1.15, 3.27, 6: solves at steps 0, 2, 4
    assert model.solves_done == 3
    assert bool((model.selflabels.labels >= 0).all()) and model.selflabels.labels.shape == (8, 2)
    assert bool(model.cluster_sizes_drawn)
    assert trainer.callback_metrics["train/audio_missing"] == (0.0 if audio else 1.0)
    assert "train/selflabel_nmi" in trainer.callback_metrics
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    restored = SeLaVi.load_from_checkpoint(path)
    assert restored.solves_done == 3
    assert torch.equal(restored.selflabels.labels, model.selflabels.labels)
    assert torch.equal(restored.cluster_sizes, model.cluster_sizes)
    assert safe_torch_load(path)["selavi_solves_done"] == 3


def test_invalid_settings_name_the_field():
    with pytest.raises(Exception, match="head_groups"):
        _tiny(heads=2, head_groups=3)


def test_predict_clusters_gives_one_cluster_per_clip():
    model = _tiny().eval()
    batch = _batch()
    clusters = model.predict_clusters(batch["video"], batch["audio"], head=1)
    assert clusters.shape == (4,) and int(clusters.max()) < 5
