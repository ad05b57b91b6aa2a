"""bf16 convolutions on CPU: where oneDNN's backward gets the weight gradient wrong, and what zoo's layers cost.

Part 1 — correctness. For each convolution shape, ``--trials`` bf16-autocast forward/backward passes of
``torch.nn.ConvNd`` ("plain") and of ``zoo.models.layers.conv.ConvNd`` ("zoo"), each backward after freeing
buffers full of NaN (so memory read before it is written holds NaN, as it does mid-training). Reported: the
trials whose weight gradient is not finite, and the largest error relative to the float32 gradient of the same
bf16-rounded inputs among the finite ones. Each (shape, layer) runs in its own process: the plain layer can
corrupt the heap and kill it, which the table reports as a crash.

Part 2 — cost. One training step (forward, mean-square loss, backward) of R3D-18 on ``--clip`` clips, float32,
bf16 with plain convolutions and bf16 with zoo's (the last stage's 3-tap temporal kernels see 2 frames, so zoo
runs those in float32), median of ``--steps`` timed steps after a warm-up; and the cosine similarity of the
affected layer's weight gradient to float32's.

Run: ``python benchmarks/cpu_bf16_conv.py`` (under a minute on two cores). Writes docs/benchmarks/cpu_bf16_conv.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from zoo.models.layers import conv as zoo_conv
from zoo.registry import build

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "cpu_bf16_conv.md"
# name -> (dims, input shape, kernel, padding, stride)
CASES = {
    "3x3x3 on 2 frames (R3D layer4 at 16 frames)": (3, (8, 64, 2, 4, 4), 3, 1, 1),
    "3x3x3 on 4 frames (kernel fits)": (3, (8, 64, 4, 4, 4), 3, 1, 1),
    "3x1x1 on 2 frames (R(2+1)D temporal)": (3, (8, 64, 2, 4, 4), (3, 1, 1), (1, 0, 0), 1),
    "3x3x3 on 1 frame, 2x2 map": (3, (8, 64, 1, 2, 2), 3, 1, 1),
    "1x5x5 on a 3x3 map": (3, (2, 16, 4, 3, 3), (1, 5, 5), (0, 1, 1), 1),
    "2D 3x3 stride 2 on a 1x1 map": (2, (4, 16, 1, 1), 3, 1, 2),
    "2D 3x3 on an 8x8 map (kernel fits)": (2, (8, 64, 8, 8), 3, 1, 1),
}


def leave_nan_in_freed_memory() -> None:
    for n in (1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20):
        for dtype in (torch.float32, torch.bfloat16):
            buffer = torch.full((n,), float("nan"), dtype=dtype)
            del buffer


def correctness_worker(case: str, layer: str, trials: int) -> dict:
    """Non-finite trials and the largest finite relative error of the weight gradient (one process)."""
    dims, shape, kernel, padding, stride = CASES[case]
    torch.manual_seed(0)
    module = zoo_conv if layer == "zoo" else nn
    conv = getattr(module, f"Conv{dims}d")(shape[1], 64, kernel, stride, padding, bias=False)
    x = torch.randn(shape).bfloat16()
    with torch.no_grad():
        grad_out = (torch.randn(conv(x.float()).shape) * 1e-2).bfloat16()
    expected = getattr(torch.nn.grad, f"conv{dims}d_weight")(
        x.float(), conv.weight.shape, grad_out.float(), conv.stride, conv.padding
    )
    nonfinite, worst = 0, 0.0
    for _ in range(trials):
        conv.weight.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(x)
        leave_nan_in_freed_memory()
        y.backward(grad_out)
        grad = conv.weight.grad
        if not torch.isfinite(grad).all():
            nonfinite += 1
        else:
            worst = max(worst, float((grad - expected).abs().max() / expected.abs().max()))
    return {"nonfinite": nonfinite, "worst": worst}


def run_worker(case: str, layer: str, trials: int) -> str:
    command = [sys.executable, __file__, "--worker", case, layer, "--trials", str(trials)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        reason = (
            "killed by signal" if done.returncode < 0 or done.returncode > 128 else f"exit {done.returncode}"
        )
        return f"crashed ({reason})"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    error = f"{result['worst']:.2g}" if result["nonfinite"] < trials else "—"
    return f"{result['nonfinite']}/{trials} NaN, max error {error}"


def step_time(model: nn.Module, clip: torch.Tensor, bf16: bool, steps: int) -> tuple[float, dict]:
    def step() -> None:
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(clip)
        out.float().square().mean().backward()

    step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return statistics.median(times), grads


def cost_table(clip_shape: tuple[int, ...], steps: int) -> list[str]:
    torch.manual_seed(0)
    model = build("r3d_18", num_classes=0).train()
    clip = torch.randn(clip_shape)
    fp32_time, fp32_grads = step_time(model, clip, bf16=False, steps=steps)
    zoo_time, zoo_grads = step_time(model, clip, bf16=True, steps=steps)
    guard = zoo_conv.needs_float32_on_cpu
    zoo_conv.needs_float32_on_cpu = lambda *args: False  # every convolution in bf16: the plain layers
    try:
        plain_time, plain_grads = step_time(model, clip, bf16=True, steps=steps)
    finally:
        zoo_conv.needs_float32_on_cpu = guard
    affected = "layer4.1.conv2.0.weight"

    def cosine(grads: dict) -> str:
        value = F.cosine_similarity(grads[affected].flatten(), fp32_grads[affected].flatten(), dim=0)
        return f"{float(value):.3f}" if torch.isfinite(grads[affected]).all() else "NaN"

    rows = [
        "| variant | step (s) | time / float32 | cosine to float32 of `" + affected + "` grad |",
        "|---|---|---|---|",
        f"| float32 | {fp32_time:.2f} | 1.00 | 1.000 |",
        f"| bf16, plain convolutions | {plain_time:.2f} | {plain_time / fp32_time:.2f} | {cosine(plain_grads)} |",
        f"| bf16, zoo's convolutions | {zoo_time:.2f} | {zoo_time / fp32_time:.2f} | {cosine(zoo_grads)} |",
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument(
        "--clip", type=int, nargs=5, default=(4, 3, 16, 64, 64), metavar=("B", "C", "T", "H", "W")
    )
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "LAYER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(correctness_worker(*args.worker, args.trials)))
        return
    lines = [
        "# bf16 convolutions on CPU",
        "",
        f"`python benchmarks/cpu_bf16_conv.py` — torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads. Weight gradients under bf16 autocast after NaN was left in freed "
        f"memory, {args.trials} trials per cell; error relative to the float32 gradient of the same bf16 inputs "
        "(bf16 rounding alone: about 1e-2).",
        "",
        "| convolution (input B, C, T, H, W) | plain `nn.ConvNd` | zoo's `ConvNd` |",
        "|---|---|---|",
    ]
    for case, (_, shape, *_rest) in CASES.items():
        cells = [run_worker(case, layer, args.trials) for layer in ("plain", "zoo")]
        lines.append(f"| {case} {tuple(shape)} | {cells[0]} | {cells[1]} |")
        print(lines[-1], flush=True)
    lines += ["", f"R3D-18 training step on a {tuple(args.clip)} batch, median of {args.steps}:", ""]
    lines += cost_table(tuple(args.clip), args.steps)
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.write_text(text)


if __name__ == "__main__":
    main()
