"""``ZooCLI``: the Lightning CLI behind ``zoo fit|validate|test|predict``.

Subclass mode over every method and DataModule (selectable by class name, ``--model SimCLR``), the
DataModule's class count linked into the model, and parse errors raised (not printed with the whole
usage) so that :mod:`zoo.cli` prints them as one line.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from zoo.registry import import_submodules

__all__ = ["ZooCLI"]


def share_cpu_with_loader_workers() -> None:
    """Half the cores for the training process, the rest for DataLoader workers.

    On a small CPU machine, torch's default (all cores) competes with the decoding workers and a
    step becomes several times slower; ``OMP_NUM_THREADS`` overrides this choice.
    """
    import os

    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))


class ZooCLI(LightningCLI):
    """LightningCLI over every zoo method and DataModule.

    Args:
        args: the command line after ``zoo``; None reads ``sys.argv`` (the console script).
        run: run the subcommand (``fit`` ...); False only parses and instantiates.
    """

    def __init__(self, args: Sequence[str] | None = None, run: bool = True):
        share_cpu_with_loader_workers()
        import_submodules("zoo.methods")  # makes every method and DataModule selectable by class name
        import_submodules("zoo.data")
        super().__init__(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=None if args is None else list(args),
            run=run,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_kwargs={"exit_on_error": False},
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The model's head / online probe gets the data's class count; a DataModule without a
        # `num_classes` attribute leaves the model's own value.
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        with warnings.catch_warnings():
            # Lightning warns when both `args` and sys.argv hold arguments: `args` given from Python
            # are the caller's, and sys.argv belongs to the host program (pytest, a notebook kernel).
            warnings.filterwarnings("ignore", "LightningCLI's args parameter", UserWarning)
            super().parse_arguments(parser, args)
