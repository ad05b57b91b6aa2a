"""``VideoDataset``: records -> decoded, sampled, transformed clips as dicts.

A sample is a dict with the keys of :mod:`zoo.data.batch` (without the batch dimension). Its layout is
declared, never inferred: ``K = sampler.num_clips x views x transform.num_crops`` views per sample.

- ``video`` float ``(C, T, H, W)`` when ``K == 1``, else ``video_views`` ``(K, C, T, H, W)``, clip-major
  (view ``v`` is clip ``v // (views * num_crops)``);
- ``label`` int64 (``-1`` where the record has none), ``index`` (the record actually used),
  ``frame_indices`` int64 ``(num_clips, T)`` (the decoded frames of each clip);
- with ``audio``: one spectrogram per video view, each aligned to its clip's time
  (:func:`zoo.data.audio.audio_views`, the file read once): ``audio`` ``(1, F, S)`` + ``audio_mask`` ``(S,)``
  when ``K == 1``, else ``audio_views`` ``(K, 1, F, S)`` + ``audio_views_mask`` ``(K, S)`` (False where
  there is no sound track or the window leaves it);
- with ``text``: ``text``, the captions kept by :func:`zoo.data.text_collate.select_captions` (one string
  for one caption without languages, else a list, or a dict by language); :class:`CaptionCollate` tokenises
  them. A record's captions are ``record.extra["captions"]`` when it is a ``{language: ...}`` dict, else
  ``record.caption``;
- with ``motion_vectors``: ``motion_vectors`` float ``(2, T', H', W')``, the ``(dx, dy)`` motion of
  ``block`` px cells (:func:`zoo.data.compressed.read_motion_vectors`) over the clip's frames or a window
  after it; with ``keyframe``: ``keyframe`` ``(C, H, W)``, the I-frame nearest to the clip. Both go through
  the clip's own crop and flip (:func:`zoo.data.compressed.replay_geometry`), so positions line up;
- ``extras``: the named ``record.extra`` entries; ``frame_labels`` is indexed by the sampled frames.

Robustness: a file that cannot be decoded (missing, empty, truncated, garbage, no video stream, ...) is
skipped: a warning names its path and the reason, it is flagged in a bitmap shared by all workers, and another
random record takes its place. When more than ``max_error_fraction`` of the records are flagged, loading stops
with a RuntimeError. A clip is never replaced by zeros. ``on_error="raise"`` raises at the first bad file.

Randomness is a function of ``(seed, epoch, index, attempt)`` only, so samples do not depend on the number of
workers, on which worker loads them or on persistent workers. The epoch lives in shared memory:
:meth:`VideoDataset.set_epoch` (called by :class:`zoo.data.datamodule.EpochSampler`) updates every worker.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
import torch
from einops import rearrange
from torch.utils.data import Dataset, default_collate

from zoo.data import batch as keys
from zoo.data.accounting import UnreadableSamples
from zoo.data.audio import audio_views
from zoo.data.audio_transforms import AudioAugment, AudioFrontEnd, AudioWindow
from zoo.data.compressed import keyframe_indices, read_motion_vectors, replay_geometry
from zoo.data.formats import VideoRecord
from zoo.data.samplers import clip_span
from zoo.data.text_collate import CaptionCount, Captions, select_captions
from zoo.data.video import InMemoryVideo, VideoDecodeError, VideoReader
from zoo.errors import UsageError

__all__ = [
    "DECODE_ERRORS",
    "DEFAULT_AUDIO_WINDOW",
    "UnreadableVideoWarning",
    "VideoDataset",
    "collate_samples",
    "record_captions",
]

# what "this file cannot be read" looks like; anything else is a bug and propagates
DECODE_ERRORS = (VideoDecodeError, av.FFmpegError, OSError, EOFError)


class UnreadableVideoWarning(UserWarning):
    """A video was skipped because it could not be decoded."""


# 2 s centred on each clip, padded with silence past the track: with AudioFrontEnd() (80 log-mel bands at
# 16 kHz, 25 ms windows every 10 ms), a (1, 80, 201) spectrogram per view
DEFAULT_AUDIO_WINDOW = AudioWindow(seconds=2.0, align="centre", fit="pad")


def record_captions(record: VideoRecord) -> Captions | None:
    """A record's captions: ``extra["captions"]`` when it is a ``{language: ...}`` dict, else ``caption``."""
    by_language = record.extra.get("captions")
    return by_language if isinstance(by_language, dict) else record.caption


def _accepts_generator(fn: Callable) -> bool:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "generator" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


class _FrameListReader:
    """Frames stored as image files (``record.extra["frames"]``), read like a video at ``fps``."""

    def __init__(self, frames: Sequence[str | Path | InMemoryVideo], fps: float, path: Path) -> None:
        if not frames:
            raise VideoDecodeError(path, "empty frame list")
        self.frames = [f if isinstance(f, InMemoryVideo) else Path(f) for f in frames]  # bytes: from shards
        self.path = path
        self.fps, self.num_frames = float(fps), len(self.frames)

    def frame_times(self) -> np.ndarray:
        return np.arange(self.num_frames, dtype=np.float64) / self.fps

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        images = []
        for i in indices:
            try:
                frame = self.frames[i]
                with Image.open(frame.open() if isinstance(frame, InMemoryVideo) else frame) as image:
                    images.append(np.asarray(image.convert("RGB")))
            except (UnidentifiedImageError, OSError) as err:
                raise VideoDecodeError(self.frames[i], f"unreadable frame image ({err})") from err
        if len({im.shape for im in images}) > 1:
            raise VideoDecodeError(self.path, "frame images differ in size")
        return torch.from_numpy(np.stack(images))


class VideoDataset(Dataset):
    """Clips of ``records`` (see the module docstring for the sample dict).

    Args:
        records: what to load (:func:`zoo.data.formats.load_records`).
        sampler: ``sampler(video_len, fps, rng) -> (num_clips, T)`` frame indices (:mod:`zoo.data.samplers`).
        transform: ``transform(uint8 (K, T, H, W, C) or (T, H, W, C), generator=...)``: a preset from
            :func:`zoo.data.transforms.build_transform`, or any callable (given the sample's seeded
            ``generator`` when it takes one). None: ToFloat only.
        views: augmented copies of every sampled clip (each with its own random transform).
        audio: return a spectrogram per view (``audio`` / ``audio_views`` and their masks).
        audio_front_end: the audio features (None: :class:`~zoo.data.audio_transforms.AudioFrontEnd`
            defaults, 80 log-mel bands at 16 kHz).
        audio_window: where each view's audio lies (None: :data:`DEFAULT_AUDIO_WINDOW`).
        audio_augment: audio randomness (training only; None: none).
        text: return ``text`` (every record must then have captions).
        captions_per_video: captions kept per sample (an integer, or ``"all"``).
        languages: keep captions in these languages only (records then need dict captions).
        motion_vectors: return ``motion_vectors`` (H.264 motion vectors, one clip per sample).
        motion_block: motion-vector cell side in pixels (4 or 8).
        motion_offset: None: the motion vectors of the clip's own frames; else of ``motion_frames``
            consecutive frames starting ``motion_offset`` frames after the clip's last one (CMD: 2).
            Clips are then sampled over the frames that leave room for that window; a video too short
            for both is skipped and counted (``on_error``).
        motion_frames: frames of that window (None: the clip's number of frames).
        keyframe: return ``keyframe``, the I-frame nearest to the clip's centre.
        keyframe_reach: > 0: a random I-frame within this many frames of the clip instead; a video
            without one there is skipped and counted (``on_error``).
        labels: return ``label``.
        extras: keys of ``record.extra`` to return.
        decode_backend: the decoder, passed to :class:`zoo.data.video.VideoReader` (None:
            ``$ZOO_VIDEO_BACKEND``, else ``"pyav"``).
        decode_size: ``(height, width)`` to decode to, passed to the reader (None: the video's own size).
        decode_threads: decoding threads per reader.
        on_error: ``"skip"`` unreadable files (counted, warned) or ``"raise"``.
        max_error_fraction: stop when more than this fraction of the records turned out unreadable.
        error_log: append one JSON line ``{"path", "reason", "index"}`` per unreadable file to this file.
        seed: base of every random draw.
        max_retries: records tried (the first, then random others) before a sample gives up.
        streamed: the records are placeholders of samples streamed from shards
            (:class:`~zoo.data.shards.ShardStream`), whose annotation comes with each sample to
            :meth:`load_exactly`: captions are then checked per sample.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        sampler: Callable[..., np.ndarray],
        transform: Callable[..., torch.Tensor] | None = None,
        *,
        views: int = 1,
        audio: bool = False,
        audio_front_end: AudioFrontEnd | None = None,
        audio_window: AudioWindow | None = None,
        audio_augment: AudioAugment | None = None,
        text: bool = False,
        captions_per_video: CaptionCount = 1,
        languages: Sequence[str] | None = None,
        motion_vectors: bool = False,
        motion_block: int = 8,
        motion_offset: int | None = None,
        motion_frames: int | None = None,
        keyframe: bool = False,
        keyframe_reach: int = 0,
        labels: bool = True,
        extras: Sequence[str] = (),
        decode_backend: str | None = None,
        decode_size: tuple[int, int] | None = None,
        decode_threads: int = 1,
        on_error: Literal["skip", "raise"] = "skip",
        max_error_fraction: float = 0.1,
        error_log: str | os.PathLike | None = None,
        seed: int = 0,
        max_retries: int = 100,
        streamed: bool = False,
    ) -> None:
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        if not records:
            raise ValueError("VideoDataset needs at least one record")
        self.records = list(records)
        self.text, self.captions_per_video = text, captions_per_video
        self.languages = list(languages) if languages is not None else None
        if text and not streamed:
            self._check_captions()
        self.sampler, self.transform, self.views = sampler, transform, views
        self._transform_takes_generator = transform is not None and _accepts_generator(transform)
        # the layout, as the sampler and the transform declare it
        self.num_clips = int(getattr(sampler, "num_clips", 1))
        self.num_crops = int(getattr(transform, "num_crops", 1))
        self.num_views = self.num_clips * views * self.num_crops
        self.audio = audio
        self.audio_front_end = audio_front_end or AudioFrontEnd()
        self.audio_window = audio_window or DEFAULT_AUDIO_WINDOW
        self.audio_augment = audio_augment
        self.motion_vectors, self.motion_block = motion_vectors, motion_block
        self.motion_offset, self.motion_frames = motion_offset, motion_frames
        self.keyframe, self.keyframe_reach = keyframe, keyframe_reach
        if motion_vectors or keyframe:
            self._check_compressed()
        self.labels, self.extras = labels, tuple(extras)
        self.decode_backend, self.decode_size, self.decode_threads = (
            decode_backend,
            decode_size,
            decode_threads,
        )
        self.on_error, self.max_retries = on_error, max_retries
        self.seed = seed
        # shared across DataLoader workers (shared memory survives fork and pickling to spawned workers)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self.unreadable = UnreadableSamples(
            [str(record.path) for record in self.records],
            "videos",
            UnreadableVideoWarning,
            on_error,
            max_error_fraction,
            error_log,
            unreadable="could not be decoded",
            hint=" Run `zoo data check` on the manifest to list every bad file.",
        )

    def _check_captions(self) -> None:
        for i, record in enumerate(self.records):
            captions = record_captions(record)
            if not captions:
                raise ValueError(f"text=True but record {i} ({record.path}) has no caption")
            select_captions(captions, self.captions_per_video, self.languages)  # names what is missing

    def _check_compressed(self) -> None:
        if self.num_views != 1:
            raise UsageError(
                f"motion_vectors / keyframe take one clip per sample; this dataset makes {self.num_views} "
                "views (sampler clips x views x crops)"
            )
        if self.transform is not None and not hasattr(self.transform, "forward_with_params"):
            raise UsageError(
                "motion_vectors / keyframe need a zoo.data.transforms transform (to share its crop)"
            )
        if self.motion_block not in (4, 8):
            raise UsageError(f"motion_block must be 4 or 8, got {self.motion_block}")
        for name in ("motion_offset", "motion_frames"):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "motion_offset" else 1):
                raise UsageError(f"{name} must be >= {0 if name == 'motion_offset' else 1}, got {value}")

    def __len__(self) -> int:
        return len(self.records)

    # ---- epochs and randomness

    def set_epoch(self, epoch: int) -> None:
        """Seen by every worker, also persistent ones; changes the random draws of every sample."""
        self._epoch[0] = int(epoch)

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def _generators(self, index: int, attempt: int) -> tuple[np.random.Generator, torch.Generator]:
        sequence = np.random.SeedSequence([self.seed, self.epoch, index, attempt])
        np_rng = np.random.default_rng(sequence)
        torch_gen = torch.Generator().manual_seed(int(sequence.generate_state(1, dtype=np.uint64)[0] >> 1))
        return np_rng, torch_gen

    # ---- error accounting (:class:`~zoo.data.accounting.UnreadableSamples`)

    def error_stats(self) -> dict[str, Any]:
        """Counts over all workers: ``loaded``, ``failed`` (attempts), ``bad_records`` (distinct), ``bad_paths``."""
        return self.unreadable.stats()

    def _record_failure(self, index: int, err: Exception) -> None:
        self.unreadable.failed(index, str(err), label=f"video (record {index})")

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        np_rng, torch_gen = self._generators(index, 0)
        candidate = index
        for attempt in range(self.max_retries):
            if attempt:
                candidate = int(np_rng.integers(len(self.records)))
                np_rng, torch_gen = self._generators(candidate, attempt)
            if self.unreadable.is_known_bad(candidate):
                continue
            try:
                sample = self._load(candidate, np_rng, torch_gen)
            except DECODE_ERRORS as err:
                if self.on_error == "raise":
                    if isinstance(err, VideoDecodeError):
                        raise
                    raise VideoDecodeError(self.records[candidate].path, str(err)) from err
                self._record_failure(candidate, err)
                continue
            self.unreadable.loaded()
            return sample
        raise RuntimeError(
            f"no readable video found after {self.max_retries} attempts starting at record {index}"
        )

    def load_exactly(self, index: int, record: VideoRecord | None = None) -> dict[str, Any] | None:
        """Sample ``index`` from ``record`` (None: ``records[index]``), with no other record in its place: None
        when it cannot be decoded (skipped and counted as in ``__getitem__``, or raised with ``on_error="raise"``).
        """
        record = self.records[index] if record is None else record
        if self.unreadable.is_known_bad(index):
            return None
        if self.text:
            select_captions(record_captions(record), self.captions_per_video, self.languages)
        np_rng, torch_gen = self._generators(index, 0)
        try:
            sample = self._load(index, np_rng, torch_gen, record)
        except DECODE_ERRORS as err:
            if self.on_error == "raise":
                if isinstance(err, VideoDecodeError):
                    raise
                raise VideoDecodeError(str(record.path), str(err)) from err
            self._record_failure(index, err)
            return None
        self.unreadable.loaded()
        return sample

    def is_known_bad(self, index: int) -> bool:
        """Whether sample ``index`` already failed (and is skipped without another try)."""
        return self.unreadable.is_known_bad(index)

    def count_failure(self, index: int, reason: str) -> None:
        """Count sample ``index`` as unreadable for ``reason`` (e.g. lost from a truncated shard)."""
        if self.on_error == "raise":
            raise VideoDecodeError(str(self.records[index].path), reason)
        if not self.unreadable.is_known_bad(index):
            self._record_failure(index, VideoDecodeError(str(self.records[index].path), reason))

    def error_state(self) -> torch.Tensor:
        """The unreadable-record flags ``(N,)`` uint8 (a copy), to be saved with a run's checkpoint."""
        return self.unreadable.state()

    def load_error_state(self, bad: torch.Tensor) -> None:
        """Restore :meth:`error_state` (a saved one of another length is ignored: other records)."""
        self.unreadable.load_state(bad)

    def _reader(self, record: VideoRecord):
        frames = record.extra.get("frames")
        if frames is not None:
            return _FrameListReader(frames, record.extra.get("fps", 25.0), record.path)
        return VideoReader(
            record.path, backend=self.decode_backend, size=self.decode_size, num_threads=self.decode_threads
        )

    def _load(
        self,
        index: int,
        np_rng: np.random.Generator,
        torch_gen: torch.Generator,
        record: VideoRecord | None = None,
    ) -> dict[str, Any]:
        record = self.records[index] if record is None else record
        reader = self._reader(record)
        try:
            if isinstance(reader, _FrameListReader):
                fps, duration = reader.fps, reader.num_frames / reader.fps
            else:
                fps, duration = reader.metadata.fps, reader.metadata.duration
            times = reader.frame_times()  # (N,) seconds: variable frame rates are not fps multiples
            first, last = _frame_window(times, duration, record.start, record.end)
            if last <= first:
                raise VideoDecodeError(
                    record.path,
                    f"time window [{record.start}, {record.end}] s is outside the video ({duration:.2f} s)",
                )
            # the motion window after the clip must fit too: clips are drawn from the frames before it
            reserve = self._motion_reserve()
            if reserve and last - first < (needed := clip_span(self.sampler, fps) + reserve):
                raise VideoDecodeError(
                    record.path, f"needs {needed} frames for clip + future + negatives, has {last - first}"
                )
            clips = np.asarray(self.sampler(last - first - reserve, fps, np_rng), dtype=np.int64) + first
            if clips.ndim != 2 or len(clips) != self.num_clips:
                raise ValueError(
                    f"the sampler declares num_clips={self.num_clips} and must return ({self.num_clips}, T) "
                    f"indices, got shape {clips.shape}"
                )
            wanted = clips.reshape(-1)
            if self.keyframe:
                keyframe_index = self._keyframe_index(record, clips, first, last, np_rng)
                wanted = np.append(wanted, keyframe_index)
            frames = torch.as_tensor(reader.get_frames(wanted))  # (K*T [+ 1], H, W, C) uint8
        finally:
            if not isinstance(reader, _FrameListReader):
                reader.close()
        keyframe = frames[clips.size :] if self.keyframe else None  # (1, H, W, C)
        frames = frames[: clips.size].reshape(*clips.shape, *frames.shape[1:])  # (K, T, H, W, C)
        if self.views > 1:
            frames = frames.repeat_interleave(self.views, dim=0)

        sample: dict[str, Any] = {}
        several_clips = self.num_clips * self.views > 1
        video, params = self._transform(frames if several_clips else frames[0], torch_gen)
        if several_clips and self.num_crops > 1:  # (K, crops, C, T, H, W) -> (K * crops, C, T, H, W)
            video = rearrange(video, "k n c t h w -> (k n) c t h w")
        sample[keys.VIDEO_VIEWS if self.num_views > 1 else keys.VIDEO] = video
        sample[keys.INDEX] = index
        sample[keys.FRAME_INDICES] = torch.from_numpy(clips)
        if self.labels:
            sample[keys.LABEL] = -1 if record.label is None else int(record.label)
        if self.audio:
            sample.update(self._audio(record, clips, fps, torch_gen))
        if self.text:
            sample[keys.TEXT] = self._captions(record, np_rng)
        if self.motion_vectors:
            frame_size = tuple(frames.shape[-3:-1])
            sample[keys.MOTION_VECTORS] = self._motion_vectors(record, clips[0], frame_size, params)
        if keyframe is not None:  # the clip's own transform, replayed on its keyframe
            image = _to_float(keyframe) if params is None else self.transform.replay(keyframe, params)
            sample[keys.KEYFRAME] = image[:, 0]  # (C, 1, H, W) -> (C, H, W)
        for key in self.extras:
            if key not in record.extra:
                raise KeyError(f"record {index} ({record.path}) has no extra field {key!r}")
            value = record.extra[key]
            if key == "frame_labels":
                labels = np.asarray(value, dtype=np.int64)
                value = torch.from_numpy(labels[np.minimum(clips, len(labels) - 1)])
                value = value if self.num_clips > 1 else value[0]
            sample[key] = value
        return sample

    def _transform(self, clip: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, Any]:
        """The transform of a uint8 clip ``(T, H, W, C)`` or clips ``(K, T, H, W, C)``, and its parameters
        (None when they are not known: no transform, or one without ``forward_with_params``)."""
        if self.transform is None:
            return _to_float(clip), None
        if self.motion_vectors or self.keyframe:  # their crop replays the clip's: keep the parameters
            return self.transform.forward_with_params(clip, generator)
        if self._transform_takes_generator:
            return self.transform(clip, generator=generator), None
        # a third-party transform: it draws from the global generators (seeded per worker)
        return self.transform(clip), None

    def _audio(
        self, record: VideoRecord, clips: np.ndarray, fps: float, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """A spectrogram per video view, from one read of the file's audio."""
        per_view = np.repeat(clips, self.views, axis=0)  # (K * views, T), as the video views
        path = None if record.extra.get("frames") is not None else record.path  # image frames: no sound
        audio, mask = audio_views(
            path,
            per_view,
            fps,
            self.audio_front_end,
            self.audio_window,
            self.audio_augment,
            generator=generator,
            on_missing="zeros",
        )  # (K', 1, F, S), (K', S)
        if self.num_crops > 1:  # crops of one clip share its sound
            audio, mask = (
                audio.repeat_interleave(self.num_crops, 0),
                mask.repeat_interleave(self.num_crops, 0),
            )
        if self.num_views > 1:
            return {keys.AUDIO_VIEWS: audio, keys.AUDIO_VIEWS_MASK: mask}
        return {keys.AUDIO: audio[0], keys.AUDIO_MASK: mask[0]}

    def _captions(self, record: VideoRecord, np_rng: np.random.Generator) -> Captions:
        selected = select_captions(record_captions(record), self.captions_per_video, self.languages, np_rng)
        if self.captions_per_video == 1 and isinstance(selected, list):
            return selected[0]  # one caption: the string itself
        return selected

    def _motion_reserve(self) -> int:
        """Frames after a clip that its motion window takes: ``motion_offset + motion_frames`` (else 0)."""
        if not self.motion_vectors or self.motion_offset is None:
            return 0
        return self.motion_offset + (self.motion_frames or int(self.sampler.num_frames))

    def _keyframe_index(
        self, record: VideoRecord, clips: np.ndarray, first: int, last: int, np_rng: np.random.Generator
    ) -> int:
        """The I-frame nearest to the clip's centre, or a random one within ``keyframe_reach`` frames."""
        if record.extra.get("frames") is not None:
            raise VideoDecodeError(record.path, "image frames have no keyframes")
        candidates = np.asarray(keyframe_indices(record.path), dtype=np.int64)
        candidates = candidates[(candidates >= first) & (candidates < last)]
        if len(candidates) == 0:
            raise VideoDecodeError(record.path, "no keyframe in the record's time window")
        low, high = int(clips.min()), int(clips.max())
        if self.keyframe_reach > 0:
            near = candidates[
                (candidates >= low - self.keyframe_reach) & (candidates <= high + self.keyframe_reach)
            ]
            if len(near) == 0:
                raise VideoDecodeError(
                    record.path,
                    f"no keyframe within {self.keyframe_reach} frames of the clip (frames {low}-{high})",
                )
            return int(near[np_rng.integers(len(near))])
        return int(candidates[np.argmin(np.abs(candidates - (low + high) / 2))])

    def _motion_vectors(
        self,
        record: VideoRecord,
        clip: np.ndarray,
        frame_size: tuple[int, int],
        params: Any,
    ) -> torch.Tensor:
        """``(2, T', H', W')`` motion vectors of the clip's frames or of the window after it, cropped like it."""
        if record.extra.get("frames") is not None:
            raise VideoDecodeError(record.path, "image frames have no motion vectors")
        if self.motion_offset is None:
            indices = clip
        else:
            count = self.motion_frames or len(clip)
            indices = int(clip.max()) + self.motion_offset + 1 + np.arange(count)  # inside: see _load
        field, _ = read_motion_vectors(record.path, indices.tolist(), self.motion_block, frame_size)
        field = rearrange(field, "t m h w -> m t h w")  # (2, T', H/b, W/b)
        if params is None:
            return field
        return replay_geometry(self.transform, params, field, self.motion_block, frame_size)


def _to_float(clip: torch.Tensor) -> torch.Tensor:
    """uint8 ``(*, T, H, W, C)`` -> float ``(*, C, T, H, W)`` in [0, 1] (no transform)."""
    return rearrange(clip, "... t h w c -> ... c t h w").float().div(255.0)


def _frame_window(
    times: np.ndarray, duration: float, start: float | None, end: float | None
) -> tuple[int, int]:
    """Frames ``[first, last)`` of the time window ``[start, end)`` seconds, from the frames' times ``(N,)``.

    ``first`` is the frame on screen at ``start``, ``last`` the first frame shown at or after ``end``; a
    window that starts past the end of the video is empty.
    """
    first, last = 0, len(times)
    if start is not None:
        first = (
            len(times) if start >= duration else max(int(np.searchsorted(times, start, side="right")) - 1, 0)
        )
    if end is not None:
        last = int(np.searchsorted(times, end, side="left"))
    return first, last


def collate_samples(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors and numbers; strings and other values become lists (never transposed)."""
    keys = samples[0].keys()
    for sample in samples[1:]:
        if sample.keys() != keys:
            raise ValueError(f"samples have different keys: {sorted(keys)} vs {sorted(sample.keys())}")
    batch = {}
    for key in keys:
        values = [s[key] for s in samples]
        if all(isinstance(v, (torch.Tensor, int, float, bool, np.integer, np.floating)) for v in values):
            batch[key] = default_collate(values)
        else:
            batch[key] = values
    return batch
