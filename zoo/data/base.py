"""What every DataModule of the zoo shares: loader options, seeding, the distributed sampler and tokenizers.

:class:`ZooDataModule` holds the loader arguments every recipe sets (``batch_size``, ``num_workers``, ...), checks
them at construction (a bad one is a one-line :class:`~zoo.errors.UsageError` naming the field), builds the
optional text tokenizer up front (a missing one fails before any worker starts), and makes the loaders. A
subclass says which splits it has (:meth:`~ZooDataModule.has_split`), how to build one
(:meth:`~ZooDataModule.build_dataset`) and how to collate it (:meth:`~ZooDataModule.collate_fn`).

Seeding: every random draw of a sample is a function of ``(seed, epoch, index)`` (:class:`EpochSeeded`), so
batches do not depend on the number of workers, on which worker loads a sample or on persistent workers.
Worker processes also seed ``random``, ``numpy`` and ``torch`` from ``(seed, epoch, worker id, rank)`` for
third-party code (:func:`seed_worker`); draws made in the main process (device-side augmentation) use a
generator seeded from ``(seed, rank)``, so ranks draw differently.

Distributed training: the shuffled training loader's sampler is a ``DistributedSampler`` of this rank's shard
(:class:`EpochSampler`; a batch sampler such as :class:`~zoo.data.samples.PKSampler` is carried by
:class:`BatchEpochSampler`). Lightning keeps a ``DistributedSampler`` it finds instead of injecting its own,
and calls its ``set_epoch`` every epoch, which also sets the dataset's shared epoch. So the loaders are right
whatever the trainer's ``use_distributed_sampler``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, Protocol

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, get_worker_info

from zoo.data.text import DEFAULT_MAX_LENGTH, TextTokenizer, build_tokenizer
from zoo.errors import UsageError

__all__ = [
    "STAGE_SPLITS",
    "BatchEpochSampler",
    "EpochSampler",
    "EpochSeeded",
    "ZooDataModule",
    "seed_worker",
]

STAGE_SPLITS: dict[str, tuple[str, ...]] = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}
"""The splits each Lightning stage needs (:meth:`ZooDataModule.splits_of`)."""


class EpochSeeded:
    """Random draws as a function of ``(seed, epoch, index)``; the epoch is shared with DataLoader workers."""

    def _init_epoch(self, seed: int) -> None:
        self.seed = int(seed)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        """Seen by every worker, also persistent ones; changes the random draws of every sample."""
        self._epoch[0] = int(epoch)

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def _seed_sequence(self, index: int) -> np.random.SeedSequence:
        return np.random.SeedSequence([self.seed, self.epoch, int(index)])

    def rng(self, index: int) -> np.random.Generator:
        """The generator of sample ``index`` in the current epoch."""
        return np.random.default_rng(self._seed_sequence(index))

    def legacy_rng(self, index: int) -> np.random.RandomState:
        """The same, as a legacy ``RandomState``: its draws equal ``np.random.*`` given the same state."""
        return np.random.RandomState(np.random.MT19937(self._seed_sequence(index)))


def _set_dataset_epoch(dataset: Any, epoch: int) -> None:
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)


class EpochSampler(DistributedSampler):
    """A ``DistributedSampler`` that also tells the dataset the epoch (shared with its workers)."""

    def __init__(
        self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0
    ):
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        _set_dataset_epoch(self.dataset, epoch)


class FixedSizeBatches(Protocol):
    """A batch sampler of this rank's batches, all of ``batch_size`` indices, reshuffled by ``set_epoch``."""

    batch_size: int

    def __iter__(self) -> Iterator[list[int]]: ...

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...


class BatchEpochSampler(DistributedSampler):
    """The batches of a batch sampler (e.g. :class:`~zoo.data.samples.PKSampler`) as one flat index order.

    Under DDP, Lightning replaces a loader's custom ``batch_sampler`` (it cannot, and raises) unless the
    loader's ``sampler`` is a ``DistributedSampler``. This one is, so Lightning keeps it whatever the trainer's
    ``use_distributed_sampler``; the DataLoader cuts the order back into the same batches (``batch_size`` of
    the batch sampler, nothing dropped). The batch sampler splits its batches across ranks itself.

    Args:
        dataset: the dataset the indices point into (its epoch is set with the batches').
        batches: this rank's batches, all of ``batches.batch_size`` indices.
        num_replicas: number of ranks.
        rank: this rank.
    """

    def __init__(self, dataset: Dataset, batches: FixedSizeBatches, num_replicas: int = 1, rank: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.batches = batches
        self.batch_size = int(batches.batch_size)

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches:
            if len(batch) != self.batch_size:
                raise ValueError(
                    f"{type(self.batches).__name__} gave a batch of {len(batch)}, not {self.batch_size}"
                )
            yield from batch

    def __len__(self) -> int:
        return len(self.batches) * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.batches.set_epoch(epoch)
        _set_dataset_epoch(self.dataset, epoch)


def seed_worker(worker_id: int, seed: int = 0, rank: int = 0) -> None:
    """Seed ``random``, ``numpy`` and ``torch`` of a worker from ``(seed, epoch, worker_id, rank)``; one thread."""
    info = get_worker_info()
    epoch = info.dataset.epoch if info is not None and hasattr(info.dataset, "epoch") else 0
    state = np.random.SeedSequence([seed, epoch, worker_id, rank]).generate_state(2, dtype=np.uint32)
    random.seed(int(state[0]))
    np.random.seed(int(state[1]))
    torch.manual_seed(int(state[0]) << 32 | int(state[1]))
    torch.set_num_threads(1)


def _check_int(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UsageError(f"{name} must be an integer >= {least}, got {value!r}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be true or false, got {value!r}")


class ZooDataModule(LightningDataModule):
    """The base of the zoo's DataModules: loader options, seeding, the distributed sampler, a tokenizer.

    Subclasses call ``save_hyperparameters()`` and pass these arguments on, and define :meth:`has_split`,
    :meth:`build_dataset` and :meth:`collate_fn`; their ``*_dataloader`` methods call :meth:`_loader`.

    Args:
        batch_size: samples per batch.
        num_workers: DataLoader worker processes.
        persistent_workers: keep the workers between epochs.
        pin_memory: pin batches in page-locked memory.
        drop_last: drop the last incomplete training batch.
        seed: seed of the sampling and augmentation randomness.
        tokenizer: the tokenizer of the batches' text (:func:`zoo.data.text.build_tokenizer`: ``"bytes"``, a
            ``tokenizer.json``, a ``transformers`` folder or a Hub id); None: no text is tokenised.
        max_text_length: most tokens per text, special tokens included.
    """

    def __init__(
        self,
        *,
        batch_size: int = 8,
        num_workers: int = 2,
        persistent_workers: bool = True,
        pin_memory: bool = False,
        drop_last: bool = True,
        seed: int = 0,
        tokenizer: str | dict[str, Any] | None = None,
        max_text_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        super().__init__()
        _check_int("batch_size", batch_size, 1)
        _check_int("num_workers", num_workers, 0)
        _check_int("seed", seed, 0)
        for name, value in [
            ("persistent_workers", persistent_workers),
            ("pin_memory", pin_memory),
            ("drop_last", drop_last),
        ]:
            _check_bool(name, value)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.persistent_workers, self.pin_memory, self.drop_last = persistent_workers, pin_memory, drop_last
        self.tokenizer: TextTokenizer | None = (
            None if tokenizer is None else build_tokenizer(tokenizer, max_length=max_text_length)
        )
        self.datasets: dict[str, Dataset] = {}
        self._device_generator = torch.Generator().manual_seed(seed)

    # ---- what a subclass defines

    def has_split(self, split: str) -> bool:
        """Whether the data has ``split`` (without building it)."""
        return False

    def build_dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (called once per split, by :meth:`setup` or the first loader)."""
        raise NotImplementedError(f"{type(self).__name__} does not build datasets")

    def collate_fn(self, split: str) -> Callable[[Sequence[Any]], Any]:
        """The collate function of ``split``'s loader."""
        raise NotImplementedError(f"{type(self).__name__} has no collate function")

    def splits_of(self, stage: str | None) -> tuple[str, ...]:
        """The splits a Lightning stage needs (None or another stage: every split)."""
        return STAGE_SPLITS.get(stage, ("train", "val", "test"))

    @property
    def classes(self) -> list[str] | None:
        """Class names, or None when the data has none."""
        return None

    @property
    def num_classes(self) -> int:
        """Number of classes (0 when the data has none); known without decoding anything."""
        classes = self.classes
        return len(classes) if classes else 0

    # ---- shared machinery

    def _world(self) -> tuple[int, int]:
        """(world size, rank): the trainer's, else the process group's, else (1, 0)."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return trainer.world_size, trainer.global_rank
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_world_size(), torch.distributed.get_rank()
        return 1, 0

    def setup(self, stage: str | None = None) -> None:
        _, rank = self._world()  # device-side draws differ between ranks (distinct negatives across GPUs)
        self._device_generator.manual_seed(
            int(np.random.SeedSequence([self.seed, rank]).generate_state(1)[0])
        )
        for split in self.splits_of(stage):
            self._dataset(split, required=False)

    def _dataset(self, split: str, required: bool = True) -> Dataset | None:
        """The dataset of ``split``, built on first use; a missing one is an error when ``required``."""
        if split not in self.datasets and self.has_split(split):
            self.datasets[split] = self.build_dataset(split)
        if split not in self.datasets and required:
            raise UsageError(f"no {split} data: {type(self).__name__} was given none for the {split} split")
        return self.datasets.get(split)

    def _loader(self, split: str, shuffle: bool, batch_sampler: FixedSizeBatches | None = None) -> DataLoader:
        """The loader of ``split``: shuffled and sharded over ranks by :class:`EpochSampler` when ``shuffle``,
        batched by ``batch_sampler`` (this rank's fixed-size batches) when given, else in order."""
        dataset = self._dataset(split)
        world, rank = self._world()
        batch_size, drop_last, sampler = self.batch_size, self.drop_last if shuffle else False, None
        if batch_sampler is not None:
            sampler = BatchEpochSampler(dataset, batch_sampler, num_replicas=world, rank=rank)
            batch_size, drop_last = sampler.batch_size, False
        elif shuffle:
            sampler = EpochSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=self.seed)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            pin_memory=self.pin_memory,
            drop_last=drop_last,
            collate_fn=self.collate_fn(split),
            worker_init_fn=partial(seed_worker, seed=self.seed, rank=rank),
        )

    def error_stats(self) -> dict[str, dict[str, Any]]:
        """Unreadable-file counts per split (over all workers of this process), of datasets that count them."""
        return {
            split: dataset.error_stats()
            for split, dataset in self.datasets.items()
            if hasattr(dataset, "error_stats")
        }

    def teardown(self, stage: str | None = None) -> None:
        for split, stats in self.error_stats().items():
            if stats["bad_records"]:
                shown = ", ".join(stats["bad_paths"][:5])
                rank_zero_warn(
                    f"{split}: skipped {stats['bad_records']} unreadable files "
                    f"({stats['bad_fraction']:.1%} of {len(self.datasets[split])}): {shown}"
                )
