"""Training-step memory of a Motionformer: activation checkpointing, and FSDP sharding over two processes.

One training step of ``VideoClassifier`` (forward, cross-entropy, backward, AdamW step) on a Motionformer of
ViT-B width (768, 12 heads, trajectory attention) with ``--depth`` blocks (default 4 of the real 12, to keep
the run short), a 8×224 clip (F=4 × P=196 tokens) and ``--batch`` clips per process (default 1), fp32, CPU:

* one process, plain model, activation checkpointing off and on;
* two gloo processes started by torchrun, each with its half of the weights, gradients and AdamW state
  (``VideoClassifier.configure_model``: one FSDP2 unit per block), checkpointing off and on.

Memory is counted by torch's memory tracker (``torch.distributed._tools``: ``MemTracker`` for the plain model,
``FSDPMemTracker`` for the sharded one), which follows every tensor the step allocates and sorts it into
parameters, gradients, optimizer state and activations; figures are the per-process peak of the second
step (the first one creates the AdamW state), exact rather than sampled, so they repeat from run to run.
Times are single-thread wall times of that step, noisy on a shared machine.

Run: ``python benchmarks/fsdp_memory.py`` (about 3 minutes). Writes docs/benchmarks/fsdp_memory.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

from zoo.methods.classifier import VideoClassifier
from zoo.methods.optim import build_optimizer

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "fsdp_memory.md"
WORLD = 2
# column -> the tracker's kinds of memory it sums (MemTracker's, then FSDPMemTracker's)
CATEGORIES = {
    "weights held": ("PARAM", "SHARDED_PARAM"),
    "weights gathered": ("UNSHARDED_PARAM", "ALL_GATHER"),
    "gradients": ("GRAD", "SHARDED_GRAD", "UNSHARDED_GRAD", "REDUCE_SCATTER"),
    "AdamW state": ("OPT",),
    "activations": ("ACT",),
}


def build(depth: int, checkpointing: bool) -> VideoClassifier:
    torch.manual_seed(0)
    return VideoClassifier(
        backbone="motionformer_b16_224",
        backbone_args={"depth": depth, "num_frames": 8, "activation_checkpointing": checkpointing},
        num_classes=400,
    )


def measure(module: VideoClassifier, batch: int, tracker_type: type) -> dict[str, float]:
    """Per-category peak MiB and the time of the second of two training steps on random clips."""
    video = torch.randn(batch, 3, 8, 224, 224)  # (B, C, T, H, W)
    label = torch.randint(0, 400, (batch,))
    optimizer = build_optimizer("adamw", module._param_groups(), 1e-4, 0.9)

    def step() -> None:
        torch.nn.functional.cross_entropy(module(video), label).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)

    step()
    tracker = tracker_type(module.model, optimizer)
    start = time.perf_counter()
    with tracker:
        step()
    seconds = time.perf_counter() - start
    peak = tracker.get_tracker_snapshot("peak")[torch.device("cpu")]
    by_name = {getattr(kind, "name", kind): value for kind, value in peak.items()}
    result = {
        column: sum(by_name.get(kind, 0) for kind in kinds) / 2**20 for column, kinds in CATEGORIES.items()
    }
    return {**result, "total": by_name["Total"] / 2**20, "seconds": seconds}


def plain_tracker(model: torch.nn.Module, optimizer: torch.optim.Optimizer):
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    tracker.track_external(model, optimizer)
    return tracker


def sharded_tracker(model: torch.nn.Module, optimizer: torch.optim.Optimizer):
    from torch.distributed._tools.fsdp2_mem_tracker import FSDPMemTracker

    return FSDPMemTracker(model, optimizer)


def rank_worker(args: argparse.Namespace) -> None:
    """One of the torchrun processes: shard, measure, rank 0 writes the figures."""
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo")
    module = build(args.depth, args.checkpointing)
    module._device_mesh = init_device_mesh(
        "cpu", (WORLD, 1), mesh_dim_names=("data_parallel", "tensor_parallel")
    )  # what ModelParallelStrategy builds for data_parallel_size=2, tensor_parallel_size=1
    module.configure_model()
    result = measure(module, args.batch, sharded_tracker)
    if dist.get_rank() == 0:
        Path(args.worker_out).write_text(json.dumps(result))
    dist.destroy_process_group()


def sharded_run(args: argparse.Namespace, checkpointing: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "rank0.json"
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD}",
            __file__, "--depth", str(args.depth), "--batch", str(args.batch), "--worker-out", str(out),
        ]  # fmt: skip
        if checkpointing:
            command.append("--checkpointing")
        subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        return json.loads(out.read_text())


def table(rows: list[tuple[str, bool, dict[str, float]]]) -> str:
    head = "| processes | checkpointing | " + " | ".join(CATEGORIES) + " | peak total | step (s) |"
    lines = [head, "|---|---|" + "---:|" * (len(CATEGORIES) + 2)]
    for setup, checkpointing, r in rows:
        figures = " | ".join(f"{r[column]:,.0f}" for column in CATEGORIES)
        on = "on" if checkpointing else "off"
        lines.append(f"| {setup} | {on} | {figures} | **{r['total']:,.0f}** | {r['seconds']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=4, help="Motionformer blocks (the real model has 12)")
    parser.add_argument("--batch", type=int, default=1, help="clips per process")
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)  # set when torchrun starts this file
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.worker_out:
        rank_worker(args)
        return
    start = time.perf_counter()
    rows = []
    for checkpointing in (False, True):
        rows.append(
            ("1, plain", checkpointing, measure(build(args.depth, checkpointing), args.batch, plain_tracker))
        )
        print(table(rows), flush=True)
    for checkpointing in (False, True):
        rows.append((f"{WORLD}, FSDP (per process)", checkpointing, sharded_run(args, checkpointing)))
        print(table(rows), flush=True)
    machine = (
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch threads: 1, torch {torch.__version__}. "
        f"Total run time: {time.perf_counter() - start:.0f} s."
    )
    text = f"""# Training-step memory: activation checkpointing and FSDP

Generated by `python benchmarks/fsdp_memory.py`; see its docstring for the method.

{machine}

Motionformer of ViT-B width with {args.depth} of the 12 blocks, 8×224 clip (4×196 tokens), batch {args.batch}
per process, fp32, one training step (forward, backward, AdamW step) on CPU. Peak MiB per process, by kind, as
torch's memory tracker counts them: each column sums the peaks of its kinds ("weights gathered": the blocks'
full weights FSDP gathers around their forward and backward, with the gather buffers; "gradients" include
the reduce-scatter buffers); "peak total" is the peak of all memory the step held at once, temporaries
and inputs included.

{table(rows)}

Activation checkpointing keeps only each block's input for the backward pass and re-computes the rest
(one more forward pass of compute); FSDP halves the weights, gradients and AdamW state each process
holds and gathers one block's weights at a time. Activations scale with the clips per process and the
depth; the sharded state scales with the parameters over the number of processes.
"""
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
