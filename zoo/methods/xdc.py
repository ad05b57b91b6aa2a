"""XDC: Self-Supervised Learning by Cross-Modal Audio-Video Clustering.

Alwassel, Mahajan, Korbar, Torresani, Ghanem, Tran, NeurIPS 2020, https://arxiv.org/abs/1911.12667.

Method (§3, "Cross-Modal Deep Clustering"): a video encoder E_v and an audio encoder E_a, each with a
linear classifier over K pseudo-classes. At every clustering iteration (here: the start of every
epoch, through the base's whole-dataset pass) both encoders embed every training clip; k-means on
the *audio* features gives the pseudo-labels the *video* classifier is trained to predict, and
k-means on the *video* features gives those of the audio classifier (Fig. 1, XDC). Each encoder is
trained with the cross-entropy to the other modality's clusters, and the two losses are summed. The
process starts from random encoders and alternates clustering and training (DeepCluster, Caron et
al. 2018, with the roles of the modalities crossed).

The released video encoder is the VMZ R(2+1)D-18 (``r2plus1d_18_vmz``: (2+1)D middle channels per
convolution, BatchNorm eps 1e-3). Its BatchNorm was trained with Caffe2's momentum 0.9, which is the
weight of the *running* statistics: ``running = 0.9·running + 0.1·batch``. PyTorch's ``momentum`` is
the weight of the *batch*, so Caffe2's 0.9 is PyTorch's 0.1 (``bn_momentum_caffe2`` converts it).
The authors' PyTorch port sets ``momentum = 0.9`` literally, which in PyTorch would weight the new
batch by 0.9; that port is for inference only, where momentum plays no part.

No training code of XDC was released (``HumamAlwassel/XDC`` holds the encoder definition and
weights), so what the paper leaves open is a constructor argument. Followed the paper: cross-modal
assignment (audio clusters → video labels, video clusters → audio labels), k-means re-run every
epoch, cross-entropy per encoder, R(2+1)D-18 video and ResNet-18 audio encoders (the audio weights
were never released). Zoo's choices: k-means on the L2-normalised pooled encoder features
(``cluster_normalize``), the classifiers re-initialised after every clustering as in DeepCluster
(``reset_heads``: cluster ids are arbitrary from one clustering to the next), the cross-entropy
weighted by inverse cluster size (``balance_clusters``; DeepCluster samples uniformly over clusters
instead), the number of clusters (``num_clusters``) and k-means settings.

Clips without audio: the audio encoder never sees them (their spectrogram is zeros, which is not
sound); they get no video pseudo-label, are left out of both losses and are counted
(``train/silent_clips`` per step, a warning per clustering) — or stop the run
(``silent_clips: raise``).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from zoo.catalog import Paper
from zoo.errors import UsageError
from zoo.eval.clustering import clustering_scores
from zoo.methods.base import SSLMethod
from zoo.objectives.distributed import global_weighted_mean
from zoo.objectives.kmeans import kmeans

__all__ = ["XDC", "SilentClipsError", "caffe2_bn_momentum", "cluster_balance_weights"]

SilentClips = Literal["skip", "raise"]


class SilentClipsError(UsageError):
    """Training clips without audio, with ``silent_clips: raise``."""


def caffe2_bn_momentum(momentum: float) -> float:
    """PyTorch's BatchNorm ``momentum`` (weight of the batch) for Caffe2's (weight of the running value)."""
    if not 0.0 <= momentum <= 1.0:
        raise UsageError(f"a BatchNorm momentum must be in [0, 1], got {momentum}")
    return 1.0 - momentum


def cluster_balance_weights(assignments: torch.Tensor, num_clusters: int) -> torch.Tensor:
    """Cross-entropy class weights (K,) ∝ 1 / cluster size: every cluster weighs as much in the loss.

    Empty clusters get weight 0; the weights average to 1 over the samples (``Σ_k n_k w_k = N``).
    """
    counts = torch.bincount(assignments, minlength=num_clusters).float()  # (K,)
    nonempty = counts > 0
    weights = torch.zeros(num_clusters)
    weights[nonempty] = len(assignments) / (int(nonempty.sum()) * counts[nonempty])
    return weights


class XDC(SSLMethod):
    """Cross-modal deep clustering of a video and an audio encoder (``video``, ``audio`` + ``audio_mask``).

    Args:
        video_encoder: registered video backbone (E_v); the released one is ``r2plus1d_18_vmz``.
        video_encoder_kwargs: extra arguments of the video backbone factory.
        audio_encoder: registered audio backbone (E_a); the paper's is ``resnet18_audio``.
        audio_encoder_kwargs: extra arguments of the audio backbone factory.
        bn_momentum_caffe2: BatchNorm momentum of the video encoder in Caffe2's convention (weight of
            the running statistics; 0.9 as the released encoders were trained), passed to the backbone
            as PyTorch's ``bn_momentum = 1 - m``; ``None`` keeps the backbone's own.
        num_clusters: K, the number of k-means clusters of each modality (zoo's choice; the paper
            tunes it per pre-training set).
        kmeans_iters: Lloyd iterations of each k-means.
        kmeans_restarts: k-means initialisations tried, the lowest inertia kept.
        cluster_normalize: L2-normalise the features before k-means (cosine k-means; zoo's choice).
        reset_heads: re-initialise both classifiers (and their optimiser state) after every
            clustering, as DeepCluster does (zoo's choice).
        balance_clusters: weight the cross-entropy by inverse cluster size (zoo's choice, in place of
            DeepCluster's uniform sampling over clusters).
        silent_clips: ``skip`` training clips without audio (no pseudo-label, out of both losses,
            counted) or ``raise`` an error naming them.
        seed: seed of the k-means initialisations (offset by the epoch).
        dataset_pass_every_n_epochs: re-cluster at the start of every N-th epoch (1: every epoch,
            as in the paper).
        **kwargs: optimisation and probe settings of :class:`~zoo.methods.base.SSLMethod`.
    """

    paper = Paper(
        "Self-Supervised Learning by Cross-Modal Audio-Video Clustering (NeurIPS 2020)",
        "https://arxiv.org/abs/1911.12667",
    )
    checkpoints = "xdc*"  # catalog entries trained with this method

    def __init__(
        self,
        video_encoder: str = "r2plus1d_18_vmz",
        video_encoder_kwargs: dict[str, Any] | None = None,
        audio_encoder: str = "resnet18_audio",
        audio_encoder_kwargs: dict[str, Any] | None = None,
        bn_momentum_caffe2: float | None = 0.9,
        num_clusters: int = 64,
        kmeans_iters: int = 20,
        kmeans_restarts: int = 1,
        cluster_normalize: bool = True,
        reset_heads: bool = True,
        balance_clusters: bool = True,
        silent_clips: SilentClips = "skip",
        seed: int = 0,
        dataset_pass_every_n_epochs: int = 1,
        **kwargs: Any,
    ):
        super().__init__(dataset_pass_every_n_epochs=dataset_pass_every_n_epochs, **kwargs)
        if silent_clips not in ("skip", "raise"):
            raise UsageError(f"XDC: silent_clips must be 'skip' or 'raise', got {silent_clips!r}")
        if num_clusters < 2:
            raise UsageError(f"XDC: num_clusters must be at least 2, got {num_clusters}")
        video_kwargs = dict(video_encoder_kwargs or {})
        if bn_momentum_caffe2 is not None:
            if "bn_momentum" in video_kwargs:
                raise UsageError(
                    "XDC: give the video BatchNorm momentum once: bn_momentum_caffe2 (Caffe2 convention) "
                    "or video_encoder_kwargs.bn_momentum (PyTorch), with bn_momentum_caffe2: null"
                )
            video_kwargs["bn_momentum"] = caffe2_bn_momentum(bn_momentum_caffe2)
        video = self.add_encoder("video", video_encoder, video_kwargs)
        audio = self.add_encoder("audio", audio_encoder, audio_encoder_kwargs)
        self.video_classifier = nn.Linear(video.num_features, num_clusters)  # predicts audio clusters
        self.audio_classifier = nn.Linear(audio.num_features, num_clusters)  # predicts video clusters
        # targets of each encoder: the clusters of the *other* modality, one per training sample
        self.add_label_buffer("video_targets")
        self.add_label_buffer("audio_targets")
        self.register_buffer("video_target_weights", torch.ones(num_clusters))
        self.register_buffer("audio_target_weights", torch.ones(num_clusters))
        # centroids of the last clustering (in the space k-means ran in): assign new clips to clusters
        self.register_buffer("audio_centroids", torch.zeros(num_clusters, audio.num_features))
        self.register_buffer("video_centroids", torch.zeros(num_clusters, video.num_features))
        self.cluster_scores: dict[str, float] = {}  # NMI etc. of the last clustering with the labels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """h = E_v(x): the video representation of clips (B, C, T, H, W)."""
        return self.embed("video", x)

    def assign_clusters(self, modality: str, features: torch.Tensor) -> torch.Tensor:
        """The nearest centroid (B,) of the last clustering of ``modality`` for features (B, F)."""
        if self.hparams.cluster_normalize:
            features = F.normalize(features, dim=1)
        return torch.cdist(features, getattr(self, f"{modality}_centroids")).argmin(dim=1)

    @torch.no_grad()
    def audio_to_video_scores(self, h_audio: torch.Tensor, h_video: torch.Tensor) -> torch.Tensor:
        """Cross-modal scores (A, V): log p(cluster of audio a | video v) under the video classifier.

        XDC has no joint embedding; its link between the modalities is that the video classifier
        predicts the audio clusters, so an audio clip retrieves the videos most confident in its cluster.
        """
        clusters = self.assign_clusters("audio", h_audio)  # (A,)
        log_p = self.video_classifier(h_video).log_softmax(dim=-1)  # (V, K)
        return log_p[:, clusters].T

    # --- clustering ----------------------------------------------------------------------------------

    def dataset_pass_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        video, audio, has_audio = self._inputs(batch)
        out = {
            "video": self.embed("video", video),
            "audio": self.embed("audio", audio),
            "has_audio": has_audio,
        }
        if "label" in batch:
            out["label"] = batch["label"]
        return out  # features of silent clips are computed (eval mode: no statistics change) and ignored

    def on_dataset_pass(self, outputs: dict[str, torch.Tensor]) -> None:
        hp = self.hparams
        index, has_audio = outputs["index"], outputs["has_audio"].bool()
        self._check_silent(index, has_audio)
        video_targets = torch.full_like(index, -1)
        audio_targets = torch.full_like(index, -1)
        if int(has_audio.sum()) < hp.num_clusters:
            warnings.warn(
                f"XDC: {int(has_audio.sum())} of {len(index)} training clips have audio, fewer than "
                f"num_clusters={hp.num_clusters}: no pseudo-labels this epoch (the encoders do not learn)",
                stacklevel=2,
            )
        else:
            seed = hp.seed + self.current_epoch if self._trainer is not None else hp.seed
            settings = dict(iters=hp.kmeans_iters, restarts=hp.kmeans_restarts, seed=seed)
            audio_clusters = kmeans(
                outputs["audio"][has_audio], hp.num_clusters, normalize=hp.cluster_normalize, **settings
            )
            video_clusters = kmeans(
                outputs["video"][has_audio], hp.num_clusters, normalize=hp.cluster_normalize, **settings
            )
            self.audio_centroids.copy_(audio_clusters.centroids)
            self.video_centroids.copy_(video_clusters.centroids)
            # Fig. 1 (XDC): the audio clusters supervise the video encoder, and the reverse
            video_targets[has_audio] = audio_clusters.assignments
            audio_targets[has_audio] = video_clusters.assignments
            for modality, clusters in (("video", video_targets), ("audio", audio_targets)):
                weights = getattr(self, f"{modality}_target_weights")
                balanced = cluster_balance_weights(clusters[has_audio].cpu(), hp.num_clusters)
                weights.copy_(balanced if hp.balance_clusters else torch.ones_like(balanced))
            if "label" in outputs:
                self._score_clusters(
                    audio_clusters.assignments, video_clusters.assignments, outputs["label"][has_audio]
                )
        # k-means may differ between ranks (thread scheduling, float order): every rank takes rank 0's
        _from_first_rank(video_targets, audio_targets, *self._cluster_state())
        self.label_buffers["video_targets"].update(index, video_targets, gather=False)  # already gathered
        self.label_buffers["audio_targets"].update(index, audio_targets, gather=False)
        if hp.reset_heads:
            self._reset_heads()

    def _cluster_state(self) -> tuple[torch.Tensor, ...]:
        return (
            self.video_target_weights,
            self.audio_target_weights,
            self.audio_centroids,
            self.video_centroids,
        )

    def _check_silent(self, index: torch.Tensor, has_audio: torch.Tensor) -> None:
        silent = index[~has_audio]
        if not len(silent):
            return
        shown = ", ".join(map(str, silent[:8].tolist())) + (" ..." if len(silent) > 8 else "")
        message = f"XDC: {len(silent)} of {len(index)} training clips have no audio (dataset indices {shown})"
        if self.hparams.silent_clips == "raise":
            raise SilentClipsError(f"{message}; set silent_clips: skip to leave them out of the loss")
        warnings.warn(f"{message}: left out of both losses", stacklevel=3)

    def _score_clusters(
        self, audio_clusters: torch.Tensor, video_clusters: torch.Tensor, labels: torch.Tensor
    ) -> None:
        """NMI, ARI, accuracy, purity of both clusterings with the dataset's classes (for monitoring)."""
        keep = labels >= 0
        if not keep.any():
            return
        self.cluster_scores = {}
        for modality, clusters in (("audio", audio_clusters), ("video", video_clusters)):
            for name, value in clustering_scores(clusters[keep].cpu(), labels[keep].cpu()).items():
                self.cluster_scores[f"{modality}_clusters_{name}"] = value
        if self._trainer is not None:
            for name, value in self.cluster_scores.items():
                self.log(f"cluster/{name}", value, on_step=False, on_epoch=True, batch_size=1)

    def _reset_heads(self) -> None:
        """Fresh classifiers: cluster ids carry no meaning from one clustering to the next."""
        heads = (self.video_classifier, self.audio_classifier)
        for head in heads:
            head.reset_parameters()
        if self._trainer is not None:
            for optimizer in self.trainer.optimizers:
                for head in heads:
                    for p in head.parameters():
                        optimizer.state.pop(p, None)  # no momentum carried over from the old clusters

    # --- training ------------------------------------------------------------------------------------

    def _inputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hint = "give the data module audio: true"
        video = self.require(batch, "video", "one clip per sample: num_views: 1")  # (B, C, T, H, W)
        audio = self.require(batch, "audio", hint)  # (B, 1, F, S)
        mask = self.require(batch, "audio_mask", hint)  # (B, S)
        return video, audio, mask.any(dim=-1)  # (B,): the clip has sound

    def ssl_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        video, audio, has_audio = self._inputs(batch)
        index = self.require(batch, "index", "pseudo-labels are addressed by the sample index")
        if self.hparams.silent_clips == "raise" and not has_audio.all():
            raise SilentClipsError(
                f"XDC: training clips without audio (dataset indices {index[~has_audio].tolist()}); "
                "set silent_clips: skip to leave them out of the loss"
            )
        video_targets = self.label_buffers["video_targets"].lookup(index)[:, 0]  # (B,) audio clusters
        audio_targets = self.label_buffers["audio_targets"].lookup(index)[:, 0]  # (B,) video clusters
        h_video = self.embed("video", video)  # (B, F_v)
        loss_video = _cluster_loss(self.video_classifier(h_video), video_targets, self.video_target_weights)
        if has_audio.any():
            h_audio = self.embed("audio", audio[has_audio])  # (B', F_a): only clips with sound
            loss_audio = _cluster_loss(
                self.audio_classifier(h_audio), audio_targets[has_audio], self.audio_target_weights
            )
        else:  # no sound in the batch: the audio side is not run (zeros are not audio), zero gradients
            audio_side = [*self.encoders["audio"].parameters(), *self.audio_classifier.parameters()]
            loss_audio = sum(p.sum() for p in audio_side) * 0.0
        return {
            "loss": loss_video + loss_audio,  # each encoder predicts the other modality's clusters
            "loss_video": loss_video.detach(),
            "loss_audio": loss_audio.detach(),
            "silent_clips": (~has_audio).sum().float(),
            "features": h_video,
        }


def _from_first_rank(*tensors: torch.Tensor) -> None:
    """Overwrite ``tensors`` in place with rank 0's values (no-op on one process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for tensor in tensors:
            dist.broadcast(tensor, src=0)


def _cluster_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted cross-entropy over the samples with a pseudo-label (target ≥ 0) of every rank; 0 when none has one.

    The weights are normalised over the global batch (:func:`global_weighted_mean`), so two ranks give one
    process's loss and gradients; an empty selection keeps the graph (every rank joins the gradient reduction).
    """
    valid = targets >= 0
    losses = F.cross_entropy(logits[valid], targets[valid], reduction="none")  # (B',)
    return global_weighted_mean(losses, weights[targets[valid]])
