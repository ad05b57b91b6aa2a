"""kNN / linear evaluation callbacks: collected features, due epochs, logged figures equal the offline ones."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from zoo.eval.callbacks import KNNEvalCallback, LinearEvalCallback
from zoo.eval.knn import knn_accuracy
from zoo.eval.linear import linear_probe


class Points(Dataset):
    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % 4
        self.x = torch.eye(4)[self.y] * 2 + torch.randn(n, 4, generator=g)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"video": self.x[i], "label": self.y[i]}


class FrozenFeatures(L.LightningModule):
    """Features = a fixed linear map of the input; the 'training' changes nothing."""

    def __init__(self):
        super().__init__()
        self.save_hyperparameters({"num_classes": 4})
        self.map = nn.Linear(4, 6)
        self.dummy = nn.Parameter(torch.zeros(()))

    def features(self, batch):
        return self.map(batch["video"])

    def training_step(self, batch, batch_idx):
        with torch.no_grad():
            features = self.features(batch)
        return {"loss": self.dummy.square(), "features": features}  # as SSLMethod's steps return

    def validation_step(self, batch, batch_idx):
        return None

    def configure_optimizers(self):
        return torch.optim.SGD([self.dummy], lr=0.0)


def test_callbacks_log_the_offline_figures_on_due_epochs(tmp_path):
    torch.manual_seed(0)
    train, val = Points(64, 0), Points(32, 1)
    model = FrozenFeatures()
    knn_cb, linear_cb = KNNEvalCallback(every_n_epochs=1, k=5), LinearEvalCallback(every_n_epochs=2)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[knn_cb, linear_cb],
        default_root_dir=tmp_path,
    )
    trainer.fit(model, DataLoader(train, batch_size=16, shuffle=True), DataLoader(val, batch_size=16))
    with torch.no_grad():
        train_f, val_f = model.map(train.x), model.map(val.x)
    expected = knn_accuracy(train_f, train.y, val_f, val.y, k=5, num_classes=4)
    assert abs(100 * float(trainer.callback_metrics["val/knn_top1"]) - expected["top1"]) < 1e-4
    assert expected["top1"] > 60  # the points are separable: the figure is meaningful
    assert "val/linear_top1" not in trainer.callback_metrics  # epoch 1 of every 2: not due

    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[linear_cb],
        default_root_dir=tmp_path,
    )
    trainer.fit(model, DataLoader(train, batch_size=16, shuffle=True), DataLoader(val, batch_size=16))
    expected_linear = linear_probe(train_f, train.y, val_f, val.y, 4, weight_decay=1e-3).top1
    assert abs(100 * float(trainer.callback_metrics["val/linear_top1"]) - expected_linear) < 1e-3
