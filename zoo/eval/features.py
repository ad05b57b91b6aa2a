"""Features of a frozen encoder: over a dataloader, cached as safetensors; per frame of long videos.

Every protocol of :mod:`zoo.eval` (linear probe, kNN, retrieval, clustering) runs on the
:class:`FeatureSet` returned here, so features are computed once per (model, split).
:func:`extract_sequence_features` writes per-frame features of long videos in the layout that
:class:`zoo.data.sequences.FeatureSequenceDataset` reads (temporal segmentation).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, track
from safetensors.torch import load_file, save_file
from torch import nn

from zoo.data.sequences import SequenceLengthError
from zoo.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Compose, Normalize, ToFloat
from zoo.data.video import VideoReader
from zoo.errors import UsageError

__all__ = [
    "FeatureSet",
    "embed",
    "extract_features",
    "extract_sequence_features",
    "load_features",
    "save_features",
]


def embed(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled pre-logits features (B, F) of a zoo backbone (any other module: its output)."""
    if hasattr(encoder, "forward_features") and hasattr(encoder, "forward_head"):
        return encoder.forward_head(encoder.forward_features(x), pre_logits=True)
    return encoder(x)


@dataclass
class FeatureSet:
    """Features (N, F) float32, labels (N,) int64 and dataset indexes (N,) int64, on the CPU."""

    features: torch.Tensor
    labels: torch.Tensor
    indexes: torch.Tensor

    def __len__(self) -> int:
        return len(self.features)


def save_features(features: FeatureSet, path: str | Path) -> None:
    """Write atomically (temporary file + rename): a killed run never leaves a partial cache."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tensors = {"features": features.features, "labels": features.labels, "indexes": features.indexes}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def load_features(path: str | Path) -> FeatureSet:
    tensors = load_file(str(path))
    return FeatureSet(tensors["features"], tensors["labels"], tensors["indexes"])


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    dataloader: Iterable[dict[str, Any]],
    *,
    input_key: str = "video",
    device: str | torch.device | None = None,
    cache: str | Path | None = None,
    progress: bool = True,
    description: str = "features",
) -> FeatureSet:
    """Run ``encoder`` (eval mode, no grad) over ``dataloader`` batches ``{input_key, label, index}``.

    A batch with ``{input_key}_views`` instead — (B, V, C, T, H, W) clips or (B, V, C, H, W) images, e.g.
    several test clips × crops (:mod:`zoo.data.batch`) — gives the mean of the V features. With ``cache``,
    an existing file is loaded instead of computing, and a computed set is written there.
    """
    if cache is not None and Path(cache).is_file():
        return load_features(cache)
    device = torch.device(device) if device is not None else next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    feats, labels, indexes = [], [], []
    offset = 0
    for batch in track(dataloader, description=description, disable=not progress, transient=True):
        has_views = input_key not in batch and f"{input_key}_views" in batch
        x = batch[f"{input_key}_views" if has_views else input_key].to(device, non_blocking=True)
        if has_views:  # (B, V, C, [T,] H, W)
            f = embed(encoder, x.flatten(0, 1))
            f = f.reshape(x.shape[0], -1, f.shape[-1]).mean(dim=1)  # average over the V views
        else:
            f = embed(encoder, x)
        feats.append(f.float().cpu())
        n = len(f)
        labels.append(
            torch.as_tensor(batch["label"]).long().cpu() if "label" in batch else torch.full((n,), -1)
        )
        index = batch.get("index")
        indexes.append(
            torch.as_tensor(index).long().cpu() if index is not None else torch.arange(offset, offset + n)
        )
        offset += n
    encoder.train(was_training)
    result = FeatureSet(torch.cat(feats), torch.cat(labels), torch.cat(indexes))
    if cache is not None:
        save_features(result, cache)
    return result


def _windows(positions: np.ndarray, clip_frames: int, clip_stride: int, num_frames: int) -> np.ndarray:
    """Frames of the window centred on each position (clamped to the video): (N, clip_frames)."""
    offsets = (np.arange(clip_frames) - clip_frames // 2) * clip_stride
    return np.clip(positions[:, None] + offsets[None], 0, num_frames - 1)


def _save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


@torch.no_grad()
def extract_sequence_features(
    backbone: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    video_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    label_files: Sequence[str | os.PathLike] | None = None,
    mapping_file: str | os.PathLike | None = None,
    clip_frames: int | None = None,
    clip_stride: int = 1,
    frame_stride: int = 1,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    decode_backend: str | None = None,
    progress: bool = True,
) -> Path:
    """Per-frame features of long videos, written in the ``"mstcn"`` layout that the dataset reads.

    Writes ``out_dir/features/{stem}.npy`` float32 ``(D, T)`` with one column per ``frame_stride``-th frame,
    and, with ``label_files``, ``groundTruth/{stem}.txt`` (the labels of those frames) and ``mapping.txt``.

    Args:
        backbone: a zoo backbone (its pooled pre-logits features) or any callable returning (N, D).
        video_paths: the long videos.
        out_dir: where to write the layout.
        label_files: one per video: an action name per frame (as many lines as the video has frames).
        mapping_file: the "index name" mapping of the labels, copied to ``out_dir/mapping.txt``.
        clip_frames: None for an image backbone (one frame, (N, C, H, W)); else a video backbone gets
            ``clip_frames`` frames centred on each frame, (N, C, T, H, W).
        clip_stride: frames between the frames of a window.
        frame_stride: a feature for every ``frame_stride``-th frame.
        transform: uint8 (N, T, H, W, C) -> float (N, C, T, H, W); default ToFloat + ImageNet Normalize.
        batch_size: windows per forward pass.
        device: where the backbone runs (default: where its parameters are).
        decode_backend: passed to :class:`zoo.data.video.VideoReader`.
        progress: show a progress bar over the frames.

    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    video_paths = [Path(p) for p in video_paths]
    if label_files is not None and len(label_files) != len(video_paths):
        raise UsageError(f"{len(label_files)} label files for {len(video_paths)} videos")
    if (label_files is None) != (mapping_file is None):
        raise UsageError("label_files and mapping_file go together")
    if (clip_frames is not None and clip_frames < 1) or frame_stride < 1 or clip_stride < 1:
        raise UsageError("clip_frames, clip_stride and frame_stride must be >= 1")
    stems = [p.stem for p in video_paths]
    if len(set(stems)) != len(stems):
        raise UsageError("two videos have the same file name; features are named after it")
    transform = transform or Compose([ToFloat(), Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    if isinstance(backbone, nn.Module):
        was_training = backbone.training
        backbone.eval()
        if device is None:
            device = next(iter(backbone.parameters()), torch.empty(0)).device
    device = torch.device(device or "cpu")
    (out_dir / "features").mkdir(parents=True, exist_ok=True)
    lengths = []
    for path in video_paths:
        with VideoReader(path, backend=decode_backend) as reader:
            lengths.append(reader.metadata.num_frames)
    columns = (TextColumn("features"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, disable=not progress) as bar:
            task = bar.add_task("frames", total=sum(len(range(0, n, frame_stride)) for n in lengths))
            for k, (path, num_frames) in enumerate(zip(video_paths, lengths)):
                positions = np.arange(0, num_frames, frame_stride)
                if label_files is not None:
                    labels = Path(label_files[k]).read_text(encoding="utf-8").split()
                    if len(labels) != num_frames:
                        raise SequenceLengthError(
                            f"{path} has {num_frames} frames but {label_files[k]} has {len(labels)} labels"
                        )
                chunks = []
                with VideoReader(path, backend=decode_backend) as reader:
                    for first in range(0, len(positions), batch_size):
                        windows = _windows(
                            positions[first : first + batch_size], clip_frames or 1, clip_stride, num_frames
                        )
                        frames = reader.get_frames(windows.reshape(-1))  # (N*T, H, W, C) uint8
                        clips = transform(
                            frames.reshape(*windows.shape, *frames.shape[1:])
                        )  # (N, C, T, H, W)
                        clips = clips.to(device)
                        embedded = embed(backbone, clips[:, :, 0] if clip_frames is None else clips)
                        if embedded.ndim != 2:
                            raise UsageError(
                                f"the backbone must return (N, D) features, got shape {tuple(embedded.shape)}"
                            )
                        chunks.append(embedded.float().cpu())
                        bar.advance(task, len(windows))
                features = torch.cat(chunks).T.contiguous().numpy()  # (D, T)
                _save_atomic(out_dir / "features" / f"{path.stem}.npy", features)
                if label_files is not None:
                    (out_dir / "groundTruth").mkdir(exist_ok=True)
                    text = "".join(f"{labels[i]}\n" for i in positions)
                    (out_dir / "groundTruth" / f"{path.stem}.txt").write_text(text, encoding="utf-8")
    finally:
        if isinstance(backbone, nn.Module) and was_training:
            backbone.train()
    if mapping_file is not None:
        shutil.copyfile(mapping_file, out_dir / "mapping.txt")
    return out_dir
