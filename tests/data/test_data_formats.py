"""Dataset layouts: a tiny instance of each, parsed; malformed input names the file and the line or field."""

import json
from pathlib import Path

import numpy as np
import pytest

from zoo.data.formats import FORMATS, ManifestError, VideoRecord, load_records, register_format


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---- generic


def test_generic_csv(tmp_path):
    _write(tmp_path / "classes.txt", "walk\nrun\n\njump\n")
    _write(
        tmp_path / "train.csv",
        "path,label,start,end,caption,camera\n"
        "videos/a.mp4,0,,,a person walks,1\n"
        f"{tmp_path / 'abs.mp4'},2,1.5,3.0,,2\n"
        "videos/c.mp4,run,,,,3\n"
        "videos/d.mp4,,,,,4\n",
    )
    records, classes = load_records("generic", tmp_path / "train.csv")
    assert classes == ["walk", "run", "jump"]
    assert [r.label for r in records] == [0, 2, 1, None]
    assert records[0].path == (tmp_path / "videos/a.mp4").resolve() and records[0].path.is_absolute()
    assert records[1].path == tmp_path / "abs.mp4"
    assert (records[1].start, records[1].end) == (1.5, 3.0) and records[0].start is None
    assert records[0].caption == "a person walks" and records[1].caption is None
    assert records[2].extra == {"camera": "3"}
    # a folder with {split}.csv works too, and no classes.txt gives numbered classes
    (tmp_path / "classes.txt").unlink()
    _write(tmp_path / "val.csv", "path,label\nx.mp4,4\n")
    records, classes = load_records("generic", tmp_path, split="val")
    assert classes == ["0", "1", "2", "3", "4"] and records[0].label == 4


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("file,label\na.mp4,0\n", r"line 1 \(header\): missing column\(s\) \['path'\]"),
        ("path,label\na.mp4,zero\n", r"line 2: field 'label' must be an integer, got 'zero'"),
        ("path,label\na.mp4,0\nb.mp4,1,extra\n", r"line 3: expected 2 fields"),
        ("path,label,start,end\na.mp4,0,2.0,1.0\n", r"line 2: end \(1.0\) must be after start"),
        ("path,label,start\na.mp4,0,soon\n", r"line 2: field 'start' must be a number"),
        ("path,label\n,0\n", r"line 2: field 'path' is empty"),
        ("path,label\na.mp4,-1\n", r"line 2: label -1 out of range"),
    ],
)
def test_generic_csv_errors_name_file_and_line(tmp_path, content, message):
    path = _write(tmp_path / "bad.csv", content)
    with pytest.raises(ManifestError, match=message) as info:
        load_records("generic", path)
    assert str(path.resolve()) in str(info.value)


def test_label_out_of_classes_and_missing_policy(tmp_path):
    _write(tmp_path / "classes.txt", "a\nb\n")
    path = _write(tmp_path / "m.csv", "path,label\nx.mp4,2\n")
    with pytest.raises(ManifestError, match=r"label 2 out of range \[0, 2\)"):
        load_records("generic", path)
    _touch(tmp_path / "here.mp4")
    path = _write(tmp_path / "m.csv", "path,label\nhere.mp4,0\ngone.mp4,1\n")
    assert len(load_records("generic", path).records) == 2
    with pytest.warns(UserWarning, match="dropped 1 of 2"):
        assert len(load_records("generic", path, missing="skip").records) == 1
    with pytest.raises(FileNotFoundError, match=r"gone\.mp4"):
        load_records("generic", path, missing="raise")


@pytest.mark.parametrize("label", ["99999999999999999999", "10000000"])
def test_huge_label_without_classes_file_is_refused(tmp_path, label):
    """Class names were built up to the largest label: 10**20 ran out of memory, 10**7 made 10,000,001."""
    path = _write(tmp_path / "m.csv", f"path,label\na.mp4,0\nb.mp4,1\nx.mp4,{label}\nc.mp4,1\n")
    with pytest.raises(ManifestError, match=rf"line 4: label {label} would make .* 3 distinct labels"):
        load_records("generic", path)


def test_sparse_labels_within_the_bound_and_classes_file_decide(tmp_path):
    path = _write(tmp_path / "m.csv", "path,label\na.mp4,3\nb.mp4,699\n")
    assert len(load_records("generic", path).classes) == 700  # a few classes of Kinetics-700: fine
    path = _write(tmp_path / "m.csv", "path,label\na.mp4,3\nb.mp4,4999\n")
    with pytest.raises(ManifestError, match=r"line 3: label 4999 would make 5000 classes"):
        load_records("generic", path)
    assert len(load_records("generic", path, max_classes=5000).classes) == 5000  # raised on purpose
    with pytest.raises(ManifestError, match=r"line 3: label 4999 would make 5000 classes .*at most 50\)"):
        load_records("generic", path, max_classes=50)
    path = _write(tmp_path / "m.csv", "path,label\na.mp4,3\nb.mp4,699\n")
    _write(tmp_path / "classes.txt", "".join(f"c{i}\n" for i in range(5)))
    with pytest.raises(ManifestError, match=r"line 3: label 699 out of range \[0, 5\)"):
        load_records("generic", path)


@pytest.mark.parametrize(
    ("payload", "line"),
    [
        (b"path,label\na.mp4,0\n\x89PNG\r\n\x1a\n\xff\xfe\x00\x00garbage", 3),  # not UTF-8
        (b"path,label\na.mp4,0\nb.mp4,1\nc.mp4\x00,1\n", 4),  # UTF-8 but NUL bytes
    ],
)
def test_binary_csv_is_one_error_naming_file_and_line(tmp_path, payload, line):
    path = tmp_path / "binary.csv"
    path.write_bytes(payload)
    with pytest.raises(ManifestError, match=rf"binary\.csv, line {line}: not a text file") as info:
        load_records("generic", path)
    assert str(path.resolve()) in str(info.value) and "\n" not in str(info.value)


def test_binary_classes_file_is_one_error(tmp_path):
    (tmp_path / "classes.txt").write_bytes(b"walk\n\xff\xd8\xff\xe0")
    path = _write(tmp_path / "m.csv", "path,label\na.mp4,0\n")
    with pytest.raises(ManifestError, match=r"classes\.txt, line 2: not a text file \(byte 0xff"):
        load_records("generic", path)


def test_unknown_format_and_registry():
    with pytest.raises(KeyError, match="unknown dataset format"):
        load_records("nope", ".")
    expected = {"generic", "ucf101", "hmdb51", "kinetics", "ssv2", "epic-kitchens", "msrvtt", "vatex"}
    expected |= {"howto100m", "breakfast", "50salads", "tvqa", "mars"}
    assert expected <= set(FORMATS)
    with pytest.raises(ValueError, match="registered twice"):
        register_format("generic")(lambda root, split: None)


# ---- UCF101 / HMDB51


def _ucf(root: Path) -> None:
    _write(root / "ucfTrainTestlist/classInd.txt", "1 ApplyEyeMakeup\n2 Archery\n")
    _write(
        root / "ucfTrainTestlist/trainlist01.txt",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nArchery/v_Archery_g08_c01.avi 2\n",
    )
    _write(root / "ucfTrainTestlist/testlist01.txt", "Archery/v_Archery_g01_c01.avi\n")
    _touch(root / "UCF-101/Archery/v_Archery_g01_c01.avi")


def test_ucf101(tmp_path):
    _ucf(tmp_path)
    records, classes = load_records("ucf101", tmp_path, "train")
    assert classes == ["ApplyEyeMakeup", "Archery"]
    assert [r.label for r in records] == [0, 1]
    assert records[1].path == tmp_path / "UCF-101/Archery/v_Archery_g08_c01.avi"
    test, _ = load_records("ucf101", tmp_path, "test")
    assert [r.label for r in test] == [1] and test[0].path.is_file()
    _write(tmp_path / "ucfTrainTestlist/trainlist01.txt", "Archery/v_Archery_g08_c01.avi 1\n")
    with pytest.raises(
        ManifestError, match=r"trainlist01.txt, line 1: label 1 does not match folder 'Archery'"
    ):
        load_records("ucf101", tmp_path, "train")


def test_hmdb51(tmp_path):
    splits = tmp_path / "testTrainMulti_7030_splits"
    _write(splits / "brush_hair_test_split1.txt", "a.avi 1\nb.avi 2\nc.avi 0\n")
    _write(splits / "cartwheel_test_split1.txt", "d.avi 1\n")
    _write(splits / "cartwheel_test_split2.txt", "d.avi 2\n")
    train, classes = load_records("hmdb51", tmp_path, "train")
    assert classes == ["brush_hair", "cartwheel"]
    assert [(r.path.name, r.label) for r in train] == [("a.avi", 0), ("d.avi", 1)]
    assert train[0].path == tmp_path / "brush_hair/a.avi"
    test, _ = load_records("hmdb51", tmp_path, "test", fold=2)
    assert [r.path.name for r in test] == ["d.avi"]
    _write(splits / "cartwheel_test_split1.txt", "d.avi 7\n")
    with pytest.raises(ManifestError, match=r"cartwheel_test_split1.txt, line 1"):
        load_records("hmdb51", tmp_path, "train")


# ---- Kinetics, SSv2, EPIC


def test_kinetics(tmp_path):
    header = "label,youtube_id,time_start,time_end,split\n"
    _write(tmp_path / "train.csv", header + "abseiling,abc,10,20,train\nzumba,xyz,0,10,train\n")
    _write(tmp_path / "validate.csv", header + "zumba,q-w,5,15,val\n")
    _touch(tmp_path / "train/abc_000010_000020.mp4")  # flat
    _touch(tmp_path / "train/zumba/xyz_000000_000010.mp4")  # per-label folder
    records, classes = load_records("kinetics", tmp_path, "train")
    assert classes == ["abseiling", "zumba"]
    assert [r.label for r in records] == [0, 1]
    assert records[0].path == tmp_path / "train/abc_000010_000020.mp4"
    assert records[1].path == tmp_path / "train/zumba/xyz_000000_000010.mp4"
    assert records[1].extra == {"youtube_id": "xyz", "time_start": 0, "time_end": 10}
    val, val_classes = load_records("kinetics", tmp_path, "val")
    assert val_classes == classes and val[0].label == 1 and val[0].path.name == "q-w_000005_000015.mp4"
    _write(tmp_path / "validate.csv", header + "yodel,q,5,15,val\n")
    with pytest.raises(ManifestError, match=r"validate.csv, line 2: label 'yodel' is not a known class"):
        load_records("kinetics", tmp_path, "val")


def test_ssv2(tmp_path):
    _write(
        tmp_path / "labels.json",
        json.dumps({"Holding something": "0", "Pushing something from left to right": "1"}),
    )
    items = [
        {
            "id": "7",
            "label": "pushing a cup from left to right",
            "template": "Pushing [something] from left to right",
            "placeholders": ["a cup"],
        },
        {"id": "8", "label": "holding a pen", "template": "Holding [something]", "placeholders": ["a pen"]},
    ]
    _write(tmp_path / "train.json", json.dumps(items))
    _write(tmp_path / "test.json", json.dumps([{"id": "9"}]))
    records, classes = load_records("ssv2", tmp_path, "train")
    assert classes == ["Holding something", "Pushing something from left to right"]
    assert [r.label for r in records] == [1, 0]
    assert records[0].path == tmp_path / "7.webm" and records[0].caption == "pushing a cup from left to right"
    assert records[0].extra["placeholders"] == ["a cup"]
    assert load_records("ssv2", tmp_path, "test").records[0].label is None
    _write(tmp_path / "validation.json", json.dumps([{"id": "1", "template": "Dancing"}]))
    with pytest.raises(ManifestError, match=r"validation.json, item 0: template 'Dancing'"):
        load_records("ssv2", tmp_path, "val")
    _write(tmp_path / "validation.json", "[{")
    with pytest.raises(ManifestError, match=r"validation.json, line 1: invalid JSON"):
        load_records("ssv2", tmp_path, "val")


def test_epic_kitchens(tmp_path):
    header = "narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,start_frame,stop_frame,narration,verb,verb_class,noun,noun_class\n"
    _write(
        tmp_path / "EPIC_100_train.csv",
        header
        + "P01_01_0,P01,P01_01,00:00:01.089,00:00:00.14,00:00:03.37,8,202,open door,open,3,door,8\n"
        + "P01_01_1,P01,P01_01,00:00:02.629,00:01:04.00,00:01:05.50,3840,3930,turn on light,turn-on,6,light,114\n",
    )
    _write(tmp_path / "EPIC_100_verb_classes.csv", "id,key\n" + "".join(f"{i},v{i}\n" for i in range(7)))
    records, classes = load_records("epic-kitchens", tmp_path, "train")
    assert classes == [f"v{i}" for i in range(7)]
    assert [r.label for r in records] == [3, 6]
    assert records[1].start == pytest.approx(64.0) and records[1].end == pytest.approx(65.5)
    assert records[0].extra["noun_class"] == 8 and records[0].caption == "open door"
    assert records[0].path == tmp_path / "P01/videos/P01_01.MP4"
    nouns, noun_classes = load_records("epic-kitchens", tmp_path, "train", label="noun")
    assert [r.label for r in nouns] == [8, 114] and len(noun_classes) == 115
    _write(tmp_path / "EPIC_100_validation.csv", header + "x,P01,P01_01,0,1.5,00:00:03.00,0,0,n,v,1,n,1\n")
    with pytest.raises(ManifestError, match=r"line 2: field 'start_timestamp' must be HH:MM:SS.ff"):
        load_records("epic-kitchens", tmp_path, "val")


# ---- captions


def test_msrvtt(tmp_path):
    data = {
        "videos": [
            {"video_id": "video0", "category": 9, "split": "train"},
            {"video_id": "video1", "category": 3, "split": "test"},
        ],
        "sentences": [
            {"video_id": "video0", "caption": "a cartoon", "sen_id": 0},
            {"video_id": "video0", "caption": "an animation", "sen_id": 1},
            {"video_id": "video1", "caption": "a man talks", "sen_id": 2},
        ],
    }
    _write(tmp_path / "train_val_videodatainfo.json", json.dumps(data))
    records, _ = load_records("msrvtt", tmp_path, "train")
    assert len(records) == 1 and records[0].caption == ["a cartoon", "an animation"] and records[0].label == 9
    assert records[0].path == tmp_path / "videos/video0.mp4"
    assert [r.extra["video_id"] for r in load_records("msrvtt", tmp_path, "all").records] == [
        "video0",
        "video1",
    ]
    data["sentences"].pop()
    _write(tmp_path / "train_val_videodatainfo.json", json.dumps(data))
    with pytest.raises(ManifestError, match=r"videos\[1\]: video 'video1' has no sentence"):
        load_records("msrvtt", tmp_path, "test")


def test_vatex(tmp_path):
    items = [{"videoID": "Ptf_2VRj-V0_000122_000132", "enCap": ["a boy", "a kid"], "chCap": ["一个男孩"]}]
    _write(tmp_path / "vatex_training_v1.0.json", json.dumps(items, ensure_ascii=False))
    records, classes = load_records("vatex", tmp_path, "train")
    assert classes is None and records[0].caption == ["a boy", "a kid"]
    assert records[0].path == tmp_path / "videos/Ptf_2VRj-V0_000122_000132.mp4"
    zh = load_records("vatex", tmp_path, "train", language="zh").records[0]
    assert zh.caption == ["一个男孩"] and zh.extra["captions"]["en"] == ["a boy", "a kid"]
    _write(tmp_path / "vatex_validation_v1.0.json", json.dumps([{"videoID": "x", "enCap": "not a list"}]))
    with pytest.raises(ManifestError, match=r"item 0: field 'enCap' must be a list of strings"):
        load_records("vatex", tmp_path, "val")


def test_howto100m(tmp_path):
    data = {
        "vid1": {"start": [0.0, 4.5], "end": [4.0, 9.0], "text": ["first cut", "then fry"]},
        "vid2": {"start": [1], "end": [2], "text": ["x"]},
    }
    _write(tmp_path / "caption.json", json.dumps(data))
    _touch(tmp_path / "videos/vid1.webm")
    records, _ = load_records("howto100m", tmp_path)
    assert len(records) == 3
    assert (records[1].start, records[1].end, records[1].caption) == (4.5, 9.0, "then fry")
    assert records[0].path == tmp_path / "videos/vid1.webm"  # extension found on disk
    _write(tmp_path / "train.txt", "vid2\n")
    assert [r.extra["video_id"] for r in load_records("howto100m", tmp_path).records] == ["vid2"]
    data["vid2"]["end"] = [0.5]
    _write(tmp_path / "caption.json", json.dumps(data))
    with pytest.raises(ManifestError, match=r"video 'vid2' segment 0: end \(0.5\) must be after start"):
        load_records("howto100m", tmp_path)


# ---- segmentation, QA, re-ID


def test_breakfast_action_segmentation(tmp_path):
    _write(tmp_path / "mapping.txt", "0 SIL\n1 pour_milk\n2 stir\n")
    _write(
        tmp_path / "groundTruth/P03_cam01_cereals.txt", "SIL\nSIL\npour_milk\npour_milk\npour_milk\nstir\n"
    )
    _write(tmp_path / "groundTruth/P04_cam01_cereals.txt", "stir\n")
    _write(tmp_path / "splits/train.split1.bundle", "P03_cam01_cereals.txt\n")
    _write(tmp_path / "splits/test.split1.bundle", "P04_cam01_cereals.txt\n")
    records, classes = load_records("breakfast", tmp_path, "train")
    assert classes == ["SIL", "pour_milk", "stir"]
    (record,) = records
    np.testing.assert_array_equal(record.extra["frame_labels"], [0, 0, 1, 1, 1, 2])
    assert record.extra["segments"] == [(0, 2, 0), (2, 5, 1), (5, 6, 2)]
    assert record.path == tmp_path / "videos/P03_cam01_cereals.mp4" and record.label is None
    assert load_records("50salads", tmp_path, "test").records[0].extra["video_id"] == "P04_cam01_cereals"
    _write(tmp_path / "groundTruth/P04_cam01_cereals.txt", "stir\nfly\n")
    with pytest.raises(
        ManifestError, match=r"P04_cam01_cereals.txt, line 2: action 'fly' is not in mapping.txt"
    ):
        load_records("breakfast", tmp_path, "test")


def test_tvqa(tmp_path):
    lines = [
        {
            "a0": "A",
            "a1": "B",
            "a2": "C",
            "a3": "D",
            "a4": "E",
            "answer_idx": 2,
            "q": "Why?",
            "qid": 1,
            "ts": "60.32-65.65",
            "vid_name": "castle_s01e01_seg02_clip_01",
            "show_name": "Castle",
        },
        {
            "a0": "A",
            "a1": "B",
            "a2": "C",
            "a3": "D",
            "a4": "E",
            "answer_idx": 0,
            "q": "Who?",
            "qid": 2,
            "ts": "NaN-NaN",
            "vid_name": "friends_s01e02_seg01_clip_00",
        },
    ]
    _write(tmp_path / "tvqa_train.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    records, classes = load_records("tvqa", tmp_path, "train")
    assert classes == ["a0", "a1", "a2", "a3", "a4"]
    assert records[0].label == 2 and (records[0].start, records[0].end) == (60.32, 65.65)
    assert records[0].extra["answers"] == ["A", "B", "C", "D", "E"] and records[0].caption == "Why?"
    assert records[1].start is None
    assert records[0].path == tmp_path / "videos/castle_s01e01_seg02_clip_01.mp4"
    _write(tmp_path / "tvqa_val.jsonl", json.dumps({**lines[0], "answer_idx": 5}) + "\n" + "{\n")
    with pytest.raises(ManifestError, match=r"tvqa_val.jsonl, line 1: answer_idx must be 0..4"):
        load_records("tvqa", tmp_path, "val")


def test_mars_frames_and_videos(tmp_path):
    for name in ["0001C1T0001F001", "0001C1T0001F002", "0001C2T0002F001", "0003C1T0001F001"]:
        _touch(tmp_path / "bbox_train" / name[:4] / f"{name}.jpg")
    _touch(tmp_path / "bbox_train/00-1/00-1C1T0001F001.jpg")  # junk
    records, classes = load_records("mars", tmp_path, "train")
    assert classes == ["0001", "0003"]
    assert [(r.extra["pid"], r.extra["camera"], r.label) for r in records] == [
        (1, 1, 0),
        (1, 2, 0),
        (3, 1, 1),
    ]
    assert [p.name for p in records[0].extra["frames"]] == ["0001C1T0001F001.jpg", "0001C1T0001F002.jpg"]
    for name in ["0005C1T0001", "0005C3T0001", "0006C2T0001", "0000C1T0001"]:
        _touch(tmp_path / "bbox_test" / name[:4] / f"{name}.mp4")
    query, _ = load_records("mars", tmp_path, "query")
    gallery, _ = load_records("mars", tmp_path, "gallery")
    assert [r.extra["tracklet_id"] for r in query] == ["0005C1T0001", "0006C2T0001"]
    assert [r.extra["tracklet_id"] for r in gallery] == ["0000C1T0001", "0005C3T0001"]
    assert gallery[1].path == tmp_path / "bbox_test/0005/0005C3T0001.mp4" and "frames" not in gallery[1].extra
    _touch(tmp_path / "bbox_train/0001/0001_cam1.jpg")
    with pytest.raises(ManifestError, match=r"0001_cam1.jpg, file name"):
        load_records("mars", tmp_path, "train")


def test_synthmotion_manifest_parses_as_generic(tmp_path):
    """The SynthMotion layout (generic CSV + classes.txt) without generating videos."""
    _write(tmp_path / "classes.txt", "slide_left\nslide_right\n")
    _write(
        tmp_path / "train.csv",
        "path,label,start,end,caption,label_name,background,shape,color,marking,identity,camera\n"
        "videos/train/train_00000.mp4,0,,,A red disc slides left.,slide_left,stripes,disc,red,none,,\n",
    )
    (record,) = load_records("generic", tmp_path / "train.csv").records
    assert isinstance(record, VideoRecord) and record.label == 0
    assert record.extra["background"] == "stripes" and record.caption == "A red disc slides left."
