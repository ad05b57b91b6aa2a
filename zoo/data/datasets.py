"""``VideoDataset``: records -> decoded, sampled, transformed clips as dicts.

A sample is a dict:

- ``video`` float ``(C, T, H, W)`` for a single view, or ``video_views`` ``(K, C, T, H, W)`` when the sampler
  draws several clips, ``views > 1``, or the transform makes several crops (views are clip-major);
- ``label`` int64 (``-1`` where the record has none), ``index`` (the record actually used),
  ``frame_indices`` int64 ``(num_clips, T)`` (the decoded frames of each clip);
- with ``audio``: ``audio`` log-mel ``(1, n_mels, frames)`` of a fixed-length window centred on the first
  clip, and ``audio_mask`` bool ``(frames,)`` (False where there is no sound track or the window leaves it);
- with ``text``: ``text`` (the caption; one drawn at random when a record has several);
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
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
import torch
from torch.utils.data import Dataset, default_collate, get_worker_info

from zoo.data.audio import clip_audio_window, log_mel
from zoo.data.formats import VideoRecord
from zoo.data.video import VideoDecodeError, VideoReader

__all__ = ["DECODE_ERRORS", "AudioConfig", "UnreadableVideoWarning", "VideoDataset", "collate_samples"]

# what "this file cannot be read" looks like; anything else is a bug and propagates
DECODE_ERRORS = (VideoDecodeError, av.FFmpegError, OSError, EOFError)
_MAX_SLOTS = 256  # per-worker counters (worker id + 1; slot 0 is the main process)


class UnreadableVideoWarning(UserWarning):
    """A video was skipped because it could not be decoded."""


@dataclass(frozen=True)
class AudioConfig:
    """Audio window and features: ``duration`` seconds centred on the first clip, log-mel with ``n_mels``."""

    sample_rate: int = 16000
    duration: float = 2.0
    n_mels: int = 80
    n_fft: int = 400
    hop: int = 160


def _accepts_generator(fn: Callable) -> bool:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "generator" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


class _FrameListReader:
    """Frames stored as image files (``record.extra["frames"]``), read like a video at ``fps``."""

    def __init__(self, frames: Sequence[str | Path], fps: float, path: Path) -> None:
        if not frames:
            raise VideoDecodeError(path, "empty frame list")
        self.frames, self.path = [Path(f) for f in frames], path
        self.fps, self.num_frames = float(fps), len(self.frames)

    def frame_times(self) -> np.ndarray:
        return np.arange(self.num_frames, dtype=np.float64) / self.fps

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        images = []
        for i in indices:
            try:
                with Image.open(self.frames[i]) as image:
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
        audio: True or an :class:`AudioConfig` to return ``audio`` + ``audio_mask``.
        text: return ``text`` (every record must then have a caption).
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
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        sampler: Callable[..., np.ndarray],
        transform: Callable[..., torch.Tensor] | None = None,
        *,
        views: int = 1,
        audio: bool | AudioConfig = False,
        text: bool = False,
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
    ) -> None:
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        if not 0.0 <= max_error_fraction <= 1.0:
            raise ValueError(f"max_error_fraction must be in [0, 1], got {max_error_fraction}")
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        if not records:
            raise ValueError("VideoDataset needs at least one record")
        self.records = list(records)
        if text:
            no_caption = [i for i, r in enumerate(self.records) if not r.caption]
            if no_caption:
                raise ValueError(
                    f"text=True but {len(no_caption)} records have no caption, e.g. {self.records[no_caption[0]].path}"
                )
        self.sampler, self.transform, self.views = sampler, transform, views
        self._transform_takes_generator = transform is not None and _accepts_generator(transform)
        self.audio = AudioConfig() if audio is True else (audio or None)
        self.text, self.labels, self.extras = text, labels, tuple(extras)
        self.decode_backend, self.decode_size, self.decode_threads = (
            decode_backend,
            decode_size,
            decode_threads,
        )
        self.on_error, self.max_error_fraction, self.max_retries = on_error, max_error_fraction, max_retries
        self.error_log = Path(error_log) if error_log else None
        self.seed = seed
        # shared across DataLoader workers (shared memory survives fork and pickling to spawned workers)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._bad = torch.zeros(len(self.records), dtype=torch.uint8).share_memory_()
        self._counts = torch.zeros(
            _MAX_SLOTS, 2, dtype=torch.int64
        ).share_memory_()  # (loaded, failed) per slot

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

    # ---- error accounting

    def _slot(self) -> int:
        info = get_worker_info()
        return 0 if info is None else (info.id + 1) % _MAX_SLOTS

    def error_stats(self) -> dict[str, Any]:
        """Counts over all workers: ``loaded``, ``failed`` (attempts), ``bad_records`` (distinct), ``bad_paths``."""
        loaded, failed = (int(v) for v in self._counts.sum(dim=0))
        bad = torch.nonzero(self._bad).flatten().tolist()
        return {
            "loaded": loaded,
            "failed": failed,
            "bad_records": len(bad),
            "bad_fraction": len(bad) / len(self.records),
            "bad_paths": [str(self.records[i].path) for i in bad],
        }

    def _record_failure(self, index: int, err: Exception) -> None:
        record = self.records[index]
        reason = str(err)
        self._counts[self._slot(), 1] += 1
        first_time = not bool(self._bad[index])
        self._bad[index] = 1
        if first_time:
            warnings.warn(
                f"skipping unreadable video (record {index}): "
                + (reason if str(record.path) in reason else f"{str(record.path)!r}: {reason}"),
                UnreadableVideoWarning,
                stacklevel=3,
            )
            if self.error_log is not None:
                line = json.dumps({"path": str(record.path), "reason": reason, "index": index}) + "\n"
                fd = os.open(self.error_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                try:
                    os.write(fd, line.encode())  # one write per line: atomic between processes
                finally:
                    os.close(fd)
        bad = int(self._bad.sum())
        if bad > self.max_error_fraction * len(self.records):
            raise RuntimeError(
                f"{bad} of {len(self.records)} videos ({bad / len(self.records):.1%}) could not be decoded, more "
                f"than max_error_fraction={self.max_error_fraction}; last: {str(record.path)!r}: {reason}. "
                f"Run `zoo data check` on the manifest to list every bad file."
            )

    # ---- loading

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        np_rng, torch_gen = self._generators(index, 0)
        candidate = index
        for attempt in range(self.max_retries):
            if attempt:
                candidate = int(np_rng.integers(len(self.records)))
                np_rng, torch_gen = self._generators(candidate, attempt)
            if self._bad[candidate] and self.on_error == "skip":
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
            self._counts[self._slot(), 0] += 1
            return sample
        raise RuntimeError(
            f"no readable video found after {self.max_retries} attempts starting at record {index}"
        )

    def _reader(self, record: VideoRecord):
        frames = record.extra.get("frames")
        if frames is not None:
            return _FrameListReader(frames, record.extra.get("fps", 25.0), record.path)
        return VideoReader(
            record.path, backend=self.decode_backend, size=self.decode_size, num_threads=self.decode_threads
        )

    def _load(self, index: int, np_rng: np.random.Generator, torch_gen: torch.Generator) -> dict[str, Any]:
        record = self.records[index]
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
            clips = np.asarray(self.sampler(last - first, fps, np_rng), dtype=np.int64) + first  # (K, T)
            if clips.ndim != 2:
                raise ValueError(f"a sampler must return (num_clips, T) indices, got shape {clips.shape}")
            frames = torch.as_tensor(reader.get_frames(clips.reshape(-1)))  # (K*T, H, W, C) uint8
        finally:
            if not isinstance(reader, _FrameListReader):
                reader.close()
        frames = frames.reshape(*clips.shape, *frames.shape[1:])  # (K, T, H, W, C)
        if self.views > 1:
            frames = frames.repeat_interleave(self.views, dim=0)

        sample: dict[str, Any] = {}
        multi = frames.shape[0] > 1
        clip_input = frames if multi else frames[0]
        if self.transform is None:
            video = clip_input.permute(*range(clip_input.ndim - 4), -1, -4, -3, -2).float().div(255.0)
        elif self._transform_takes_generator:
            video = self.transform(clip_input, generator=torch_gen)
        else:  # a third-party transform: it draws from the global generators (seeded per worker)
            video = self.transform(clip_input)
        if multi and video.ndim == 6:  # (K, crops, C, T, H, W): several crops per clip
            video = video.flatten(0, 1)
        if multi or video.ndim == 5:
            sample["video_views"] = video
        else:
            sample["video"] = video
        sample["index"] = index
        sample["frame_indices"] = torch.from_numpy(clips)
        if self.labels:
            sample["label"] = -1 if record.label is None else int(record.label)
        if self.audio is not None:
            sample.update(self._audio(record, times[clips[0]], fps))
        if self.text:
            caption = record.caption
            sample["text"] = (
                caption if isinstance(caption, str) else str(caption[int(np_rng.integers(len(caption)))])
            )
        for key in self.extras:
            if key not in record.extra:
                raise KeyError(f"record {index} ({record.path}) has no extra field {key!r}")
            value = record.extra[key]
            if key == "frame_labels":
                labels = np.asarray(value, dtype=np.int64)
                value = torch.from_numpy(labels[np.minimum(clips, len(labels) - 1)])
                value = value if multi else value[0]
            sample[key] = value
        return sample

    def _audio(self, record: VideoRecord, clip_times: np.ndarray, fps: float) -> dict[str, torch.Tensor]:
        cfg = self.audio
        centre = (
            clip_times.min() + clip_times.max() + 1 / fps
        ) / 2  # from the first frame to the last one's end
        start, end = centre - cfg.duration / 2, centre + cfg.duration / 2
        if record.extra.get("frames") is not None:  # image frames: no sound track
            num = round(cfg.duration * cfg.sample_rate)
            waveform, present = torch.zeros(1, num), torch.zeros(num, dtype=torch.bool)
        else:
            waveform, present = clip_audio_window(
                record.path, start, end, cfg.sample_rate, on_missing="zeros"
            )
        mel = log_mel(
            waveform, cfg.sample_rate, n_fft=cfg.n_fft, hop=cfg.hop, n_mels=cfg.n_mels
        )  # (1, F, frames)
        centres = torch.clamp(torch.arange(mel.shape[-1]) * cfg.hop, max=max(present.numel() - 1, 0))
        mask = present[centres] if present.numel() else torch.zeros(mel.shape[-1], dtype=torch.bool)
        return {"audio": mel, "audio_mask": mask}


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
