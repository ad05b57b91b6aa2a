"""Feature crops vs pixel crops (STiCA's efficiency claim): training-step time and peak memory at several N.

Both modes embed one full clip and N small crops of it per sample, project them with the MLP head and
train on the same contrastive term (each crop against the full clip, :func:`cross_view_nce_loss`),
forward, backward and an SGD step:

* **feature crops**: one backbone pass over the full clip; the N crops are 4 × 4 windows of its
  7 × 7 feature map, each pooled by the transformer pooling (STiCA's way);
* **pixel crops**: the full clip plus N pixel crops of 64 × 64 (the same 4/7 field of view) through the
  backbone, each pooled the same way (multi-crop's way).

Every (mode, N) runs in a fresh process, so its peak resident memory (``ru_maxrss``) minus the memory
before its first step (model, data and optimizer built) is the training step's own peak (plus the SGD
momentum buffers, the same in both modes). On a CUDA machine the peak is
``torch.cuda.max_memory_allocated`` instead.

    python benchmarks/stica_crops.py            # writes docs/benchmarks/stica_crops.md
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_report

from zoo.models.feature_crops import FeatureCrop, FeatureCropSampler, crop_feature_map
from zoo.models.heads import MLPHead
from zoo.models.transformer_pooling import TransformerPooling
from zoo.objectives.gdt import cross_view_nce_loss
from zoo.registry import build

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "stica_crops.md"


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _measure(mode: str, crops: int, args: argparse.Namespace, queue: mp.Queue) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backbone = build(args.encoder, num_classes=0).to(device)
    pooling = TransformerPooling(backbone.num_features, num_layers=2).to(device)
    head = MLPHead(backbone.num_features, 512, 256, dropout=0.3).to(device)
    params = [*backbone.parameters(), *pooling.parameters(), *head.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    clip = torch.randn(args.batch_size, 3, args.frames, args.size, args.size, device=device)
    window = round(args.size * 4 / 7)  # the pixel size of a 4-cell window of the 7-cell map
    generator = torch.Generator().manual_seed(0)

    def embed(feature_map: torch.Tensor, tokens: int) -> torch.Tensor:
        return F.normalize(head(pooling(feature_map, tokens)), dim=1)

    def step() -> None:
        full_map = backbone.forward_features(clip)  # (B, C, T, 7, 7)
        tokens = full_map.shape[2]
        full = embed(full_map, tokens)
        if mode == "feature":
            sampler = FeatureCropSampler(0, crops, 0, 0, spatial_sizes=(4, 4))
            windows = sampler.sample(tuple(full_map.shape[2:]), generator)["spatial_small"]
            views = [embed(crop_feature_map(full_map, c), tokens) for c in windows]
        else:
            views = []
            for _ in range(crops):
                top, left = (
                    int(torch.randint(args.size - window + 1, (1,), generator=generator)) for _ in "xy"
                )
                pixels = crop_feature_map(
                    clip, FeatureCrop((0, args.frames), (top, top + window), (left, left + window))
                )
                crop_map = backbone.forward_features(pixels)
                views.append(embed(crop_map, crop_map.shape[2]))
        loss = torch.stack(
            [cross_view_nce_loss(full.detach(), v, 0.5, symmetric=False, gather=False) for v in views]
        )
        loss.mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # the resting state: model, data and optimizer built, before any step (momentum buffers then add
    # the same amount in both modes)
    base = torch.cuda.memory_allocated() / 2**20 if device.type == "cuda" else _rss_mib()
    step()  # warm-up (allocator, kernels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20 - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    queue.put(((time.perf_counter() - start) / args.steps, peak, device.type))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="r2plus1d_18")
    parser.add_argument("--crops", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    context = mp.get_context("spawn")
    rows = []
    for crops in args.crops:
        row = {"N": crops}
        for mode in ("feature", "pixel"):
            queue = context.Queue()
            process = context.Process(target=_measure, args=(mode, crops, args, queue))
            process.start()
            process.join()
            if process.exitcode:
                raise RuntimeError(
                    f"the {mode}-crop measurement at N={crops} failed (exit code {process.exitcode})"
                )
            row[mode] = queue.get()
        rows.append(row)
        f, p = row["feature"], row["pixel"]
        print(
            f"N={crops}: feature {f[0]:.2f} s {f[1]:.0f} MiB | pixel {p[0]:.2f} s {p[1]:.0f} MiB", flush=True
        )
    device = rows[0]["feature"][2]
    memory = (
        "peak CUDA memory above the resting state" if device == "cuda" else "peak RSS above the resting state"
    )
    table = (
        f"| N crops | feature crops: step (s) | feature crops: {memory} (MiB) | pixel crops: step (s) "
        f"| pixel crops: {memory} (MiB) | time ratio pixel / feature |\n|---|---|---|---|---|---|\n"
    )
    table += "".join(
        f"| {r['N']} | {r['feature'][0]:.2f} | {r['feature'][1]:.0f} | {r['pixel'][0]:.2f} | {r['pixel'][1]:.0f} "
        f"| {r['pixel'][0] / r['feature'][0]:.1f} |\n"
        for r in rows
    )
    print(table)
    machine = f"{platform.machine()}, torch {torch.__version__}, {device}, {args.threads} thread(s)"
    settings = (
        f"Settings: {args.encoder}, batch {args.batch_size}, clips of {args.frames} frames at {args.size} px (feature map "
        f"T × 7 × 7); each step embeds the full clip plus N crops (transformer pooling 2 layers, MLP head 512-256), "
        "a contrastive term of every crop against the full clip, backward, SGD step; mean of "
        f"{args.steps} steps after one warm-up step. Feature crops: 4 × 4 windows of the map; pixel crops: "
        f"{round(args.size * 4 / 7)} × {round(args.size * 4 / 7)} windows of the clip through the backbone. "
        "Each measurement in a fresh process."
    )
    command = "python benchmarks/stica_crops.py"
    write_report(
        args.out,
        "# Feature crops vs pixel crops (STiCA)\n\n"
        f"Generated by `{command}` ({machine}; CPU cores shared with other jobs, so times are indicative).\n\n"
        f"{table}\n{settings}\n",
    )


if __name__ == "__main__":
    main()
