"""Video person re-ID (TRL + ST²N): the recipe fits through `zoo fit` on SynthMotion and on the MARS layout,
the loss is identity cross-entropy plus the batch-hard triplet loss, evaluation is CMC/mAP of query against
gallery with identities disjoint from training, and a one-frame tracklet is a named error."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
import yaml
from helpers import tiny_fit_override
from PIL import Image

from zoo.cli import main
from zoo.data.datamodules import TrackletDataModule
from zoo.errors import UsageError
from zoo.eval.reid import reid_metrics
from zoo.methods.reid import TemporalResidualReID
from zoo.models.reid import TrackletTooShortError
from zoo.serialization import safe_torch_load

RECIPE = Path(__file__).parents[2] / "configs" / "reid" / "synthmotion.yaml"
SYNTH = dict(
    size=32, num_frames=8, train_per_class=0, val_per_class=0, test_per_class=0, long_videos=0, audio=False,
    qa_per_clip=0, reid_identities=8, reid_cameras=2, reid_tracklets=2,
)  # fmt: skip
LOADER = dict(num_workers=0, persistent_workers=False)
SMALL = dict(backbone="resnet10", trl_hidden_dim=8, st2n_hidden_dim=8)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from zoo.data.synthmotion import SynthMotionConfig, generate

    return generate(tmp_path_factory.mktemp("synth"), SynthMotionConfig(**SYNTH), progress=False, workers=1)


def _data(synth_root: Path, **kwargs) -> dict:
    args = dict(synth=SYNTH, synth_root=str(synth_root), p=2, k=2, num_frames=4, size=32, batch_size=4)
    return {**args, **LOADER, **kwargs}


def _mars(root: Path, one_frame: str | None = None) -> Path:
    """A tiny MARS frame-folder layout: 4 training and 3 test identities, 2 cameras, 3 frames a tracklet."""
    for folder, pids in (("bbox_train", range(1, 5)), ("bbox_test", range(5, 8))):
        for pid in pids:
            for camera in (1, 2):
                name = f"{pid:04d}C{camera}T0001"
                frames = 1 if name == one_frame else 3
                (root / folder / f"{pid:04d}").mkdir(parents=True, exist_ok=True)
                for f in range(frames):
                    colour = (pid * 30 % 256, camera * 60 + f * 10, 255 - pid * 20)
                    Image.new("RGB", (16, 32), colour).save(
                        root / folder / f"{pid:04d}" / f"{name}F{f + 1:03d}.jpg"
                    )
    return root


def test_recipe_fits_reloads_and_tests_on_synthmotion(tmp_path, synth_root):
    override = tiny_fit_override(tmp_path, _data(synth_root))
    assert main(["fit", "--config", str(RECIPE), "--config", str(override)]) == 0
    path = tmp_path / "ckpt" / "last.ckpt"
    assert safe_torch_load(path)["global_step"] == 2
    model = TemporalResidualReID.load_from_checkpoint(path)
    assert model.hparams.num_classes == 4 and model.model.fc.out_features == 4  # the 4 training identities
    assert model.model.st2n is not None and model.model.trl is not None
    assert main(["test", "--config", str(RECIPE), "--config", str(override), "--ckpt_path", str(path)]) == 0


def test_query_and_gallery_identities_are_disjoint_from_training(synth_root):
    datamodule = TrackletDataModule(**_data(synth_root))
    datamodule.setup("fit")
    train, query, gallery = (set(datamodule._dataset(s).identities) for s in ("train", "query", "gallery"))
    assert train and query and not train & (query | gallery)
    assert query <= gallery


def _batch(video: torch.Tensor, identity: list[int]) -> dict[str, torch.Tensor]:
    b, _, t = video.shape[:3]
    return {
        "video": video,
        "identity": torch.tensor(identity),
        "label": torch.tensor(identity),
        "index": torch.arange(b),
        "frame_indices": torch.arange(t).repeat(b, 1, 1),  # (B, 1, T)
    }


def test_loss_is_identity_cross_entropy_plus_batch_hard_triplet():
    torch.manual_seed(0)
    model = TemporalResidualReID(num_classes=3, triplet_margin=0.3, id_loss_weight=0.5, **SMALL)
    batch = _batch(torch.randn(6, 3, 4, 32, 32), [0, 0, 1, 1, 2, 2])
    loss = model.training_step(batch, 0)
    embedding = model(batch["video"]).detach()  # (B, D); train-mode BN: the same batch gives the same output
    logits = model.model.classify(embedding)
    cross_entropy = -logits.log_softmax(1)[torch.arange(6), batch["label"]].mean()
    triplets = []
    for a in range(6):
        same = [j for j in range(6) if j != a and batch["identity"][j] == batch["identity"][a]]
        other = [j for j in range(6) if batch["identity"][j] != batch["identity"][a]]
        hardest_positive = max(float((embedding[a] - embedding[j]).norm()) for j in same)
        hardest_negative = min(float((embedding[a] - embedding[j]).norm()) for j in other)
        triplets.append(max(0.0, 0.3 + hardest_positive - hardest_negative))
    expected = 0.5 * float(cross_entropy) + sum(triplets) / len(triplets)
    assert float(loss) == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_logged_figures_are_cmc_and_map_of_query_against_gallery(synth_root):
    L.seed_everything(0, verbose=False)
    datamodule = TrackletDataModule(**_data(synth_root))
    model = TemporalResidualReID(metric="cosine", **SMALL)
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    logged = trainer.validate(model, datamodule=datamodule, verbose=False)[0]
    assert model.model.fc.out_features == 4  # identities of the training split

    def features(loader):
        parts = [(model(b["video"]), b["identity"], b["camera"]) for b in loader]
        return [torch.cat(p) for p in zip(*parts)]

    model.eval()
    with torch.no_grad():
        query, gallery = (features(loader) for loader in datamodule.val_dataloader())
    expected = reid_metrics(*query, *gallery, metric="cosine")
    for name in ("rank-1", "rank-5", "rank-10", "rank-20", "mAP"):
        assert logged[f"val/{name}"] == pytest.approx(expected[name], abs=1e-4)
    assert expected["evaluated_queries"] == 4


def test_mars_layout_fits_and_tests(tmp_path):
    root = _mars(tmp_path / "mars")
    data = {"root": str(root), "p": 2, "k": 2, "num_frames": 4, "size": 32, "batch_size": 4, **LOADER}
    override = tiny_fit_override(tmp_path, data)
    config = yaml.safe_load(override.read_text())
    config["data"]["class_path"] = "zoo.data.datamodules.TrackletDataModule"
    override.write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(RECIPE), "--config", str(override)]) == 0
    path = tmp_path / "ckpt" / "last.ckpt"
    assert TemporalResidualReID.load_from_checkpoint(path).hparams.num_classes == 4


def test_a_one_frame_tracklet_is_named_or_repeated_as_configured(tmp_path, capsys):
    root = _mars(tmp_path / "mars", one_frame="0002C2T0001")
    data = {"root": str(root), "p": 4, "k": 2, "num_frames": 4, "size": 32, "batch_size": 4, **LOADER}
    override = tiny_fit_override(tmp_path, data, max_steps=1)
    config = yaml.safe_load(override.read_text())
    config["trainer"]["num_sanity_val_steps"] = 0
    override.write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(RECIPE), "--config", str(override)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "0002C2T0001" in err[0] and "single frame" in err[0], err
    repeat = ["--model.init_args.single_frame", "repeat"]
    assert main(["fit", "--config", str(RECIPE), "--config", str(override), *repeat]) == 0


def test_one_frame_clips_fail_before_the_network():
    model = TemporalResidualReID(num_classes=2, **SMALL)
    batch = _batch(torch.randn(4, 3, 1, 32, 32), [0, 0, 1, 1])
    with pytest.raises(TrackletTooShortError, match="train tracklet 0 has a single frame"):
        model.training_step(batch, 0)
    with pytest.raises(UsageError, match="single_frame must be 'error' or 'repeat'"):
        TemporalResidualReID(single_frame="drop")


@pytest.mark.slow
def test_training_fits_a_batch_of_tracklets():
    """Learning signal in miniature: 40 Adam steps on one PK batch lower the loss by more than half."""
    torch.manual_seed(0)
    model = TemporalResidualReID(num_classes=4, lr=1e-3, **SMALL)
    colours = torch.rand(4, 3, 1, 1, 1)  # one appearance per identity
    video = (colours.repeat_interleave(2, 0) + 0.3 * torch.randn(8, 3, 4, 32, 32)).float()
    batch = _batch(video, [0, 0, 1, 1, 2, 2, 3, 3])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(40):
        loss = model.training_step(batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    assert F.cross_entropy(model.model.classify(model(video)), batch["label"]) < 0.5
