"""BE: Background Erasing — Removing the Background Shortcut for self-supervised video representation learning.

Wang, Gao, Wang, Zhou, Tian, Shen, CVPR 2021, https://arxiv.org/abs/2009.05769
(code: ``FingerRec/BE``, ``src/Contrastive``).

Method (§3): a video model can tell clips apart by their static background alone. BE adds a static
frame of the same video to every frame of the clip, ``x̃_t = (1 − λ)·x_t + λ·x_k`` — the
"distracting" clip keeps the motion and has the background amplified — and asks the model to map
x̃ close to the original clip, so the representation cannot rest on the background. Trained
inside MoCo (:class:`~zoo.methods.moco.MoCo`): the anchor is the erased clip, the key the same
temporal segment with independent augmentation (momentum encoder), the queue holds past keys and
one extra negative is a clip of the same video at another time: ``[q·k₊, q·queue, q·n] / τ``.
"BE (triplet)" (``objective: triplet``) uses a margin loss on (anchor, key, negative) instead.

As in the released code (``augment/gen_positive.py``: ``SpatialMixup(0.3, version=2)``): one
λ ~ U(0, 0.3) per batch and one random frame per clip, here as one batched operation on the device
(:func:`zoo.data.video_augment.background_erasing`; equal to the code's loop to the last bit on the
same draws). Zoo's choices, where the sources leave them open: the draws come from torch's global
generator; the erasing runs after the data module's augmentation (the code's too: on the
normalised batch).
"""

from __future__ import annotations

from typing import Any

import torch

from zoo.catalog import Paper
from zoo.data.video_augment import background_erasing, draw_background_erasing
from zoo.methods.moco import MoCo

__all__ = ["BE"]


class BE(MoCo):
    """Background Erasing on the anchor clip, inside MoCo with the intra-video negative.

    Args:
        max_lambda: λ ~ U(0, max_lambda), one per batch (0.3 in the code).
        intra_video_negative: append ``q·n`` for a clip of the same video at another time (the code: yes).
        **kwargs: the :class:`~zoo.methods.moco.MoCo` settings (encoder, queue, τ, objective, ...).
    """

    paper = Paper(
        "Removing the Background by Adding the Background: Towards Background Robust Self-supervised "
        "Video Representation Learning (CVPR 2021)",
        "https://arxiv.org/abs/2009.05769",
    )

    def __init__(self, max_lambda: float = 0.3, intra_video_negative: bool = True, **kwargs: Any):
        if not 0.0 <= max_lambda <= 1.0:
            raise ValueError(f"max_lambda must be in [0, 1], got {max_lambda}")
        super().__init__(intra_video_negative=intra_video_negative, **kwargs)

    def disturb_anchor(self, clips: torch.Tensor) -> torch.Tensor:
        lam, frames = draw_background_erasing(len(clips), clips.shape[2], self.hparams.max_lambda)
        return background_erasing(clips, lam, frames)  # (B, C, T, H, W)
