"""Layer-to-layer distillation: the L2 term that infuses a teacher network into a student (ELo).

ELo (Piergiovanni et al. 2020) adds L_d = ‖L_i − M_i‖₂ between a layer L_i of a network on another
modality (optical flow, audio, ...) and a layer M_i of the main RGB network. Their shapes differ
(an audio spectrogram network against a video network), so zoo compares the layers' pooled channel
vectors: the student's goes through a learned linear map to the teacher's width (FitNets' regressor
on the student side, so a teacher that keeps learning its own tasks cannot collapse onto the
student), and the teacher's is detached by default. The pooling, the regressor and the squared
distance averaged over channels are zoo's choices.
"""

from __future__ import annotations

import torch

from zoo.objectives.infonce import at_least_float32

__all__ = ["layer_distillation_loss", "pool_channels"]


def pool_channels(feature_map: torch.Tensor) -> torch.Tensor:
    """(B, C, ...) → (B, C): the mean of a layer's output over every position (frames, pixels, bins)."""
    return feature_map.flatten(2).mean(dim=2) if feature_map.ndim > 2 else feature_map


def layer_distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, detach_teacher: bool = True
) -> torch.Tensor:
    """Mean over samples of ‖student − teacher‖² / C for pooled layers (B, C) of equal width.

    Args:
        student: the student's layer, already mapped to the teacher's width (B, C).
        teacher: the teacher's layer (B, C).
        detach_teacher: no gradient into the teacher (it learns from its own tasks only).
    """
    if student.shape != teacher.shape:
        raise ValueError(
            f"distillation needs equal shapes, got {tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    if detach_teacher:
        teacher = teacher.detach()
    student, teacher = at_least_float32(student), at_least_float32(teacher)  # the difference in float32
    return (student - teacher).square().mean(dim=1).mean()
