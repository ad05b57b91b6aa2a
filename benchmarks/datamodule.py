"""Clips/s of the whole ``VideoDataModule`` pipeline against the raw decoder on the same files and frames.

Videos: generated Kinetics-like H.264 clips (340x256, 30 fps, B-frames, a keyframe every 30 frames).
Clips: 16 frames with stride 4 from a random start (the training sampler), resized/cropped to ``--size``.

* raw decoder — ``VideoReader(path).get_frames(indices)`` for exactly the (file, indices) pairs the pipeline
  drew (the sampler's draws depend only on seed, epoch and index), one process;
* DataModule rows — ``train_dataloader()`` of a ``VideoDataModule`` over a manifest of the same files:
  decoding + sampling + the transform preset + collation (+ worker processes when ``workers > 0``).

"overhead" is the pipeline's time per clip divided by the raw decoder's (1.00 = no cost beyond decoding;
below 1 with workers, which decode in parallel). Wall-clock time; the first epoch (worker start-up) is
excluded and the rows are timed epoch by epoch in turn. Run: ``python benchmarks/datamodule.py`` (a few minutes on 2 cores). Writes
docs/benchmarks/datamodule.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from zoo.data.datamodule import VideoDataModule
from zoo.data.encode import write_video
from zoo.data.video import VideoReader

CONFIGS = (  # (label, preset, views, workers, device_transforms)
    ("DataModule, no transform (ToFloat)", None, 1, 0, False),
    ("DataModule, eval preset", "eval", 1, 0, False),
    ("DataModule, train preset", "train", 1, 0, False),
    ("DataModule, train preset on the batch (device_transforms, CPU)", "train", 1, 0, True),
    ("DataModule, simclr preset", "simclr", 1, 0, False),
    ("DataModule, train preset", "train", 1, 2, False),
    ("DataModule, simclr preset, 2 views", "simclr", 2, 2, False),
)


def _make_video(path: Path, num_frames: int, seed: int) -> Path:
    """A scrolling texture with a bright square crossing it: content the encoder must really code."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)  # (384, 512, 3)
    frames = np.empty((num_frames, 256, 340, 3), dtype=np.uint8)
    for t in range(num_frames):
        frames[t] = np.roll(texture, (t // 2, t), (0, 1))[:256, :340]
        x = (5 * t) % 300
        frames[t, 100:140, x : x + 40] = (255, 220, 40)
    return write_video(path, frames, 30.0, gop=30, bframes=2, crf=23)


def _module(
    manifest: Path, preset: str | None, views: int, workers: int, device_transforms: bool, size: int
) -> VideoDataModule:
    return VideoDataModule(
        train_manifest=str(manifest),
        num_frames=16,
        stride=4,
        size=size,
        train_transform=preset or "train",
        num_views=views,
        batch_size=4,
        num_workers=workers,
        persistent_workers=workers > 0,
        device_transforms=device_transforms,
        drop_last=False,
        seed=0,
    )


def _loader(module: VideoDataModule, preset: str | None):
    """The train loader of ``module`` (with the transform of ``preset``), after a warm-up epoch."""
    module.setup("fit")
    if preset is None:
        module.datasets["train"].transform = None
    loader = module.train_dataloader()
    loader.sampler.set_epoch(0)
    for _ in loader:  # warm-up: worker start-up, first imports
        pass
    return module, loader


def _pipeline_epoch(module: VideoDataModule, loader, epoch: int) -> tuple[float, list]:
    """(seconds, drawn (index, frame_indices) pairs) of one epoch."""
    loader.sampler.set_epoch(epoch)
    draws = []
    start = time.perf_counter()
    for batch in loader:
        if module.hparams.device_transforms:
            batch = module.apply_device_transform(batch, "train")
        draws += list(zip(batch["index"].tolist(), batch["frame_indices"].numpy()))
    return time.perf_counter() - start, draws


def _raw_epoch(paths: list[Path], draws: list) -> float:
    start = time.perf_counter()
    for index, frame_indices in draws:
        with VideoReader(paths[index]) as reader:
            reader.get_frames(frame_indices.reshape(-1))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each video")
    parser.add_argument("--size", type=int, default=112, help="crop size of the transforms")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per configuration")
    parser.add_argument("--out", default="docs/benchmarks/datamodule.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = [_make_video(root / f"v{i:03d}.mp4", int(args.seconds * 30), i) for i in range(args.videos)]
        manifest = root / "train.csv"
        manifest.write_text("path,label\n" + "".join(f"{p.name},{i % 4}\n" for i, p in enumerate(paths)))

        loaders = [
            _loader(_module(manifest, preset, views, workers, device, args.size), preset)
            for _, preset, views, workers, device in CONFIGS
        ]
        seconds = [0.0] * len(CONFIGS)
        raw_seconds, clips = 0.0, 0
        for epoch in range(1, args.epochs + 1):  # interleaved, so that load changes hit every row alike
            epoch_draws = []
            for i, (module, loader) in enumerate(loaders):
                elapsed, draws = _pipeline_epoch(module, loader, epoch)
                seconds[i] += elapsed
                epoch_draws.append(sorted((index, f.tobytes()) for index, f in draws))
            if any(d != epoch_draws[0] for d in epoch_draws):
                raise RuntimeError("the configurations drew different clips; the comparison would be unfair")
            raw_seconds += _raw_epoch(paths, draws)
            clips += len(draws)
        raw_cps = clips / raw_seconds
        results = [("raw decoder (VideoReader.get_frames)", "-", 0, raw_cps)]
        for (label, _, views, workers, _), elapsed in zip(CONFIGS, seconds):
            results.append((label, str(views), workers, clips / elapsed))
            print(f"{label:40s} views={views} workers={workers}: {clips / elapsed:7.1f} clips/s", flush=True)

    lines = [
        "| pipeline | views | workers | clips/s | overhead vs raw decoder |",
        "|---|---|---|---|---|",
    ]
    for label, views, workers, cps in results:
        lines.append(f"| {label} | {views} | {workers} | {cps:.1f} | {raw_cps / cps:.2f} |")
    table = "\n".join(lines)
    header = (
        "# DataModule pipeline vs raw decoder\n\n"
        f"{args.videos} H.264 videos 340x256, 30 fps, {args.seconds:g} s, GOP 30 with B-frames; clips of 16 "
        f"frames, stride 4, random start; transforms to {args.size}x{args.size}; batch 4; "
        f"{args.epochs} timed epochs after a warm-up epoch, rows interleaved epoch by epoch. A sample with "
        "several views counts as one clip.\n\n"
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores (shared), "
        f"Python {platform.python_version()}, torch {torch.__version__}, PyAV {av.__version__}, "
        f"one torch thread per process; 1-minute load average {load_before:.1f} at the start and "
        f"{os.getloadavg()[0]:.1f} at the end (other jobs shared the cores: compare rows, not runs).\n\n"
        "Command: `python benchmarks/datamodule.py`\n\n"
    )
    print()
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(header + table + "\n")


if __name__ == "__main__":
    main()
