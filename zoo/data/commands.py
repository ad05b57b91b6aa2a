"""``zoo data``: generate SynthMotion, check that every video of a manifest decodes, summarise a manifest,
train a caption tokenizer offline.

zoo data synth OUT --seed 0 [--size 64 --frames 32 --classes 8 --scene-bias 0.8 ...]
zoo data check MANIFEST [--format generic --split train --backend pyav --workers 2]
zoo data info MANIFEST [--format generic --split train --probe 5]
zoo data tokenizer OUT [FILES...] [--synth] [--vocab-size 8000] [--kind bpe] [--languages en,de]
zoo data shard MANIFEST OUT [--kind video --format generic --split train --max-size 1GB]
    (MANIFEST "synth": SynthMotion; --kind: the DataModule whose samples the shards hold, see SHARD_KINDS)
"""

from __future__ import annotations

import argparse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["SHARD_KINDS", "check_record", "configure", "shard_module"]

SHARD_KINDS = {
    "video": "zoo.data.datamodule.VideoDataModule",
    "features": "zoo.data.datamodules.FeatureSequenceDataModule",
    "documents": "zoo.data.datamodules.DocumentDataModule",
    "image_text": "zoo.data.datamodules.ImageTextDataModule",
    "qa": "zoo.data.datamodules.MultipleChoiceQADataModule",
    "tracklets": "zoo.data.datamodules.TrackletDataModule",
}
"""``zoo data shard --kind``: the DataModule that reads the shards, and whose records it writes."""


def _format_choices() -> list[str]:
    from zoo.data.formats import FORMATS

    return sorted(FORMATS)


def _add_manifest_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="a CSV manifest, or a dataset root for the other formats")
    parser.add_argument("--format", default="generic", choices=_format_choices(), help="annotation layout")
    parser.add_argument("--split", default="train", help="split to read (formats with several splits)")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``synth``, ``check``, ``info`` and ``tokenizer`` subcommands to the ``zoo data`` parser."""
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")  # alone: the help (zoo.cli)

    p = sub.add_parser("synth", help="generate SynthMotion (real H.264 videos where motion is the class)")
    p.add_argument("out", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=None, help="frame side in pixels (even)")
    p.add_argument("--frames", type=int, default=None, help="frames per clip")
    p.add_argument("--fps", type=int, default=None)
    p.add_argument("--classes", type=int, default=None, help="number of motion classes (1-8)")
    p.add_argument(
        "--scene-bias", type=float, default=None, help="train clips on their class's background (0-1)"
    )
    p.add_argument("--train-per-class", type=int, default=None)
    p.add_argument("--val-per-class", type=int, default=None)
    p.add_argument("--test-per-class", type=int, default=None)
    p.add_argument("--long-videos", type=int, default=None, help="long videos of ordered sub-actions")
    p.add_argument("--reid-identities", type=int, default=None, help="re-ID identities (0: none)")
    p.add_argument("--languages", nargs="+", default=None, help="caption languages (en de fr es zh)")
    p.add_argument("--no-audio", action="store_true", help="no sound track")
    p.add_argument("--workers", type=int, default=None, help="encoding processes (default: up to 2)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("check", help="decode the first, middle and last frame of every video; list bad files")
    _add_manifest_args(p)
    p.add_argument("--backend", default=None, help="video backend (pyav, decord, torchcodec)")
    p.add_argument("--workers", type=int, default=2, help="files checked in parallel (threads)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("info", help="summarise a manifest: counts, classes, captions, windows")
    _add_manifest_args(p)
    p.add_argument("--probe", type=int, default=0, help="also read the metadata of the first N videos")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("tokenizer", help="train a caption tokenizer on local text (tokenizer.json, offline)")
    p.add_argument("out", help="the tokenizer.json to write, or a folder to write it into")
    p.add_argument("files", nargs="*", help="caption files: .txt (a text a line), .csv, .json, .jsonl")
    p.add_argument("--synth", action="store_true", help="also the captions of the default SynthMotion")
    p.add_argument("--vocab-size", type=int, default=8000, help="vocabulary size, special tokens included")
    p.add_argument("--kind", default="bpe", choices=["bpe", "wordpiece", "unigram"])
    p.add_argument("--languages", default=None, help="keep captions of these languages, e.g. en,de")
    p.set_defaults(func=cmd_tokenizer)

    p = sub.add_parser(
        "shard",
        help="write tar shards of the videos' own bytes and annotation (WebDataset layout) + an index",
    )
    p.add_argument(
        "manifest",
        help="what the kind's DataModule reads: a manifest or dataset root (video, features, qa, tracklets), a "
        'document file (documents), a pairs manifest (image_text); or "synth" for SynthMotion',
    )
    p.add_argument("out", help="output folder")
    p.add_argument("--kind", default="video", choices=sorted(SHARD_KINDS), help="the samples the shards hold")
    p.add_argument("--format", default="generic", choices=_format_choices(), help="annotation layout (video)")
    p.add_argument(
        "--split", default=None, help="split to shard (default: train; SynthMotion: every split it has)"
    )
    p.add_argument("--max-size", default="1GB", help="most bytes per shard, e.g. 1GB, 500MB (default 1GB)")
    p.add_argument(
        "--synth-root", default=None, help='with "synth": a generated SynthMotion folder (zoo data synth)'
    )
    p.set_defaults(func=cmd_shard)


def cmd_synth(args: argparse.Namespace) -> int:
    from zoo.data.synthmotion import SynthMotionConfig, generate

    fields = {
        "size": args.size,
        "num_frames": args.frames,
        "fps": args.fps,
        "num_classes": args.classes,
        "scene_bias": args.scene_bias,
        "train_per_class": args.train_per_class,
        "val_per_class": args.val_per_class,
        "test_per_class": args.test_per_class,
        "long_videos": args.long_videos,
        "reid_identities": args.reid_identities,
        "languages": tuple(args.languages) if args.languages else None,
    }
    config = SynthMotionConfig(
        seed=args.seed, audio=not args.no_audio, **{k: v for k, v in fields.items() if v is not None}
    )
    out = generate(args.out, config, progress=True, workers=args.workers)
    print(f"SynthMotion written to {out}")
    return 0


def cmd_tokenizer(args: argparse.Namespace) -> int:
    from zoo.data.text import read_caption_texts, train_tokenizer
    from zoo.errors import UsageError

    languages = (
        [code.strip() for code in args.languages.split(",") if code.strip()] if args.languages else None
    )
    files = [Path(f) for f in args.files]
    if args.synth:
        from zoo.data import synthmotion

        files.append(synthmotion.ensure(synthmotion.SynthMotionConfig()) / "captions.json")
    if not files:
        raise UsageError("zoo data tokenizer needs caption FILES, --synth, or both")
    texts = []
    for file in files:
        texts += read_caption_texts(file, languages)
    if not texts:
        raise UsageError(
            f"no caption text in {', '.join(map(str, files))}"
            + (f" in {args.languages}" if languages else "")
        )
    path = train_tokenizer(texts, args.out, args.vocab_size, args.kind)
    print(f"tokenizer trained on {len(texts)} captions written to {path}")
    return 0


def _synth_args(synth_root: str | None) -> dict:
    """The DataModule arguments of SynthMotion: the default set, or the one generated at ``synth_root``."""
    if synth_root is None:
        return {}
    import json

    from zoo.errors import UsageError

    meta = Path(synth_root) / "synthmotion.json"
    if not meta.is_file():
        raise UsageError(f"--synth-root: {meta} not found; generate the set with zoo data synth")
    return {"synth": json.loads(meta.read_text(encoding="utf-8"))["config"], "synth_root": synth_root}


def shard_module(
    kind: str, manifest: str, split: str, synth_root: str | None = None, format: str = "generic"
):
    """The DataModule whose records ``zoo data shard --kind`` writes for ``split``, and its own name of the split.

    ``manifest`` is what the kind's DataModule reads for that split (``"synth"``: SynthMotion, whose videos
    carry every caption of every language); a kind read from one file per split (documents, image–text pairs)
    reads it as its training file. ``format``: the annotation layout of videos.
    """
    import importlib

    from zoo.errors import UsageError

    module_name, class_name = SHARD_KINDS[kind].rsplit(".", 1)
    cls = getattr(importlib.import_module(module_name), class_name)
    if manifest == "synth":
        if kind == "features":
            raise UsageError(
                "--kind features: SynthMotion has no features until a model extracts them "
                "(zoo.eval.features.extract_sequence_features); shard the folder it writes"
            )
        return cls(**_synth_args(synth_root)), split
    args = {
        "video": {"train_manifest": manifest, "format": format, "train_split": split},
        "features": {"root": manifest, "train_split": split, "test_split": None},
        "documents": {"train_file": manifest},
        "image_text": {"train_manifest": manifest},
        "qa": {"root": manifest, "train_split": split, "val_split": None, "test_split": None},
        "tracklets": {"root": manifest},
    }[kind]
    return cls(**args), split if kind == "tracklets" else "train"


def cmd_shard(args: argparse.Namespace) -> int:
    from zoo.data.shards import parse_size, write_shards

    max_size = parse_size(args.max_size)
    splits = [args.split] if args.split else ["train"]
    if args.manifest == "synth" and not args.split:
        module, _ = shard_module(args.kind, args.manifest, "train", args.synth_root)
        splits = [split for split in module.splits_of(None) if module.has_split(split)]
    for split in splits:
        module, own_split = shard_module(args.kind, args.manifest, split, args.synth_root, args.format)
        source = module.shard_source(own_split)
        info = module.shard_info(own_split)
        index = write_shards(source, args.out, split, max_size, kind=module.shard_kind, info=info)
        print(f"{split}: {args.kind} shards and index written to {index}")
    return 0


def _first_middle_last(video_len: int, fps: float, rng=None) -> list[list[int]]:
    """The check's sampler: one clip of the first, middle and last frame of the window, ``(1, 3)``."""
    return [[0, video_len // 2, video_len - 1]]


def check_record(record, backend: str | None = None) -> str | None:
    """Why ``record`` cannot be used (None when it can).

    The record is loaded as training loads it, through :class:`~zoo.data.datasets.VideoDataset` (probe, time
    window, decoding), taking the first, middle and last frame of its window: what passes here, training reads.
    """
    from zoo.data.datasets import DECODE_ERRORS, VideoDataset

    dataset = VideoDataset(
        [record], sampler=_first_middle_last, labels=False, decode_backend=backend, on_error="raise"
    )
    try:
        dataset[0]
    except DECODE_ERRORS as err:
        return str(err)
    return None


def cmd_check(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from zoo.data.formats import load_records

    records, _ = load_records(args.format, args.manifest, args.split)
    console = Console()
    bad: list[tuple[str, str]] = []
    columns = (TextColumn("checking"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress, ThreadPoolExecutor(max(1, args.workers)) as pool:
        task = progress.add_task("videos", total=len(records))
        for record, reason in zip(records, pool.map(lambda r: check_record(r, args.backend), records)):
            if reason is not None:
                bad.append((str(record.path), reason))
            progress.advance(task)
    if bad:
        table = Table("path", "reason", title=f"{len(bad)} unreadable of {len(records)}")
        for path, reason in bad:
            table.add_row(path, reason)
        console.print(table)
        return 1
    console.print(f"all {len(records)} videos decode")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from zoo.data.formats import load_records, video_exists

    records, classes = load_records(args.format, args.manifest, args.split)
    console = Console()
    labels = Counter(r.label for r in records if r.label is not None)
    where = args.format if Path(args.manifest).is_file() else f"{args.format}, split {args.split}"
    summary = Table("field", "value", title=f"{args.manifest} ({where})")
    summary.add_row("records", str(len(records)))
    summary.add_row("distinct files", str(len({r.path for r in records})))
    summary.add_row("classes", str(len(classes)) if classes else "none")
    summary.add_row("labelled", str(sum(labels.values())))
    summary.add_row("with caption", str(sum(1 for r in records if r.caption)))
    summary.add_row(
        "with time window", str(sum(1 for r in records if r.start is not None or r.end is not None))
    )
    summary.add_row("missing files", str(sum(1 for r in records if not video_exists(r))))
    extra_keys = sorted({k for r in records for k in r.extra})
    summary.add_row("extra fields", ", ".join(extra_keys) or "none")
    console.print(summary)
    if labels:
        per_class = Table("label", "name", "records", title="records per class")
        for label, count in sorted(labels.items()):
            name = classes[label] if classes and label < len(classes) else ""
            per_class.add_row(str(label), name, str(count))
        console.print(per_class)
    if args.probe:
        from zoo.data.video import VideoDecodeError, VideoReader

        probe = Table("path", "fps", "frames", "size", "audio", "codec", title=f"first {args.probe} videos")
        for record in records[: args.probe]:
            try:
                with VideoReader(record.path) as reader:
                    m = reader.metadata
                probe.add_row(
                    str(record.path),
                    f"{m.fps:g}",
                    str(m.num_frames),
                    f"{m.width}x{m.height}",
                    str(m.has_audio),
                    m.codec,
                )
            except VideoDecodeError as err:
                probe.add_row(str(record.path), "-", "-", "-", "-", f"error: {err}")
        console.print(probe)
    return 0
