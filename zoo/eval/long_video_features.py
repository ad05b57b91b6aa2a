"""SynthMotion's long videos as per-frame features of a zoo backbone, one folder per task: a DataModule.

Unsupervised action segmentation (TOT, CTE) reads precomputed frame features. This module makes them from
SynthMotion's long videos (ordered sub-actions of three tasks, like Breakfast's activities) in one step:
it generates SynthMotion, runs a backbone over every frame (:func:`~zoo.eval.features.extract_sequence_features`,
a window of ``clip_frames`` frames centred on each), and arranges the result as the CTE layout — one
feature folder per task (activity), so ``activity`` keeps one task as TOT trains one model per activity —
which :class:`~zoo.data.datamodules.FeatureSequenceDataModule` reads. Features are extracted once per
(SynthMotion config, backbone, weights, window) and cached next to the videos.

It lives in ``eval`` (not ``data``) because extraction runs a model. The long videos have no split: as in
CTE and TOT, the unsupervised model is evaluated on the videos it clusters.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Literal

from zoo.data.base import SynthMotionSource
from zoo.data.datamodules import FeatureSequenceDataModule
from zoo.data.sequences import FeatureSequenceDataset, synthmotion_long_videos
from zoo.eval.features import extract_sequence_features

__all__ = ["LongVideoFeatureDataModule", "extract_long_video_features"]


def extract_long_video_features(
    synth_root: str | os.PathLike,
    backbone: str = "motionformer_tiny",
    pretrained: str | None = "motionformer-tiny-synthmotion",
    backbone_kwargs: dict[str, Any] | None = None,
    clip_frames: int | None = 8,
    clip_stride: int = 2,
    out_dir: str | os.PathLike | None = None,
) -> Path:
    """Features of SynthMotion's long videos in the CTE layout (``features/{task}/{video}.npy`` (D, T)).

    Args:
        synth_root: a generated SynthMotion folder with long videos.
        backbone: a registered architecture.
        pretrained: its weights (a catalog name, ``hf-hub:`` repository or file; None: random init).
        backbone_kwargs: arguments of the architecture (e.g. ``num_classes`` of the checkpoint).
        clip_frames: frames of the window centred on each frame (None: an image backbone, one frame).
        clip_stride: frames between the frames of a window.
        out_dir: where to write (default: a folder of ``synth_root`` named after the other arguments).

    Returns:
        The CTE-layout folder; its ``.npy`` files store ``(D, T)`` (read with ``frames_first=False``).
    """
    from zoo import registry
    from zoo.api import load_pretrained

    videos, label_files, mapping = synthmotion_long_videos(synth_root)
    if not videos:
        raise FileNotFoundError(
            f"{synth_root} has no long videos (generate SynthMotion with long_videos >= 1)"
        )
    settings = dict(
        backbone=backbone,
        pretrained=pretrained,
        backbone_kwargs=backbone_kwargs or {},
        clip_frames=clip_frames,
        clip_stride=clip_stride,
    )
    tag = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    out_dir = Path(out_dir) if out_dir else Path(synth_root) / f"long_features-{backbone}-{tag}"
    if (out_dir / "settings.json").is_file():  # written last: a complete folder
        return out_dir
    partial = out_dir.with_name(f".{out_dir.name}.tmp{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    model = registry.build(backbone, **(backbone_kwargs or {}))
    if pretrained:
        load_pretrained(model, pretrained)
    flat = extract_sequence_features(
        model,
        videos,
        partial / "flat",
        label_files=label_files,
        mapping_file=mapping,
        clip_frames=clip_frames,
        clip_stride=clip_stride,
        progress=False,
    )
    for video in videos:  # task folders: long/{task}_{i:03d}.mp4
        task = video.stem.rsplit("_", 1)[0]
        (partial / "features" / task).mkdir(parents=True, exist_ok=True)
        os.replace(flat / "features" / f"{video.stem}.npy", partial / "features" / task / f"{video.stem}.npy")
    os.replace(flat / "groundTruth", partial / "groundTruth")
    (partial / "mapping").mkdir()
    os.replace(flat / "mapping.txt", partial / "mapping" / "mapping.txt")
    shutil.rmtree(flat)
    (partial / "settings.json").write_text(json.dumps(settings, indent=1), encoding="utf-8")
    if out_dir.exists():  # another process finished first
        shutil.rmtree(partial)
    else:
        os.replace(partial, out_dir)
    return out_dir


class LongVideoFeatureDataModule(FeatureSequenceDataModule):
    """:class:`~zoo.data.datamodules.FeatureSequenceDataModule` over SynthMotion's long videos through a backbone.

    Features are generated and extracted when the module is built (cached: only the first time).

    Args:
        activity: the task whose videos to keep (``square_tour``, ``spin_and_shake``, ``drop_and_bounce``;
            None: all).
        backbone: a registered architecture that embeds each frame's window.
        pretrained: its weights (a catalog name, ``hf-hub:`` repository or file; None: random init).
        backbone_kwargs: arguments of the architecture.
        clip_frames: frames of the window centred on each frame (None: an image backbone).
        clip_stride: frames between the frames of a window.
        synth: :class:`~zoo.data.synthmotion.SynthMotionConfig` fields (needs ``long_videos``).
        synth_root: where SynthMotion is generated (default: the cache folder of its config).
        mode: training sequences, ``"full"`` or ``"sorted"`` (``num_frames`` frames sorted in time, as TOT).
        num_frames: frames per training video in ``"sorted"`` mode.
        num_splits: temporal parts of ``"sorted"`` mode.
        frame_stride: use every ``frame_stride``-th frame.
        batch_size: videos per batch.
        num_workers: DataLoader worker processes.
        persistent_workers: keep the workers between epochs.
        drop_last: drop the last incomplete training batch.
        seed: seed of the ``"sorted"`` draws.
    """

    def __init__(
        self,
        activity: str | None = None,
        backbone: str = "motionformer_tiny",
        pretrained: str | None = "motionformer-tiny-synthmotion",
        backbone_kwargs: dict[str, Any] | None = None,
        clip_frames: int | None = 8,
        clip_stride: int = 2,
        synth: dict[str, Any] | None = None,
        synth_root: str | None = None,
        mode: Literal["full", "sorted"] = "sorted",
        num_frames: int | None = 64,
        num_splits: int = 16,
        frame_stride: int = 1,
        batch_size: int = 2,
        num_workers: int = 0,
        persistent_workers: bool = False,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        source = SynthMotionSource(synth, synth_root, {"long_videos": 1}, owner=type(self).__name__)
        root = extract_long_video_features(
            source.folder, backbone, pretrained, backbone_kwargs, clip_frames, clip_stride
        )
        # the dataset arguments this class fixes; the parent reads them from hparams, which under the
        # Lightning CLI hold this class's own arguments only
        self._fixed_args = dict(
            root=str(root), layout="cte", fold=1, feature_dim=None, frames_first=False, length_tolerance=50
        )
        super().__init__(
            **self._fixed_args,
            train_split="all",
            val_split="all",
            test_split="all",
            activity=activity,
            mode=mode,
            num_frames=num_frames,
            num_splits=num_splits,
            frame_stride=frame_stride,
            batch_size=batch_size,
            num_workers=num_workers,
            persistent_workers=persistent_workers,
            drop_last=drop_last,
            seed=seed,
        )
        self.synth = source  # prepare_data generates it (already done here, so a no-op)

    def _restore_fixed_args(self) -> None:
        """Put the arguments this class fixes back into ``hparams`` (the Lightning CLI replaces them)."""
        for key, value in {**self._fixed_args, "mapping_name": "mapping.txt"}.items():
            self.hparams.setdefault(key, value)

    def has_split(self, split: str) -> bool:
        self._restore_fixed_args()
        return super().has_split(split)

    def build_dataset(self, split: str) -> FeatureSequenceDataset:
        self._restore_fixed_args()
        return super().build_dataset(split)
