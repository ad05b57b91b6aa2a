"""Lightning callbacks that evaluate the representation while a method trains.

Both collect, during an epoch that is due, the probe features the method computed for its
training batches (the ``features`` of the training step's outputs: the first augmented view, as
solo-learn's online kNN does — no extra forward pass) and the features of the validation batches, then score at the
end of validation and log ``val/knn_top1`` or ``val/linear_top1`` (plus top-5 for the kNN), as
fractions in [0, 1] like the other accuracies of the training logs. Features
are gathered across ranks, so every rank logs the same figure. For the exact offline protocol
(centre clips, eval transform on the train split) use ``zoo eval knn|linear``.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from zoo.eval.knn import knn_accuracy
from zoo.eval.linear import Solver, linear_probe
from zoo.objectives.distributed import gather_uneven

__all__ = ["KNNEvalCallback", "LinearEvalCallback"]


class _FeatureBankCallback(Callback, metaclass=ABCMeta):
    def __init__(self, every_n_epochs: int = 1):
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self._train: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def _due(self, trainer: Trainer) -> bool:
        return not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._train = []

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        features = outputs.get("features") if isinstance(outputs, dict) else None
        if self._due(trainer) and features is not None and "label" in batch:
            self._train.append((features.detach().float().cpu(), batch["label"].cpu()))

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._val = []

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._due(trainer) and "label" in batch:
            self._val.append((pl_module.features(batch).float().cpu(), batch["label"].cpu()))

    @staticmethod
    def _stack(
        bank: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        features = gather_uneven(torch.cat([f for f, _ in bank]).to(device))
        labels = gather_uneven(torch.cat([y for _, y in bank]).to(device))
        return features.cpu(), labels.cpu()

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not (self._due(trainer) and self._train and self._val):
            return
        train = self._stack(self._train, pl_module.device)
        val = self._stack(self._val, pl_module.device)
        num_classes = (
            getattr(pl_module.hparams, "num_classes", None) or int(max(train[1].max(), val[1].max())) + 1
        )
        for name, percent in self.evaluate(*train, *val, num_classes).items():  # logged as fractions, like
            pl_module.log(f"val/{name}", percent / 100, rank_zero_only=True)  # torchmetrics accuracies
        self._train, self._val = [], []

    @abstractmethod
    def evaluate(
        self,
        train_x: torch.Tensor,
        train_y: torch.Tensor,
        val_x: torch.Tensor,
        val_y: torch.Tensor,
        num_classes: int,
    ) -> dict[str, float]:
        """Scores (percent) of the validation features given the training features, by metric name."""


class KNNEvalCallback(_FeatureBankCallback):
    """Weighted kNN (cosine, ``exp(s/τ)`` votes) every ``every_n_epochs`` epochs → ``val/knn_top1``."""

    def __init__(self, every_n_epochs: int = 1, k: int = 20, temperature: float = 0.07):
        super().__init__(every_n_epochs)
        self.k, self.temperature = k, temperature

    def evaluate(self, train_x, train_y, val_x, val_y, num_classes):
        scores = knn_accuracy(train_x, train_y, val_x, val_y, self.k, self.temperature, num_classes)
        return {f"knn_{name}": value for name, value in scores.items()}


class LinearEvalCallback(_FeatureBankCallback):
    """A linear probe fitted on the epoch's training features → ``val/linear_top1``."""

    def __init__(self, every_n_epochs: int = 5, solver: Solver = "lbfgs", weight_decay: float = 1e-3):
        super().__init__(every_n_epochs)
        self.solver, self.weight_decay = solver, weight_decay

    def evaluate(self, train_x, train_y, val_x, val_y, num_classes):
        result = linear_probe(
            train_x, train_y, val_x, val_y, num_classes, solver=self.solver, weight_decay=self.weight_decay
        )
        return {"linear_top1": result.top1}
