"""Per-frame feature sequences: the MS-TCN and CTE/TOT layouts, padding, TOT's sorted sampling, extraction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ACTIONS, features_of, frame_labels, generate_synth, make_mstcn, tiny_synth

from zoo.data.batch import check_batch
from zoo.data.formats import ManifestError
from zoo.data.sequences import (
    FeatureFileError,
    FeatureSequenceDataset,
    SequenceLengthError,
    collate_sequences,
    synthmotion_long_videos,
)
from zoo.eval.features import extract_sequence_features


def make_cte(
    root: Path, videos: dict[str, tuple[str, int]], dim: int = 5, ext: str = ".txt", background: bool = False
) -> Path:
    """CTE / TOT layout: features/{activity}/{video}.txt (T, D), groundTruth/{video}, mapping/mapping.txt."""
    (root / "groundTruth").mkdir(parents=True)
    (root / "mapping").mkdir()
    mapping = "".join(f"{i} {a}\n" for i, a in enumerate(ACTIONS[1:]))
    (root / "mapping" / "mapping.txt").write_text(("-1 background\n" if background else "") + mapping)
    for k, (name, (activity, length)) in enumerate(videos.items()):
        folder = root / "features" / activity
        folder.mkdir(parents=True, exist_ok=True)
        features = features_of(length, dim, k)
        if ext == ".txt":
            np.savetxt(folder / f"{name}.txt", features)
        else:
            np.save(folder / f"{name}.npy", features)
        labels = [
            ("background" if background else "take_cup") if a == "SIL" else a for a in frame_labels(length, k)
        ]
        (root / "groundTruth" / name).write_text("\n".join(labels) + "\n")
    return root


def test_mstcn_layout_reads_features_transposed_with_their_frame_labels(tmp_path: Path):
    root = make_mstcn(tmp_path / "breakfast", {"P03_cam01_P03_coffee": 40, "P04_cam01_P04_tea": 23})
    dataset = FeatureSequenceDataset(root)
    assert dataset.layout == "mstcn" and dataset.classes == list(ACTIONS) and dataset.feature_dim == 6
    sample = dataset[0]
    assert sample["features"].shape == (40, 6) and sample["features"].dtype == torch.float32
    assert torch.equal(sample["features"][:, 0], torch.arange(40, dtype=torch.float32))  # (T, D), in order
    expected = [ACTIONS.index(a) for a in frame_labels(40, 0)]
    assert sample["segments"].tolist() == expected
    assert sample["frame_indices"].tolist() == [list(range(40))] and sample["num_frames"] == 40


def test_collate_pads_to_the_longest_with_a_mask(tmp_path: Path):
    root = make_mstcn(tmp_path / "bf", {"a": 40, "b": 23, "c": 31})
    dataset = FeatureSequenceDataset(root)
    batch = collate_sequences([dataset[i] for i in range(3)])
    check_batch(batch, required=("features", "mask", "segments", "label", "index"), owner="test")
    assert batch["features"].shape == (3, 40, 6)
    assert batch["mask"].sum(1).tolist() == [40, 23, 31]
    assert (batch["segments"][~batch["mask"]] == -1).all() and (batch["segments"][batch["mask"]] >= 0).all()
    assert (batch["features"][1, 23:] == 0).all() and (batch["frame_indices"][1, 0, 23:] == -1).all()
    assert torch.equal(batch["features"][1, :23], dataset[1]["features"])


def test_sorted_mode_draws_frames_in_time_per_temporal_split_as_tot(tmp_path: Path):
    root = make_mstcn(tmp_path / "bf", {"a": 100, "b": 37})
    dataset = FeatureSequenceDataset(root, mode="sorted", num_frames=8, num_splits=4, seed=3)
    sample = dataset[0]
    frames = sample["frame_indices"][0]
    assert frames.shape == (8,) and torch.equal(frames, frames.sort().values)
    assert (frames // 25).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]  # two frames in each quarter of 100
    assert torch.equal(sample["features"][:, 0], frames.float())  # the features of those frames
    assert torch.equal(dataset[0]["frame_indices"], frames[None])  # a function of (seed, epoch, index)
    draws = {tuple(dataset[0]["frame_indices"][0].tolist()) for _ in range(2)}
    dataset.set_epoch(1)
    draws.add(tuple(dataset[0]["frame_indices"][0].tolist()))
    assert len(draws) == 2
    batch = collate_sequences([dataset[0], dataset[1]])
    assert batch["mask"].all() and batch["features"].shape == (2, 8, 6)


def test_frame_stride_keeps_every_nth_frame(tmp_path: Path):
    root = make_mstcn(tmp_path / "salads", {"rgb-01-1": 21})
    sample = FeatureSequenceDataset(root, frame_stride=2)[0]
    assert sample["frame_indices"][0].tolist() == list(range(0, 21, 2))
    assert sample["features"][:, 0].tolist() == list(range(0, 21, 2))


def test_cte_layout_reads_text_features_by_activity(tmp_path: Path):
    root = make_cte(
        tmp_path / "yti", {"coffee_0001": ("coffee", 30), "cpr_0001": ("cpr", 25), "cpr_0002": ("cpr", 20)}
    )
    dataset = FeatureSequenceDataset(root)
    assert dataset.layout == "cte" and dataset.activities == ["coffee", "cpr"] and dataset.feature_dim == 5
    assert [dataset[i]["label"] for i in range(3)] == [0, 1, 1]
    assert torch.equal(dataset[2]["features"][:, 0], torch.arange(20, dtype=torch.float32))  # (T, D) stored
    cpr = FeatureSequenceDataset(root, activity="cpr")
    assert [r.video_id for r in cpr.records] == ["cpr_0001", "cpr_0002"]


def test_cte_background_becomes_the_last_class(tmp_path: Path):
    root = make_cte(tmp_path / "yti", {"repot_0001": ("repot", 30)}, background=True)
    dataset = FeatureSequenceDataset(root)
    assert dataset.classes == [*ACTIONS[1:], "background"] and dataset.background_label == 3
    labels = frame_labels(30, 0)
    assert dataset[0]["segments"].tolist() == [3 if a == "SIL" else ACTIONS.index(a) - 1 for a in labels]


def test_desktop_assembly_npy_features_frames_first(tmp_path: Path):
    root = make_cte(tmp_path / "da", {"2020_01": ("2020", 12), "2020_02": ("2020", 15)}, dim=7, ext=".npy")
    dataset = FeatureSequenceDataset(root, feature_dim=7)
    assert [dataset[i]["features"].shape for i in range(2)] == [(12, 7), (15, 7)]


def test_transposed_features_name_the_file_expected_and_found(tmp_path: Path):
    root = make_cte(tmp_path / "da", {"2020_01": ("2020", 12)}, dim=7, ext=".npy")
    with pytest.raises(
        FeatureFileError, match=r"2020_01\.npy: expected feature dimension 7 on axis 0.*\(12, 7\)"
    ):
        FeatureSequenceDataset(root, feature_dim=7, frames_first=False)
    with pytest.raises(FeatureFileError, match="frames_first=True"):
        FeatureSequenceDataset(root, feature_dim=7, frames_first=False)


def test_a_feature_file_of_another_dimension_is_named(tmp_path: Path):
    root = make_mstcn(tmp_path / "bf", {"a": 10, "b": 10})
    np.save(root / "features" / "b.npy", features_of(10, 4, 0).T)
    with pytest.raises(
        FeatureFileError, match=r"b\.npy: expected feature dimension 6 .* got shape \(4, 10\)"
    ):
        FeatureSequenceDataset(root)


def test_a_text_feature_file_of_another_dimension_is_named_when_read(tmp_path: Path):
    root = make_cte(tmp_path / "yti", {"cpr_0001": ("cpr", 10)}, dim=5)
    dataset = FeatureSequenceDataset(root, feature_dim=3)  # text files are checked as they are read
    with pytest.raises(FeatureFileError, match=r"cpr_0001\.txt: expected feature dimension 3 on axis 1"):
        dataset[0]


def test_labels_missing_from_the_mapping_name_file_and_line(tmp_path: Path):
    root = make_cte(tmp_path / "yti", {"cpr_0001": ("cpr", 10)})
    truth = root / "groundTruth" / "cpr_0001"
    lines = truth.read_text().splitlines()
    lines[6] = "dance"
    truth.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=r"cpr_0001, line 7: label 'dance' is not in mapping\.txt"):
        FeatureSequenceDataset(root)
    mstcn = make_mstcn(tmp_path / "bf", {"a": 10})
    (mstcn / "groundTruth" / "a.txt").write_text("SIL\nfly\n")
    with pytest.raises(ManifestError, match=r"a\.txt, line 2: action 'fly' is not in mapping\.txt"):
        FeatureSequenceDataset(mstcn)


def test_lengths_cut_to_the_shorter_within_the_tolerance_else_named(tmp_path: Path):
    root = make_mstcn(tmp_path / "bf", {"a": 30})
    np.save(root / "features" / "a.npy", features_of(33, 6, 0).T)
    assert len(FeatureSequenceDataset(root)[0]["features"]) == 30
    with pytest.raises(SequenceLengthError, match=r"a\.npy has 33 frames but .*a\.txt has 30 labels"):
        FeatureSequenceDataset(root, length_tolerance=2)


def test_sorted_mode_needs_num_frames_divisible_by_num_splits(tmp_path: Path):
    root = make_mstcn(tmp_path / "bf", {"a": 30})
    with pytest.raises(ValueError, match="divisible"):
        FeatureSequenceDataset(root, mode="sorted", num_frames=10, num_splits=4)


class FrameMean(torch.nn.Module):
    """A stand-in 2D backbone with the zoo API: per-channel means (N, 3), plus a learnable scale."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 4  # (N, C, H, W)
        return x * self.scale

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


@pytest.fixture(scope="module")
def synth_long(tmp_path_factory: pytest.TempPathFactory) -> Path:
    synth = tiny_synth(
        num_classes=2, train_per_class=0, val_per_class=0, test_per_class=0, long_videos=2, languages=("en",),
        captions_per_language=1,
    )  # fmt: skip
    return generate_synth(tmp_path_factory.mktemp("synth_long"), synth)


def test_extraction_through_an_image_backbone_gives_the_mstcn_layout(synth_long: Path, tmp_path: Path):
    from zoo.data.transforms import ToFloat
    from zoo.data.video import VideoReader

    videos, labels, mapping = synthmotion_long_videos(synth_long)
    out = extract_sequence_features(
        FrameMean(), videos, tmp_path / "feats", label_files=labels, mapping_file=mapping,
        transform=ToFloat(), batch_size=7, progress=False,
    )  # fmt: skip
    dataset = FeatureSequenceDataset(out)
    assert dataset.layout == "mstcn" and dataset.feature_dim == 3
    with VideoReader(videos[0]) as reader:
        frames = reader.get_frames(range(reader.metadata.num_frames))  # (T, H, W, C)
    expected = frames.float().div(255).mean(dim=(1, 2))  # (T, 3)
    sample = dataset[[r.video_id for r in dataset.records].index(videos[0].stem)]
    torch.testing.assert_close(sample["features"], expected)
    names = Path(labels[0]).read_text().split()
    assert [dataset.classes[i] for i in sample["segments"].tolist()] == names
    assert np.load(out / "features" / f"{videos[0].stem}.npy").shape == (3, len(names))  # stored (D, T)


def test_extraction_through_a_video_backbone_uses_centred_windows(synth_long: Path, tmp_path: Path):
    from zoo.api import create_model

    videos, labels, mapping = synthmotion_long_videos(synth_long)
    backbone = create_model("r3d_tiny", num_classes=0)
    out = extract_sequence_features(
        backbone, videos[:1], tmp_path / "feats", label_files=labels[:1], mapping_file=mapping,
        clip_frames=4, frame_stride=3, batch_size=16, progress=False,
    )  # fmt: skip
    stored = np.load(out / "features" / f"{videos[0].stem}.npy")
    num_frames = len(Path(labels[0]).read_text().split())
    assert stored.shape == (64, len(range(0, num_frames, 3)))
    sample = FeatureSequenceDataset(out)[0]
    assert sample["frame_indices"][0].tolist() == list(range(0, len(range(0, num_frames, 3))))
    assert sample["num_frames"] == stored.shape[1]


def test_extraction_checks_labels_against_the_video(synth_long: Path, tmp_path: Path):
    videos, _, mapping = synthmotion_long_videos(synth_long)
    short = tmp_path / "short.txt"
    short.write_text("slide_left\n" * 5)
    with pytest.raises(SequenceLengthError, match=r"has \d+ frames but .*short\.txt has 5 labels"):
        extract_sequence_features(
            FrameMean(), videos[:1], tmp_path / "x", label_files=[short], mapping_file=mapping, progress=False
        )
