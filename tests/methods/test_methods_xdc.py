"""XDC: cross-modal pseudo-labels, the loss against independent math, silent clips, Caffe2 BatchNorm momentum."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import run_ranks, tiny_fit_override

from zoo.cli import main
from zoo.errors import UsageError
from zoo.eval.clustering import clustering_scores
from zoo.methods.xdc import XDC, SilentClipsError, caffe2_bn_momentum, cluster_balance_weights
from zoo.serialization import safe_torch_load

TINY = dict(
    video_encoder="r2plus1d_tiny",
    video_encoder_kwargs={"midplanes": "conv", "bn_eps": 1e-3},
    audio_encoder="resnet9_audio",
    num_clusters=2,
    online_probe=False,
)


def tiny_xdc(**overrides) -> XDC:
    torch.manual_seed(0)
    return XDC(**{**TINY, **overrides})


def two_partitions(
    model: XDC, n: int = 16, audio_partition: str = "a"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Audio features clustered by ``a`` (or ``v``) and video features clustered by ``v``: two partitions."""
    a = torch.arange(n) % 2  # 0101...
    v = (torch.arange(n) // (n // 2)) % 2  # 0000...1111
    generator = torch.Generator().manual_seed(0)

    def points(labels: torch.Tensor, modality: str) -> torch.Tensor:
        dim = model.encoders[modality].num_features
        centres = torch.eye(dim)[:2] * 10  # two well-separated directions
        return centres[labels] + 0.1 * torch.randn(n, dim, generator=generator)

    return points(a if audio_partition == "a" else v, "audio"), points(v, "video"), a, v


def same_partition(x: torch.Tensor, y: torch.Tensor) -> bool:
    return clustering_scores(x, y)["nmi"] > 0.999


def dataset_pass(model: XDC, audio, video, has_audio, labels=None) -> None:
    n = len(audio)
    for buffer in model.label_buffers.values():
        buffer.resize(n)
    outputs = {"index": torch.arange(n), "audio": audio, "video": video, "has_audio": has_audio}
    if labels is not None:
        outputs["label"] = labels
    model.on_dataset_pass(outputs)


def test_audio_clusters_label_the_video_encoder_and_the_reverse():
    model = tiny_xdc()
    audio, video, a, v = two_partitions(model)
    dataset_pass(model, audio, video, torch.ones(16, dtype=torch.bool), labels=a)
    video_targets = model.label_buffers["video_targets"].labels[:, 0]
    audio_targets = model.label_buffers["audio_targets"].labels[:, 0]
    assert same_partition(video_targets, a) and not same_partition(video_targets, v)
    assert same_partition(audio_targets, v) and not same_partition(audio_targets, a)
    assert model.cluster_scores["audio_clusters_nmi"] > 0.999  # the labels are the audio partition
    assert model.cluster_scores["video_clusters_nmi"] < 0.01
    # new clips go to the centroid of their modality's clusters
    assert same_partition(model.assign_clusters("audio", audio), a)


def test_loss_is_each_encoders_cross_entropy_to_the_other_modalitys_clusters():
    model = tiny_xdc(balance_clusters=True)
    n = 6
    for buffer in model.label_buffers.values():
        buffer.resize(n)
    video_targets, audio_targets = torch.tensor([0, 0, 0, 1, -1, 1]), torch.tensor([1, 0, 1, 1, 0, 0])
    model.label_buffers["video_targets"].update(torch.arange(n), video_targets, gather=False)
    model.label_buffers["audio_targets"].update(torch.arange(n), audio_targets, gather=False)
    model.video_target_weights.copy_(torch.tensor([0.5, 2.0]))
    model.audio_target_weights.copy_(torch.tensor([1.5, 0.75]))
    batch = {
        "video": torch.randn(n, 3, 4, 32, 32),
        "audio": torch.randn(n, 1, 40, 50),
        "audio_mask": torch.ones(n, 50, dtype=torch.bool),
        "index": torch.arange(n),
    }
    batch["audio_mask"][2] = False  # a silent clip: out of the audio loss
    model.eval()  # BatchNorm statistics fixed: the same features in the reference below
    out = model.ssl_step(batch)

    def weighted_ce(logits, targets, weights):  # -Σ w_y log p_y / Σ w_y over the labelled samples
        log_p = logits.log_softmax(-1)
        w = weights[targets]
        return -(w * log_p[torch.arange(len(targets)), targets]).sum() / w.sum()

    with torch.no_grad():
        logits_v = model.video_classifier(model.embed("video", batch["video"]))
        keep_v = video_targets >= 0
        expected_v = weighted_ce(logits_v[keep_v], video_targets[keep_v], model.video_target_weights)
        keep_a = torch.tensor([True, True, False, True, True, True])
        logits_a = model.audio_classifier(model.embed("audio", batch["audio"][keep_a]))
        expected_a = weighted_ce(logits_a, audio_targets[keep_a], model.audio_target_weights)
    torch.testing.assert_close(out["loss_video"], expected_v)
    torch.testing.assert_close(out["loss_audio"], expected_a)
    torch.testing.assert_close(out["loss"].detach(), expected_v + expected_a)
    assert out["silent_clips"] == 1 and out["features"].shape == (n, model.encoders["video"].num_features)


def test_balance_weights_make_every_cluster_weigh_the_same():
    assignments = torch.tensor([0, 0, 0, 2])  # cluster 1 empty
    weights = cluster_balance_weights(assignments, 3)
    torch.testing.assert_close(weights, torch.tensor([4 / 6, 0.0, 2.0]))
    counts = torch.bincount(assignments, minlength=3).float()
    torch.testing.assert_close(counts * weights, torch.tensor([2.0, 0.0, 2.0]))  # equal total weight


def test_silent_clips_never_reach_the_audio_encoder_and_are_counted():
    model = tiny_xdc()
    seen: list[int] = []
    audio_stem = model.encoders["audio"].conv1  # the first layer the audio encoder runs
    audio_stem.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    batch = {
        "video": torch.randn(4, 3, 4, 32, 32),
        "audio": torch.zeros(4, 1, 40, 50),
        "audio_mask": torch.zeros(4, 50, dtype=torch.bool),
        "index": torch.arange(4),
    }
    for buffer in model.label_buffers.values():
        buffer.resize(4)
    batch["audio"][1:3] = torch.randn(2, 1, 40, 50)
    batch["audio_mask"][1:3, 10:] = True  # clips 1 and 2 have sound (partly)
    out = model.ssl_step(batch)
    assert seen == [2] and out["silent_clips"] == 2
    seen.clear()
    batch["audio_mask"][:] = False  # no sound at all: the audio side does not run, zero gradients
    out = model.ssl_step(batch)
    out["loss"].backward()
    assert seen == [] and out["silent_clips"] == 4
    assert all(p.grad is not None and not p.grad.any() for p in model.encoders["audio"].parameters())


def test_silent_clips_get_no_pseudo_label_or_stop_the_run():
    model = tiny_xdc()
    audio, video, a, _ = two_partitions(model)
    has_audio = torch.ones(16, dtype=torch.bool)
    has_audio[[3, 8]] = False
    with pytest.warns(UserWarning, match=r"2 of 16 training clips have no audio \(dataset indices 3, 8\)"):
        dataset_pass(model, audio, video, has_audio)
    video_targets = model.label_buffers["video_targets"].labels[:, 0]
    assert (video_targets[~has_audio] == -1).all() and (video_targets[has_audio] >= 0).all()
    assert same_partition(video_targets[has_audio], a[has_audio])
    strict = tiny_xdc(silent_clips="raise")
    with pytest.raises(
        SilentClipsError, match=r"2 of 16 training clips have no audio \(dataset indices 3, 8\)"
    ):
        dataset_pass(strict, audio, video, has_audio)
    assert issubclass(SilentClipsError, UsageError)


def test_heads_are_reinitialised_after_each_clustering():
    model = tiny_xdc()
    before = model.video_classifier.weight.detach().clone()
    audio, video, _, _ = two_partitions(model)
    dataset_pass(model, audio, video, torch.ones(16, dtype=torch.bool))
    assert not torch.equal(model.video_classifier.weight, before)
    kept = tiny_xdc(reset_heads=False)
    before = kept.video_classifier.weight.detach().clone()
    dataset_pass(kept, audio, video, torch.ones(16, dtype=torch.bool))
    assert torch.equal(kept.video_classifier.weight, before)


def test_caffe2_batchnorm_momentum_weights_the_running_statistics():
    assert caffe2_bn_momentum(0.9) == pytest.approx(0.1)
    model = tiny_xdc()  # bn_momentum_caffe2 = 0.9 by default, as the released encoders were trained
    bn = model.encoders["video"].stem[1]
    assert bn.momentum == pytest.approx(0.1) and bn.eps == 1e-3
    bn.running_mean.fill_(1.0)
    x = torch.randn(2, 3, 4, 16, 16) + 3.0
    with torch.no_grad():
        batch_mean = model.encoders["video"].stem[0](x).mean(dim=(0, 2, 3, 4))
        model.encoders["video"].train().stem[:2](x)
    torch.testing.assert_close(bn.running_mean, 0.9 * torch.ones_like(batch_mean) + 0.1 * batch_mean)
    with pytest.raises(UsageError, match="momentum once"):
        tiny_xdc(video_encoder_kwargs={"bn_momentum": 0.9})
    own = tiny_xdc(bn_momentum_caffe2=None, video_encoder_kwargs={"bn_momentum": 0.3})
    assert own.encoders["video"].stem[1].momentum == 0.3


def test_audio_to_video_scores_rank_the_videos_that_predict_the_audio_cluster():
    model = tiny_xdc()
    model.audio_centroids.copy_(F.normalize(torch.randn(2, model.audio_centroids.shape[1]), dim=1))
    h_audio = model.audio_centroids * 5  # audio 0 in cluster 0, audio 1 in cluster 1
    h_video = torch.randn(3, model.video_centroids.shape[1])
    scores = model.audio_to_video_scores(h_audio, h_video)
    log_p = model.video_classifier(h_video).log_softmax(-1)
    torch.testing.assert_close(scores, log_p.T.detach())


def test_recipe_pretrains_on_synthmotion_with_audio(tmp_path, tiny_synth_data):
    data = {**tiny_synth_data, "synth": {**tiny_synth_data["synth"], "audio": True}}
    override = tiny_fit_override(tmp_path, data, max_steps=2)
    recipe = "configs/xdc/synthmotion.yaml"
    args = ["fit", "--config", recipe, "--config", str(override), "--model.init_args.num_clusters", "2"]
    assert main(args) == 0
    state = safe_torch_load(tmp_path / "ckpt" / "last.ckpt")["state_dict"]
    video_targets = state["label_buffers.video_targets.labels"][:, 0]
    audio_targets = state["label_buffers.audio_targets.labels"][:, 0]
    assert len(video_targets) == 8 and (video_targets >= 0).all() and (audio_targets >= 0).all()
    assert set(video_targets.tolist()) == {0, 1}  # both audio clusters used as video pseudo-labels
    assert state["audio_centroids"].abs().sum() > 0


def _rank_clusters(rank: int, out_dir: str) -> None:
    model = tiny_xdc(seed=rank)
    audio, video, _, _ = two_partitions(model)
    if rank == 1:  # alone, this rank would label the video encoder with the other partition
        audio = two_partitions(model, audio_partition="v")[0]
    dataset_pass(model, audio, video, torch.ones(16, dtype=torch.bool))
    torch.save(model.label_buffers["video_targets"].labels[:, 0], f"{out_dir}/rank{rank}.pt")


def test_every_rank_takes_the_first_ranks_clusters(tmp_path):
    run_ranks(_rank_clusters, str(tmp_path), timeout_s=240)
    first, second = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert same_partition(first, torch.arange(16) % 2)  # rank 0's audio partition
