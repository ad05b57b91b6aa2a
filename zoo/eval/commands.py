"""``zoo eval linear|knn|retrieval|clustering``: evaluation protocols on frozen features.

    zoo eval knn --model runs/simclr/last.ckpt --data synthmotion
    zoo eval linear --model r3d_tiny --data path/to/manifests     # an untrained baseline
    zoo eval retrieval --model <catalog name> --data ~/ucf101 --format ucf101 --test-split test

``--model`` is a method checkpoint (``.ckpt`` written by any zoo method: its encoder is rebuilt),
a catalog name or published folder (the pretrained model), or an architecture name (random
initialisation seeded with ``--seed``). ``--data`` is ``synthmotion`` (generated on first use), a
folder with ``train.csv``/``test.csv`` manifests, or a dataset root with ``--format``. Features of the
train split (gallery / probe training) and the test split (queries / probe testing) come from
centre clips with the eval transform; the clip geometry and normalisation default to the
catalog entry's, else to the flags' defaults.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

__all__ = ["configure", "load_model", "run"]

PROTOCOLS = {
    "linear": "linear probe (logistic regression) on frozen features: top-1/top-5",
    "knn": "weighted kNN classification on frozen features: top-1/top-5",
    "retrieval": "clip retrieval, test clips query train clips: R@1/5/10/20",
    "clustering": "k-means on test features: NMI, ARI, matched accuracy",
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``eval`` protocols to the ``zoo`` command (called by :mod:`zoo.cli`)."""
    sub = parser.add_subparsers(dest="protocol", metavar="PROTOCOL")  # alone: the help (zoo.cli)
    for name, help_text in PROTOCOLS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--model", required=True, help="method checkpoint (.ckpt), catalog name, folder, or architecture"
        )
        p.add_argument(
            "--data", default="synthmotion", help="'synthmotion', a manifest folder, or a dataset root"
        )
        p.add_argument("--format", default="generic", help="dataset layout of --data (zoo.data.formats)")
        p.add_argument("--train-split", default="train")
        p.add_argument("--test-split", default="test")
        p.add_argument(
            "--modality",
            default=None,
            help="encoder of a multi-encoder checkpoint: the probed one of a method checkpoint, "
            "the video tower of a multi-tower catalog entry (default)",
        )
        p.add_argument(
            "--frames", type=int, default=None, help="frames per clip (default: catalog entry, else 8)"
        )
        p.add_argument(
            "--stride", type=float, default=None, help="frame step within a clip (default: entry, else 2)"
        )
        p.add_argument("--size", type=int, default=None, help="crop side in pixels (default: entry, else 64)")
        p.add_argument("--mean", type=float, nargs=3, default=None)
        p.add_argument("--std", type=float, nargs=3, default=None)
        p.add_argument("--batch-size", type=int, default=16)
        p.add_argument("--workers", type=int, default=2)
        p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
        p.add_argument("--seed", type=int, default=0, help="seed of a randomly initialised architecture")
        p.add_argument("--cache-dir", default=None, help="cache the features here (safetensors)")
        p.add_argument("--json", action="store_true", help="print the result as one JSON object")
        if name == "linear":
            p.add_argument("--solver", choices=("lbfgs", "sgd"), default="lbfgs")
            p.add_argument("--weight-decay", type=float, default=1e-3)
            p.add_argument("--epochs", type=int, default=100, help="SGD epochs")
            p.add_argument("--lr", type=float, default=0.1, help="SGD learning rate")
        elif name == "knn":
            p.add_argument("--k", type=int, default=20)
            p.add_argument(
                "--temperature", type=float, default=0.07, help="vote weight exp(s/T); <= 0: one vote each"
            )
        elif name == "retrieval":
            p.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10, 20])
        else:
            p.add_argument("--clusters", type=int, default=None, help="default: the number of classes")
        p.set_defaults(func=run)


def load_model(spec: str, modality: str | None = None, seed: int = 0) -> nn.Module:
    """An encoder from a method checkpoint, a catalog name/folder, or an architecture name (random init)."""
    from zoo import api, registry
    from zoo.catalog import catalog

    path = Path(spec)
    if path.suffix == ".ckpt":
        if not path.is_file():
            raise FileNotFoundError(f"no such checkpoint: {path}")
        from zoo.run_checkpoints import load_encoder

        return load_encoder(path, modality)
    entry = catalog().get(spec)
    if entry is not None and entry.towers:  # the evaluation protocols read clips: the video tower
        return api.load(spec, tower=modality or "video")
    if path.is_dir() or entry is not None:
        return api.load(spec)
    if registry.is_model(spec):
        import torch

        torch.manual_seed(seed)
        return registry.build(spec, num_classes=0).eval()
    return api.load(spec)  # raises with the closest catalog names


def _preprocess(model: str, modality: str | None = None):
    """The preprocess record of a catalog name (its video tower, or ``modality``'s, when it has several)
    or a published folder; None for anything else."""
    from zoo.catalog import catalog
    from zoo.hub import folder_entry

    entry = catalog().get(model)
    if entry is None and (Path(model) / "config.json").is_file():
        entry = folder_entry(model)
    if entry is not None and entry.towers:
        return entry.tower(modality or "video").preprocess
    return entry.preprocess if entry is not None else None


def _clip_settings(args: argparse.Namespace) -> dict[str, Any]:
    from zoo.errors import UsageError

    prep = _preprocess(args.model, args.modality)
    if prep is not None and prep.sampling_stride is None and args.stride is None:
        raise UsageError(
            f"{args.model} samples frames over the whole video (no stride), which `zoo eval` does not do; "
            "give --stride to evaluate with strided clips"
        )
    settings = {
        "num_frames": args.frames or (prep and prep.num_frames) or 8,
        "stride": args.stride or (prep and prep.sampling_stride) or 2.0,
        "size": args.size or (prep and prep.size) or 64,
    }
    if args.mean or prep:
        settings["mean"] = tuple(args.mean or prep.mean)
    if args.std or prep:
        settings["std"] = tuple(args.std or prep.std)
    if prep:
        settings["channel_order"] = prep.channel_order
    return settings


def _datamodule(args: argparse.Namespace, need_train: bool):
    """``val`` loader = the train split, ``test`` loader = the test split; both centre clips, eval transform."""
    from zoo.data.datamodule import VideoDataModule

    fmt, train_src, test_src = args.format, args.data, args.data
    if args.data == "synthmotion":
        from zoo.data import synthmotion

        root = synthmotion.ensure(progress=True)
        fmt, train_src, test_src = "generic", str(root / "train.csv"), str(root / "test.csv")
    elif args.format == "generic" and Path(args.data).is_dir():
        train_src = str(Path(args.data) / f"{args.train_split}.csv")
        test_src = str(Path(args.data) / f"{args.test_split}.csv")
    datamodule = VideoDataModule(
        val_manifest=train_src if need_train else None,
        test_manifest=test_src,
        format=fmt,
        val_split=args.train_split,
        test_split=args.test_split,
        batch_size=args.batch_size,
        num_workers=args.workers,
        drop_last=False,
        **_clip_settings(args),
    )
    datamodule.setup("validate" if need_train else "test")
    datamodule.setup("test")
    return datamodule


def _features(encoder: nn.Module, loader, args: argparse.Namespace, split: str):
    from zoo.eval.features import extract_features

    cache = None
    if args.cache_dir:
        settings = _clip_settings(args)
        tag = "-".join(
            f"{k}{v}" for k, v in sorted(settings.items()) if k in ("num_frames", "size", "stride")
        )
        name = f"{Path(args.model).stem}-{Path(args.data).name}-{split}-{tag}.safetensors"
        cache = Path(args.cache_dir) / name
    return extract_features(encoder, loader, device=args.device, cache=cache, description=f"{split} features")


def run(args: argparse.Namespace) -> int:
    """Run the protocol ``args.protocol``; print the figures (percent; NMI/ARI in [0, 1])."""
    import torch

    from zoo.eval.clustering import cluster_features
    from zoo.eval.knn import knn_accuracy
    from zoo.eval.linear import linear_probe
    from zoo.eval.retrieval import clip_retrieval

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    encoder = load_model(args.model, args.modality, args.seed).to(args.device)
    need_train = args.protocol != "clustering"
    datamodule = _datamodule(args, need_train)
    num_classes = datamodule.num_classes or None
    test = _features(encoder, datamodule.test_dataloader(), args, args.test_split)
    if need_train:
        train = _features(encoder, datamodule.val_dataloader(), args, args.train_split)
    if args.protocol == "linear":
        result = linear_probe(
            train.features,
            train.labels,
            test.features,
            test.labels,
            num_classes,
            solver=args.solver,
            weight_decay=args.weight_decay,
            epochs=args.epochs,
            lr=args.lr,
        )
        figures = {"top1": result.top1, "top5": result.top5, "train_top1": result.train_top1}
    elif args.protocol == "knn":
        temperature = args.temperature if args.temperature > 0 else None
        figures = knn_accuracy(
            train.features, train.labels, test.features, test.labels, args.k, temperature, num_classes
        )
    elif args.protocol == "retrieval":
        figures = clip_retrieval(test.features, test.labels, train.features, train.labels, ks=args.ks)
    else:
        figures = cluster_features(test.features, test.labels, args.clusters)
    sizes = {"train": len(train) if need_train else 0, "test": len(test)}
    if args.json:
        print(json.dumps({"protocol": args.protocol, "model": args.model, **figures, "clips": sizes}))
    else:
        print(f"{args.protocol} · {args.model} · {sizes['train']} train / {sizes['test']} test clips")
        for name, value in figures.items():
            if value is not None:
                print(f"  {name:>10}: {value:.{4 if name in ('nmi', 'ari') else 2}f}")
    return 0
