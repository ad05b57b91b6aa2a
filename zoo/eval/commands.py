"""``zoo eval linear|knn|retrieval|clustering``: evaluation protocols on frozen features.

    zoo eval knn --model runs/simclr/last.ckpt --data synthmotion
    zoo eval linear --model r3d_tiny --data path/to/manifests     # an untrained baseline
    zoo eval retrieval --model <catalog name> --data ~/ucf101 --format ucf101 --test-split test
    zoo eval retrieval --model runs/supportset/last.ckpt --data synthmotion --captions   # text↔video

``--model`` is a method checkpoint (``.ckpt`` written by any zoo method: its encoder is rebuilt),
a catalog name or published folder (the pretrained model), or an architecture name (random
initialisation seeded with ``--seed``). ``--data`` is ``synthmotion`` (generated on first use), a
folder with ``train.csv``/``test.csv`` manifests, or a dataset root with ``--format``. Features of the
train split (gallery / probe training) and the test split (queries / probe testing) come from
centre clips with the eval transform; the clip geometry and normalisation default to the
catalog entry's, else to the flags' defaults.

``retrieval --captions [FILE]`` is text↔video retrieval instead: the test split's clips against their
captions (several per video, in several languages) from ``FILE`` — ``[{"video_id", "caption", "lang"}]``
JSON (MSR-VTT-like, what SynthMotion writes) or a CSV with those columns, ``video_id`` the video file's
stem; without a value, ``captions.json`` of the data. The model's video and text towers embed clips and
captions (their heads included: a video–text method's joint space); R@1/5/10 and median rank are printed
per direction, overall and per language.
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
    "retrieval": "clip retrieval, test clips query train clips: R@1/5/10/20; with --captions, "
    "text↔video retrieval: R@1/5/10, median rank, per language",
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
            p.add_argument("--ks", type=int, nargs="+", default=None, help="default: 1 5 10 20; text: 1 5 10")
            p.add_argument(
                "--captions",
                nargs="?",
                const="",
                default=None,
                help="text↔video retrieval against these captions (JSON/CSV: video_id, caption, lang); "
                "no value: the data's captions.json",
            )
            p.add_argument(
                "--languages", nargs="+", default=None, help="caption languages kept (default: all)"
            )
            p.add_argument("--tokenizer", default="bytes", help="tokenizer of the text tower (zoo.data.text)")
            p.add_argument("--max-text-length", type=int, default=64, help="most tokens per caption")
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


def read_captions(path: Path, languages: list[str] | None = None) -> list[tuple[str, str, str]]:
    """``(video_id, caption, language)`` rows of a caption file, in file order; bad rows name file and line.

    Args:
        path: ``[{"video_id", "caption", "lang"}]`` JSON, or a CSV with the columns ``video_id``, ``caption``
            and ``lang`` (``lang`` may be absent: the language is then ``""``).
        languages: keep these languages only (None: all).
    """
    import csv

    from zoo.errors import UsageError

    if not path.is_file():
        raise UsageError(f"no caption file {str(path)!r}")
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            items = [(f"line {n}", row) for n, row in enumerate(csv.DictReader(f), start=2)]
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise UsageError(f"{path}: not JSON ({err})") from None
        if not isinstance(data, list):
            raise UsageError(f"{path}: expected a list of {{video_id, caption, lang}} items")
        items = [(f"item {n}", item) for n, item in enumerate(data)]
    rows = []
    for where, item in items:
        if not isinstance(item, dict) or not item.get("video_id") or "caption" not in item:
            raise UsageError(f"{path}, {where}: needs 'video_id' and 'caption', got {item!r}")
        caption, language = str(item["caption"] or "").strip(), str(item.get("lang") or "")
        if not caption:
            raise UsageError(f"{path}, {where}: empty caption for video {item['video_id']!r}")
        if languages is None or language in languages:
            rows.append((str(item["video_id"]), caption, language))
    return rows


def _run_text_video_retrieval(args: argparse.Namespace) -> int:
    """Text↔video retrieval of the test split's clips against their captions (``--captions``)."""
    import torch
    import torch.nn.functional as F

    from zoo.data.text import build_tokenizer
    from zoo.errors import UsageError
    from zoo.eval.retrieval import text_video_retrieval

    datamodule = _datamodule(args, need_train=False)
    captions_path = Path(args.captions) if args.captions else None
    if captions_path is None:
        manifest = Path(datamodule.manifests["test"])  # the captions beside the test manifest
        captions_path = (manifest.parent if manifest.is_file() else manifest) / "captions.json"
    rows = read_captions(captions_path, args.languages)
    records = datamodule.records("test").records
    video_of = {record.path.stem: n for n, record in enumerate(records)}
    rows = [row for row in rows if row[0] in video_of]  # captions of other splits' videos are left out
    if not rows:
        raise UsageError(f"{captions_path} has no caption for the {len(records)} videos of the test split")
    for language in sorted({lang for _, _, lang in rows}):
        has = {video for video, _, lang in rows if lang == language}
        missing = [record.path.stem for record in records if record.path.stem not in has]
        if missing:
            print(
                f"{captions_path}: {len(missing)} of {len(records)} videos have no {language or 'untagged'} "
                f"caption (first: {missing[0]}); they are only distractors in that language"
            )
    tokenizer = build_tokenizer(args.tokenizer, max_length=args.max_text_length)
    texts = [caption for _, caption, _ in rows]
    video_tower = load_model(args.model, "video", args.seed).to(args.device).eval()
    text_tower = load_model(args.model, "text", args.seed).to(args.device).eval()
    videos = torch.zeros(len(records), 0)
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            v = video_tower(batch["video"].to(args.device)).float().cpu()  # (B, d), the head included
            if videos.shape[1] == 0:
                videos = torch.zeros(len(records), v.shape[1])
            videos[batch["index"]] = v
        embeddings = []
        for start in range(0, len(texts), args.batch_size):
            tokens = tokenizer(texts[start : start + args.batch_size])  # (n, L)
            embeddings.append(
                text_tower(tokens["input_ids"].to(args.device), tokens["attention_mask"].to(args.device))
                .float()
                .cpu()
            )
    text = torch.cat(embeddings)
    if tokenizer.truncation.truncated:
        print(
            f"{captions_path}: {tokenizer.truncation.truncated} of {len(texts)} captions truncated to "
            f"{args.max_text_length} tokens"
        )
    if text.shape[1] != videos.shape[1]:
        raise UsageError(
            f"{args.model}: the text tower embeds into {text.shape[1]} dimensions and the video tower into "
            f"{videos.shape[1]}; text↔video retrieval needs one joint space"
        )
    similarity = F.normalize(text, dim=1) @ F.normalize(videos, dim=1).T  # (N_text, N_video)
    caption_to_video = torch.tensor([video_of[video] for video, _, _ in rows])
    languages = [lang for _, _, lang in rows]
    ks = args.ks or (1, 5, 10)
    figures = text_video_retrieval(
        similarity, caption_to_video, languages if len(set(languages)) > 1 else None, ks=ks
    )
    if args.json:
        print(json.dumps({"protocol": "text_video_retrieval", "model": args.model, **figures}))
        return 0
    print(f"text↔video retrieval · {args.model} · {len(texts)} captions / {len(records)} test videos")
    names = [f"R@{k}" for k in ks] + ["MedR"]
    print(f"  {'':<22}" + "".join(f"{name:>8}" for name in names))
    for prefix in ["", *(f"{lang}/" for lang in sorted(set(languages)) if len(set(languages)) > 1)]:
        for direction in ("text_to_video", "video_to_text"):
            values = "".join(f"{figures[f'{prefix}{direction}/{name}']:>8.1f}" for name in names)
            print(f"  {(prefix or 'all/') + direction:<22}{values}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the protocol ``args.protocol``; print the figures (percent; NMI/ARI in [0, 1])."""
    import torch

    from zoo.eval.clustering import cluster_features
    from zoo.eval.knn import knn_accuracy
    from zoo.eval.linear import linear_probe
    from zoo.eval.retrieval import clip_retrieval

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.protocol == "retrieval" and args.captions is not None:
        return _run_text_video_retrieval(args)
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
        ks = args.ks or (1, 5, 10, 20)
        figures = clip_retrieval(test.features, test.labels, train.features, train.labels, ks=ks)
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
