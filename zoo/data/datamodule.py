"""``VideoDataModule``: train / val / test loaders of clips from manifests, SynthMotion by default.

Built by name from the Lightning CLI (``--data VideoDataModule --data.train_manifest train.csv ...``); its
``num_classes`` is available right after construction, for ``parser.link_arguments("data.num_classes", ...)``.

Splits: ``train`` draws random clips (``num_views`` > 1: several augmented views of the same clip, or of
clips up to ``max_view_distance`` seconds apart); ``val`` takes the centre clip, single view; ``test`` takes
``test_clips`` evenly spaced clips x ``test_crops`` (1 or 3) spatial crops.

Loader options, seeding and DDP come from :class:`~zoo.data.base.ZooDataModule`: every random draw of a
sample is a function of ``(seed, epoch, index)``, and the train loader's :class:`EpochSampler` shards it over
ranks and sets the dataset's shared epoch every epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import DataLoader

from zoo.data.base import EpochSampler, ZooDataModule, seed_worker
from zoo.data.datasets import AudioConfig, VideoDataset, collate_samples
from zoo.data.formats import Records, load_records
from zoo.data.samplers import (
    MultiClipViewsSampler,
    MultiViewTestSampler,
    RandomClipSampler,
    UniformClipSampler,
)
from zoo.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform
from zoo.errors import UsageError

__all__ = ["EpochSampler", "VideoDataModule", "keep_uint8", "seed_worker"]


def keep_uint8(clip: torch.Tensor) -> torch.Tensor:
    """The worker-side "transform" when transforms run on the device: the decoded uint8 frames as they are."""
    return clip


class VideoDataModule(ZooDataModule):
    """Clips from manifests (any format of :mod:`zoo.data.formats`), or SynthMotion when none is given.

    Args:
        train_manifest: a CSV file (``format="generic"``) or a dataset root for the training split;
            None for all three manifests: SynthMotion (generated at ``prepare_data``).
        val_manifest: the same for the validation split.
        test_manifest: the same for the test split.
        format: dataset layout passed to :func:`load_records` (``generic`` is a CSV manifest).
        train_split: split name of the training records, passed to :func:`load_records`.
        val_split: split name of the validation records.
        test_split: split name of the test records.
        format_args: extra keyword arguments of the format's reader.
        num_frames: frames per clip (:mod:`zoo.data.samplers`).
        stride: frames between two sampled frames of a clip.
        target_fps: when set, the stride becomes ``fps / target_fps`` so that clips cover the same time
            whatever the video's frame rate.
        num_views: training views per sample.
        view_clips: ``"same"`` clip augmented ``num_views`` times, or ``"distinct"`` clips.
        max_view_distance: the most seconds between ``"distinct"`` view clips (None: anywhere).
        test_clips: temporal clips per test video.
        test_crops: spatial crops per test clip (1 = centre crop, 3 = three crops).
        size: crop side in pixels (:func:`build_transform`).
        mean: per-channel normalisation mean.
        std: per-channel normalisation standard deviation.
        channel_order: ``rgb`` or ``bgr``, as the model expects.
        train_transform: training preset of :func:`build_transform` (a name or a
            ``{"name": ..., ...}`` mapping).
        eval_transform: validation and test preset, in the same form.
        audio: samples carry the clip-aligned log-mel audio (:class:`~zoo.data.datasets.VideoDataset`).
        audio_seconds: length of the audio window around the clip.
        n_mels: mel bands of the audio spectrogram.
        text: samples carry their caption text.
        labels: samples carry their class label.
        extras: further record fields to carry into the batch.
        batch_size: samples per batch.
        num_workers: DataLoader worker processes.
        persistent_workers: keep the workers between epochs.
        pin_memory: pin batches in page-locked memory.
        drop_last: drop the last incomplete training batch.
        seed: seed of the sampling and augmentation randomness.
        decode_backend: video decoder, ``"pyav"``, ``"decord"`` or ``"torchcodec"`` (None:
            ``$ZOO_VIDEO_BACKEND``, else ``"pyav"``).
        decode_size: ``(height, width)`` to decode to, or None for the video's own size.
        device_transforms: run the transforms on the batch after it reached the device (GPU) instead of in
            the workers; workers then return uint8 ``(T, H, W, C)`` clips, which must share one size (all
            videos alike, or ``decode_size``).
        on_error: ``skip`` an unreadable video (counted, path in the warning) or ``raise``.
        max_error_fraction: the run stops once more than this fraction of videos failed.
        error_log: a file to which every unreadable video appends one JSON line (path, reason, index).
        synth: :class:`~zoo.data.synthmotion.SynthMotionConfig` fields of the generated SynthMotion set.
        synth_root: where to write SynthMotion (default: :func:`~zoo.data.synthmotion.default_root`).
    """

    def __init__(
        self,
        train_manifest: str | None = None,
        val_manifest: str | None = None,
        test_manifest: str | None = None,
        format: str = "generic",
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        format_args: dict[str, Any] | None = None,
        num_frames: int = 8,
        stride: float = 2.0,
        target_fps: float | None = None,
        num_views: int = 1,
        view_clips: Literal["same", "distinct"] = "same",
        max_view_distance: float | None = None,
        test_clips: int = 1,
        test_crops: Literal[1, 3] = 1,
        size: int = 64,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        channel_order: Literal["rgb", "bgr"] = "rgb",
        train_transform: str | dict[str, Any] = "train",
        eval_transform: str | dict[str, Any] = "eval",
        audio: bool = False,
        audio_seconds: float = 2.0,
        n_mels: int = 80,
        text: bool = False,
        labels: bool = True,
        extras: list[str] | None = None,
        batch_size: int = 8,
        num_workers: int = 2,
        persistent_workers: bool = True,
        pin_memory: bool = False,
        drop_last: bool = True,
        seed: int = 0,
        decode_backend: str | None = None,
        decode_size: tuple[int, int] | None = None,
        device_transforms: bool = False,
        on_error: Literal["skip", "raise"] = "skip",
        max_error_fraction: float = 0.1,
        error_log: str | None = None,
        synth: dict[str, Any] | None = None,
        synth_root: str | None = None,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            persistent_workers=persistent_workers,
            pin_memory=pin_memory,
            drop_last=drop_last,
            seed=seed,
        )
        self.save_hyperparameters()
        if view_clips not in ("same", "distinct"):
            raise UsageError(f"view_clips must be 'same' or 'distinct', got {view_clips!r}")
        if test_crops not in (1, 3):
            raise UsageError(f"test_crops must be 1 or 3, got {test_crops}")
        for name, value, least in [
            ("num_views", num_views, 1),
            ("test_clips", test_clips, 1),
        ]:
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise UsageError(f"{name} must be an integer >= {least}, got {value!r}")
        for stage in ("train", "val", "test"):  # the clip geometry and the transforms check their arguments
            self._sampler(stage)
            self._transform(stage)
        self.manifests = {"train": train_manifest, "val": val_manifest, "test": test_manifest}
        self.uses_synth = all(m is None for m in self.manifests.values())
        self._splits = {"train": train_split, "val": val_split, "test": test_split}
        self._records: dict[str, Records] = {}

    # ---- where the records come from

    def _synth_config(self):
        from zoo.data.synthmotion import SynthMotionConfig

        return SynthMotionConfig(**(self.hparams.synth or {}))

    def _synth_root(self) -> Path:
        from zoo.data import synthmotion

        config = self._synth_config()
        return Path(self.hparams.synth_root) if self.hparams.synth_root else synthmotion.default_root(config)

    def prepare_data(self) -> None:
        """Generate SynthMotion when no manifest is given (once per node; idempotent)."""
        if self.uses_synth:
            from zoo.data import synthmotion

            synthmotion.generate(self._synth_root(), self._synth_config(), progress=True)

    def _manifest(self, stage: str) -> tuple[str, str, str]:
        """(format, root, split) of a stage."""
        if self.uses_synth:
            return "generic", str(self._synth_root() / f"{stage}.csv"), stage
        manifest = self.manifests[stage]
        if manifest is None:
            raise ValueError(f"no {stage}_manifest was given")
        return self.hparams.format, manifest, self._splits[stage]

    def records(self, stage: str) -> Records:
        """Parsed records of ``stage`` (``train``/``val``/``test``), cached."""
        if stage not in self._records:
            format, root, split = self._manifest(stage)
            if self.uses_synth and not Path(root).is_file():
                self.prepare_data()
            self._records[stage] = load_records(format, root, split, **(self.hparams.format_args or {}))
        return self._records[stage]

    @property
    def classes(self) -> list[str] | None:
        """Class names (from the training manifest, else the first one given)."""
        if self.uses_synth and "train" not in self._records:
            from zoo.data.synthmotion import CLASSES

            return list(CLASSES[: self._synth_config().num_classes])
        stage = next((s for s in ("train", "val", "test") if self.uses_synth or self.manifests[s]), None)
        return None if stage is None else self.records(stage).classes

    # ---- datasets

    def _sampler(self, stage: str):
        hp = self.hparams
        geometry = dict(num_frames=hp.num_frames, stride=hp.stride, target_fps=hp.target_fps)
        if stage == "train":
            if hp.num_views > 1 and hp.view_clips == "distinct":
                return MultiClipViewsSampler(
                    **geometry, num_views=hp.num_views, max_distance=hp.max_view_distance
                )
            return RandomClipSampler(**geometry)
        if stage == "test" and (hp.test_clips > 1 or hp.test_crops > 1):
            return MultiViewTestSampler(**geometry, num_clips=hp.test_clips, num_crops=hp.test_crops)
        return UniformClipSampler(**geometry)

    def _transform(self, stage: str):
        hp = self.hparams
        common = dict(size=hp.size, mean=hp.mean, std=hp.std, channel_order=hp.channel_order)
        if stage == "train":
            return build_transform(hp.train_transform, **common)
        if stage == "test" and hp.test_crops == 3:
            return build_transform("three_crop", **common)
        return build_transform(hp.eval_transform, **common)

    def build_dataset(self, stage: str) -> VideoDataset:
        hp = self.hparams
        views = hp.num_views if stage == "train" and hp.view_clips == "same" else 1
        audio = AudioConfig(duration=hp.audio_seconds, n_mels=hp.n_mels) if hp.audio else False
        return VideoDataset(
            self.records(stage).records,
            self._sampler(stage),
            keep_uint8 if hp.device_transforms else self._transform(stage),
            views=views,
            audio=audio,
            text=hp.text,
            labels=hp.labels,
            extras=hp.extras or (),
            decode_backend=hp.decode_backend,
            decode_size=hp.decode_size,
            on_error=hp.on_error,
            max_error_fraction=hp.max_error_fraction,
            error_log=hp.error_log,
            seed=hp.seed,
        )

    def has_split(self, split: str) -> bool:
        return self.uses_synth or self.manifests[split] is not None

    def collate_fn(self, split: str) -> Callable[[Sequence[dict[str, Any]]], dict[str, Any]]:
        return collate_samples

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def apply_device_transform(self, batch: dict[str, Any], stage: str) -> dict[str, Any]:
        """The ``stage`` transform on a collated batch of uint8 clips, on the batch's device.

        ``video`` ``(B, T, H, W, C)`` -> ``(B, C, T, H, W)`` (``video_views`` ``(B, 3, ...)`` for three crops);
        ``video_views`` ``(B, K, T, H, W, C)`` -> ``(B, K', C, T, H, W)``. Parameters are drawn per clip from
        a generator seeded with ``seed`` and the rank.
        """
        transform = self._transform(stage)
        if "video" in batch:
            video = transform(batch.pop("video"), generator=self._device_generator)
            batch["video_views" if video.ndim == 6 else "video"] = video
        elif "video_views" in batch:
            views = transform(batch["video_views"], generator=self._device_generator)
            batch["video_views"] = views.flatten(1, 2) if views.ndim == 7 else views
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if not self.hparams.device_transforms:
            return batch
        trainer = self.trainer
        stage = "train" if trainer is None or trainer.training else "test" if trainer.testing else "val"
        return self.apply_device_transform(batch, stage)
