"""DataModules of the other sample types: batches fit the contract, seeding, DDP shards and PK batches, errors, CLI."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import yaml
from helpers import generate_synth, make_image_text, make_mstcn, tiny_synth
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from zoo.data.base import BatchEpochSampler, ZooDataModule
from zoo.data.batch import check_batch
from zoo.data.datamodules import (
    DocumentDataModule,
    FeatureSequenceDataModule,
    ImageTextDataModule,
    MultipleChoiceQADataModule,
    TrackletDataModule,
)
from zoo.data.samples import PKSampler
from zoo.errors import UsageError

SYNTH = tiny_synth(
    num_classes=2, train_per_class=2, val_per_class=1, test_per_class=0, qa_per_clip=2, qa_choices=4,
    long_videos=2, reid_identities=10, reid_cameras=2, reid_tracklets=2, languages=("en",), captions_per_language=1,
)  # fmt: skip
DOCUMENT = " ".join(f"t{i}" for i in range(200))
LOADER = dict(num_workers=0, persistent_workers=False)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synth(tmp_path_factory.mktemp("synth"), SYNTH)


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("documents") / "documents.txt"
    path.write_text("".join(f"{DOCUMENT} d{i}\n" for i in range(6)))
    return path


def _tracklets(synth_root: Path, **kwargs) -> TrackletDataModule:
    args = dict(synth=SYNTH, synth_root=str(synth_root), p=2, k=2, num_frames=4, size=16, batch_size=4)
    return TrackletDataModule(**{**args, **LOADER, **kwargs})


def _documents(documents: Path, **kwargs) -> DocumentDataModule:
    args = dict(num_anchors=1, num_positives=2, max_span_len=24, min_span_len=4, batch_size=2)
    return DocumentDataModule(str(documents), val_file=str(documents), **{**args, **LOADER, **kwargs})


def _modules(tmp_path: Path, synth_root: Path, documents: Path) -> dict[str, ZooDataModule]:
    features = make_mstcn(tmp_path / "features", {"a": 30, "b": 41, "c": 25})
    pairs = make_image_text(tmp_path / "pairs")
    return {
        "features": FeatureSequenceDataModule(str(features), val_split="train", batch_size=2, **LOADER),
        "sorted": FeatureSequenceDataModule(
            str(features),
            val_split="train",
            mode="sorted",
            num_frames=8,
            num_splits=2,
            batch_size=2,
            **LOADER,
        ),
        "documents": _documents(documents),
        "whole_documents": _documents(documents, num_anchors=None),
        "image_text": ImageTextDataModule(
            str(pairs), val_manifest=str(pairs), size=12, batch_size=2, **LOADER
        ),
        "qa": MultipleChoiceQADataModule(synth=SYNTH, synth_root=str(synth_root), batch_size=2, **LOADER),
        "qa_video": MultipleChoiceQADataModule(
            synth=SYNTH, synth_root=str(synth_root), video=True, num_frames=4, size=16, batch_size=2, **LOADER
        ),
        "tracklets": _tracklets(synth_root),
    }


def _loaders(module: ZooDataModule) -> dict[str, DataLoader]:
    loaders = {"train": module.train_dataloader()}
    val = module.val_dataloader() if module.has_split("val") or isinstance(module, TrackletDataModule) else []
    for i, loader in enumerate(val if isinstance(val, list) else [val]):
        loaders[f"val{i}"] = loader
    return loaders


def test_every_batch_of_every_datamodule_fits_the_contract(tmp_path, synth_root, documents):
    shapes = {}
    for name, module in _modules(tmp_path, synth_root, documents).items():
        module.setup("fit")
        for split, loader in _loaders(module).items():
            batch = next(iter(loader))
            check_batch(batch, owner=f"{name} {split}")
            shapes[name, split] = {k: tuple(v.shape) for k, v in batch.items() if isinstance(v, torch.Tensor)}
            assert all(isinstance(v, (torch.Tensor, dict)) for v in batch.values()), (
                name,
                split,
            )  # text tokenised
    batch_size, _, dim = shapes["features", "train"]["features"]
    assert (batch_size, dim) == (2, 6) and shapes["sorted", "train"]["features"] == (2, 8, 6)
    assert shapes["sorted", "val0"]["mask"][1] >= 25  # evaluation takes whole sequences
    assert shapes["documents", "train"]["caption_to_video"] == (2,)
    assert shapes["image_text", "train"] == {"image": (2, 3, 12, 12), "multilabel": (2, 4), "index": (2,)}
    assert shapes["qa_video", "train"]["video"] == (2, 3, 4, 16, 16)
    assert shapes["tracklets", "train"]["video"] == (4, 3, 4, 16, 16)
    assert (
        shapes["tracklets", "val0"]["video"][1:] == shapes["tracklets", "val1"]["video"][1:]
    )  # query, gallery


def test_classes_are_known_after_construction(tmp_path, synth_root):
    features = FeatureSequenceDataModule(str(make_mstcn(tmp_path / "f", {"a": 20, "b": 22})), **LOADER)
    assert features.classes == ["SIL", "take_cup", "pour_milk", "stir"] and features.feature_dim == 6
    pairs = ImageTextDataModule(str(make_image_text(tmp_path / "p")), **LOADER)
    assert pairs.num_classes == 4
    tracklets = _tracklets(synth_root)
    assert tracklets.num_classes == 5  # the first half of 10 identities trains
    tracklets.setup("fit")
    assert {record.label for record in tracklets.datasets["train"].records} == set(range(5))
    query = tracklets.records("query")  # identities 5..9: labels index the split's identities, as MARS's do
    assert {r.label for r in query} == set(range(5)) and {r.extra["pid"] for r in query} == set(range(5, 10))


def test_features_extracted_from_synthmotion_long_videos(synth_root, tmp_path):
    """The two steps of the module docstring: extract per-frame features once, then read the folder."""
    from zoo.data.sequences import synthmotion_long_videos
    from zoo.data.transforms import ToFloat
    from zoo.eval.features import extract_sequence_features

    videos, labels, mapping = synthmotion_long_videos(synth_root)
    out = extract_sequence_features(
        lambda x: x.mean(dim=(-2, -1)), videos, tmp_path / "features", label_files=labels,
        mapping_file=mapping, transform=ToFloat(), progress=False,
    )  # fmt: skip
    module = FeatureSequenceDataModule(
        str(out), mode="sorted", num_frames=6, num_splits=3, batch_size=2, **LOADER
    )
    assert module.feature_dim == 3 and module.num_classes == len(mapping.read_text().splitlines())
    batch = next(iter(module.train_dataloader()))
    check_batch(batch, owner="feature sequences")
    assert batch["features"].shape == (2, 6, 3)
    assert (batch["frame_indices"].diff(dim=-1) >= 0).all()  # sorted in time
    records = module.datasets["train"].records
    lengths = {Path(path).stem: len(Path(path).read_text().split()) for path in labels}
    assert batch["num_frames"].tolist() == [lengths[records[i].video_id] for i in batch["index"]]


# ------------------------------------------------------------------------------------------------------
# seeding and DDP


def _epochs(module: ZooDataModule, epochs: int = 2) -> list[list[dict]]:
    loader = module.train_dataloader()
    out = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)  # what Lightning does at every epoch start
        out.append(list(loader))
    return out


def _same(a: list[dict], b: list[dict], key: str) -> bool:
    def values(batch):
        value = batch[key]
        return value["input_ids"] if isinstance(value, dict) else value

    return len(a) == len(b) and all(torch.equal(values(x), values(y)) for x, y in zip(a, b))


@pytest.mark.parametrize("kind", ["documents", "tracklets"])
def test_draws_depend_on_seed_epoch_and_index_not_on_workers(kind, synth_root, documents):
    def make(**kwargs):
        if kind == "documents":
            return _documents(documents, **kwargs), "positives"
        return _tracklets(synth_root, **kwargs), "video"

    (module, key) = make(seed=3, num_workers=2, persistent_workers=True)
    two_workers = _epochs(module)
    single = _epochs(make(seed=3)[0])
    assert _same(two_workers[0], single[0], key) and _same(two_workers[1], single[1], key)
    assert _same(two_workers[0], single[0], "index")
    assert not _same(single[0], single[1], key)  # a new epoch: new order and new draws
    assert not _same(single[0], _epochs(make(seed=4)[0], 1)[0], key)


def test_ranks_get_disjoint_shards(documents):
    shards = []
    for rank in range(2):
        module = _documents(documents, drop_last=False, batch_size=1)
        module._world = lambda rank=rank: (2, rank)
        loader = module.train_dataloader()
        assert isinstance(loader.sampler, DistributedSampler)  # Lightning keeps it
        shards.append([int(b["index"]) for b in loader])
    assert not set(shards[0]) & set(shards[1]) and sorted(shards[0] + shards[1]) == list(range(6))


def test_pk_batches_split_across_ranks(synth_root):
    whole = _tracklets(synth_root, p=2, k=3)
    identities = whole.records("train")
    per_rank = []
    for rank in range(2):
        module = _tracklets(synth_root, p=2, k=3)
        module._world = lambda rank=rank: (2, rank)
        loader = module.train_dataloader()
        assert isinstance(loader.sampler, BatchEpochSampler) and loader.batch_size == 6
        batches = [b["index"].tolist() for b in loader]
        expected = list(
            PKSampler([r.extra["pid"] for r in identities], 2, 3, seed=0, num_replicas=2, rank=rank)
        )
        assert batches == expected and len(batches) == 1
        for batch in loader:
            assert sorted(Counter(batch["identity"].tolist()).values()) == [3, 3]  # P identities x K
        per_rank.append({i for b in batches for i in b})
    identity_of = {i: r.extra["pid"] for i, r in enumerate(identities)}
    assert not {identity_of[i] for i in per_rank[0]} & {identity_of[i] for i in per_rank[1]}


def test_lightning_keeps_the_pk_sampler_under_ddp(synth_root):
    """Lightning re-creates a loader whose sampler is not a DistributedSampler; a bare PK batch sampler fails."""
    from lightning.pytorch.trainer.states import RunningStage

    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", logger=False, use_distributed_sampler=True
    )
    module = _tracklets(synth_root)
    loader = module.train_dataloader()
    assert trainer._data_connector._prepare_dataloader(loader, True, RunningStage.TRAINING) is loader
    bare = DataLoader(
        module.datasets["train"], batch_sampler=PKSampler(module.datasets["train"].identities, 2, 2)
    )
    with pytest.raises(TypeError, match="can't inject a \\(distributed\\) sampler"):
        trainer._data_connector._prepare_dataloader(bare, True, RunningStage.TRAINING)


class _Recorder(pl.LightningModule):
    def __init__(self, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        self.weight = nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[int, list[int]]] = []

    def training_step(self, batch, batch_idx):
        dataset = self.trainer.datamodule.datasets["train"]
        self.seen.append((dataset.epoch, sorted(set(batch["identity"].tolist()))))
        return (self.weight * batch["video"].mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_sets_the_epoch_of_the_pk_batches_and_the_dataset(synth_root, tmp_path):
    module = _tracklets(synth_root)
    model = _Recorder()
    trainer = pl.Trainer(
        max_epochs=3, limit_train_batches=1, limit_val_batches=0, accelerator="cpu", logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, datamodule=module)
    assert [epoch for epoch, _ in model.seen] == [0, 1, 2]
    assert len({tuple(ids) for _, ids in model.seen}) > 1  # the PK batches change with the epoch


# ------------------------------------------------------------------------------------------------------
# errors and the CLI


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: _documents(d, batch_size=0), r"batch_size must be an integer >= 1, got 0"),
        (lambda d: _documents(d, num_workers=-1), r"num_workers must be an integer >= 0, got -1"),
        (lambda d: _documents(d, drop_last="yes"), r"drop_last must be true or false, got 'yes'"),
        (lambda d: _documents(d, tokenizer=None), r"DocumentDataModule needs a tokenizer"),
        (lambda d: _documents(d, tokenizer="no/such/tokenizer.json"), r"tokenizer 'no/such/tokenizer.json'"),
        (lambda d: _documents(d, min_span_len=40), r"min_span_len <= max_span_len"),
        (lambda d: TrackletDataModule(p=0), r"p must be an integer >= 1, got 0"),
        (lambda d: TrackletDataModule(synth={"reid_identities": 0}), r"needs synth reid_identities >= 2"),
        (lambda d: TrackletDataModule(synth={"colour": 1}), r"synth: .*colour"),
        (lambda d: TrackletDataModule(num_frames=0), r"num_frames must be >= 1, got 0"),
        (lambda d: MultipleChoiceQADataModule(synth={"qa_per_clip": 0}), r"needs synth qa_per_clip >= 1"),
        (lambda d: FeatureSequenceDataModule(str(d.parent)), r"mapping\.txt' not found"),
    ],
)
def test_bad_arguments_are_one_line_errors_at_construction(make, message, documents):
    with pytest.raises((UsageError, FileNotFoundError), match=message) as caught:
        make(documents)
    assert "\n" not in str(caught.value)


def test_a_sorted_mode_without_frames_names_the_fields(tmp_path):
    root = make_mstcn(tmp_path / "f", {"a": 20})
    with pytest.raises(UsageError, match="num_frames divisible by num_splits"):
        FeatureSequenceDataModule(str(root), mode="sorted", num_splits=2, **LOADER)


def test_a_missing_split_is_named(documents):
    module = DocumentDataModule(str(documents), max_span_len=24, min_span_len=4, **LOADER)
    with pytest.raises(
        UsageError, match="no test data: DocumentDataModule was given none for the test split"
    ):
        module.test_dataloader()


@pytest.mark.parametrize("kind", ["features", "tracklets", "image_text"])
def test_lightning_cli_builds_it_by_class_name(kind, tmp_path, synth_root, monkeypatch):
    from lightning.pytorch.cli import LightningCLI

    monkeypatch.setattr("sys.argv", ["zoo"])

    class CLI(LightningCLI):
        def add_arguments_to_parser(self, parser):
            parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")

    data = {
        "features": ("FeatureSequenceDataModule", {"root": str(make_mstcn(tmp_path / "f", {"a": 20}))}, 4),
        "tracklets": (
            "TrackletDataModule",
            {"synth": SYNTH, "synth_root": str(synth_root), "p": 2, "k": 2, "num_frames": 4, "size": 16},
            5,
        ),
        "image_text": (
            "ImageTextDataModule",
            {"train_manifest": str(make_image_text(tmp_path / "p")), "batch_size": 2},
            4,
        ),
    }
    name, init_args, num_classes = data[kind]
    config = {
        "data": {"class_path": f"zoo.data.datamodules.{name}", "init_args": {**init_args, "num_workers": 0}},
        "trainer": {"default_root_dir": str(tmp_path), "logger": False},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = CLI(
        _Recorder, pl.LightningDataModule, subclass_mode_data=True, run=False, args=["--config", str(path)]
    )
    assert type(cli.datamodule).__name__ == name and cli.model.num_classes == num_classes
    check_batch(next(iter(cli.datamodule.train_dataloader())), owner=name)


def test_saved_hyperparameters_rebuild_the_datamodule(tmp_path, synth_root, documents):
    """``hparams`` (what a checkpoint keeps) are the constructor's arguments: ``cls(**hparams)`` rebuilds it,
    also where a DataModule fixes a loader option of the base (tracklets: nothing dropped; no tokenizer)."""
    for name, module in _modules(tmp_path, synth_root, documents).items():
        rebuilt = type(module)(**module.hparams)
        assert dict(rebuilt.hparams) == dict(module.hparams), name
        for option in ("batch_size", "num_workers", "persistent_workers", "drop_last", "seed"):
            assert getattr(rebuilt, option) == getattr(module, option), (name, option)


@pytest.mark.parametrize(
    ("name", "defaults", "absent"),
    [
        ("FeatureSequenceDataModule", {"batch_size": 1, "drop_last": False, "num_workers": 2}, ["tokenizer"]),
        ("TrackletDataModule", {"batch_size": 8, "seed": 0}, ["drop_last", "tokenizer", "max_text_length"]),
        ("DocumentDataModule", {"tokenizer": "bytes", "max_text_length": 512, "pin_memory": False}, []),
    ],
)
def test_the_cli_offers_the_loader_options_a_datamodule_takes(name, defaults, absent):
    """Loader options pass through ``**loader_options`` to the base; the CLI still lists each with its default."""
    from jsonargparse import ArgumentParser

    import zoo.data.datamodules

    parser = ArgumentParser()
    parser.add_class_arguments(getattr(zoo.data.datamodules, name), "data")
    options = vars(parser.get_defaults().data)
    assert {key: options.get(key) for key in defaults} == defaults
    assert not set(absent) & set(options)
