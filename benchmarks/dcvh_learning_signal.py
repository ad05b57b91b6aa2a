"""Learning signal of DCVH (cross-view hashing) on SynthMotion frames and captions (CPU).

For each code length, fits ``configs/dcvh/synthmotion.yaml`` through ``zoo fit`` and ranks the training
pairs (database) for every test pair (query) by Hamming distance: mAP (a database item is relevant when it
shares a label — shape, colour or motion — with the query) for image→text, text→image and image→image.
Next to the trained codes: the same network untrained (its DBE codes at initialisation), and
random-projection hashing (sign of a Gaussian projection of the centred features, per view) of the
trained towers' features and of the untrained towers' features; random bits give the chance level.

    python benchmarks/dcvh_learning_signal.py --bits 16 32 64 --epochs 15

prints a markdown table and writes ``docs/benchmarks/dcvh_learning_signal.md``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_run_arguments, recipe_args, write_report, zoo_fit

from zoo.data.datamodules import ImageTextDataModule
from zoo.methods.dcvh import DCVH, cross_view_map, random_projection_codes

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "dcvh" / "synthmotion.yaml"
OUT = ROOT / "docs" / "benchmarks" / "dcvh_learning_signal.md"
TASKS = ("image→text", "text→image", "image→image")


@torch.no_grad()
def encode(model: DCVH, datamodule: ImageTextDataModule, split: str) -> dict[str, torch.Tensor]:
    """Tower features, DBE bits (per view) and labels of every pair of ``split``, in dataset order."""
    model.eval()
    loader = DataLoader(
        datamodule.build_dataset(split), batch_size=64, shuffle=False, collate_fn=datamodule.collate_fn(split)
    )
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in loader:
        for view in ("image", "text"):
            features = model.embed(view, batch[view])
            parts.setdefault(f"{view}_features", []).append(features)
            parts.setdefault(f"{view}_bits", []).append(model.hash_layers[view].bits(features))
        parts.setdefault("labels", []).append(batch["multilabel"])
    return {key: torch.cat(values) for key, values in parts.items()}


def score(model: DCVH, datamodule: ImageTextDataModule, bits: int, seed: int) -> dict[str, dict[str, float]]:
    """mAP of the model's DBE codes and of random projections of its towers' features."""
    query, database = encode(model, datamodule, "test"), encode(model, datamodule, "train")
    learned = cross_view_map(
        {v: query[f"{v}_bits"] for v in ("image", "text")},
        query["labels"],
        {v: database[f"{v}_bits"] for v in ("image", "text")},
        database["labels"],
    )
    q = len(query["labels"])
    projected: dict[str, dict[str, torch.Tensor]] = {"query": {}, "database": {}}
    for k, view in enumerate(("image", "text")):
        both = torch.cat([query[f"{view}_features"], database[f"{view}_features"]])  # one projection per view
        codes = random_projection_codes(both, bits, seed=seed + k)
        projected["query"][view], projected["database"][view] = codes[:q], codes[q:]
    lsh = cross_view_map(projected["query"], query["labels"], projected["database"], database["labels"])
    generator = torch.Generator().manual_seed(seed)
    random_bits = {
        name: {
            v: torch.randint(0, 2, (len(c["labels"]), bits), generator=generator) for v in ("image", "text")
        }
        for name, c in (("query", query), ("database", database))
    }
    chance = cross_view_map(
        random_bits["query"], query["labels"], random_bits["database"], database["labels"]
    )
    return {"dbe": learned, "lsh": lsh, "chance": chance}


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| bits | codes | " + " | ".join(f"{t} mAP" for t in TASKS) + " |\n|---|---|"
        + "---|" * len(TASKS) + "\n"
    )  # fmt: skip
    body = ""
    for r in rows:
        for label, key, source in (
            ("DCVH (trained)", "dbe", "trained"),
            ("DCVH untrained (DBE at init)", "dbe", "untrained"),
            ("random projection of the trained towers' features", "lsh", "trained"),
            ("random projection of the untrained towers' features", "lsh", "untrained"),
            ("random bits (chance)", "chance", "trained"),
        ):
            values = r[source][key]
            body += f"| {r['bits']} | {label} | " + " | ".join(f"{values[t]:.1f}" for t in TASKS) + " |\n"
    return head + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--epochs", type=int, default=15)
    add_run_arguments(parser, OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data_args = {**recipe_args(RECIPE, "data"), "synth_root": args.synth_root, "num_workers": 0}
    datamodule = ImageTextDataModule(**data_args)
    datamodule.prepare_data()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for bits in args.bits:
            L.seed_everything(args.seed, verbose=False)
            untrained = DCVH(
                **{**recipe_args(RECIPE, "model"), "num_bits": bits, "num_labels": len(datamodule.classes)}
            )
            checkpoint, minutes = zoo_fit(
                RECIPE,
                Path(tmp) / f"run{bits}",
                args.seed,
                args.epochs,
                {"model": {"num_bits": bits}, "data": {"synth_root": args.synth_root}},
            )
            trained = DCVH.load_from_checkpoint(checkpoint, map_location="cpu")
            row = {
                "bits": bits,
                "untrained": score(untrained, datamodule, bits, args.seed),
                "trained": score(trained, datamodule, bits, args.seed),
                "minutes": minutes,
            }
            print(bits, {k: row[k] for k in ("untrained", "trained")}, f"{minutes:.1f} min", flush=True)
            rows.append(row)
    table = markdown_table(rows)
    print(table)
    minutes = ", ".join(f"{r['bits']} bits {r['minutes']:.1f} min" for r in rows)
    counts = f"{len(datamodule.build_dataset('test'))} test queries, {len(datamodule.build_dataset('train'))} training pairs as the database"
    text = (
        "# Learning signal: DCVH cross-view hashing on SynthMotion (CPU)\n\n"
        f"Generated by `python benchmarks/dcvh_learning_signal.py --bits {' '.join(map(str, args.bits))} "
        f"--epochs {args.epochs}` ({platform.machine()}, torch {torch.__version__}, {args.threads} thread; "
        "2 CPU cores shared with other jobs).\n\n"
        f"{table}\n"
        "Settings: `configs/dcvh/synthmotion.yaml` (ResNet-10 image tower on the first 64 px frame of each clip, "
        "a 2-layer BERT of width 64 over UTF-8 bytes on one of its English captions, DBE codes, joint "
        "multi-label loss through one shared classifier, λ = 1 soft-XOR Hamming alignment; AdamW lr 1e-3) "
        f"fitted through `zoo fit` for {args.epochs} epochs ({minutes}). Labels: shape (6), colour (8) and "
        f"motion (8) of each clip, three per pair; {counts}; Hamming ranking of the whole database, stable "
        "among ties; mAP in percent. Random projection: one Gaussian projection per view of the centred "
        "features (query and database together), sign → bits; its cross-view rows compare two unrelated "
        "projections, so they sit near chance by construction — that is the point of learning aligned codes.\n\n"
        'Reading: relevance is "shares at least one of three labels", so chance mAP is high. A single frame '
        "shows shape and colour but not motion (which the caption states); in the training split the "
        "background follows the motion (scene bias 0.8), in the test split it does not.\n"
    )
    write_report(args.out, text)


if __name__ == "__main__":
    main()
