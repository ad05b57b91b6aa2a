"""What SSLMethod gives every method: momentum encoders, queues, parameter groups, dataset passes,
validation hooks, step outputs and named errors for missing batch keys."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from zoo.errors import UsageError
from zoo.eval.features import embed
from zoo.methods.base import MissingBatchKeyError, ParamGroup, SSLMethod
from zoo.methods.memory import LabelBuffer, MemoryQueue, gather_by_index
from zoo.methods.momentum import cosine_tau


class Points(Dataset):
    """Points in R⁴ near one of four corners; samples carry their ``index``."""

    def __init__(self, n: int = 24, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.label = torch.arange(n) % 4
        self.x = torch.eye(4)[self.label] * 3 + 0.3 * torch.randn(n, 4, generator=g)

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> dict:
        return {"video": self.x[i], "label": self.label[i], "index": torch.tensor(i)}


class PointData(L.LightningDataModule):
    def __init__(self, n: int = 24, batch_size: int = 8):
        super().__init__()
        self.train, self.batch_size, self.num_classes = Points(n), batch_size, 4

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(Points(8, seed=1), batch_size=self.batch_size)


class ToyMethod(SSLMethod):
    """Two towers (``video`` and a second ``text`` one), a momentum twin of ``video``, a queue of
    its keys, a label buffer filled by nearest-corner assignment in a dataset pass."""

    def __init__(self, arch: str = "zoo_test_tinynet", queue_size: int = 10, **kwargs):
        kwargs.setdefault("optimizer", "sgd")
        kwargs.setdefault("lr", 0.1)
        kwargs.setdefault("warmup_epochs", 0.0)
        super().__init__(**kwargs)
        online = self.add_encoder("video", arch)
        self.add_encoder("text", arch)
        self.target = self.add_momentum_encoder("video", online)
        self.negatives = self.add_queue("negatives", queue_size, online.num_features)
        self.assignments = self.add_label_buffer("corners")
        self.staged: list[torch.Tensor] = []
        self.passes: list[dict[str, torch.Tensor]] = []

    def ssl_step(self, batch):
        x = self.require(batch, "video")
        z = self.embed("video", x) + self.embed("text", x)
        with torch.no_grad():
            keys = embed(self.target.target, x)  # pooled features of the EMA twin
        self.negatives.stage(keys)
        self.staged.append(keys)
        return {"loss": F.mse_loss(z, torch.ones_like(z)), "features": z}

    def ssl_validation_step(self, batch):
        return {"toy_metric": batch["video"].abs().mean()}

    def dataset_pass_step(self, batch):
        return {"corner": batch["video"].argmax(dim=1), "norm": batch["video"].norm(dim=1)}

    def on_dataset_pass(self, outputs):
        self.passes.append(outputs)
        self.assignments.update(outputs["index"], outputs["corner"])


def _trainer(tmp_path, **kwargs) -> L.Trainer:
    options = dict(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        max_epochs=2,
    )
    return L.Trainer(**{**options, **kwargs})


@pytest.fixture
def fitted(tiny_arch, tmp_path):
    torch.manual_seed(0)
    model = ToyMethod(tiny_arch, dataset_pass_every_n_epochs=1)
    online_after_step: list[list[torch.Tensor]] = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            online_after_step.append([p.detach().clone() for p in pl_module.encoders["video"].parameters()])

    initial = [p.detach().clone() for p in model.encoders["video"].parameters()]
    trainer = _trainer(tmp_path, callbacks=[Record()])
    trainer.fit(model, datamodule=PointData())
    return model, trainer, initial, online_after_step


def test_momentum_encoder_follows_the_ema_of_every_step(fitted):
    model, trainer, initial, online_after_step = fitted
    total = trainer.estimated_stepping_batches
    expected = initial
    for step, online in enumerate(online_after_step, start=1):  # the base steps after the optimiser
        tau = cosine_tau(step, total, 0.996, 1.0)
        expected = [tau * e + (1 - tau) * o for e, o in zip(expected, online)]
    for got, want in zip(model.target.target.parameters(), expected):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert not torch.equal(next(model.target.target.parameters()), initial[0])  # it moved


def test_queue_holds_the_newest_keys_after_each_step(fitted):
    model = fitted[0]
    staged = torch.cat(model.staged)  # 6 steps × 8 keys, newest last
    assert int(model.negatives.filled) == 10
    newest = staged[-10:]
    ptr = int(model.negatives.ptr)
    in_order = torch.cat([model.negatives.keys[ptr:], model.negatives.keys[:ptr]])  # oldest → newest
    torch.testing.assert_close(in_order, newest)


def test_dataset_pass_sees_every_sample_once_and_fills_the_label_buffer(fitted):
    model = fitted[0]
    assert len(model.passes) == 2  # at the start of each of the 2 epochs
    data = Points(24)
    for outputs in model.passes:
        assert outputs["index"].tolist() == list(range(24))
        assert outputs["corner"].tolist() == data.x.argmax(1).tolist()
    assert model.assignments.labels[:, 0].tolist() == data.label.tolist()


def test_step_outputs_carry_probe_features_and_validation_hook_logs(fitted):
    trainer = fitted[1]
    assert "val/toy_metric" in trainer.callback_metrics
    assert not hasattr(fitted[0], "last_features")


def test_queue_and_labels_are_saved_and_restored(fitted, tmp_path):
    model, trainer = fitted[:2]
    path = tmp_path / "toy.ckpt"
    trainer.save_checkpoint(path)
    restored = ToyMethod.load_from_checkpoint(path)  # built with an empty label buffer
    torch.testing.assert_close(restored.negatives.keys, model.negatives.keys)
    assert int(restored.negatives.ptr) == int(model.negatives.ptr)
    assert torch.equal(restored.assignments.labels, model.assignments.labels)
    torch.testing.assert_close(
        next(restored.target.target.parameters()), next(model.target.target.parameters())
    )


def test_gradient_accumulation_steps_the_ema_once_per_optimiser_step(tiny_arch, tmp_path):
    torch.manual_seed(0)
    model = ToyMethod(tiny_arch)
    taus: list[float] = []

    class Record(L.Callback):  # τ as each batch starts: what the previous batch's end left
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            taus.append(pl_module.target.tau)

    trainer = _trainer(tmp_path, max_epochs=1, accumulate_grad_batches=3, callbacks=[Record()])
    trainer.fit(model, datamodule=PointData())
    assert trainer.global_step == 1
    assert int(model.negatives.filled) == 10  # 24 keys staged over 3 batches, enqueued after the one step
    total = trainer.estimated_stepping_batches
    taus.append(model.target.tau)
    assert taus == [0.996, 0.996, 0.996, cosine_tau(1, total)]  # updated only after the optimiser step


def test_param_groups_set_lr_weight_decay_and_freeze(tiny_arch, tmp_path):
    torch.manual_seed(0)
    model = ToyMethod(
        tiny_arch,
        lr=1e-2,
        weight_decay=1e-4,
        online_probe=False,
        param_groups=[
            ParamGroup("encoders.text", lr=1e-5, weight_decay=0.0),
            {"match": "encoders.video.head*", "frozen": True},
        ],
    )
    frozen_before = model.encoders["video"].head.weight.detach().clone()
    trainer = _trainer(tmp_path, max_epochs=1)
    trainer.fit(model, datamodule=PointData())
    groups = trainer.optimizers[0].param_groups
    text_ids = {id(p) for p in model.encoders["text"].parameters()}
    text_groups = [g for g in groups if any(id(p) in text_ids for p in g["params"])]
    assert text_groups and all(g["initial_lr"] == 1e-5 and g["weight_decay"] == 0.0 for g in text_groups)
    video_groups = [g for g in groups if any(p is model.encoders["video"].body.weight for p in g["params"])]
    assert video_groups[0]["initial_lr"] == 1e-2 and video_groups[0]["weight_decay"] == 1e-4
    assert not model.encoders["video"].head.weight.requires_grad
    assert torch.equal(model.encoders["video"].head.weight, frozen_before)
    grouped = {id(p) for g in groups for p in g["params"]}
    assert id(model.encoders["video"].head.weight) not in grouped


def test_param_group_matching_nothing_is_a_named_error(tiny_arch, tmp_path):
    model = ToyMethod(tiny_arch, param_groups=[ParamGroup("encoders.txt", lr=1e-5)])
    with pytest.raises(UsageError, match=r"'encoders\.txt' matches no parameter of ToyMethod"):
        _trainer(tmp_path, max_epochs=1).fit(model, datamodule=PointData())


def test_missing_batch_key_names_key_and_method(tiny_arch):
    model = ToyMethod(tiny_arch)
    with pytest.raises(
        MissingBatchKeyError, match=r"ToyMethod needs batch key 'video'; the batch has \['label'\]"
    ):
        model.ssl_step({"label": torch.zeros(2)})


def test_memory_queue_wraps_and_keeps_the_newest():
    queue = MemoryQueue(size=5, dim=2)
    keys = torch.arange(14, dtype=torch.float32).reshape(7, 2)
    queue.stage(keys[:3])
    assert queue.flush() == 3 and int(queue.filled) == 3
    torch.testing.assert_close(queue.valid(), keys[:3])
    queue.stage(keys[3:])
    queue.flush()
    assert int(queue.filled) == 5 and int(queue.ptr) == 2
    torch.testing.assert_close(torch.cat([queue.keys[2:], queue.keys[:2]]), keys[2:])
    with pytest.raises(ValueError, match=r"queue keys must be \(B, 2\)"):
        queue.stage(torch.zeros(3, 4))


def test_label_buffer_rejects_indices_outside_the_dataset():
    buffer = LabelBuffer(4, heads=2)
    buffer.update(torch.tensor([0, 3]), torch.tensor([[1, 2], [3, 4]]))
    assert buffer.lookup(torch.tensor([3, 1])).tolist() == [[3, 4], [-1, -1]]
    with pytest.raises(IndexError, match="label buffer of 4 samples"):
        buffer.update(torch.tensor([4]), torch.tensor([[0, 0]]))


def test_gather_by_index_sorts_and_drops_sampler_padding():
    out = gather_by_index(torch.tensor([2, 0, 1, 2]), value=torch.tensor([20.0, 0.0, 10.0, 20.0]))
    assert out["index"].tolist() == [0, 1, 2]
    assert out["value"].tolist() == [0.0, 10.0, 20.0]
