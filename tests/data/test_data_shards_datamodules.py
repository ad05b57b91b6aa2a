"""Every DataModule beyond clips reads its own shards (feature sequences, documents, image–text pairs, QA items,
tracklets): the same samples as from its files, split over ranks and workers without overlap, a corrupt member
skipped and counted, locally and over HTTP, and a training stream resumed mid-epoch."""

import argparse
import hashlib
import io
import json
import shutil
import tarfile
import warnings
from pathlib import Path

import pytest
import torch
from helpers import generate_synth, make_image_text, make_mstcn, tiny_synth
from test_data_shards import _http_server
from torch.utils.data import DataLoader

from zoo.data.commands import configure
from zoo.data.datamodules import (
    DocumentDataModule,
    FeatureSequenceDataModule,
    ImageTextDataModule,
    MultipleChoiceQADataModule,
    TrackletDataModule,
)
from zoo.data.shards import ShardError, read_index, write_shards
from zoo.errors import UsageError

SYNTH = tiny_synth(
    num_classes=2, train_per_class=3, val_per_class=2, test_per_class=1, reid_identities=4, qa_per_clip=1
)
KINDS = {  # the DataModule, its options, and the split read in order
    "features": (FeatureSequenceDataModule, dict(test_split="test"), "test"),
    "documents": (
        DocumentDataModule,
        dict(num_anchors=1, num_positives=1, max_span_len=4, min_span_len=2, tokenizer="bytes"),
        "val",
    ),
    "image_text": (ImageTextDataModule, dict(size=16), "val"),
    "qa": (MultipleChoiceQADataModule, dict(video=True, num_frames=4, size=16), "val"),
    "tracklets": (TrackletDataModule, dict(num_frames=4, size=16, p=2, k=2), "gallery"),
}
TRAINS = [kind for kind in KINDS if kind != "tracklets"]  # tracklets train from files (P×K batches)


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    synth = generate_synth(tmp_path_factory.mktemp("synth"), SYNTH)
    mstcn = make_mstcn(tmp_path_factory.mktemp("mstcn") / "set", {f"v{i}": 20 + 3 * i for i in range(5)})
    return {"synth": synth, "mstcn": mstcn}


def _source(kind: str, roots: dict[str, Path]) -> dict:
    if kind == "features":
        return {"root": str(roots["mstcn"])}
    return {"synth": SYNTH, "synth_root": str(roots["synth"])}


def _files(kind: str, roots: dict[str, Path], **kwargs):
    cls, options, _ = KINDS[kind]
    return cls(**options, **_source(kind, roots), batch_size=2, num_workers=0, **kwargs)


def _streamed(kind: str, roots: dict[str, Path], shards: dict[str, str], **kwargs):
    cls, options, _ = KINDS[kind]
    needs_train = kind in ("features", "tracklets") and "train" not in shards  # the training data from files
    files = _source(kind, roots) if needs_train else {}
    return cls(**options, **files, shards=shards, **{"batch_size": 2, "num_workers": 0, **kwargs})


@pytest.fixture(scope="module")
def shard_dirs(roots, tmp_path_factory) -> dict[str, Path]:
    """Every kind's shards, one sample per shard: its ordered split and (but tracklets) its training split."""
    dirs = {}
    for kind, (_, _, split) in KINDS.items():
        out = tmp_path_factory.mktemp(kind)
        module = _files(kind, roots)
        for name in {split, "gallery" if kind == "tracklets" else "train"}:
            source, info = module.shard_source(name), module.shard_info(name)
            write_shards(source, out, name, max_size=1, progress=False, kind=module.shard_kind, info=info)
        dirs[kind] = out
    return dirs


def _assert_same(got, expected, where: str = "batch") -> None:
    if isinstance(expected, torch.Tensor):
        assert torch.equal(got, expected), where
    elif isinstance(expected, dict):
        assert got.keys() == expected.keys(), where
        for key in expected:
            _assert_same(got[key], expected[key], f"{where}[{key!r}]")
    else:
        assert got == expected, where


def _indices(loader) -> list[int]:
    return [int(i) for batch in loader for i in batch["index"]]


@pytest.mark.parametrize("over", ["local", "http"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_streamed_batches_equal_the_files(kind, over, roots, shard_dirs):
    split = KINDS[kind][2]
    files = _files(kind, roots)
    expected = list(files._loader(split, shuffle=False))
    if over == "local":
        streamed = _streamed(kind, roots, {split: str(shard_dirs[kind] / f"{split}.index.json")})
        got = list(streamed._loader(split, shuffle=False))
    else:
        with _http_server(shard_dirs[kind]) as url:
            streamed = _streamed(kind, roots, {split: f"{url}/{split}.index.json"})
            got = list(streamed._loader(split, shuffle=False))
    assert len(got) == len(expected) > 1
    for number, (a, b) in enumerate(zip(got, expected)):
        _assert_same(a, b, f"{kind} batch {number}")
    if files.classes is not None:
        assert streamed.classes == files.classes


@pytest.mark.parametrize("kind", list(KINDS))
def test_two_ranks_of_two_workers_read_disjoint_shards(kind, roots, shard_dirs):
    splits = {KINDS[kind][2], "gallery" if kind == "tracklets" else "train"}
    module = _streamed(
        kind, roots, {split: str(shard_dirs[kind] / f"{split}.index.json") for split in splits}
    )
    for split in splits:
        stream, seen = module._dataset(split), {}
        for rank in (0, 1):
            stream.distribute(2, rank, 2)
            loader = DataLoader(stream, batch_size=2, num_workers=2, collate_fn=module.collate_fn(split))
            seen[rank] = _indices(loader)
            first = stream.index.offsets()
            own = {int(first[s]) for s in stream._shards()}  # one sample per shard
            assert seen[rank] and set(seen[rank]) <= own
            if split != "train":  # in order: each sample of the rank's shards once over its two workers
                assert sorted(seen[rank]) == sorted(own)
        assert not set(seen[0]) & set(seen[1])
        if split == "train":  # an epoch of whole batches, as long on every rank
            assert len(seen[0]) == len(seen[1]) == (stream.index.samples // 2) // 2 * 2


def _corrupt(folder: Path, split: str, shard: int, data: bytes = b"\x00not what it says\xff" * 4) -> str:
    """Replace the first member of shard ``shard`` (a file; a document's JSON) by ``data``, bytes that do not
    parse, keeping a valid tar and its index's checksum; returns the sample's key."""
    path = folder / f"{split}-{shard:06d}.tar"
    with tarfile.open(path) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    members[0] = (members[0][0], data)
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    index_path = folder / f"{split}.index.json"
    index = json.loads(index_path.read_text())
    index["shards"][shard]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    index_path.write_text(json.dumps(index))
    return members[0][0].split(".")[0]


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_corrupt_member_is_skipped_and_counted(kind, roots, shard_dirs, tmp_path):
    split = KINDS[kind][2]
    folder = tmp_path / kind
    shutil.copytree(shard_dirs[kind], folder)
    key = _corrupt(folder, split, 1)
    module = _streamed(kind, roots, {split: str(folder / f"{split}.index.json")}, **_tolerant(kind))
    with pytest.warns(UserWarning, match=rf"{split}-000001\.tar#{key}"):
        indices = _indices(module._loader(split, shuffle=False))
    total = read_index(str(folder / f"{split}.index.json")).samples
    assert indices == [i for i in range(total) if i != 1]
    stats = module.error_stats()[split]
    assert stats["bad_records"] == 1 and f"#{key}" in stats["bad_paths"][0]


def _tolerant(kind: str) -> dict:
    """One bad sample of a few is under the limit of the DataModules that set one."""
    return {"max_error_fraction": 0.5}


@pytest.mark.parametrize("kind", TRAINS)
def test_a_training_stream_resumes_mid_epoch(kind, roots, shard_dirs):
    def loader():
        train = {"train": str(shard_dirs[kind] / "train.index.json")}
        module = _streamed(kind, roots, train, num_workers=2, persistent_workers=False)
        return module.train_dataloader()

    uninterrupted = list(loader())
    assert len(uninterrupted) >= 2
    resumed = loader()  # as a checkpoint taken after the first batch restores it
    resumed.load_state_dict({"epoch": 0, "batches": 1, "world_size": 1, "num_workers": 2, "errors": None})
    rest = list(resumed)
    assert len(rest) == len(uninterrupted) - 1
    for got, expected in zip(rest, uninterrupted[1:]):
        _assert_same(got, expected)


def test_tracklets_do_not_train_from_shards(roots, shard_dirs):
    with pytest.raises(UsageError, match="TrackletDataModule cannot train from shards: a P×K batch"):
        _streamed("tracklets", roots, str(shard_dirs["tracklets"] / "gallery.index.json"))


def test_a_feature_set_needs_files_or_training_shards():
    with pytest.raises(UsageError, match="needs a root folder or training shards"):
        FeatureSequenceDataModule(shards={"test": "x-{0..1}.tar"})


def test_shards_of_another_kind_are_named(roots, shard_dirs):
    with pytest.raises(ShardError, match=r"gallery\.index\.json holds tracklets samples; .* reads qa shards"):
        _streamed("qa", roots, {"val": str(shard_dirs["tracklets"] / "gallery.index.json")})._dataset("val")


def _shard_command(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="zoo data")
    configure(parser)
    args = parser.parse_args(["shard", *argv])
    return args.func(args)


def test_zoo_data_shard_writes_each_kind_of_synthmotion(roots, tmp_path, capsys):
    out = tmp_path / "tracklets"
    assert _shard_command("synth", str(out), "--kind", "tracklets", "--synth-root", str(roots["synth"])) == 0
    for split in ("train", "query", "gallery"):
        index = read_index(str(out / f"{split}.index.json"))
        assert index.kind == "tracklets" and index.samples == len(_files("tracklets", roots).records(split))
    assert "gallery: tracklets shards" in capsys.readouterr().out
    out = tmp_path / "documents"
    assert _shard_command("synth", str(out), "--kind", "documents", "--synth-root", str(roots["synth"])) == 0
    assert sorted(p.name for p in out.glob("*.index.json")) == [
        f"{s}.index.json" for s in ("test", "train", "val")
    ]
    with pytest.raises(UsageError, match="--kind features: SynthMotion has no features until a model"):
        _shard_command(
            "synth", str(tmp_path / "f"), "--kind", "features", "--synth-root", str(roots["synth"])
        )


def test_zoo_data_shard_writes_a_feature_folder(roots, tmp_path):
    out = tmp_path / "features"
    assert _shard_command(str(roots["mstcn"]), str(out), "--kind", "features", "--split", "test") == 0
    index = read_index(str(out / "test.index.json"))
    assert (
        index.kind == "features"
        and index.samples == 5
        and index.info == {"feature_dim": 6, "frames_first": False}
    )
    files = _files("features", roots)
    streamed = _streamed("features", roots, {"test": str(out / "test.index.json")})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped
        got = list(streamed._loader("test", shuffle=False))
    expected = list(files._loader("test", shuffle=False))
    assert len(got) == len(expected) == 3
    for a, b in zip(got, expected):
        _assert_same(a, b)


def test_image_files_are_members_of_their_sample(tmp_path):
    pairs = make_image_text(tmp_path / "pairs")
    files = ImageTextDataModule(str(pairs), val_manifest=str(pairs), size=8, batch_size=3, num_workers=0)
    source = files.shard_source("val")
    index = write_shards(source, tmp_path / "shards", "val", progress=False, kind=files.shard_kind)
    with tarfile.open(tmp_path / "shards" / "val-000000.tar") as tar:
        assert tar.getnames()[:2] == ["000000000.frame000000.png", "000000000.json"]
        assert (
            tar.extractfile("000000000.frame000000.png").read()
            == (tmp_path / "pairs" / "red.png").read_bytes()
        )
    streamed = ImageTextDataModule(shards={"val": str(index)}, size=8, batch_size=3, num_workers=0)
    assert streamed.classes == files.classes == ["sky", "grass", "water", "sun"]
    (got,), (expected,) = (
        list(streamed._loader("val", shuffle=False)),
        list(files._loader("val", shuffle=False)),
    )
    _assert_same(got, expected)


def test_feature_shards_of_another_dimension_are_refused(roots, tmp_path):
    other = FeatureSequenceDataModule(root=str(make_mstcn(tmp_path / "narrow", {"a": 20, "b": 25}, dim=4)))
    source, info = other.shard_source("train"), other.shard_info("train")
    index = write_shards(
        source, tmp_path / "shards", "test", progress=False, kind=other.shard_kind, info=info
    )
    with pytest.raises(UsageError, match=r"test\.index\.json: classes .* and feature_dim 4 differ .*, 6\)"):
        _streamed("features", roots, {"test": str(index)})._dataset("test")


def test_an_annotation_that_is_not_json_loses_its_sample_only(roots, tmp_path):
    files = _files("documents", roots)
    index = write_shards(files.shard_source("val"), tmp_path, "val", progress=False, kind=files.shard_kind)
    assert read_index(str(index)).counts == (4,)  # one shard of four documents, a JSON member each
    key = _corrupt(tmp_path, "val", 0, b'{"text": "cut sho')
    module = _streamed("documents", roots, {"val": str(index)}, max_error_fraction=0.5)
    with pytest.warns(UserWarning, match=rf"val-000000\.tar#{key}'?: unreadable sample"):
        assert _indices(module._loader("val", shuffle=False)) == [1, 2, 3]
