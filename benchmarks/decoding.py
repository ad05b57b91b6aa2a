"""Clips/s and frames/s of each video decoding backend on generated Kinetics-like videos.

Videos (H.264, 340x256, 30 fps, B-frames): "short GOP" 10 s with a keyframe every 30 frames, "long GOP"
20 s with one every 250. Access patterns, as a data loader asks for them (each clip opens the file, reads
the frames and closes it; the PyAV frame index is rebuilt for every clip, so its scan is counted):

* uniform16 — 16 frames spread over the whole video;
* clip16x4 — 16 frames with stride 4 from a random start;
* seq100 — 100 consecutive frames from a random start.

Times are CPU time of the process (all its threads), interleaved across backends clip by clip.
Run: ``python benchmarks/decoding.py`` (under a minute). ``--extra-decord DIR`` adds a column for another
install of the ``decord`` module (e.g. ``pip install --target DIR decord==0.6.0``), measured in a subprocess
since both packages provide the same import name. Writes docs/benchmarks/decoding.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from zoo.data import video as video_module
from zoo.data.encode import write_video
from zoo.data.video import VideoReader, available_backends

VIDEOS = {"short GOP (30), 10 s": (300, 30), "long GOP (250), 20 s": (600, 250)}
PATTERNS = ("uniform16", "clip16x4", "seq100")
REPEATS = 5


def _make_video(path: Path, num_frames: int, gop: int) -> Path:
    """Moving textured background plus a bright square crossing it: content the encoder must really code."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)  # (384, 512, 3)
    frames = np.empty((num_frames, 256, 340, 3), dtype=np.uint8)
    for t in range(num_frames):
        frames[t] = np.roll(texture, (t // 2, t), (0, 1))[:256, :340]
        x = (5 * t) % 300
        frames[t, 100:140, x : x + 40] = (255, 220, 40)
    return write_video(path, frames, 30.0, gop=gop, bframes=2, crf=23)


def _indices(pattern: str, num_frames: int, rng: np.random.Generator) -> list[int]:
    if pattern == "uniform16":
        return np.linspace(0, num_frames - 1, 16).round().astype(int).tolist()
    if pattern == "clip16x4":
        start = int(rng.integers(0, num_frames - 64))
        return list(range(start, start + 64, 4))
    start = int(rng.integers(0, num_frames - 100))
    return list(range(start, start + 100))


def _time_backends(backends: list[str], videos: dict[str, Path]) -> dict[str, dict[str, dict[str, float]]]:
    """Median CPU seconds per clip for each backend, video and pattern; backends interleaved clip by clip."""
    torch.set_num_threads(1)
    results: dict[str, dict[str, dict[str, float]]] = {backend: {} for backend in backends}
    for name, path in videos.items():
        num_frames = VIDEOS[name][0]
        for pattern in PATTERNS:
            rng = np.random.default_rng(1)
            times: dict[str, list[float]] = {backend: [] for backend in backends}
            for _ in range(REPEATS):
                indices = _indices(pattern, num_frames, rng)
                for backend in backends:
                    video_module._cached_scan.cache_clear()  # first-open cost, as for a new video
                    start = time.process_time()
                    with VideoReader(path, backend=backend, num_threads=1) as reader:
                        frames = reader.get_frames(indices)
                    times[backend].append(time.process_time() - start)
                    assert frames.shape[0] == len(indices)
            for backend in backends:
                results[backend].setdefault(name, {})[pattern] = statistics.median(times[backend])
    return results


def _scan_ms(videos: dict[str, Path]) -> dict[str, float]:
    """CPU milliseconds of the packet scan that gives the exact frame count (cached per process after)."""
    out = {}
    for name, path in videos.items():
        times = []
        for _ in range(REPEATS):
            start = time.process_time()
            video_module._scan(path)
            times.append(time.process_time() - start)
        out[name] = 1000 * statistics.median(times)
    return out


def _decord_version() -> str:
    import decord

    return f"decord {decord.__version__}"


def _extra_decord(directory: str, videos: dict[str, Path]) -> tuple[str, dict]:
    """Measure another decord install in a subprocess (the import name clashes with the installed one)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([directory, os.environ.get("PYTHONPATH", "")])}
    payload = json.dumps({k: str(v) for k, v in videos.items()})
    out = subprocess.run(
        [sys.executable, __file__, "--worker", payload], env=env, check=True, capture_output=True, text=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["label"], result["times"]


def _table(columns: dict[str, dict], videos: dict[str, Path]) -> str:
    labels = list(columns)
    header = "| video | pattern | " + " | ".join(f"{label} clips/s (frames/s)" for label in labels)
    ratios = [label for label in labels if label != "pyav"]
    header += "".join(f" | {label} / pyav" for label in ratios) + " |"
    lines = [header, "|" + "---|" * (2 + len(labels) + len(ratios))]
    for name in videos:
        for pattern in PATTERNS:
            num_indices = len(_indices(pattern, VIDEOS[name][0], np.random.default_rng(0)))
            cells = [
                f"{1 / columns[label][name][pattern]:.1f} ({num_indices / columns[label][name][pattern]:.0f})"
                for label in labels
            ]
            cells += [
                f"{columns['pyav'][name][pattern] / columns[label][name][pattern]:.2f}x" for label in ratios
            ]
            lines.append(f"| {name} | {pattern} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--extra-decord", action="append", default=[], help="directory holding another decord"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="docs/benchmarks/decoding.md")
    args = parser.parse_args()
    if args.worker:  # subprocess mode for --extra-decord
        videos = {k: Path(v) for k, v in json.loads(args.worker).items()}
        print(json.dumps({"label": _decord_version(), "times": _time_backends(["decord"], videos)["decord"]}))
        return

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        videos = {
            name: _make_video(Path(tmp) / f"v{i}.mp4", *spec) for i, (name, spec) in enumerate(VIDEOS.items())
        }
        backends = available_backends()
        measured = _time_backends(backends, videos)
        columns = {_decord_version() if b == "decord" else b: measured[b] for b in backends}
        scan = _scan_ms(videos)
        for directory in args.extra_decord:
            label, times = _extra_decord(directory, videos)
            columns[f"{label} (--extra-decord)"] = times
    table = _table(columns, videos)
    note = (
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores (shared), "
        f"Python {platform.python_version()}, torch {torch.__version__}, PyAV {av.__version__} "
        f"(libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))}). One decoder thread; clips/s are "
        f"per CPU-second (process time, robust to other load on a shared machine), median of {REPEATS} clips; "
        "each clip opens the file. Every backend's time includes the PyAV packet scan that gives the exact "
        "frame count (" + ", ".join(f"{name}: {ms:.1f} ms" for name, ms in scan.items()) + "), which later "
        f"opens of the same file take from a cache. Total run {time.perf_counter() - started:.0f} s."
    )
    text = (
        f"# Video decoding throughput\n\nGenerated by `python benchmarks/decoding.py`.\n\n{table}\n\n{note}\n"
    )
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
