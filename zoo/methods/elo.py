"""ELo: Evolving Losses for Unsupervised Video Representation Learning.

Piergiovanni, Angelova, Ryoo, CVPR 2020, https://arxiv.org/abs/2002.12177.

Method (abstract, Fig. 1–2; no code was released and the method section was not read): one network
per modality, each trained on its own self-supervised tasks; distillation terms ‖L_i − M_i‖₂
between a layer of a modality network and a layer of the main RGB network "infuse" the other
modalities into it; the loss is L = Σ_m Σ_t λ_{m,t} L_{m,t} + Σ_d λ_d L_d with every λ ∈ [0, 1],
and an evolutionary search (:mod:`zoo.methods.elo_search`, ``zoo elo search``) picks the λ with an
unsupervised fitness, Zipf distribution matching (:func:`zoo.objectives.zipf.zipf_fitness`). Only
the RGB student is kept.

Here the student is the ``video`` encoder on RGB clips and the teachers are

* ``residual``: the same kind of backbone on residual frames (differences of consecutive frames,
  ``frame_difference``) — a cheap stand-in for the optical flow of the paper, not flow;
* ``audio``: a spectrogram network on the clip's sound (``batch["audio"]``; clips without sound,
  ``audio_mask`` all false, are left out of the audio terms);
* ``motion_vectors``: a network on the codec's motion vectors of the clip (``batch["motion_vectors"]``).

Tasks (zoo's choice; the paper's list was not read):

* ``reverse`` for every modality: each sample is played backwards with probability ½ (the same
  draw for all its modalities: the clip, its residual frames, its motion vectors along T, its
  spectrogram along time) and a linear head predicts it (binary cross-entropy) — the arrow of time;
* ``align`` for every teacher: cross-modal InfoNCE between the teacher's and the student's
  projections of the same sample (other samples of the batch are the negatives).

Distillation: for each teacher and each layer name in ``distill_layers`` (the same name in both
networks), ``distill.<teacher>.<layer>`` is :func:`zoo.objectives.distillation.layer_distillation_loss`
between the student's pooled layer mapped by a linear regressor and the teacher's pooled layer.
With λ = 0 a location is off, so searching λ also searches the distillation locations (Fig. 2).

λ names: ``video.reverse``, ``<teacher>.reverse``, ``<teacher>.align``, ``distill.<teacher>.<layer>``
(:attr:`ELo.loss_names`); a term with λ = 0 is not computed and a teacher whose terms all have
λ = 0 is not run. Every loss term is logged
as ``train/<name>``.

Choices the sources leave open, all zoo's: the tasks above, the layers (``layer3``, ``layer4``), the
pooled-vector distillation with a student-side regressor and a detached teacher, τ 0.1 for
``align``, λ = 1 where not given, the backbones (tiny ones for a CPU; the paper's are (2+1)D
ResNets), AdamW. The online probe reads the student's features of the training clips as the
tasks saw them (half of them reversed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.catalog import Paper
from zoo.errors import UsageError
from zoo.eval.features import embed
from zoo.methods.base import SSLMethod, samples_with_sound
from zoo.methods.elo_search import STUDENT, TEACHERS, loss_names
from zoo.methods.optim import OptimizerName
from zoo.objectives.distillation import layer_distillation_loss, pool_channels
from zoo.objectives.infonce import cross_modal_info_nce_loss

__all__ = ["TEACHER_INPUTS", "ELo", "loss_names"]

TEACHER_INPUTS = {name: (key, time_dim) for name, (key, time_dim, _) in TEACHERS.items()}


def _out_channels(module: nn.Module) -> int:
    """Channels of a layer's output: the width of its last normalisation or convolution."""
    widths = [
        m.num_features if isinstance(m, nn.modules.batchnorm._NormBase) else m.out_channels
        for m in module.modules()
        if isinstance(m, (nn.modules.batchnorm._NormBase, nn.modules.conv._ConvNd))
    ]
    if not widths:
        raise UsageError(
            f"cannot tell the output channels of {type(module).__name__} (no conv or norm layer)"
        )
    return widths[-1]


class ELo(SSLMethod):
    """RGB student + teachers on other modalities, tasks and distillation weighted by λ ∈ [0, 1].

    Args:
        encoder: the RGB student's registered backbone.
        encoder_kwargs: extra arguments of the student's backbone factory.
        residual_encoder: backbone of the residual-frame teacher (built with ``frame_difference``);
            None: no such teacher.
        residual_encoder_kwargs: extra arguments of that backbone.
        audio_encoder: backbone of the audio teacher (None: none).
        audio_encoder_kwargs: extra arguments of that backbone.
        motion_encoder: backbone of the motion-vector teacher (None: none).
        motion_encoder_kwargs: extra arguments of that backbone.
        distill_layers: module names, present in the student and in every teacher, distilled
            from teacher to student (zoo's choice: ``layer3``, ``layer4``).
        loss_weights: λ by name (:attr:`loss_names`), each in [0, 1]; names left out get 1.
        embedding_dim: width of the ``align`` projections.
        temperature: τ of the ``align`` InfoNCE (zoo's choice, 0.1).
        detach_teacher: no gradient of the distillation terms into the teachers (zoo's choice).
        optimizer: the optimiser (zoo's choice: AdamW).
        lr: learning rate.
        weight_decay: weight decay.
        warmup_epochs: linear warm-up.
        **kwargs: other optimisation and probe settings of :class:`~zoo.methods.base.SSLMethod`.
    """

    paper = Paper(
        "Evolving Losses for Unsupervised Video Representation Learning (CVPR 2020)",
        "https://arxiv.org/abs/2002.12177",
    )

    def __init__(
        self,
        encoder: str = "r3d_tiny",
        encoder_kwargs: dict[str, Any] | None = None,
        residual_encoder: str | None = "r3d_tiny",
        residual_encoder_kwargs: dict[str, Any] | None = None,
        audio_encoder: str | None = "resnet9_audio",
        audio_encoder_kwargs: dict[str, Any] | None = None,
        motion_encoder: str | None = "r3d_10_mv",
        motion_encoder_kwargs: dict[str, Any] | None = None,
        distill_layers: list[str] | None = None,
        loss_weights: dict[str, float] | None = None,
        embedding_dim: int = 128,
        temperature: float = 0.1,
        detach_teacher: bool = True,
        optimizer: OptimizerName = "adamw",
        lr: float = 0.002,
        weight_decay: float = 1e-4,
        warmup_epochs: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(
            optimizer=optimizer, lr=lr, weight_decay=weight_decay, warmup_epochs=warmup_epochs, **kwargs
        )
        self.distill_layers = list(distill_layers if distill_layers is not None else ["layer3", "layer4"])
        self.add_encoder(STUDENT, encoder, encoder_kwargs)
        specs = {
            "residual": (residual_encoder, {"frame_difference": True, **(residual_encoder_kwargs or {})}),
            "audio": (audio_encoder, audio_encoder_kwargs),
            "motion_vectors": (motion_encoder, motion_encoder_kwargs),
        }
        self.teachers = [name for name, (arch, _) in specs.items() if arch]
        for name in self.teachers:
            self.add_encoder(name, *specs[name])
        self.loss_names = loss_names(self.teachers, self.distill_layers)
        self.loss_weights = self._check_weights(loss_weights or {})
        modalities = [STUDENT, *self.teachers]
        self.reverse_heads = nn.ModuleDict(
            {m: nn.Linear(self.encoders[m].num_features, 1) for m in modalities}
        )
        self.projections = nn.ModuleDict(
            {m: nn.Linear(self.encoders[m].num_features, embedding_dim) for m in modalities}
        )
        self.regressors = nn.ModuleDict()  # student layer (pooled) -> teacher layer width
        for teacher in self.teachers:
            for layer in self.distill_layers:
                width_in = _out_channels(self._layer(STUDENT, layer))
                width_out = _out_channels(self._layer(teacher, layer))
                self.regressors[f"{teacher}_{layer}"] = nn.Linear(width_in, width_out)

    def _check_weights(self, weights: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(weights) - set(self.loss_names))
        if unknown:
            raise UsageError(f"ELo loss_weights: unknown name(s) {unknown}; the names are {self.loss_names}")
        for name, value in weights.items():
            if not 0.0 <= float(value) <= 1.0:
                raise UsageError(f"ELo loss_weights: '{name}' is {value}, every λ must lie in [0, 1]")
        weights = {name: float(weights.get(name, 1.0)) for name in self.loss_names}
        if not any(weights.values()):
            raise UsageError("ELo loss_weights: every λ is 0, nothing would be trained")
        return weights

    def _layer(self, modality: str, name: str) -> nn.Module:
        modules = dict(self.encoders[modality].named_modules())
        if name not in modules:
            raise UsageError(
                f"ELo distill_layers: '{name}' is not a module of the {modality} encoder "
                f"({type(self.encoders[modality]).__name__})"
            )
        return modules[name]

    @contextmanager
    def _capture(self, modality: str, layers: list[str]) -> Iterator[dict[str, torch.Tensor]]:
        """Within the block, the pooled outputs (B, C) of ``layers`` of ``modality``'s encoder."""
        captured: dict[str, torch.Tensor] = {}
        hooks = [
            self._layer(modality, name).register_forward_hook(
                lambda _m, _i, out, name=name: captured.__setitem__(name, pool_channels(out))
            )
            for name in layers
        ]
        try:
            yield captured
        finally:
            for hook in hooks:
                hook.remove()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """h = f(x): the student's pooled features (B, F) of RGB clips (B, C, T, H, W)."""
        return self.embed(STUDENT, x)

    def _active(self, prefix: str) -> bool:
        return any(w > 0 for n, w in self.loss_weights.items() if n.startswith(prefix))

    def ssl_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        hp, lam = self.hparams, self.loss_weights
        video = self.require(batch, "video")  # (B, C, T, H, W)
        reverse = torch.rand(len(video), device=video.device) < 0.5  # (B,) the arrow-of-time targets
        teachers = [t for t in self.teachers if self._active(f"{t}.") or self._active(f"distill.{t}.")]
        student_layers = self.distill_layers if any(self._active(f"distill.{t}.") for t in teachers) else []
        with self._capture(STUDENT, student_layers) as student_maps:
            h = self(_reverse(video, reverse, 2))  # (B, F)
        z = self.projections[STUDENT](h)  # (B, D)
        terms = {}
        if lam[f"{STUDENT}.reverse"] > 0:
            terms[f"{STUDENT}.reverse"] = _reverse_loss(self.reverse_heads[STUDENT](h), reverse)
        for teacher in teachers:
            key, time_dim = TEACHER_INPUTS[teacher]
            x = self.require(batch, key, f"the {teacher} teacher reads it")
            keep = (
                samples_with_sound(batch, len(x), x.device)
                if teacher == "audio"
                else torch.ones_like(reverse)
            )  # (B,)
            if not keep.any():
                continue
            with self._capture(teacher, self.distill_layers) as teacher_maps:
                h_t = embed(self.encoders[teacher], _reverse(x[keep], reverse[keep], time_dim))  # (B', F_t)
            if lam[f"{teacher}.reverse"] > 0:
                terms[f"{teacher}.reverse"] = _reverse_loss(self.reverse_heads[teacher](h_t), reverse[keep])
            if lam[f"{teacher}.align"] > 0:
                terms[f"{teacher}.align"] = cross_modal_info_nce_loss(
                    z[keep], self.projections[teacher](h_t), hp.temperature
                )
            for layer in student_layers:
                if lam[f"distill.{teacher}.{layer}"] > 0:
                    student = self.regressors[f"{teacher}_{layer}"](student_maps[layer][keep])  # (B', C_t)
                    terms[f"distill.{teacher}.{layer}"] = layer_distillation_loss(
                        student, teacher_maps[layer], hp.detach_teacher
                    )
        loss = sum(lam[name] * value for name, value in terms.items())  # Σ λ_{m,t} L_{m,t} + Σ λ_d L_d
        return {"loss": loss, "features": h, **{name: value.detach() for name, value in terms.items()}}


def _reverse(x: torch.Tensor, flags: torch.Tensor, time_dim: int) -> torch.Tensor:
    """``x`` with the samples where ``flags`` (B,) is true played backwards along ``time_dim``."""
    shape = [len(x)] + [1] * (x.ndim - 1)
    return torch.where(flags.view(shape), x.flip(time_dim), x)


def _reverse_loss(logits: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.squeeze(1), flags.float())
