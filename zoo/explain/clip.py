"""Explain one video file with a zoo model: the space-time mask, saved, and the clip drawn with it.

What ``zoo explain MODEL VIDEO --target CLASS`` does: the model and its preprocessing come from the catalog
(or a published folder), the clip is the model's first test view, and the outputs are the masks
(safetensors) and an overlay (GIF or MP4) that shows, side by side, the clip and the clip dimmed outside
the mask.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from zoo.errors import UsageError
from zoo.explain.extremal import (
    Perturbation,
    TargetOutOfRangeError,
    extremal_perturbation_video,
    mask_geometry,
)

OVERLAY_FORMATS = ("gif", "mp4")


@dataclass
class ClipExplanation:
    """What :func:`explain_video_file` wrote and measured.

    Attributes:
        masks_path: the safetensors file of the masks ``(K, T, H, W)``.
        overlay_path: the GIF or MP4 overlay.
        score: the target's logit on the clip.
        preserved_score: the target's logit on the clip perturbed outside the first mask.
    """

    masks_path: Path
    overlay_path: Path
    score: float
    preserved_score: float


def unnormalise(video: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """A normalised clip ``(C, T, H, W)`` as uint8 frames ``(T, H, W, 3)``."""
    mean_t = torch.tensor(mean).view(-1, 1, 1, 1)
    std_t = torch.tensor(std).view(-1, 1, 1, 1)
    frames = (video * std_t + mean_t).clamp(0, 1).mul(255).round().byte()  # (C, T, H, W)
    return frames.permute(1, 2, 3, 0).numpy()


def overlay_frames(frames: np.ndarray, mask: np.ndarray, min_size: int = 256) -> np.ndarray:
    """Frames ``(T, H, W, 3)`` beside themselves dimmed outside ``mask`` ``(T, H, W)``, enlarged to ``min_size``.

    Args:
        frames: uint8 RGB frames.
        mask: values in [0, 1], 1 where the clip is kept.
        min_size: smallest height of the output (nearest-neighbour enlargement by an integer factor).
    """
    keep = 0.2 + 0.8 * mask[..., None]  # outside the mask, a fifth of the brightness
    dimmed = (frames.astype(np.float32) * keep).round().astype(np.uint8)
    pair = np.concatenate([frames, dimmed], axis=2)  # (T, H, 2W, 3)
    scale = max(1, -(-min_size // frames.shape[1]))
    pair = pair.repeat(scale, axis=1).repeat(scale, axis=2)
    height, width = pair.shape[1:3]
    return pair[:, : height - height % 2, : width - width % 2]  # even sizes for H.264


def write_overlay(path: Path, frames: np.ndarray, fps: float) -> Path:
    """Write uint8 frames ``(T, H, W, 3)`` as a looping GIF or an H.264 MP4, by the file's suffix."""
    if path.suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(frame) for frame in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        return path
    from zoo.data.encode import write_video

    return write_video(path, frames, fps)


def explain_video_file(
    model_name: str,
    video: str | os.PathLike,
    target: int,
    out_dir: str | os.PathLike,
    *,
    areas: tuple[float, ...] = (0.05,),
    variant: str = "preserve",
    iterations: int = 100,
    learning_rate: float = 0.1,
    jitter: bool = False,
    overlay_format: str = "gif",
    fps: float = 4.0,
    progress: bool = True,
) -> ClipExplanation:
    """Extremal perturbations of a video file for one class of a zoo video classifier; writes masks and overlay.

    Args:
        model_name: a catalog name or published folder (``zoo.load``) of a video classifier.
        video: the video file.
        target: the class explained.
        out_dir: where the outputs go (created).
        areas: the mask volumes, fractions of the clip.
        variant: ``"preserve"``, ``"delete"`` or ``"dual"``.
        iterations: optimisation steps.
        learning_rate: SGD learning rate; 100 steps at 0.1 stand in for TorchRay's 800 at 0.01 on a CPU.
        jitter: flip horizontally on even iterations (off: a flip changes direction-sensitive classes).
        overlay_format: ``"gif"`` or ``"mp4"``.
        fps: frame rate of the overlay.
        progress: show a progress bar.
    """
    import zoo
    from zoo.api import entry_transform
    from zoo.serialization import save_state_dict

    if overlay_format not in OVERLAY_FORMATS:
        raise UsageError(f"overlay format '{overlay_format}' is not one of {OVERLAY_FORMATS}")
    path = Path(video)
    if not path.is_file():
        raise FileNotFoundError(f"no such video file: {path}")
    model = zoo.load(model_name)
    entry = model.card.entry
    if entry.preprocess.modality != "video":
        raise UsageError(f"{model_name}: not a video model (its input is {entry.preprocess.modality})")
    clip = entry_transform(entry)(path)[:1]  # (1, C, T, H, W): the first test view
    with torch.no_grad():
        logits = model(clip)  # (1, Y)
    if not 0 <= target < logits.shape[1]:
        raise TargetOutOfRangeError(target, logits.shape[1])
    step, sigma = mask_geometry(min(clip.shape[-2:]))

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("explain"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("iterations", total=iterations)
        explanation = extremal_perturbation_video(
            model,
            clip,
            target,
            areas,
            variant=variant,
            max_iter=iterations,
            learning_rate=learning_rate,
            step=step,
            sigma=sigma,
            jitter=jitter,
            on_iteration=lambda i: bar.update(task, completed=i),
        )
    masks = explanation.masks[:, 0]  # (K, T, H, W)

    with torch.no_grad():
        preserved_score = float(model(Perturbation(clip).apply(explanation.masks[:1]))[0, target])

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{path.stem}_{variant}_class{target}"
    masks_path = out / f"{stem}_masks.safetensors"
    metadata = {
        "model": model_name,
        "video": str(path),
        "target": str(target),
        "variant": variant,
        "areas": ",".join(f"{a:g}" for a in explanation.areas),
        "iterations": str(iterations),
        "learning_rate": f"{learning_rate:g}",
    }
    save_state_dict(
        {"masks": masks.contiguous(), "history": explanation.history}, masks_path, metadata=metadata
    )
    frames = unnormalise(clip[0], entry.preprocess.mean, entry.preprocess.std)
    overlay_path = write_overlay(
        out / f"{stem}.{overlay_format}", overlay_frames(frames, masks[0].numpy()), fps
    )
    return ClipExplanation(masks_path, overlay_path, float(logits[0, target]), preserved_score)
