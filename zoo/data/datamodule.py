"""``VideoDataModule``: train / val / test loaders of clips from manifests, SynthMotion by default.

Built by name from the Lightning CLI (``--data VideoDataModule --data.train_manifest train.csv ...``); its
``num_classes`` is available right after construction, for ``parser.link_arguments("data.num_classes", ...)``.

Every batch follows :mod:`zoo.data.batch` (checked by ``check_batch``): the keys and their layouts are
declared by the samplers and transforms (clips, views, crops), not inferred. Optional parts, each switched
on by an argument a YAML recipe can set: per-view audio (``audio`` with a front-end, window and training
augmentation, or an ``audio_preset``), captions tokenised at collate time (``text`` with a ``tokenizer``,
several captions per video, several languages), and the compressed domain (``motion_vectors``, ``keyframe``,
sharing the clip's crop and flip).

Splits: ``train`` draws random clips (``num_views`` > 1: several augmented views of the same clip, or of
clips up to ``max_view_distance`` seconds apart); ``val`` takes the centre clip, single view; ``test`` takes
``test_clips`` evenly spaced clips x ``test_crops`` (1 or 3) spatial crops.

Loader options, seeding and DDP come from :class:`~zoo.data.base.ZooDataModule`: every random draw of a
sample is a function of ``(seed, epoch, index)``, and the train loader's :class:`EpochSampler` shards it over
ranks and sets the dataset's shared epoch every epoch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from einops import rearrange, repeat

from zoo.data.audio_transforms import AudioAugment, AudioConfigError, AudioFrontEnd, AudioWindow, audio_preset
from zoo.data.base import Collate, EpochSampler, ZooDataModule, check_int, seed_worker
from zoo.data.datasets import DEFAULT_AUDIO_WINDOW, VideoDataset, collate_samples
from zoo.data.formats import Records, VideoRecord, load_records
from zoo.data.intra_video import IntraVideoTripletSampler
from zoo.data.samplers import (
    MultiClipViewsSampler,
    MultiViewTestSampler,
    RandomClipSampler,
    UniformClipSampler,
)
from zoo.data.shards import VIDEO_RECORDS
from zoo.data.text_collate import CaptionCollate, CaptionCount
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
        view_clips: ``"same"`` clip augmented ``num_views`` times, or ``"distinct"`` clips, or
            ``"intra_video"``: three views (anchor, the same clip again, a clip of the same video at
            another time; :mod:`zoo.data.intra_video`), whatever ``num_views``.
        negative_min_gap: ``"intra_video"``: the fewest frames between the anchor's and the
            negative's first frames (shorter videos are skipped and counted).
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
        audio: batches carry a spectrogram per video view, aligned to its clip (``audio`` + ``audio_mask``,
            or ``audio_views`` + ``audio_views_mask`` with several views).
        audio_seconds: length of the audio window around each clip (default front-end and window only).
        n_mels: mel bands of the default front-end.
        audio_preset: ``"gdt"``, ``"stica"`` or ``"selavi"``: the front-end, window and augmentation of that
            method (:func:`~zoo.data.audio_transforms.audio_preset`); the three arguments below override it.
        audio_front_end: the features, an :class:`~zoo.data.audio_transforms.AudioFrontEnd` (or its fields).
        audio_window: where each view's audio lies, an :class:`~zoo.data.audio_transforms.AudioWindow`.
        audio_augment: audio augmentation of the training split, an
            :class:`~zoo.data.audio_transforms.AudioAugment`.
        text: batches carry their captions, tokenised at collate time (``text``; see
            :mod:`zoo.data.text_collate` for the layouts).
        tokenizer: ``"bytes"``, a ``tokenizer.json`` (``zoo data tokenizer``), a ``transformers`` folder or a
            cached Hub id (:func:`~zoo.data.text.build_tokenizer`); built at construction.
        max_text_length: most tokens per caption.
        captions_per_video: captions per training sample: an integer K (``(B, K, L)`` for K > 1) or
            ``"all"`` (``(N, L)`` with ``caption_to_video``).
        eval_captions_per_video: the same for validation and test (None: ``captions_per_video``; ``"all"``
            for retrieval).
        languages: keep captions in these languages (records need captions by language), in this order;
            batches then carry ``text_language``.
        motion_vectors: batches carry ``motion_vectors`` ``(B, 2, T', H', W')`` (H.264 videos, one clip per
            sample), cropped and flipped with the clip.
        motion_block: motion-vector cell side in pixels (4 or 8).
        motion_offset: None: motion vectors of the clip's frames; else of ``motion_frames`` frames starting
            this many frames after the clip (CMD: 2); clips leave room for them, and a video too short for
            both is skipped and counted.
        motion_frames: frames of that window (None: ``num_frames``).
        keyframe: batches carry ``keyframe`` ``(B, C, H, W)``, the I-frame nearest to the clip, transformed
            with it.
        keyframe_reach: > 0: for training, a random I-frame within this many frames of the clip (a video
            without one there is skipped and counted).
        labels: samples carry their class label.
        extras: further record fields to carry into the batch.
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
        **loader_options: ``batch_size``, ``num_workers``, ``persistent_workers``, ``pin_memory``,
            ``drop_last``, ``seed`` (of the sampling and augmentation): see :class:`~zoo.data.base.ZooDataModule`.
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
        view_clips: Literal["same", "distinct", "intra_video"] = "same",
        negative_min_gap: int = 2,
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
        audio_preset: Literal["gdt", "stica", "selavi"] | None = None,
        audio_front_end: AudioFrontEnd | None = None,
        audio_window: AudioWindow | None = None,
        audio_augment: AudioAugment | None = None,
        text: bool = False,
        tokenizer: str | dict[str, Any] = "bytes",
        max_text_length: int = 64,
        captions_per_video: CaptionCount = 1,
        eval_captions_per_video: CaptionCount | None = None,
        languages: list[str] | None = None,
        motion_vectors: bool = False,
        motion_block: int = 8,
        motion_offset: int | None = None,
        motion_frames: int | None = None,
        keyframe: bool = False,
        keyframe_reach: int = 0,
        labels: bool = True,
        extras: list[str] | None = None,
        decode_backend: str | None = None,
        decode_size: tuple[int, int] | None = None,
        device_transforms: bool = False,
        on_error: Literal["skip", "raise"] = "skip",
        max_error_fraction: float = 0.1,
        error_log: str | None = None,
        synth: dict[str, Any] | None = None,
        synth_root: str | None = None,
        **loader_options: Any,
    ) -> None:
        super().__init__(
            tokenizer=tokenizer if text else None,  # built now: a missing tokenizer fails before any worker
            max_text_length=max_text_length,
            **loader_options,
        )
        self.save_hyperparameters()
        if view_clips not in ("same", "distinct", "intra_video"):
            raise UsageError(f"view_clips must be 'same', 'distinct' or 'intra_video', got {view_clips!r}")
        if test_crops not in (1, 3):
            raise UsageError(f"test_crops must be 1 or 3, got {test_crops}")
        check_int("num_views", num_views, 1)
        check_int("test_clips", test_clips, 1)
        for stage in ("train", "val", "test"):  # the clip geometry and the transforms check their arguments
            self._sampler(stage)
            self._transform(stage)
        self.audio_parts = self._audio_parts() if audio else None
        if (motion_vectors or keyframe) and device_transforms:
            raise UsageError(
                "motion_vectors / keyframe share the clip's crop in the workers: no device_transforms"
            )
        self.manifests = {"train": train_manifest, "val": val_manifest, "test": test_manifest}
        if all(m is None for m in self.manifests.values()) and not self.shards:
            self.use_synth(synth, synth_root)
        self._splits = {"train": train_split, "val": val_split, "test": test_split}
        self._records: dict[str, Records] = {}

    # ---- where the records come from

    def _manifest(self, stage: str) -> tuple[str, str, str]:
        """(format, root, split) of a stage."""
        if self.synth is not None:
            return "generic", str(self.synth.folder / f"{stage}.csv"), stage
        manifest = self.manifests[stage]
        if manifest is None:
            raise ValueError(f"no {stage}_manifest was given")
        return self.hparams.format, manifest, self._splits[stage]

    def records(self, stage: str) -> Records:
        """Parsed records of ``stage`` (``train``/``val``/``test``), cached."""
        if stage not in self._records:
            format, root, split = self._manifest(stage)
            records = load_records(format, root, split, **(self.hparams.format_args or {}))
            if self.synth is not None:  # every caption of every language, from captions.json
                from zoo.data.synthmotion import captions_by_video

                captions = captions_by_video(self.synth.folder)
                for record in records.records:
                    record.extra["captions"] = captions.get(record.path.stem, {})
            self._records[stage] = records
        return self._records[stage]

    @property
    def classes(self) -> list[str] | None:
        """Class names (from the training manifest or shards, else the first one given)."""
        stage = next((s for s in ("train", "val", "test") if self.manifests[s] or s in self.shards), None)
        if stage in self.shards and not self.manifests[stage]:
            return self.shard_index(stage).classes
        if self.synth is not None and "train" not in self._records:
            from zoo.data.synthmotion import CLASSES

            return list(CLASSES[: self.synth.config.num_classes])
        stage = next((s for s in ("train", "val", "test") if self.uses_synth or self.manifests[s]), None)
        return None if stage is None else self.records(stage).classes

    # ---- datasets

    def _sampler(self, stage: str):
        hp = self.hparams
        geometry = dict(num_frames=hp.num_frames, stride=hp.stride, target_fps=hp.target_fps)
        if stage == "train":
            if hp.view_clips == "intra_video":
                return IntraVideoTripletSampler(**geometry, min_gap=hp.negative_min_gap)
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

    def _audio_parts(self) -> tuple[AudioFrontEnd, AudioWindow, AudioAugment | None]:
        """Front-end, window and training augmentation: the preset (or defaults), then the explicit ones."""
        hp = self.hparams
        if hp.audio_preset is not None:
            front_end, window, augment = audio_preset(hp.audio_preset)
        else:
            front_end = _audio_part("n_mels", AudioFrontEnd, {"n_filters": hp.n_mels})
            window = dataclasses.replace(DEFAULT_AUDIO_WINDOW, seconds=hp.audio_seconds)
            augment = None
        front_end = _audio_part("audio_front_end", AudioFrontEnd, hp.audio_front_end) or front_end
        window = _audio_part("audio_window", AudioWindow, hp.audio_window) or window
        augment = _audio_part("audio_augment", AudioAugment, hp.audio_augment) or augment
        return front_end, window, augment

    def captions_per_video(self, stage: str) -> CaptionCount:
        hp = self.hparams
        if stage != "train" and hp.eval_captions_per_video is not None:
            return hp.eval_captions_per_video
        return hp.captions_per_video

    def collate_fn(self, stage: str) -> Collate:
        """The loader's collate: captions are tokenised there when ``text`` is on."""
        if self.tokenizer is None:
            return collate_samples
        return CaptionCollate(self.tokenizer, self.captions_per_video(stage), self.hparams.languages)

    def build_dataset(self, stage: str) -> VideoDataset:
        return self._video_dataset(stage, self.records(stage).records)

    shard_kind = VIDEO_RECORDS

    def shard_source(self, stage: str) -> Records:
        return self.records(stage)

    def build_shard_decoder(self, stage: str, records: list[VideoRecord]) -> VideoDataset:
        return self._video_dataset(stage, records, streamed=True)

    def _video_dataset(self, stage: str, records: list[VideoRecord], streamed: bool = False) -> VideoDataset:
        hp = self.hparams
        views = hp.num_views if stage == "train" and hp.view_clips == "same" else 1
        front_end, window, augment = self.audio_parts or (None, None, None)
        return VideoDataset(
            records,
            self._sampler(stage),
            keep_uint8 if hp.device_transforms else self._transform(stage),
            views=views,
            audio=hp.audio,
            audio_front_end=front_end,
            audio_window=window,
            audio_augment=augment if stage == "train" else None,
            text=hp.text,
            captions_per_video=self.captions_per_video(stage),
            languages=hp.languages,
            motion_vectors=hp.motion_vectors,
            motion_block=hp.motion_block,
            motion_offset=hp.motion_offset,
            motion_frames=hp.motion_frames,
            keyframe=hp.keyframe,
            keyframe_reach=hp.keyframe_reach if stage == "train" else 0,
            labels=hp.labels,
            extras=hp.extras or (),
            decode_backend=hp.decode_backend,
            decode_size=hp.decode_size,
            on_error=hp.on_error,
            max_error_fraction=hp.max_error_fraction,
            error_log=hp.error_log,
            seed=self.seed,
            streamed=streamed,
        )

    def has_split(self, split: str) -> bool:
        return self.uses_synth or self.manifests[split] is not None

    def apply_device_transform(self, batch: dict[str, Any], stage: str) -> dict[str, Any]:
        """The ``stage`` transform on a collated batch of uint8 clips, on the batch's device.

        ``video`` ``(B, T, H, W, C)`` -> ``(B, C, T, H, W)``, or ``video_views`` ``(B, crops, C, T, H, W)``
        when the transform declares several crops (then ``audio`` becomes ``audio_views``, one per crop);
        ``video_views`` ``(B, K, T, H, W, C)`` -> ``(B, K * crops, C, T, H, W)``, clip-major. Parameters are
        drawn per clip from a generator seeded with ``seed`` and the rank.
        """
        transform = self._transform(stage)
        crops = transform.num_crops
        if "video" in batch:
            video = transform(
                batch.pop("video"), generator=self._device_generator
            )  # (B, [crops,] C, T, H, W)
            batch["video_views" if crops > 1 else "video"] = video
            if crops > 1 and "audio" in batch:  # crops of one clip share its sound
                batch["audio_views"] = repeat(batch.pop("audio"), "b ... -> b n ...", n=crops)
                batch["audio_views_mask"] = repeat(batch.pop("audio_mask"), "b ... -> b n ...", n=crops)
        elif "video_views" in batch:
            views = transform(batch["video_views"], generator=self._device_generator)  # (B, K, [crops,] ...)
            if crops > 1:
                views = rearrange(views, "b k n c t h w -> b (k n) c t h w")
                for key in ("audio_views", "audio_views_mask"):
                    if key in batch:
                        batch[key] = batch[key].repeat_interleave(crops, dim=1)
            batch["video_views"] = views
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if not self.hparams.device_transforms:
            return batch
        trainer = self.trainer
        stage = "train" if trainer is None or trainer.training else "test" if trainer.testing else "val"
        return self.apply_device_transform(batch, stage)


def _audio_part(name: str, cls: type, value: Any) -> Any:
    """``value`` as a ``cls`` dataclass (from itself or a mapping of its fields); errors name the argument."""
    if value is None or isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise UsageError(f"{name} must be a {cls.__name__} or a mapping of its fields, got {value!r}")
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise UsageError(f"{name}: unknown field {unknown[0]!r}; {cls.__name__} has {', '.join(fields)}")
    try:
        return cls(**value)
    except AudioConfigError as err:
        raise AudioConfigError(f"{name}: {err}") from None
