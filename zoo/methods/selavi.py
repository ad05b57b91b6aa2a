"""SeLaVi: Labelling unlabelled videos from scratch with multi-modal self-supervision.

Asano, Patrick, Rupprecht, Vedaldi, NeurIPS 2020, https://arxiv.org/abs/2006.13662.

Method (§3): a video encoder (R(2+1)D-18) and an audio encoder (ResNet-9 over a log-filterbank) each
feed ``heads`` classification heads of K clusters. Every sample carries one self-label per head, shared
by both modalities, and the loss is the cross-entropy of both modalities to it (§3.2):
``L = ½·mean_h CE(video_h, y_h) + ½·mean_h CE(audio_h, y_h)``. The labels come from whole-dataset passes
(eval mode): per head, the modality-combined probabilities ``P = softmax(video_h) ⊙ softmax(audio_h)``
are balanced by Sinkhorn–Knopp on ``P^(λ/2)``, λ = 20, towards a cluster marginal — uniform, or
Gaussian cluster sizes (§3.3 "G", with the code's ``r ∝ 1/size``); see
:mod:`zoo.objectives.self_labelling`. At the first clustering the audio heads' clusters are permuted to
match the video heads' ("MA"); the heads are shuffled into ``head_groups`` groups, each labelled from
its own pass over the (augmented) data ("DH"). Passes run at ``total·linspace(0,1,num_solves)^1.5``
steps, denser early, after 20 batches that warm up the BatchNorm statistics.

Clips without sound (``audio_mask`` all False) never enter the audio encoder: their audio term is left
out of the loss (the audio term is the mean over the sounding clips of the whole global batch, whatever
their share on each rank), their label comes from the video probabilities alone (``P = p_video²``), and the
fraction is logged as ``train/audio_missing`` — or, with ``missing_audio: raise``, such a clip is an error.

The published checkpoints (``selavi-*``) convert with :mod:`zoo.convert.selavi` onto this module's state
dict: encoders, heads, self-labels (``label_buffers.selflabels``) and cluster sizes (``cluster_sizes``).
"""

from __future__ import annotations

import os
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import nn

from zoo.catalog import Paper
from zoo.errors import UsageError
from zoo.eval.clustering import clustering_scores
from zoo.methods.base import SSLMethod, samples_with_sound
from zoo.methods.memory import LabelBuffer
from zoo.models.self_label_head import SelfLabelHead
from zoo.objectives.distributed import global_weighted_mean
from zoo.objectives.self_labelling import (
    SizeOrder,
    gaussian_cluster_sizes,
    marginal_from_sizes,
    match_cluster_order,
    order_cluster_sizes,
    self_label,
    self_label_schedule,
)

__all__ = ["AudioMissingInBatchError", "SeLaVi"]

MODALITIES = ("video", "audio")


class AudioMissingInBatchError(UsageError):
    """A clip has no sound while the method was told to refuse such clips (``missing_audio: raise``)."""


class SeLaVi(SSLMethod):
    """SeLaVi self-labelling over ``batch["video"]`` and ``batch["audio"]`` (+ ``audio_mask``, ``index``).

    Args:
        video_encoder: registered video backbone (``r2plus1d_18`` in the paper, ``r3d_tiny`` on a CPU).
        video_encoder_kwargs: extra arguments of the video backbone.
        audio_encoder: registered audio backbone (``resnet9_audio`` in the paper).
        audio_encoder_kwargs: extra arguments of the audio backbone.
        num_clusters: K, clusters per head (AVE 28, Kinetics-Sound 32, VGG-Sound 309, Kinetics 400).
        heads: self-label heads per modality (10 in the released models).
        head_hidden_dim: hidden width of each head.
        head_dropout: dropout of the heads.
        lamb: λ of the ``P^(λ/2)`` sharpening (20).
        marginal: ``uniform`` or ``gauss`` cluster sizes.
        gauss_std: relative standard deviation of the Gaussian sizes (0.1).
        marginal_per_head: draw sizes per head (the original's default) or once for all heads (then
            clamped at 1, as the original).
        marginal_order: ``original`` (the code's placement of the sizes) or ``by_mass`` (the smallest size
            on the lightest cluster, as intended); see :func:`~zoo.objectives.self_labelling.order_cluster_sizes`.
        redraw_marginal: draw new sizes at every clustering (the original's ``diff_dist_every``).
        align_modalities: permute the audio heads' clusters to the video heads' at the first clustering.
        head_groups: groups of heads labelled from separate dataset passes (2 in the README's runs).
        num_solves: points of the clustering schedule (``nopts``: 100).
        schedule_power: exponent of the schedule (1.5).
        bn_warmup_batches: batches run in train mode without gradient before the first clustering.
        missing_audio: ``video_only`` (clips without sound learn and are labelled from video) or ``raise``.
        seed: seed of the clustering randomness (head order, Gaussian sizes, alignment).
        **kwargs: optimisation and probe settings of :class:`~zoo.methods.base.SSLMethod`.
    """

    paper = Paper(
        "Labelling unlabelled videos from scratch with multi-modal self-supervision (NeurIPS 2020)",
        "https://arxiv.org/abs/2006.13662",
    )
    checkpoints = "selavi*"  # catalog entries trained with this method

    def __init__(
        self,
        video_encoder: str = "r2plus1d_18",
        video_encoder_kwargs: dict[str, Any] | None = None,
        audio_encoder: str = "resnet9_audio",
        audio_encoder_kwargs: dict[str, Any] | None = None,
        num_clusters: int = 309,
        heads: int = 10,
        head_hidden_dim: int = 512,
        head_dropout: float = 0.3,
        lamb: float = 20.0,
        marginal: Literal["uniform", "gauss"] = "gauss",
        gauss_std: float = 0.1,
        marginal_per_head: bool = True,
        marginal_order: SizeOrder = "original",
        redraw_marginal: bool = False,
        align_modalities: bool = True,
        head_groups: int = 2,
        num_solves: int = 100,
        schedule_power: float = 1.5,
        bn_warmup_batches: int = 20,
        missing_audio: Literal["video_only", "raise"] = "video_only",
        seed: int = 0,
        **kwargs: Any,
    ):
        kwargs.setdefault("optimizer", "sgd")
        kwargs.setdefault("lr", 0.01)
        kwargs.setdefault("weight_decay", 1e-5)
        super().__init__(**kwargs)
        checks = {
            "num_clusters": num_clusters >= 2,
            "heads": heads >= 1,
            "head_groups": 1 <= head_groups <= heads,
            "num_solves": num_solves >= 2,
            "marginal": marginal in ("uniform", "gauss"),
            "marginal_order": marginal_order in ("original", "by_mass"),
            "missing_audio": missing_audio in ("video_only", "raise"),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise UsageError(f"SeLaVi: invalid {', '.join(bad)} (heads={heads}, head_groups={head_groups})")
        video = self.add_encoder("video", video_encoder, video_encoder_kwargs)
        audio = self.add_encoder("audio", audio_encoder, audio_encoder_kwargs)
        dims = {"video": video.num_features, "audio": audio.num_features}
        self.heads = nn.ModuleDict(
            {
                m: nn.ModuleList(
                    SelfLabelHead(dims[m], num_clusters, head_hidden_dim, head_dropout) for _ in range(heads)
                )
                for m in MODALITIES
            }
        )
        self.add_label_buffer("selflabels", heads=heads)
        # K_dist of the original per head: the cluster sizes behind the marginal r ∝ 1/size (ones: uniform)
        self.register_buffer("cluster_sizes", torch.ones(heads, num_clusters, dtype=torch.float64))
        self.register_buffer("cluster_sizes_drawn", torch.tensor(False))
        self.solves_done = 0  # clusterings so far (saved in checkpoints: a resumed run keeps its schedule)
        self._pass_heads: list[int] = []  # the head group of the running dataset pass

    # --- the model -------------------------------------------------------------------------------

    @property
    def selflabels(self) -> LabelBuffer:
        """The self-labels (N, heads) of the training samples, by sample index."""
        return self.label_buffers["selflabels"]

    def head_logits(self, modality: str, features: torch.Tensor) -> torch.Tensor:
        """Logits (H, B, K) of every head of ``modality`` over pooled features (B, F)."""
        return torch.stack([head(features) for head in self.heads[modality]])

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cluster logits (H, B, K) of clips (B, C, T, H, W) and spectrograms (B, 1, F, S)."""
        return (
            self.head_logits("video", self.embed("video", video)),
            self.head_logits("audio", self.embed("audio", audio)),
        )

    def _sound(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B,) True where the clip has sound; raises for silent clips under ``missing_audio: raise``."""
        audio = self.require(batch, "audio", "give the data module audio: true and num_views: 1")
        has_sound = samples_with_sound(batch, len(audio), audio.device)
        if self.hparams.missing_audio == "raise" and not bool(has_sound.all()):
            raise AudioMissingInBatchError(
                f"SeLaVi: {int((~has_sound).sum())} clip(s) without audio in the batch (sample index "
                f"{batch['index'][~has_sound].tolist() if 'index' in batch else '?'}); set model "
                "missing_audio: video_only to learn them from video alone"
            )
        return has_sound

    # --- training --------------------------------------------------------------------------------

    def ssl_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        video = self.require(batch, "video", "SeLaVi reads one clip per sample: num_views: 1")
        index = self.require(batch, "index")
        has_sound = self._sound(batch)
        labels = self.selflabels.lookup(index).T  # (H, B)
        if bool((labels < 0).any()):
            raise RuntimeError("SeLaVi: samples without self-labels; the first clustering runs at step 0")
        features = self.embed("video", video)  # (B, F)
        loss_video = self._head_loss(self.head_logits("video", features), labels)
        audio_losses = features.new_zeros(0)  # (B_sound,): mean over heads of each sounding clip's CE
        if bool(has_sound.any()):  # silent clips never enter the audio encoder
            audio_features = self.embed("audio", batch["audio"][has_sound])
            audio_logits = self.head_logits("audio", audio_features)  # (H, B_sound, K)
            audio_losses = (
                F.cross_entropy(audio_logits.flatten(0, 1), labels[:, has_sound].flatten(), reduction="none")
                .view(audio_logits.shape[:2])
                .mean(0)
            )
        # the mean over the sounding clips of every rank (not of each rank), so uneven silence between ranks
        # gives the loss and gradients of one process over the global batch
        loss_audio = global_weighted_mean(audio_losses, torch.ones_like(audio_losses))
        loss = 0.5 * loss_video + 0.5 * loss_audio  # §3.2
        return {
            "loss": loss,
            "loss_video": loss_video.detach(),
            "loss_audio": loss_audio.detach(),
            "audio_missing": (~has_sound).float().mean(),
            "features": features,
        }

    @staticmethod
    def _head_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """mean_h CE(logits_h, y_h) for logits (H, B, K) and labels (H, B) (every head sees the same B)."""
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten())

    # --- self-labelling ----------------------------------------------------------------------------

    def on_train_start(self) -> None:
        super().on_train_start()
        self._schedule = self_label_schedule(
            self.total_steps, self.hparams.num_solves, self.hparams.schedule_power
        )
        if self.global_step == 0 and self.solves_done == 0:
            self._warm_up_batch_norm()

    @torch.no_grad()
    def _warm_up_batch_norm(self) -> None:
        """Fill the BatchNorm running statistics (train mode, no gradient) before the first clustering."""
        if self.hparams.bn_warmup_batches <= 0:
            return
        for i, batch in enumerate(self.trainer.datamodule.train_dataloader()):
            if i == self.hparams.bn_warmup_batches:
                break
            batch = move_data_to_device(batch, self.device)
            has_sound = self._sound(batch)
            self.head_logits("video", self.embed("video", batch["video"]))
            if bool(has_sound.sum() > 1):  # BatchNorm needs two samples
                self.head_logits("audio", self.embed("audio", batch["audio"][has_sound]))

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_start(batch, batch_idx)
        if self.solves_done < len(self._schedule) and self.global_step >= self._schedule[self.solves_done]:
            self.cluster()  # one clustering per step at most, as the original

    def cluster(self) -> None:
        """Re-label every training sample: per head group, one pass over the data, then Sinkhorn per head."""
        hp = self.hparams
        generator = torch.Generator().manual_seed(hp.seed + self.solves_done)
        self._generator = generator
        order = torch.randperm(hp.heads, generator=generator).tolist()
        for group in range(hp.head_groups):
            self._pass_heads = order[group :: hp.head_groups]
            self.run_dataset_pass()
        self.solves_done += 1
        self.log("train/clusterings", float(self.solves_done), on_step=True, on_epoch=False, batch_size=1)

    def dataset_pass_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        has_sound = self._sound(batch)
        audio = batch["audio"]
        audio_features = torch.zeros(len(audio), self.encoder_num_features("audio"), device=audio.device)
        if bool(has_sound.any()):
            audio_features[has_sound] = self.embed("audio", audio[has_sound])
        out = {
            "video_features": self.embed("video", batch["video"]).float(),
            "audio_features": audio_features,
            "has_sound": has_sound,
        }
        if "label" in batch:
            out["label"] = batch["label"]
        return out

    @torch.no_grad()
    def on_dataset_pass(self, outputs: dict[str, torch.Tensor]) -> None:
        hp = self.hparams
        was_training = self.heads.training
        self.heads.eval()
        has_sound = outputs["has_sound"]
        first = self.solves_done == 0
        if hp.marginal == "gauss" and (not bool(self.cluster_sizes_drawn) or hp.redraw_marginal):
            self._draw_cluster_sizes(len(has_sound))
        labels = self.selflabels.labels.clone()
        for h in self._pass_heads:
            p_video = F.softmax(self.heads["video"][h](outputs["video_features"]), dim=1, dtype=torch.float64)
            p_audio = F.softmax(self.heads["audio"][h](outputs["audio_features"]), dim=1, dtype=torch.float64)
            if first and hp.align_modalities and bool(has_sound.any()):
                perm = match_cluster_order(p_video[has_sound], p_audio[has_sound], generator=self._generator)
                classifier = self.heads["audio"][h].classifier
                classifier.weight.copy_(classifier.weight[perm])
                classifier.bias.copy_(classifier.bias[perm])
                p_audio = p_audio[:, perm]
            probs = p_video * torch.where(has_sound[:, None], p_audio, p_video)  # (N, K); silent: p_video²
            if hp.marginal == "gauss":
                self.cluster_sizes[h] = order_cluster_sizes(self.cluster_sizes[h], probs, hp.marginal_order)
            result = self_label(probs, hp.lamb, marginal_from_sizes(self.cluster_sizes[h]))
            labels[outputs["index"], h] = result.labels.to(labels.device)
            self.log(f"train/selflabel_cost_{h}", result.cost, on_step=True, on_epoch=False, batch_size=1)
        self.heads.train(was_training)
        self._log_label_scores(labels, outputs)
        self.selflabels.update(outputs["index"], labels[outputs["index"]], gather=False)

    def _draw_cluster_sizes(self, num_samples: int) -> None:
        hp = self.hparams
        draws = 1 if not hp.marginal_per_head else hp.heads
        sizes = torch.stack(
            [
                gaussian_cluster_sizes(
                    num_samples,
                    hp.num_clusters,
                    hp.gauss_std,
                    clamp=not hp.marginal_per_head,
                    generator=self._generator,
                )
                for _ in range(draws)
            ]
        )  # (draws, K)
        self.cluster_sizes.copy_(sizes.expand_as(self.cluster_sizes).to(self.cluster_sizes))
        self.cluster_sizes_drawn.fill_(True)

    def _log_label_scores(self, labels: torch.Tensor, outputs: dict[str, torch.Tensor]) -> None:
        """Head 0: NMI with the previous labels and, where the data has classes, NMI/ARI/accuracy/purity."""
        head = self._pass_heads[0]
        new = labels[outputs["index"], head].cpu()
        old = self.selflabels.labels[outputs["index"], head].cpu()
        if bool((old >= 0).all()):
            self.log("train/selflabel_nmi_previous", clustering_scores(new, old)["nmi"], batch_size=1)
        if "label" in outputs:
            scores = clustering_scores(new, outputs["label"].cpu())
            for name, value in scores.items():
                self.log(f"train/selflabel_{name}", value, on_step=True, on_epoch=False, batch_size=1)

    # --- checkpoints and evaluation ----------------------------------------------------------------

    @classmethod
    def from_original_checkpoint(cls, path: str | os.PathLike, **kwargs: Any) -> SeLaVi:
        """A SeLaVi of the authors' layout (R(2+1)D-18, ResNet-9) loaded strictly from their checkpoint
        file (``selavi_*.pth``): encoders, heads, self-labels and cluster sizes.

        Args:
            path: the original checkpoint.
            **kwargs: further constructor arguments (``num_clusters`` and ``heads`` come from the file).
        """
        from zoo.convert import convert_file

        state = convert_file("selavi", path)
        heads, num_clusters = state["cluster_sizes"].shape
        model = cls(num_clusters=num_clusters, heads=heads, **{"online_probe": False, **kwargs})
        model.load_state_dict(state)
        return model.eval()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["selavi_solves_done"] = self.solves_done

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.solves_done = int(checkpoint.get("selavi_solves_done", 0))

    @torch.no_grad()
    def predict_clusters(
        self, video: torch.Tensor, audio: torch.Tensor | None = None, head: int = 0
    ) -> torch.Tensor:
        """Cluster (B,) of each sample by ``head``: argmax of ``p_video ⊙ p_audio`` (video alone without audio)."""
        probs = F.softmax(self.heads["video"][head](self.embed("video", video)), dim=1)
        if audio is not None:
            probs = probs * F.softmax(self.heads["audio"][head](self.embed("audio", audio)), dim=1)
        return probs.argmax(dim=1)
