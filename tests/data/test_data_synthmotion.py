"""SynthMotion: layout, determinism, motion = class, scene bias, audio, captions, QA, long videos, re-ID."""

from __future__ import annotations

import csv
import itertools
import json
from collections import Counter, defaultdict
from pathlib import Path

import av
import numpy as np
import pytest

from zoo.data import synthmotion as sm
from zoo.data.synthmotion import (
    BACKGROUNDS,
    CLASSES,
    LONG_TASKS,
    MANIFEST_COLUMNS,
    MOTION_PHRASES,
    SHAPE_PITCH_HZ,
    SynthMotionConfig,
    generate,
)

# every class, four clips each (three train, one test); 32 px, 16 frames at 32 fps
CONFIG = SynthMotionConfig(
    seed=3,
    size=32,
    num_frames=16,
    fps=32,  # half a second of audio per clip: AAC encoding is most of the generation time
    train_per_class=3,
    val_per_class=0,
    test_per_class=1,
    scene_bias=0.67,
    languages=("en", "de", "fr"),
    captions_per_language=1,
    qa_per_clip=3,
    long_videos=3,
    reid_identities=4,
    reid_cameras=2,
)
TINY = SynthMotionConfig(
    size=32,
    num_frames=8,
    fps=32,
    num_classes=2,
    train_per_class=2,
    val_per_class=1,
    test_per_class=1,
    long_videos=1,
    reid_identities=2,
    reid_cameras=2,
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("synthmotion"), CONFIG, progress=False, workers=2)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """All frames ``(T, H, W, 3)`` uint8 and the mono audio (float32) of an mp4, with PyAV."""
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    with av.open(str(path)) as container:
        chunks = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
    return frames, np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def motion_features(frames: np.ndarray) -> np.ndarray:
    """Hand-written motion descriptor from the centroid of frame differences (the background is static).

    Returns net displacement (x, y), signed area swept (> 0: clockwise on screen), spread (x, y), path
    length and reversals of the horizontal and vertical velocity, all in frame units.
    """
    size = frames.shape[1]
    diff = np.abs(np.diff(frames.astype(np.float32), axis=0)).sum(-1)  # (T-1, H, W)
    weight = np.where(diff > 60, diff, 0.0)
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    mass = weight.sum((1, 2)) + 1e-6
    track = np.stack([(weight * xs).sum((1, 2)) / mass, (weight * ys).sum((1, 2)) / mass], 1) / size
    steps = np.diff(track, axis=0)
    centred = track - track.mean(0)
    area = 0.5 * np.sum(centred[:-1, 0] * centred[1:, 1] - centred[1:, 0] * centred[:-1, 1])

    def reversals(v: np.ndarray) -> int:
        moving = v[np.abs(v) > 0.02]
        return int(np.sum(np.sign(moving[1:]) != np.sign(moving[:-1])))

    return np.array(
        [
            *(track[-1] - track[0]),
            area,
            *track.std(0),
            np.linalg.norm(steps, axis=1).sum(),
            reversals(steps[:, 0]),
            reversals(steps[:, 1]),
        ]
    )


@pytest.fixture(scope="module")
def features(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Motion features and labels of every train and test clip."""
    rows = read_csv(root / "train.csv") + read_csv(root / "test.csv")
    feats = np.stack([motion_features(decode(root / row["path"])[0]) for row in rows])
    return feats, np.array([int(row["label"]) for row in rows])


def test_layout_and_manifests(root: Path) -> None:
    assert (root / "classes.txt").read_text().splitlines() == list(CLASSES)
    meta = json.loads((root / "synthmotion.json").read_text())
    assert meta["config"] == CONFIG.to_dict() and meta["version"] == sm.GENERATOR_VERSION
    assert meta["counts"]["train.csv"] == 3 * len(CLASSES)
    for split, per_class in {"train": 3, "val": 0, "test": 1}.items():
        with open(root / f"{split}.csv", newline="") as f:
            assert next(csv.reader(f)) == list(MANIFEST_COLUMNS)
        rows = read_csv(root / f"{split}.csv")
        assert Counter(int(r["label"]) for r in rows) == Counter(
            dict.fromkeys(range(len(CLASSES)), per_class)
        )
        for row in rows:
            assert row["path"].startswith(f"videos/{split}/") and (root / row["path"]).is_file()
            assert CLASSES[int(row["label"])] == row["label_name"] and row["background"] in BACKGROUNDS
            assert row["start"] == row["end"] == "" and row["caption"]
    frames, audio = decode(root / rows[0]["path"])
    assert frames.shape == (CONFIG.num_frames, CONFIG.size, CONFIG.size, 3)
    assert len(audio) > 0


def test_same_seed_same_dataset_whatever_the_workers(tmp_path: Path) -> None:
    one = generate(tmp_path / "a", TINY, progress=False, workers=1)
    two = generate(tmp_path / "b", TINY, progress=False, workers=2)
    texts = sorted(
        p.relative_to(one) for p in one.rglob("*") if p.suffix in {".csv", ".json", ".jsonl", ".txt"}
    )
    assert len(texts) >= 10
    for rel in texts:
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel
    videos = sorted(p.relative_to(one) for p in one.rglob("*.mp4"))
    assert len(videos) == 2 * 4 + 1 + 4
    for rel in videos:
        (frames_a, audio_a), (frames_b, audio_b) = decode(one / rel), decode(two / rel)
        np.testing.assert_array_equal(frames_a, frames_b, err_msg=str(rel))
        np.testing.assert_array_equal(audio_a, audio_b, err_msg=str(rel))


def test_rerun_is_skipped_and_a_new_config_replaces_the_set(tmp_path: Path) -> None:
    out = generate(tmp_path, TINY, progress=False)
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")}
    assert generate(tmp_path, TINY, progress=False) == out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")} == stamp
    before = (out / "train.csv").read_bytes()
    other = SynthMotionConfig(**{**TINY.to_dict(), "seed": 1, "train_per_class": 1, "long_videos": 0})
    generate(tmp_path, other, progress=False)
    assert json.loads((out / "synthmotion.json").read_text())["config"] == other.to_dict()
    assert (out / "train.csv").read_bytes() != before
    assert len(list((out / "videos" / "train").glob("*.mp4"))) == 2 and not (out / "long").exists()


def test_default_root_depends_on_config_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    assert sm.default_root(TINY).parent == tmp_path
    assert sm.default_root(TINY).name.startswith("synthmotion-")
    assert sm.default_root(TINY) != sm.default_root(CONFIG)
    one_clip = SynthMotionConfig(
        num_classes=1,
        train_per_class=1,
        val_per_class=0,
        test_per_class=0,
        long_videos=0,
        reid_identities=0,
        size=32,
        num_frames=4,
    )
    assert sm.ensure(one_clip, progress=False) == sm.default_root(one_clip)
    assert len(read_csv(sm.default_root(one_clip) / "train.csv")) == 1


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ValueError, match="scene_bias"):
        SynthMotionConfig(scene_bias=1.5)
    with pytest.raises(ValueError, match="languages"):
        SynthMotionConfig(languages=("en", "xx"))


def test_each_clip_moves_as_its_label_says(features: tuple[np.ndarray, np.ndarray]) -> None:
    for (dx, dy, area, sx, sy, path, rev_x, rev_y), label in zip(*features):
        name = CLASSES[label]
        if name.startswith("slide"):
            moved = {"slide_left": -dx, "slide_right": dx, "slide_up": -dy, "slide_down": dy}[name]
            assert moved > 0.25 and path < 1.3 * abs(moved), (name, dx, dy, path)
        elif name.startswith("circle"):
            signed = area if name == "circle_cw" else -area
            assert signed > 0.02 and min(sx, sy) > 0.07, (name, area, sx, sy)
        else:
            along, across, turns = (sx, sy, rev_x) if name == "bounce_horizontal" else (sy, sx, rev_y)
            assert along > 3 * across and turns >= 1 and path > 1.0, (name, sx, sy, turns, path)


def test_motion_feature_separates_the_classes(features: tuple[np.ndarray, np.ndarray]) -> None:
    """Leave-one-out nearest class mean on the standardised frame-difference trajectory features."""
    feats, labels = features
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    correct = 0
    for i in range(len(labels)):
        keep = np.arange(len(labels)) != i
        means = np.stack([feats[keep & (labels == c)].mean(0) for c in range(len(CLASSES))])
        correct += int(np.linalg.norm(means - feats[i], axis=1).argmin() == labels[i])
    assert correct / len(labels) >= 0.9, correct  # chance: 1/8


def test_scene_bias_in_train_only(root: Path) -> None:
    def designated_rate(rows: list[dict]) -> float:
        return float(
            np.mean([r["background"] == BACKGROUNDS[int(r["label"]) % len(BACKGROUNDS)] for r in rows])
        )

    assert designated_rate(read_csv(root / "train.csv")) == pytest.approx(2 / 3)
    assert designated_rate(read_csv(root / "test.csv")) <= 0.3
    # unbiased splits: every family equally often within a class
    families = sm._split_backgrounds("test", 5, 16, CONFIG)
    assert Counter(families) == dict.fromkeys(BACKGROUNDS, 2)
    biased = sm._split_backgrounds("train", 5, 20, SynthMotionConfig(scene_bias=0.4))
    assert biased.count(BACKGROUNDS[5]) == 8


def test_audio_tone_is_the_shape_and_clicks_are_the_bounces(root: Path) -> None:
    clicks = defaultdict(list)
    for row in read_csv(root / "train.csv")[:16]:  # two of each class
        _, audio = decode(root / row["path"])
        assert abs(len(audio) / CONFIG.sample_rate - CONFIG.num_frames / CONFIG.fps) < 0.1
        spectrum = np.abs(np.fft.rfft(audio))
        freqs = np.fft.rfftfreq(len(audio), 1 / CONFIG.sample_rate)
        tone = (freqs > 150) & (freqs < 1000)
        dominant = freqs[tone][spectrum[tone].argmax()]
        assert dominant == pytest.approx(SHAPE_PITCH_HZ[row["shape"]], rel=0.03), row
        band = (freqs > 1700) & (freqs < 2300)
        clicks[row["label_name"].split("_")[0]].append(spectrum[band].sum() / spectrum[tone].sum())
    assert min(clicks["bounce"]) > 5 * max(clicks["slide"]), clicks


def test_captions_in_three_languages(root: Path) -> None:
    captions = json.loads((root / "captions.json").read_text(encoding="utf-8"))
    assert {c["lang"] for c in captions} == {"en", "de", "fr"}
    by_video = defaultdict(dict)
    for c in captions:
        assert set(c) == {"video_id", "caption", "lang"}
        by_video[c["video_id"]][c["lang"]] = c["caption"]
    for split in ("train", "test"):
        for row in read_csv(root / f"{split}.csv"):
            texts = by_video[Path(row["path"]).stem]
            assert texts["en"] == row["caption"]
            assert row["color"] in row["caption"] and row["shape"] in row["caption"]
            assert MOTION_PHRASES[row["label_name"]] in row["caption"]
            assert len(set(texts.values())) == 3


def test_qa_items_are_answerable_from_the_manifest(root: Path) -> None:
    rows = {Path(r["path"]).stem: r for s in ("train", "val", "test") for r in read_csv(root / f"{s}.csv")}
    items = [json.loads(line) for line in (root / "qa.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(items) == 3 * len(rows)
    assert Counter(item["kind"] for item in items) == dict.fromkeys(("motion", "color", "shape"), len(rows))
    for item in items:
        row = rows[item["video_id"]]
        assert len(item["answers"]) == CONFIG.qa_choices == len(set(item["answers"]))
        expected = {"motion": MOTION_PHRASES[row["label_name"]], "color": row["color"], "shape": row["shape"]}
        assert item["answers"][item["answer_idx"]] == expected[item["kind"]]
        assert item["path"] == row["path"]
    assert len({item["answer_idx"] for item in items}) > 1


def test_long_videos_have_ordered_frame_labels(root: Path) -> None:
    rows = read_csv(root / "long.csv")
    assert [r["label_name"] for r in rows] == list(LONG_TASKS)
    mapping = [line.split() for line in (root / "long" / "mapping.txt").read_text().splitlines()]
    assert mapping == [[str(i), name] for i, name in enumerate(CLASSES)]
    for row in rows:
        labels = (root / row["labels"]).read_text().splitlines()
        frames, audio = decode(root / row["path"])
        assert len(labels) == len(frames)
        runs = [labels[0]] + [b for a, b in itertools.pairwise(labels) if a != b]
        assert tuple(runs) == LONG_TASKS[row["label_name"]]
        lengths = list(Counter(labels).values())
        assert min(lengths) >= 0.75 * CONFIG.num_frames and max(lengths) <= 1.5 * CONFIG.num_frames
        assert abs(len(audio) / CONFIG.sample_rate - len(frames) / CONFIG.fps) < 0.1


def test_reid_identities_across_cameras(root: Path) -> None:
    train = read_csv(root / "reid_train.csv")
    query, gallery = read_csv(root / "reid_query.csv"), read_csv(root / "reid_gallery.csv")
    assert {r["identity"] for r in train}.isdisjoint({r["identity"] for r in query + gallery})
    assert len(query) == CONFIG.reid_identities // 2
    for rows in (train, query + gallery):
        by_id = defaultdict(list)
        for r in rows:
            assert Path(r["path"]).stem.startswith(f"{int(r['identity']):04d}C{r['camera']}T")
            by_id[r["identity"]].append(r)
        for tracklets in by_id.values():
            assert len({r["camera"] for r in tracklets}) >= 2
            assert len({(r["shape"], r["color"], r["marking"]) for r in tracklets}) == 1
    for q in query:
        assert any(g["identity"] == q["identity"] and g["camera"] != q["camera"] for g in gallery)
    # one camera, one scene
    assert all(len({r["background"] for r in train if r["camera"] == c}) == 1 for c in ("1", "2"))


def test_background_drift_pans_the_scene() -> None:
    """Without drift the scene is still (only the object changes pixels); with drift its edges move."""
    changed = {}
    for drift in (0.0, 1.0):
        config = SynthMotionConfig(size=32, num_frames=8, background_drift=drift)
        job = sm._make_plan(config).jobs[1]  # a checker background: every pan shows
        frames, _ = sm._render_frames(job, config)
        changed[drift] = float((np.abs(np.diff(frames.astype(int), axis=0)).sum(-1) > 0).mean())
    assert changed[0.0] < 0.1 and changed[1.0] > 2 * changed[0.0], changed
