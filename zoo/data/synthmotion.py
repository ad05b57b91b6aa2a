"""SynthMotion: a deterministic generator of real H.264 videos in which MOTION defines the class.

The embedded default dataset: every method of the zoo can train on it and show a learning signal on two CPU
cores in minutes, offline. A clip shows one object (random shape, colour, size and marking: none of them
carries the class) moving over a textured background; its trajectory is the class.

| label | name                | trajectory                                | direction         | speed (64 px, 32 fr) |
|-------|---------------------|-------------------------------------------|-------------------|----------------------|
| 0     | `slide_left`        | straight line over about half the frame   | right -> left     | slow, ~1 px/frame    |
| 1     | `slide_right`       | straight line over about half the frame   | left -> right     | slow                 |
| 2     | `slide_up`          | straight line over about half the frame   | bottom -> top     | slow                 |
| 3     | `slide_down`        | straight line over about half the frame   | top -> bottom     | slow                 |
| 4     | `circle_cw`         | circle, 0.8-1.2 turns per clip            | clockwise         | medium, ~2.5 px/frame|
| 5     | `circle_ccw`        | circle, 0.8-1.2 turns per clip            | counter-clockwise | medium               |
| 6     | `bounce_horizontal` | zig-zag between the left and right walls  | left <-> right    | fast, ~3.5 px/frame  |
| 7     | `bounce_vertical`   | zig-zag between the top and bottom walls  | up <-> down       | fast                 |

Speeds are fractions of the frame per frame, set so that one clip of `num_frames` frames shows one slide
over half the frame, about one turn, or two to three wall hits. `num_classes < 8` keeps the first classes.

Appearance (not class-informative): shapes `disc, square, triangle, diamond, ring, cross`; colours `red,
green, blue, yellow, purple, white, orange, cyan`; markings `none, hstripes, vstripes, dot`; radius 8-13 %
of the frame. Backgrounds: eight texture families `stripes, checker, blobs, gradient, rings, dots, waves,
grain`, each with random colours and parameters (optionally drifting like a slow camera pan).

Scene bias: class `c` has the designated family `BACKGROUNDS[c % 8]`. In the train split exactly
`round(scene_bias * train_per_class)` clips of each class use it, the others one of the other families; in
val and test every class sees every family equally often (the designated one 1/8 of the time).

Audio (16 kHz mono AAC): a tone whose pitch is set by the object's shape (`SHAPE_PITCH_HZ`) plus a click at
each wall hit (bounce classes) and each quarter turn (circle classes), at the exact time it happens.

Captions: template sentences on colour, shape and motion in `languages` (en, de, fr, es, zh).
QA: multiple-choice items about the motion, colour and shape of each clip.
Long videos: ordered sub-actions (`LONG_TASKS`, like Breakfast activities), one motion per segment, the
object moving continuously from one segment to the next (it wraps round the frame edges there).
Re-ID: identities (fixed shape, colour, marking and size) seen by cameras, each camera with its own scene
(background family), illumination and zoom; train identities are disjoint from query/gallery identities.

Output layout (paths in a CSV are relative to the CSV's folder, OUT)::

    OUT/synthmotion.json        config, generator version, classes, counts (a re-run with it is skipped)
    OUT/classes.txt             one class name per line; the line index is the label
    OUT/{train,val,test}.csv    path,label,start,end,caption,label_name,background,shape,color,marking,
                                identity,camera (start/end empty: whole clips; caption: English)
    OUT/videos/{split}/{split}_{i:05d}.mp4
    OUT/captions.json           [{"video_id", "caption", "lang"}, ...] (MSR-VTT-like), clips of all splits;
                                video_id = the file's stem
    OUT/qa.jsonl                {"video_id", "split", "path", "kind", "question", "answers", "answer_idx"},
                                kind in motion / color / shape, answers in English
    OUT/long.csv                the manifest columns + `labels`; label = task index, label_name = task
    OUT/long/{task}_{i:03d}.mp4, OUT/long/labels/{task}_{i:03d}.txt (one sub-action name per frame),
    OUT/long/mapping.txt        "index name" per sub-action (Breakfast-style)
    OUT/reid/{train,test}/{identity:04d}C{camera}T{tracklet:04d}.mp4 (MARS-like names, 1-based camera)
    OUT/reid_train.csv, OUT/reid_query.csv, OUT/reid_gallery.csv (label = identity)

`generate(OUT, config)` writes it; `ensure(config)` does so once at `default_root(config)`
(`$ZOO_DATA/synthmotion-<hash>`, else `~/.cache/zoo/synthmotion-<hash>`) and returns that folder.

Determinism: every clip draws from its own generator seeded by (seed, group, index), so the same config
gives byte-identical manifests and identical decoded frames whatever the number of workers.
"""

from __future__ import annotations

import colorsys
import csv
import dataclasses
import hashlib
import json
import math
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.data.encode import write_video

GENERATOR_VERSION = "1"

CLASSES = (
    "slide_left",
    "slide_right",
    "slide_up",
    "slide_down",
    "circle_cw",
    "circle_ccw",
    "bounce_horizontal",
    "bounce_vertical",
)
# kind, axis (0 = x, 1 = y), sign (+1 = towards larger x / y; for circles +1 = clockwise on screen)
_MOTIONS = {
    "slide_left": ("slide", 0, -1),
    "slide_right": ("slide", 0, 1),
    "slide_up": ("slide", 1, -1),
    "slide_down": ("slide", 1, 1),
    "circle_cw": ("circle", 0, 1),
    "circle_ccw": ("circle", 0, -1),
    "bounce_horizontal": ("bounce", 0, 1),
    "bounce_vertical": ("bounce", 1, 1),
}
SHAPES = ("disc", "square", "triangle", "diamond", "ring", "cross")
SHAPE_PITCH_HZ = {
    "disc": 262.0,
    "cross": 294.0,
    "square": 330.0,
    "triangle": 392.0,
    "diamond": 440.0,
    "ring": 494.0,
}
COLORS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (40, 80, 230),
    "yellow": (240, 220, 40),
    "purple": (150, 50, 200),
    "white": (245, 245, 245),
    "orange": (245, 140, 20),
    "cyan": (40, 210, 220),
}
MARKINGS = ("none", "hstripes", "vstripes", "dot")
BACKGROUNDS = ("stripes", "checker", "blobs", "gradient", "rings", "dots", "waves", "grain")
LANGUAGES = ("en", "de", "fr", "es", "zh")
LONG_TASKS = {
    "square_tour": ("slide_left", "slide_up", "slide_right", "slide_down"),
    "spin_and_shake": ("circle_cw", "bounce_horizontal", "circle_ccw"),
    "drop_and_bounce": ("slide_down", "bounce_vertical", "slide_up", "circle_ccw", "bounce_horizontal"),
}
MANIFEST_COLUMNS = (
    "path",
    "label",
    "start",
    "end",
    "caption",
    "label_name",
    "background",
    "shape",
    "color",
    "marking",
    "identity",
    "camera",
)

_SPLITS = ("train", "val", "test")
_GROUP = {"train": 0, "val": 1, "test": 2, "long": 3, "reid": 4, "camera": 5, "scene": 6}
_OUTLINE_RGB = np.array([20.0, 20.0, 20.0], dtype=np.float32)
_CLICK_HZ = 2000.0


@dataclass(frozen=True)
class SynthMotionConfig:
    """What to generate. Defaults make the full set in well under a minute on two CPU cores."""

    seed: int = 0
    size: int = 64  # frame height = width, pixels (even)
    num_frames: int = 32  # frames per clip (and the unit of speed: see the class table)
    fps: int = 16
    num_classes: int = 8  # the first `num_classes` of CLASSES
    train_per_class: int = 32
    val_per_class: int = 12
    test_per_class: int = 12
    scene_bias: float = 0.8  # train: fraction of a class's clips on its designated background family
    background_drift: float = 0.0  # max background pan, pixels per frame (0: static camera)
    audio: bool = True
    sample_rate: int = 16000
    languages: tuple[str, ...] = LANGUAGES
    captions_per_language: int = 2  # per clip, with different templates
    qa_per_clip: int = 2  # 0..3 of (motion, colour, shape), motion first
    qa_choices: int = 5  # candidate answers per question, 2..6
    long_videos: int = 6  # long videos of ordered sub-actions, tasks in turn
    reid_identities: int = 12  # first half train, second half query/gallery
    reid_cameras: int = 3
    reid_tracklets: int = 1  # per identity and camera
    crf: int = 18
    gop: int = 12

    def __post_init__(self) -> None:
        object.__setattr__(self, "languages", tuple(self.languages))
        checks = {
            "size": self.size >= 16 and self.size % 2 == 0,
            "num_frames": self.num_frames >= 2,
            "fps": self.fps > 0,
            "num_classes": 1 <= self.num_classes <= len(CLASSES),
            "train_per_class": self.train_per_class >= 0,
            "val_per_class": self.val_per_class >= 0,
            "test_per_class": self.test_per_class >= 0,
            "scene_bias": 0.0 <= self.scene_bias <= 1.0,
            "background_drift": self.background_drift >= 0.0,
            "sample_rate": self.sample_rate >= 8000,
            "languages": bool(self.languages) and set(self.languages) <= set(LANGUAGES),
            "captions_per_language": self.captions_per_language >= 1,
            "qa_per_clip": 0 <= self.qa_per_clip <= 3,
            "qa_choices": 2 <= self.qa_choices <= len(SHAPES),
            "long_videos": self.long_videos >= 0,
            "reid_identities": self.reid_identities == 0 or self.reid_identities >= 2,
            "reid_cameras": 2 <= self.reid_cameras <= len(BACKGROUNDS),
            "reid_tracklets": self.reid_tracklets >= 1,
            "crf": 0 <= self.crf <= 51,
            "gop": self.gop >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid SynthMotionConfig field(s) {bad}: {self}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def captions_by_video(root: str | os.PathLike) -> dict[str, dict[str, list[str]]]:
    """``{video_id: {language: [captions]}}`` from ``root/captions.json`` (video_id = the file's stem)."""
    captions: dict[str, dict[str, list[str]]] = {}
    for item in json.loads((Path(root) / "captions.json").read_text(encoding="utf-8")):
        captions.setdefault(item["video_id"], {}).setdefault(item["lang"], []).append(item["caption"])
    return captions


def config_hash(config: SynthMotionConfig) -> str:
    """Short stable hash of the config and the generator version."""
    text = json.dumps({"version": GENERATOR_VERSION, "config": config.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def default_root(config: SynthMotionConfig | None = None) -> Path:
    """``$ZOO_DATA/synthmotion-<hash>`` if ZOO_DATA is set, else ``~/.cache/zoo/synthmotion-<hash>``."""
    base = os.environ.get("ZOO_DATA")
    base_dir = Path(base).expanduser() if base else Path.home() / ".cache" / "zoo"
    return base_dir / f"synthmotion-{config_hash(config or SynthMotionConfig())}"


def ensure(config: SynthMotionConfig | None = None, progress: bool = True) -> Path:
    """Generate the dataset for ``config`` at :func:`default_root` unless it is there already; return it."""
    config = config or SynthMotionConfig()
    return generate(default_root(config), config, progress=progress)


# ----------------------------------------------------------------------------------------------------------
# What one video shows (sampled in the main process) and how it is drawn (in the workers)


@dataclass(frozen=True)
class _Object:
    shape: str
    color: str
    marking: str
    radius: float  # fraction of the frame size


@dataclass(frozen=True)
class _Job:
    relpath: str
    seed: tuple[int, ...]  # trajectory randomness
    background_seed: tuple[int, ...]  # the scene (shared by all tracklets of a re-ID camera)
    obj: _Object
    background: str
    segments: tuple[tuple[str, int], ...]  # (motion, frames), in order
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)  # camera colour response
    scale: float = 1.0  # camera zoom on the object

    @property
    def num_frames(self) -> int:
        return sum(n for _, n in self.segments)


def _random_object(rng: np.random.Generator) -> _Object:
    return _Object(
        shape=SHAPES[rng.integers(len(SHAPES))],
        color=list(COLORS)[rng.integers(len(COLORS))],
        marking=MARKINGS[rng.integers(len(MARKINGS))],
        radius=float(rng.uniform(0.08, 0.13)),
    )


def _fold(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect the unfolded coordinate ``u`` between walls ``lo`` and ``hi`` (a triangle wave)."""
    w = np.mod((u - lo) / (hi - lo), 2.0)
    return lo + (hi - lo) * np.where(w <= 1.0, w, 2.0 - w)


def _crossings(v0: float, rate: float, duration: float, step: float) -> np.ndarray:
    """Times in ``(0, duration]`` at which ``v0 + rate * t`` crosses a multiple of ``step``."""
    if rate == 0.0:
        return np.zeros(0)
    a, b = sorted((v0, v0 + rate * duration))
    ks = np.arange(math.floor(a / step), math.ceil(b / step) + 1) * step
    times = (ks - v0) / rate
    return np.sort(times[(times > 0) & (times <= duration)])


def _motion_path(
    motion: str,
    t: np.ndarray,
    clip_frames: int,
    margin: float,
    rng: np.random.Generator,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Centre positions ``(len(t), 2)`` as (x, y) in frame units, and event times (frames).

    ``start``: position at ``t = 0`` (long videos continue from the previous segment); ``None`` places the
    whole path inside the frame, ``margin`` away from the edges.
    """
    kind, axis, sign = _MOTIONS[motion]
    lo, hi = margin, 1.0 - margin
    if kind == "slide":
        speed = rng.uniform(0.45, 0.6) / clip_frames
        if start is None:
            travel = speed * t[-1]
            a0 = rng.uniform(lo, max(lo, hi - travel)) if sign > 0 else rng.uniform(min(hi, lo + travel), hi)
            start = np.empty(2)
            start[axis], start[1 - axis] = a0, rng.uniform(lo, hi)
        pos = np.repeat(start[None], len(t), axis=0)
        pos[:, axis] = start[axis] + sign * speed * t
        return pos, np.zeros(0)
    if kind == "circle":
        omega = sign * 2 * math.pi * rng.uniform(0.8, 1.2) / clip_frames
        radius = min(rng.uniform(0.17, 0.24), 0.5 - margin)
        if start is None:
            slack = 0.5 - margin - radius
            center = 0.5 + rng.uniform(-slack, slack, size=2)
            theta0 = rng.uniform(0, 2 * math.pi)
        else:  # the circle through `start` whose centre is nearest the middle of the frame
            inward = 0.5 - start
            norm = float(np.hypot(*inward))
            inward = inward / norm if norm > 1e-6 else np.array([1.0, 0.0])
            center = start + radius * inward
            theta0 = math.atan2(-inward[1], -inward[0])
        theta = theta0 + omega * t
        pos = center + radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)
        return pos, _crossings(theta0, omega, t[-1], math.pi / 2)  # a click at every quarter turn
    # bounce
    speed = rng.uniform(2.0, 3.0) * (hi - lo) / clip_frames
    direction = 1 if rng.random() < 0.5 else -1
    if start is None:
        start = np.empty(2)
        start[axis], start[1 - axis] = rng.uniform(lo, hi), rng.uniform(lo, hi)
    else:  # an object that wrapped past a wall bounces from where it is
        lo, hi = min(lo, start[axis]), max(hi, start[axis])
        if start[axis] <= lo:
            direction = 1
        elif start[axis] >= hi:
            direction = -1
    pos = np.repeat(start[None], len(t), axis=0)
    pos[:, axis] = _fold(start[axis] + direction * speed * t, lo, hi)
    events = _crossings((start[axis] - lo) / (hi - lo), direction * speed / (hi - lo), t[-1], 1.0)
    return pos, events


def _trajectory(job: _Job, clip_frames: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(T, 2)`` (frame units, wrapped into [0, 1)) and event times (frames) of a whole video."""
    margin = job.obj.radius * job.scale + 0.02
    positions, events, offset, start = [], [], 0, None
    for motion, n in job.segments:
        # the first segment is placed inside the frame; later ones continue from the last position
        t = np.arange(n, dtype=np.float64) if start is None else np.arange(1, n + 1, dtype=np.float64)
        pos, ev = _motion_path(motion, t, clip_frames, margin, rng, start)
        positions.append(pos)
        events.append(ev + offset - (0 if start is None else 1))
        offset += n
        start = np.mod(pos[-1], 1.0)
    return np.mod(np.concatenate(positions), 1.0), np.concatenate(events)


# ----------------------------------------------------------------------------------------------------------
# Drawing


def _palette(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two muted background colours (float RGB 0..255) that the saturated, outlined objects stand out from."""
    hue = rng.random()
    value = rng.uniform(0.3, 0.7)
    first = colorsys.hsv_to_rgb(hue, rng.uniform(0.15, 0.5), value)
    second = colorsys.hsv_to_rgb(
        (hue + rng.uniform(0.1, 0.5)) % 1.0,
        rng.uniform(0.15, 0.5),
        np.clip(value + rng.choice([-1, 1]) * rng.uniform(0.15, 0.3), 0.15, 0.85),
    )
    return np.array(first, np.float32) * 255, np.array(second, np.float32) * 255


def _background(family: str, height: int, width: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A textured scene ``(height, width, 3)`` float32 in 0..255; lengths scale with the frame ``size``."""
    unit = size / 64.0
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    if family == "stripes":
        angle, period = rng.uniform(0, math.pi), rng.uniform(6, 14) * unit
        phase = 2 * math.pi * (x * math.cos(angle) + y * math.sin(angle)) / period + rng.uniform(
            0, 2 * math.pi
        )
        weight = np.clip(0.5 + 2.0 * np.sin(phase), 0, 1)
    elif family == "checker":
        cell = rng.uniform(5, 12) * unit
        ox, oy = rng.uniform(0, 2 * cell, size=2)
        weight = (np.floor((x + ox) / cell) + np.floor((y + oy) / cell)) % 2
    elif family == "blobs":
        grid = rng.random((6, 6)).astype(np.float32)
        gy, gx = y / height * 5, x / width * 5  # bilinear upsampling of a 6x6 random grid
        y0, x0 = np.minimum(gy.astype(int), 4), np.minimum(gx.astype(int), 4)
        fy, fx = gy - y0, gx - x0
        smooth = (
            grid[y0, x0] * (1 - fy) * (1 - fx)
            + grid[y0 + 1, x0] * fy * (1 - fx)
            + grid[y0, x0 + 1] * (1 - fy) * fx
            + grid[y0 + 1, x0 + 1] * fy * fx
        )
        weight = np.clip((smooth - 0.5) * 4 + 0.5, 0, 1)
    elif family == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        ramp = (x - width / 2) * math.cos(angle) + (y - height / 2) * math.sin(angle)
        weight = np.clip(ramp / max(height, width) + 0.5, 0, 1)
    elif family == "rings":
        cx, cy = rng.uniform(-0.5, 1.5, size=2) * size
        period = rng.uniform(6, 14) * unit
        weight = 0.5 + 0.5 * np.sin(
            2 * math.pi * np.hypot(x - cx, y - cy) / period + rng.uniform(0, 2 * math.pi)
        )
    elif family == "dots":
        spacing = rng.uniform(8, 14) * unit
        dot_radius = rng.uniform(0.2, 0.35) * spacing
        ox, oy = rng.uniform(0, spacing, size=2)
        dx = np.mod(x + ox, spacing) - spacing / 2
        dy = np.mod(y + oy, spacing) - spacing / 2
        weight = np.clip(dot_radius - np.hypot(dx, dy) + 0.5, 0, 1)
    elif family == "waves":
        if rng.random() < 0.5:
            x, y = y, x
        wavelength, along = rng.uniform(8, 14) * unit, rng.uniform(16, 32) * unit
        bend = rng.uniform(2, 5) * unit * np.sin(2 * math.pi * x / along + rng.uniform(0, 2 * math.pi))
        weight = 0.5 + 0.5 * np.sin(2 * math.pi * (y + bend) / wavelength + rng.uniform(0, 2 * math.pi))
    elif family == "grain":
        cell = max(1, round(2 * unit))
        noise = rng.random((height // cell + 1, width // cell + 1)).astype(np.float32)
        noise = np.repeat(np.repeat(noise, cell, axis=0), cell, axis=1)[:height, :width]
        weight = 0.5 + 0.6 * (noise - 0.5)
    else:
        raise ValueError(f"unknown background family {family!r}; expected one of {BACKGROUNDS}")
    first, second = _palette(rng)
    return first * (1 - weight[..., None]) + second * weight[..., None]


def _signed_distance(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Approximate signed distance (pixels, negative inside) of a shape of radius ``r`` centred at 0."""
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == "disc":
        return np.hypot(dx, dy) - r
    if shape == "square":
        return np.maximum(ax, ay) - 0.85 * r
    if shape == "diamond":
        return (ax + ay) / math.sqrt(2) - 0.75 * r
    if shape == "triangle":  # pointing up (image y grows downwards); inradius 0.55 r
        edges = np.maximum(dy, np.maximum(0.866 * dx - 0.5 * dy, -0.866 * dx - 0.5 * dy))
        return edges - 0.55 * r
    if shape == "ring":
        return np.abs(np.hypot(dx, dy) - 0.72 * r) - 0.28 * r
    if shape == "cross":
        bar = 0.33 * r
        return np.minimum(np.maximum(ax - r, ay - bar), np.maximum(ax - bar, ay - r))
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _marking_shade(marking: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Brightness factor of the object's fill: its texture marking."""
    if marking == "none":
        return np.ones_like(dx)
    if marking == "hstripes":
        return np.where(np.floor(dy / (0.45 * r)) % 2 == 0, 0.55, 1.0).astype(dx.dtype)
    if marking == "vstripes":
        return np.where(np.floor(dx / (0.45 * r)) % 2 == 0, 0.55, 1.0).astype(dx.dtype)
    if marking == "dot":
        return np.where(np.hypot(dx, dy) < 0.35 * r, 0.3, 1.0).astype(dx.dtype)
    raise ValueError(f"unknown marking {marking!r}; expected one of {MARKINGS}")


def _render_frames(job: _Job, config: SynthMotionConfig) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``(T, H, W, 3)`` uint8 of ``job`` and its event times (frames); vectorised over all frames."""
    rng = np.random.default_rng(job.seed)
    size, num_frames = config.size, job.num_frames
    positions, events = _trajectory(job, config.num_frames, rng)

    # the scene, with an optional slow pan: a larger canvas cropped at an integer offset per frame
    scene_rng = np.random.default_rng(job.background_seed)
    pan_angle = scene_rng.uniform(0, 2 * math.pi)
    pan = (
        config.background_drift
        * np.arange(num_frames)[:, None]
        * np.array([math.cos(pan_angle), math.sin(pan_angle)])
    )
    pad = math.ceil(float(np.abs(pan).max(initial=0.0)))
    gain = np.asarray(job.gain, np.float32)  # the camera's colour response (linear, so applied per layer)
    canvas = _background(job.background, size + 2 * pad, size + 2 * pad, size, scene_rng) * gain
    canvas = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    if pad:
        offsets = np.rint(pan).astype(int) + pad  # (T, 2) as (x, y)
        rows = offsets[:, 1, None] + np.arange(size)  # (T, H)
        cols = offsets[:, 0, None] + np.arange(size)  # (T, W)
        frames = canvas[rows[:, :, None], cols[:, None, :]]  # (T, H, W, 3)
    else:
        frames = np.repeat(canvas[None], num_frames, axis=0)

    # the object, drawn in a window around it that wraps round the frame edges (long videos let it leave
    # one edge and enter the opposite one)
    r = job.obj.radius * job.scale * size
    outline = max(1.0, size / 64.0)
    window = min(size, 2 * math.ceil(r + outline + 1.5))
    centers = (positions * size).astype(np.float32)  # (T, 2) as (x, y), pixels
    corner = np.floor(centers).astype(int) - window // 2  # (T, 2) top-left of the window, unwrapped
    span = corner[:, :, None] + np.arange(window)  # (T, 2, window)
    dx = (span[:, 0, None, :] + 0.5 - centers[:, 0, None, None]).astype(np.float32)  # (T, 1, window)
    dy = (span[:, 1, :, None] + 0.5 - centers[:, 1, None, None]).astype(np.float32)  # (T, window, 1)
    dx, dy = np.broadcast_arrays(dx, dy)  # (T, window, window)
    sdf = _signed_distance(job.obj.shape, dx, dy, r)
    alpha_outline = np.clip(0.5 - (sdf - outline), 0, 1)[..., None]
    alpha_fill = np.clip(0.5 - sdf, 0, 1)[..., None]
    shade = _marking_shade(job.obj.marking, dx, dy, r)[..., None]
    fill = np.asarray(COLORS[job.obj.color], np.float32) * gain * shade

    index = (np.arange(num_frames)[:, None, None], span[:, 1, :, None] % size, span[:, 0, None, :] % size)
    patch = frames[index].astype(np.float32)  # (T, window, window, 3)
    patch = patch * (1 - alpha_outline) + _OUTLINE_RGB * gain * alpha_outline
    patch = patch * (1 - alpha_fill) + fill * alpha_fill
    frames[index] = np.clip(np.rint(patch), 0, 255).astype(np.uint8)
    return frames, events


def object_masks(root: str | os.PathLike, relpath: str) -> np.ndarray:
    """Where the moving object is: its coverage ``(T, H, W)`` in [0, 1], outline included, in every frame.

    Args:
        root: a generated SynthMotion folder (its ``synthmotion.json`` gives the config).
        relpath: the video's path in the manifests, e.g. ``videos/test/test_00003.mp4``.
    """
    config = SynthMotionConfig(**json.loads((Path(root) / "synthmotion.json").read_text())["config"])
    job = next((job for job in _make_plan(config).jobs if job.relpath == relpath), None)
    if job is None:
        raise FileNotFoundError(f"{root}: no SynthMotion video '{relpath}'")
    positions, _ = _trajectory(job, config.num_frames, np.random.default_rng(job.seed))
    size = config.size
    centers = (positions * size).astype(np.float32)  # (T, 2) as (x, y), pixels
    grid = np.arange(size, dtype=np.float32) + 0.5
    half = size / 2  # offsets wrap round the frame edges, as the object does in long videos
    dx = np.mod(grid[None, None, :] - centers[:, 0, None, None] + half, size) - half  # (T, 1, W)
    dy = np.mod(grid[None, :, None] - centers[:, 1, None, None] + half, size) - half  # (T, H, 1)
    dx, dy = np.broadcast_arrays(dx, dy)  # (T, H, W)
    sdf = _signed_distance(job.obj.shape, dx, dy, job.obj.radius * job.scale * size)
    return np.clip(0.5 - (sdf - max(1.0, size / 64.0)), 0, 1).astype(np.float32)


def _render_audio(job: _Job, events: np.ndarray, config: SynthMotionConfig) -> np.ndarray:
    """Mono float32 ``(samples,)``: the shape's tone plus a click at each event, as long as the video."""
    num_samples = round(job.num_frames / config.fps * config.sample_rate)
    t = np.arange(num_samples, dtype=np.float64) / config.sample_rate
    pitch = SHAPE_PITCH_HZ[job.obj.shape]
    wave = 0.2 * np.sin(2 * math.pi * pitch * t) + 0.06 * np.sin(2 * math.pi * 2 * pitch * t)
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    wave *= fade
    click_len = round(0.03 * config.sample_rate)
    tau = np.arange(click_len) / config.sample_rate
    click = 0.5 * np.sin(2 * math.pi * _CLICK_HZ * tau) * np.exp(-tau / 0.006)
    for event in events:
        begin = round(event / config.fps * config.sample_rate)
        end = min(num_samples, begin + click_len)
        wave[begin:end] += click[: end - begin]
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


def _write_job(job: _Job, config: SynthMotionConfig, out_dir: Path) -> str:
    frames, events = _render_frames(job, config)
    audio = _render_audio(job, events, config)[None] if config.audio else None
    path = out_dir / job.relpath
    write_video(
        path, frames, config.fps, gop=config.gop, crf=config.crf, audio=audio, sample_rate=config.sample_rate
    )
    return job.relpath


# ----------------------------------------------------------------------------------------------------------
# Words: captions (five languages) and QA

MOTION_PHRASES = {
    "slide_left": "moves slowly to the left",
    "slide_right": "moves slowly to the right",
    "slide_up": "moves slowly upwards",
    "slide_down": "moves slowly downwards",
    "circle_cw": "moves in a clockwise circle",
    "circle_ccw": "moves in a counterclockwise circle",
    "bounce_horizontal": "bounces quickly left and right",
    "bounce_vertical": "bounces quickly up and down",
}
_DE_MOTION = {  # (finite verb, rest) so that the verb can come second
    "slide_left": ("bewegt sich", "langsam nach links"),
    "slide_right": ("bewegt sich", "langsam nach rechts"),
    "slide_up": ("bewegt sich", "langsam nach oben"),
    "slide_down": ("bewegt sich", "langsam nach unten"),
    "circle_cw": ("kreist", "im Uhrzeigersinn"),
    "circle_ccw": ("kreist", "gegen den Uhrzeigersinn"),
    "bounce_horizontal": ("springt", "schnell zwischen links und rechts hin und her"),
    "bounce_vertical": ("springt", "schnell auf und ab"),
}
_FR_MOTION = {
    "slide_left": "se déplace lentement vers la gauche",
    "slide_right": "se déplace lentement vers la droite",
    "slide_up": "se déplace lentement vers le haut",
    "slide_down": "se déplace lentement vers le bas",
    "circle_cw": "tourne dans le sens des aiguilles d'une montre",
    "circle_ccw": "tourne dans le sens inverse des aiguilles d'une montre",
    "bounce_horizontal": "rebondit rapidement de gauche à droite",
    "bounce_vertical": "rebondit rapidement de haut en bas",
}
_ES_MOTION = {
    "slide_left": "se mueve despacio hacia la izquierda",
    "slide_right": "se mueve despacio hacia la derecha",
    "slide_up": "se mueve despacio hacia arriba",
    "slide_down": "se mueve despacio hacia abajo",
    "circle_cw": "gira en el sentido de las agujas del reloj",
    "circle_ccw": "gira en sentido contrario a las agujas del reloj",
    "bounce_horizontal": "rebota rápidamente de izquierda a derecha",
    "bounce_vertical": "rebota rápidamente de arriba abajo",
}
_ZH_MOTION = {
    "slide_left": "缓慢地向左移动",
    "slide_right": "缓慢地向右移动",
    "slide_up": "缓慢地向上移动",
    "slide_down": "缓慢地向下移动",
    "circle_cw": "沿顺时针方向转圈",
    "circle_ccw": "沿逆时针方向转圈",
    "bounce_horizontal": "快速地左右弹跳",
    "bounce_vertical": "快速地上下弹跳",
}
_DE_SHAPE = {  # noun, grammatical gender
    "disc": ("Scheibe", "f"),
    "square": ("Quadrat", "n"),
    "triangle": ("Dreieck", "n"),
    "diamond": ("Raute", "f"),
    "ring": ("Ring", "m"),
    "cross": ("Kreuz", "n"),
}
_DE_COLOR = {
    "red": "rot",
    "green": "grün",
    "blue": "blau",
    "yellow": "gelb",
    "purple": "violett",
    "white": "weiß",
    "orange": "orangefarben",
    "cyan": "türkisfarben",
}
_FR_SHAPE = {
    "disc": ("disque", "m"),
    "square": ("carré", "m"),
    "triangle": ("triangle", "m"),
    "diamond": ("losange", "m"),
    "ring": ("anneau", "m"),
    "cross": ("croix", "f"),
}
_FR_COLOR = {  # masculine, feminine
    "red": ("rouge", "rouge"),
    "green": ("vert", "verte"),
    "blue": ("bleu", "bleue"),
    "yellow": ("jaune", "jaune"),
    "purple": ("violet", "violette"),
    "white": ("blanc", "blanche"),
    "orange": ("orange", "orange"),
    "cyan": ("turquoise", "turquoise"),
}
_ES_SHAPE = {
    "disc": ("disco", "m"),
    "square": ("cuadrado", "m"),
    "triangle": ("triángulo", "m"),
    "diamond": ("rombo", "m"),
    "ring": ("anillo", "m"),
    "cross": ("cruz", "f"),
}
_ES_COLOR = {
    "red": ("rojo", "roja"),
    "green": ("verde", "verde"),
    "blue": ("azul", "azul"),
    "yellow": ("amarillo", "amarilla"),
    "purple": ("morado", "morada"),
    "white": ("blanco", "blanca"),
    "orange": ("naranja", "naranja"),
    "cyan": ("turquesa", "turquesa"),
}
_ZH_SHAPE = {
    "disc": "圆盘",
    "square": "正方形",
    "triangle": "三角形",
    "diamond": "菱形",
    "ring": "圆环",
    "cross": "十字",
}
_ZH_COLOR = {
    "red": "红色",
    "green": "绿色",
    "blue": "蓝色",
    "yellow": "黄色",
    "purple": "紫色",
    "white": "白色",
    "orange": "橙色",
    "cyan": "青色",
}
_NUM_TEMPLATES = {"en": 3, "de": 2, "fr": 2, "es": 2, "zh": 2}


def _sentence_case(text: str) -> str:
    return text[0].upper() + text[1:]


def _caption(obj: _Object, motion: str, lang: str = "en", template: int = 0) -> str:
    """A sentence describing ``obj`` doing ``motion`` in ``lang`` (template index modulo the number)."""
    template %= _NUM_TEMPLATES[lang]
    if lang == "en":
        article = "an" if obj.color[0] in "aeiou" else "a"
        thing = f"{article} {obj.color} {obj.shape}"
        return [
            f"{_sentence_case(thing)} {MOTION_PHRASES[motion]}.",
            f"There is {thing} that {MOTION_PHRASES[motion]}.",
            f"The video shows {thing} that {MOTION_PHRASES[motion]}.",
        ][template]
    if lang == "de":
        noun, gender = _DE_SHAPE[obj.shape]
        article, ending = {"m": ("ein", "er"), "f": ("eine", "e"), "n": ("ein", "es")}[gender]
        thing = f"{article} {_DE_COLOR[obj.color]}{ending} {noun}"
        verb, rest = _DE_MOTION[motion]
        return [f"{_sentence_case(thing)} {verb} {rest}.", f"Im Video {verb} {thing} {rest}."][template]
    if lang in ("fr", "es"):
        shapes, colors, motions = (
            (_FR_SHAPE, _FR_COLOR, _FR_MOTION) if lang == "fr" else (_ES_SHAPE, _ES_COLOR, _ES_MOTION)
        )
        noun, gender = shapes[obj.shape]
        adjective = colors[obj.color][gender == "f"]
        thing = f"{'un' if gender == 'm' else 'une' if lang == 'fr' else 'una'} {noun} {adjective}"
        lead = "Dans la vidéo" if lang == "fr" else "En el vídeo"
        return [f"{_sentence_case(thing)} {motions[motion]}.", f"{lead}, {thing} {motions[motion]}."][
            template
        ]
    if lang == "zh":
        thing = f"一个{_ZH_COLOR[obj.color]}的{_ZH_SHAPE[obj.shape]}{_ZH_MOTION[motion]}"
        return [f"{thing}。", f"视频里，{thing}。"][template]
    raise ValueError(f"unknown language {lang!r}; expected one of {LANGUAGES}")


def _qa_items(obj: _Object, motion: str, config: SynthMotionConfig, rng: np.random.Generator) -> list[dict]:
    """Multiple-choice questions on the clip's motion, then colour and shape in random order."""
    kinds = ["motion", *rng.permutation(["color", "shape"]).tolist()][: config.qa_per_clip]
    items = []
    for kind in kinds:
        if kind == "motion":
            question, options, correct = f"How does the {obj.color} {obj.shape} move?", list(CLASSES), motion
            render = MOTION_PHRASES.__getitem__
        elif kind == "color":
            question, options, correct = (
                f"What colour is the {obj.shape} that {MOTION_PHRASES[motion]}?",
                list(COLORS),
                obj.color,
            )
            render = str
        else:
            question, options, correct = f"What shape is the {obj.color} object?", list(SHAPES), obj.shape
            render = str
        distractors = rng.permutation([o for o in options if o != correct])[: config.qa_choices - 1].tolist()
        answer_idx = int(rng.integers(config.qa_choices))
        answers = [*distractors[:answer_idx], correct, *distractors[answer_idx:]]
        items.append(
            dict(kind=kind, question=question, answers=[render(a) for a in answers], answer_idx=answer_idx)
        )
    return items


# ----------------------------------------------------------------------------------------------------------
# Planning: every video's content, sampled from (seed, group, index) streams in the main process


@dataclass
class _Plan:
    jobs: list[_Job] = field(default_factory=list)
    manifests: dict[str, list[dict]] = field(default_factory=dict)  # csv name -> rows
    captions: list[dict] = field(default_factory=list)
    qa: list[dict] = field(default_factory=list)
    frame_labels: dict[str, list[str]] = field(default_factory=dict)  # relpath of .txt -> one label per frame


def _row(relpath: str, label: int, label_name: str, caption_en: str, job: _Job, **extra) -> dict:
    row = dict(
        path=relpath,
        label=label,
        start="",
        end="",
        caption=caption_en,
        label_name=label_name,
        background=job.background,
        shape=job.obj.shape,
        color=job.obj.color,
        marking=job.obj.marking,
        identity="",
        camera="",
    )
    row.update(extra)
    return row


def _split_backgrounds(split: str, label: int, count: int, config: SynthMotionConfig) -> list[str]:
    """Background families of one class's clips in one split (the scene-bias knob)."""
    rng = np.random.default_rng((config.seed, _GROUP["scene"], _SPLITS.index(split), label))
    designated = label % len(BACKGROUNDS)
    if split == "train":
        matching = round(config.scene_bias * count)
        others = [f for f in range(len(BACKGROUNDS)) if f != designated]
        families = [designated] * matching + rng.choice(others, size=count - matching).tolist()
    else:  # unbiased: every family equally often, in random order
        families = (np.arange(count) + rng.integers(len(BACKGROUNDS))) % len(BACKGROUNDS)
    return [BACKGROUNDS[f] for f in rng.permutation(families)]


def _plan_clips(config: SynthMotionConfig, plan: _Plan) -> None:
    counts = {"train": config.train_per_class, "val": config.val_per_class, "test": config.test_per_class}
    for split in _SPLITS:
        n = counts[split] * config.num_classes
        backgrounds = {
            c: _split_backgrounds(split, c, counts[split], config) for c in range(config.num_classes)
        }
        rows = []
        for index in range(n):
            label, nth = index % config.num_classes, index // config.num_classes  # classes interleaved
            group = _GROUP[split]
            rng = np.random.default_rng((config.seed, group, index, 0))
            motion, obj = CLASSES[label], _random_object(rng)
            video_id = f"{split}_{index:05d}"
            relpath = f"videos/{split}/{video_id}.mp4"
            job = _Job(
                relpath,
                (config.seed, group, index, 1),
                (config.seed, group, index, 2),
                obj,
                backgrounds[label][nth],
                ((motion, config.num_frames),),
            )
            plan.jobs.append(job)
            texts = {}
            for lang in config.languages:
                templates = rng.permutation(_NUM_TEMPLATES[lang])
                texts[lang] = [
                    _caption(obj, motion, lang, int(templates[k % len(templates)]))
                    for k in range(config.captions_per_language)
                ]
                plan.captions += [dict(video_id=video_id, caption=text, lang=lang) for text in texts[lang]]
            caption_en = texts["en"][0] if "en" in texts else _caption(obj, motion, "en")
            rows.append(_row(relpath, label, motion, caption_en, job))
            plan.qa += [
                dict(video_id=video_id, split=split, path=relpath, **item)
                for item in _qa_items(obj, motion, config, rng)
            ]
        plan.manifests[f"{split}.csv"] = rows


def _plan_long(config: SynthMotionConfig, plan: _Plan) -> None:
    tasks = list(LONG_TASKS)
    rows = []
    for index in range(config.long_videos):
        task = tasks[index % len(tasks)]
        rng = np.random.default_rng((config.seed, _GROUP["long"], index, 0))
        obj = _random_object(rng)
        lengths = rng.integers(
            round(0.75 * config.num_frames), round(1.5 * config.num_frames) + 1, size=len(LONG_TASKS[task])
        )
        segments = tuple((motion, int(n)) for motion, n in zip(LONG_TASKS[task], lengths))
        name = f"{task}_{index // len(tasks):03d}"
        relpath = f"long/{name}.mp4"
        background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
        job = _Job(
            relpath,
            (config.seed, _GROUP["long"], index, 1),
            (config.seed, _GROUP["long"], index, 2),
            obj,
            background,
            segments,
        )
        plan.jobs.append(job)
        plan.frame_labels[f"long/labels/{name}.txt"] = [m for m, n in segments for _ in range(n)]
        first = _caption(obj, segments[0][0], "en")[:-1]
        text = ", then ".join([first, *(MOTION_PHRASES[m] for m, _ in segments[1:])]) + "."
        rows.append(_row(relpath, tasks.index(task), task, text, job, labels=f"long/labels/{name}.txt"))
    plan.manifests["long.csv"] = rows


def _plan_reid(config: SynthMotionConfig, plan: _Plan) -> None:
    if config.reid_identities == 0:
        plan.manifests.update({name: [] for name in ("reid_train.csv", "reid_query.csv", "reid_gallery.csv")})
        return
    rng = np.random.default_rng((config.seed, _GROUP["camera"]))
    families = rng.permutation(len(BACKGROUNDS))[: config.reid_cameras]
    gains = [
        tuple(float(g) for g in rng.uniform(0.75, 1.15) * rng.uniform(0.9, 1.1, size=3)) for _ in families
    ]
    scales = [float(s) for s in rng.uniform(0.8, 1.2, size=config.reid_cameras)]
    combos = [(s, c, m) for s in SHAPES for c in COLORS for m in MARKINGS if (s, m) != ("ring", "dot")]
    chosen = rng.choice(len(combos), size=config.reid_identities, replace=False)
    identities = [_Object(*combos[k], radius=float(rng.uniform(0.08, 0.13))) for k in chosen]
    num_train = config.reid_identities // 2
    train_rows, test_rows = [], []  # test: (row, tracklet)
    index = 0
    for identity, obj in enumerate(identities):
        split = "train" if identity < num_train else "test"
        for camera in range(config.reid_cameras):
            for tracklet in range(config.reid_tracklets):
                seed = (config.seed, _GROUP["reid"], index)
                motion = CLASSES[np.random.default_rng((*seed, 0)).integers(len(CLASSES))]
                relpath = f"reid/{split}/{identity:04d}C{camera + 1}T{tracklet + 1:04d}.mp4"
                job = _Job(
                    relpath,
                    (*seed, 1),
                    (config.seed, _GROUP["camera"], camera),
                    obj,
                    BACKGROUNDS[families[camera]],
                    ((motion, config.num_frames),),
                    gains[camera],
                    scales[camera],
                )
                plan.jobs.append(job)
                row = _row(
                    relpath,
                    identity,
                    f"id{identity:04d}",
                    _caption(obj, motion, "en"),
                    job,
                    identity=identity,
                    camera=camera + 1,
                )
                if split == "train":
                    train_rows.append(row)
                else:
                    test_rows.append((row, tracklet))
                index += 1
    # one query per test identity: its first tracklet on a random camera; the rest is the gallery
    query_camera = {
        identity: int(rng.integers(config.reid_cameras)) + 1 for identity in range(num_train, len(identities))
    }
    is_query = [
        row["camera"] == query_camera[row["identity"]] and tracklet == 0 for row, tracklet in test_rows
    ]
    plan.manifests["reid_train.csv"] = train_rows
    plan.manifests["reid_query.csv"] = [row for (row, _), q in zip(test_rows, is_query) if q]
    plan.manifests["reid_gallery.csv"] = [row for (row, _), q in zip(test_rows, is_query) if not q]


def _make_plan(config: SynthMotionConfig) -> _Plan:
    plan = _Plan()
    _plan_clips(config, plan)
    _plan_long(config, plan)
    _plan_reid(config, plan)
    return plan


# ----------------------------------------------------------------------------------------------------------
# Writing


def _write_csv(path: Path, rows: Sequence[dict]) -> None:
    columns = list(MANIFEST_COLUMNS) + [k for k in (rows[0] if rows else {}) if k not in MANIFEST_COLUMNS]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _metadata(config: SynthMotionConfig, plan: _Plan) -> dict:
    return {
        "generator": "zoo.data.synthmotion",
        "version": GENERATOR_VERSION,
        "config": config.to_dict(),
        "classes": list(CLASSES[: config.num_classes]),
        "backgrounds": list(BACKGROUNDS),
        "long_tasks": {task: list(steps) for task, steps in LONG_TASKS.items()},
        "counts": {name: len(rows) for name, rows in plan.manifests.items()},
    }


def _is_complete(out_dir: Path, config: SynthMotionConfig) -> bool:
    try:
        meta = json.loads((out_dir / "synthmotion.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("version") == GENERATOR_VERSION and meta.get("config") == config.to_dict()


def generate(
    out_dir: str | os.PathLike,
    config: SynthMotionConfig | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Write the dataset of ``config`` to ``out_dir`` (layout in the module docstring); return ``out_dir``.

    Idempotent: returns at once when ``out_dir/synthmotion.json`` records the same config and generator
    version (the file is written last, so an interrupted run is redone). ``workers``: processes that render
    and encode (default: up to 2); the output does not depend on it.
    """
    config = config or SynthMotionConfig()
    out_dir = Path(out_dir)
    if _is_complete(out_dir, config):
        return out_dir
    if (out_dir / "synthmotion.json").exists():  # an older or different set: replace what it wrote
        (out_dir / "synthmotion.json").unlink()
        for sub in ("videos", "long", "reid"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
    plan = _make_plan(config)
    for job in plan.jobs:
        (out_dir / job.relpath).parent.mkdir(parents=True, exist_ok=True)
    jobs = sorted(plan.jobs, key=lambda job: -job.num_frames)  # longest first: better balance
    workers = min(2, os.cpu_count() or 1) if workers is None else workers

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("SynthMotion"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("videos", total=len(jobs))
        if workers <= 1 or len(jobs) < 8:
            for job in jobs:
                _write_job(job, config, out_dir)
                bar.advance(task)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for future in as_completed([pool.submit(_write_job, job, config, out_dir) for job in jobs]):
                    future.result()
                    bar.advance(task)

    for name, rows in plan.manifests.items():
        _write_csv(out_dir / name, rows)
    for relpath, labels in plan.frame_labels.items():
        (out_dir / relpath).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / relpath).write_text("\n".join(labels) + "\n", encoding="utf-8")
    if config.long_videos:
        (out_dir / "long" / "mapping.txt").write_text(
            "".join(f"{i} {name}\n" for i, name in enumerate(CLASSES)), encoding="utf-8"
        )
    (out_dir / "classes.txt").write_text("\n".join(CLASSES[: config.num_classes]) + "\n", encoding="utf-8")
    (out_dir / "captions.json").write_text(
        json.dumps(plan.captions, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    with open(out_dir / "qa.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(item, ensure_ascii=False) + "\n" for item in plan.qa)
    (out_dir / "synthmotion.json").write_text(
        json.dumps(_metadata(config, plan), indent=2) + "\n", encoding="utf-8"
    )
    return out_dir
