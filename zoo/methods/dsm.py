"""DSM: Enhancing Unsupervised Video Representation Learning by Decoupling the Scene and the Motion.

Wang, Jiao, Liu, AAAI 2021, https://arxiv.org/abs/2009.05757
(code: ``FingerRec/DSM-decoupling-scene-motion``).

Method: two constructed clips decouple the scene from the motion. The positive keeps the motion and
breaks the scene — spatial local disturbance, 1–3 local warps, the same on every frame
(:func:`zoo.data.video_augment.spatial_local_disturbance`); the negative keeps the scene and breaks
the motion — a clip of the same video at another time. Trained inside MoCo
(:class:`~zoo.methods.moco.MoCo`): the anchor is the warped clip, the key the same segment with
independent augmentation (momentum encoder), plus the queue and the intra-video negative column,
``[q·k₊, q·queue, q·n] / τ``. "DSM (triplet)" (``objective: triplet``) uses the margin loss instead.

Where the released code and the paper differ: the paper's temporal local disturbance is realised in
``train_dsm`` only by sampling the negative at another time of the same video; the frame
insertion / swap module (``augment/gen_negative.py``, ``GenNegative``) is built but never used, and
zoo does not use it either. The code draws one warp for the whole batch (``per_clip_warps: false``
reproduces it); the paper disturbs each clip (zoo's default). Its loop bounds are transposed (only
square crops are right); zoo bounds rows by the height. Warp centres and shifts are the code's
[60, 140) and [10, 20) pixels of a 224 crop, scaled to the frame size (zoo's choice for other sizes;
on small frames raise ``warp_shift_range``: a pixel moves by at most half the shift, truncated, so
shifts under 2 pixels move nothing).
The warp here is one gather over the clip; ``benchmarks/dsm_warp.py`` measures it against a
straightforward per-pixel implementation.
"""

from __future__ import annotations

from typing import Any

import torch

from zoo.catalog import Paper
from zoo.data.video_augment import (
    WARP_CENTER_RANGE,
    WARP_SHIFT_RANGE,
    draw_warp_points,
    spatial_local_disturbance,
)
from zoo.methods.moco import MoCo

__all__ = ["DSM"]


class DSM(MoCo):
    """Spatial local disturbance on the anchor clip, inside MoCo with the intra-video negative.

    Args:
        max_warps: 1 to ``max_warps`` warps per clip (3 in the code).
        warp_center_range: [low, high) of the warp point, as fractions of the frame side (60/224, 140/224).
        warp_shift_range: [low, high) of the warp shift, as fractions of the frame side (10/224, 20/224).
        per_clip_warps: draw each clip's warps (the paper); False: one draw per batch (the code).
        intra_video_negative: append ``q·n`` for a clip of the same video at another time (the code: yes).
        **kwargs: the :class:`~zoo.methods.moco.MoCo` settings (encoder, queue, τ, objective, ...).
    """

    paper = Paper(
        "Enhancing Unsupervised Video Representation Learning by Decoupling the Scene and the Motion "
        "(AAAI 2021)",
        "https://arxiv.org/abs/2009.05757",
    )

    def __init__(
        self,
        max_warps: int = 3,
        warp_center_range: tuple[float, float] = WARP_CENTER_RANGE,
        warp_shift_range: tuple[float, float] = WARP_SHIFT_RANGE,
        per_clip_warps: bool = True,
        intra_video_negative: bool = True,
        **kwargs: Any,
    ):
        if max_warps < 1:
            raise ValueError(f"max_warps must be >= 1, got {max_warps}")
        super().__init__(intra_video_negative=intra_video_negative, **kwargs)

    def disturb_anchor(self, clips: torch.Tensor) -> torch.Tensor:
        hp = self.hparams
        points = draw_warp_points(
            len(clips),
            tuple(clips.shape[-2:]),
            hp.max_warps,
            tuple(hp.warp_center_range),
            tuple(hp.warp_shift_range),
            hp.per_clip_warps,
        )
        return spatial_local_disturbance(clips, points)  # (B, C, T, H, W)
