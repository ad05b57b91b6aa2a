"""VideoDataModule: batch shapes per split, seeding per epoch and worker, Lightning epochs and CLI by class name."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import yaml
from helpers import generate_synth, tiny_synth
from torch import nn
from torch.utils.data import DistributedSampler

from zoo.data.datamodule import EpochSampler, VideoDataModule
from zoo.errors import UsageError

SYNTH = tiny_synth(
    num_frames=12,
    num_classes=3,
    train_per_class=4,
    val_per_class=2,
    test_per_class=2,
    languages=("en",),
    audio=True,
)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return generate_synth(tmp_path_factory.mktemp("synth"), SYNTH)


def _module(synth_root: Path, **kwargs) -> VideoDataModule:
    defaults = dict(
        synth=SYNTH, synth_root=str(synth_root), num_frames=4, stride=2, size=16, batch_size=4, num_workers=0
    )
    return VideoDataModule(**{**defaults, **kwargs})


def test_num_classes_before_setup_and_default_synth(synth_root):
    module = _module(synth_root)
    assert module.uses_synth and module.num_classes == 3
    assert module.classes == ["slide_left", "slide_right", "slide_up"]


def test_batches_have_the_right_keys_and_shapes(synth_root):
    module = _module(synth_root, audio=True, text=True, num_views=2, test_clips=2, test_crops=3)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["video_views"].shape == (4, 2, 3, 4, 16, 16)
    assert batch["label"].dtype == torch.int64 and batch["label"].shape == (4,)
    assert batch["index"].shape == (4,) and batch["frame_indices"].shape == (4, 1, 4)
    assert "audio" not in batch  # a spectrogram per view
    assert batch["audio_views"].shape == (4, 2, 1, 80, 201) and batch["audio_views_mask"].shape == (4, 2, 201)
    assert batch["text"]["input_ids"].shape[0] == 4 and batch["text"]["input_ids"].dtype == torch.int64
    val = next(iter(module.val_dataloader()))
    assert val["video"].shape == (4, 3, 4, 16, 16) and val["audio"].shape == (4, 1, 80, 201)
    module.setup("test")
    test = next(iter(module.test_dataloader()))
    assert test["video_views"].shape == (4, 6, 3, 4, 16, 16)  # 2 clips x 3 crops
    assert test["audio_views"].shape == (4, 6, 1, 80, 201)
    torch.testing.assert_close(
        test["audio_views"][:, 0], test["audio_views"][:, 2]
    )  # crops share a clip's sound
    assert len(module.datasets["val"]) == 6 and len(module.datasets["train"]) == 12


def test_distinct_clip_views(synth_root):
    module = _module(synth_root, num_views=3, view_clips="distinct", max_view_distance=0.5, labels=False)
    batch = next(iter(module.train_dataloader()))
    assert batch["video_views"].shape == (4, 3, 3, 4, 16, 16) and "label" not in batch
    starts = batch["frame_indices"][:, :, 0]
    assert (starts - starts[:, :1]).abs().max() <= 8  # 0.5 s at 16 fps


def _epoch_batches(module: VideoDataModule, loader, epoch: int) -> list[dict]:
    loader.sampler.set_epoch(epoch)  # what Lightning does at every epoch start
    return list(loader)


def _same(a: list[dict], b: list[dict]) -> bool:
    return all(
        torch.equal(x["video"], y["video"]) and torch.equal(x["index"], y["index"]) for x, y in zip(a, b)
    )


def test_seeding_is_deterministic_per_epoch_and_independent_of_workers(synth_root):
    two = _module(synth_root, num_workers=2, persistent_workers=True, seed=3)
    loader = two.train_dataloader()
    epoch0, epoch1 = _epoch_batches(two, loader, 0), _epoch_batches(two, loader, 1)  # persistent workers
    again = _module(synth_root, num_workers=2, persistent_workers=False, seed=3)
    loader2 = again.train_dataloader()
    assert _same(epoch0, _epoch_batches(again, loader2, 0))
    assert _same(epoch1, _epoch_batches(again, loader2, 1))
    assert not _same(epoch0, epoch1)  # a new order and new augmentations
    single = _module(synth_root, num_workers=0, seed=3)
    assert _same(epoch1, _epoch_batches(single, single.train_dataloader(), 1))  # same with no workers
    other_seed = _module(synth_root, num_workers=0, seed=4)
    assert not _same(epoch0, _epoch_batches(other_seed, other_seed.train_dataloader(), 0))


def test_ranks_get_disjoint_shards(synth_root):
    module = _module(synth_root)
    module.setup("fit")
    dataset = module.datasets["train"]
    shards = [list(EpochSampler(dataset, num_replicas=2, rank=r, seed=0)) for r in range(2)]
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) + len(shards[1]) == len(dataset)
    # Lightning injects its own DistributedSampler only when the loader's sampler is not one
    assert isinstance(module.train_dataloader().sampler, DistributedSampler)


def test_device_transforms_move_augmentation_to_the_batch(synth_root):
    module = _module(synth_root, device_transforms=True, num_views=2, test_clips=2, test_crops=3)
    module.setup("fit")
    raw = next(iter(module.train_dataloader()))
    assert raw["video_views"].dtype == torch.uint8 and raw["video_views"].shape == (4, 2, 4, 32, 32, 3)
    out = module.apply_device_transform(raw, "train")
    assert out["video_views"].shape == (4, 2, 3, 4, 16, 16) and out["video_views"].dtype == torch.float32
    val = module.apply_device_transform(next(iter(module.val_dataloader())), "val")
    reference = _module(synth_root)
    reference.setup("fit")
    torch.testing.assert_close(
        val["video"], next(iter(reference.val_dataloader()))["video"]
    )  # same eval result
    module.setup("test")
    test = module.apply_device_transform(next(iter(module.test_dataloader())), "test")
    assert test["video_views"].shape == (4, 6, 3, 4, 16, 16)


class _TinyClassifier(pl.LightningModule):
    def __init__(self, num_classes: int = 2):
        super().__init__()
        self.num_classes = num_classes
        self.head = nn.Linear(3, num_classes)
        self.seen_epochs: list[int] = []

    def training_step(self, batch, batch_idx):
        self.seen_epochs.append(self.trainer.datamodule.datasets["train"].epoch)
        logits = self.head(batch["video"].mean(dim=(2, 3, 4)))
        return nn.functional.cross_entropy(logits, batch["label"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("device_transforms", [False, True])
def test_lightning_sets_the_epoch_of_the_dataset(synth_root, tmp_path, device_transforms):
    module = _module(synth_root, device_transforms=device_transforms)
    model = _TinyClassifier(module.num_classes)
    trainer = pl.Trainer(
        max_epochs=3,
        limit_train_batches=1,
        limit_val_batches=0,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=module)
    assert model.seen_epochs == [0, 1, 2]


def test_lightning_cli_builds_it_by_class_name(synth_root, tmp_path, monkeypatch):
    from lightning.pytorch.cli import LightningCLI

    monkeypatch.setattr("sys.argv", ["zoo"])

    class CLI(LightningCLI):
        def add_arguments_to_parser(self, parser):
            parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")

    manifest = synth_root / "train.csv"
    cli = CLI(
        _TinyClassifier,
        pl.LightningDataModule,
        subclass_mode_data=True,
        run=False,
        args=[
            "--data",
            "VideoDataModule",
            "--data.train_manifest",
            str(manifest),
            "--data.val_manifest",
            str(synth_root / "val.csv"),
            "--data.num_frames",
            "4",
            "--data.size",
            "16",
            "--data.mean",
            "[0.5, 0.5, 0.5]",
            "--data.num_workers",
            "0",
            "--trainer.default_root_dir",
            str(tmp_path),
        ],
    )
    assert isinstance(cli.datamodule, VideoDataModule)
    assert cli.datamodule.hparams.train_manifest == str(manifest) and cli.datamodule.hparams.num_frames == 4
    assert tuple(cli.datamodule.hparams.mean) == (0.5, 0.5, 0.5)
    assert cli.model.num_classes == 3  # linked from the manifest's classes.txt
    batch = next(iter(cli.datamodule.train_dataloader()))
    assert batch["video"].shape == (8, 3, 4, 16, 16)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("batch_size", 0, r"batch_size must be an integer >= 1, got 0"),
        ("batch_size", -1, r"batch_size must be an integer >= 1, got -1"),
        ("num_workers", -2, r"num_workers must be an integer >= 0, got -2"),
        ("num_views", 0, r"num_views must be an integer >= 1, got 0"),
        ("test_clips", 0, r"test_clips must be an integer >= 1, got 0"),
        ("num_frames", 0, r"num_frames must be >= 1, got 0"),
        ("stride", 0, r"stride must be > 0, got 0"),
        ("size", 0, r"size must be >= 1 pixel, got 0"),
        ("target_fps", -5.0, r"target_fps must be > 0, got -5.0"),
    ],
)
def test_bad_arguments_are_usage_errors_at_construction(field, value, message):
    """They were tracebacks from inside the loaders or workers; now one line naming the field, up front."""
    with pytest.raises(UsageError, match=message):
        VideoDataModule(**{field: value})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(audio_front_end={"hop": 0}), r"^audio_front_end: AudioFrontEnd.hop must be positive; got 0$"),
        (
            dict(audio_front_end={"hops": 160}),
            r"^audio_front_end: unknown field 'hops'; AudioFrontEnd has kind,",
        ),
        (dict(audio_window={"align": "middle"}), r"^audio_window: AudioWindow.align must be"),
        (dict(audio_augment=3), r"^audio_augment must be a AudioAugment or a mapping of its fields, got 3$"),
        (dict(audio_preset="nope"), r"unknown audio preset 'nope'"),
        (dict(n_mels=0), r"^n_mels: AudioFrontEnd.n_filters must be positive; got 0$"),
    ],
)
def test_a_misconfigured_audio_front_end_names_the_field(arguments, message):
    with pytest.raises(UsageError, match=message):
        VideoDataModule(audio=True, **arguments)


@pytest.mark.parametrize(
    ("synth", "message"),
    [
        ({"num_clases": 2}, r"^synth: .*unexpected keyword argument 'num_clases'"),
        ({"size": 15}, r"^synth: .*size"),
    ],
)
def test_a_bad_synth_field_fails_at_construction(tmp_path, synth, message):
    """SynthMotion's config is checked with the other arguments (it was a TypeError at the first use)."""
    with pytest.raises(UsageError, match=message):
        VideoDataModule(synth=synth, synth_root=str(tmp_path / "synth"))
    assert not (tmp_path / "synth").exists()
    VideoDataModule(train_manifest=str(tmp_path / "train.csv"), synth=synth)  # not SynthMotion: not read


def test_a_tokenizer_that_cannot_be_found_fails_at_construction(tmp_path, monkeypatch):
    from zoo.data.text import TokenizerNotFoundError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for missing in (str(tmp_path / "absent" / "tokenizer.json"), "some-org/not-cached-tokenizer"):
        with pytest.raises(TokenizerNotFoundError) as info:
            VideoDataModule(text=True, tokenizer=missing)  # before any data is read or worker started
        assert "\n" not in str(info.value) and "tokenizer" in str(info.value)
    assert VideoDataModule(text=False, tokenizer="some-org/not-cached-tokenizer").tokenizer is None


def test_synthmotion_records_carry_captions_per_language(tmp_path):
    synth = {**SYNTH, "num_classes": 1, "train_per_class": 2, "val_per_class": 1, "test_per_class": 1}
    synth.update(languages=("en", "fr"), captions_per_language=2)
    root = generate_synth(tmp_path / "synth", synth)
    module = _module(root, synth=synth, text=True, captions_per_video=4, languages=["en", "fr"], batch_size=2)
    record = module.records("train").records[0]
    assert sorted(record.extra["captions"]) == ["en", "fr"]
    assert all(len(texts) == 2 for texts in record.extra["captions"].values())
    batch = next(iter(module.train_dataloader()))
    assert batch["text"]["input_ids"].shape[:2] == (2, 4)
    assert sorted(batch["text_language"][0].tolist()) == [0, 0, 1, 1]  # both captions of both languages


@pytest.mark.parametrize(("field", "value"), [("batch_size", 0), ("num_frames", 0), ("num_workers", -1)])
def test_zoo_fit_with_a_bad_data_argument_is_one_line(tmp_path, tiny_synth_data, capsys, field, value):
    from zoo.cli import main

    config = {
        "trainer": {"accelerator": "cpu", "max_epochs": 1, "logger": False, "enable_checkpointing": False},
        "model": {
            "class_path": "VideoClassifier",
            "init_args": {"backbone": "joint_tiny", "backbone_args": {"img_size": 32, "num_frames": 4}},
        },
        "data": {"class_path": "VideoDataModule", "init_args": {**tiny_synth_data, "size": 32, field: value}},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0] and "Traceback" not in err[0]


def test_generic_manifest_and_errors(synth_root):
    module = VideoDataModule(
        train_manifest=str(synth_root / "train.csv"), num_workers=0, batch_size=2, size=16
    )
    assert not module.uses_synth and module.num_classes == 3
    with pytest.raises(ValueError, match="no val data"):
        module.val_dataloader()
    with pytest.raises(ValueError, match="view_clips"):
        VideoDataModule(view_clips="both")


def test_audio_preset_augments_the_training_split_only(synth_root):
    from zoo.data.audio_transforms import AudioWindow, audio_preset

    module = _module(synth_root, audio=True, audio_preset="gdt", audio_window={"seconds": 0.5})
    module.setup("fit")
    front_end, _, augment = audio_preset("gdt")
    train, val = module.datasets["train"], module.datasets["val"]
    assert train.audio_front_end == front_end == val.audio_front_end
    assert train.audio_window == val.audio_window == AudioWindow(seconds=0.5)  # the explicit field wins
    assert train.audio_augment == augment and val.audio_augment is None
