"""Trajectory attention: the naive exact form vs ours (exact, memory-efficient) vs Orthoformer.

Rows: one trajectory-attention layer (ViT-B width: C=768, 12 heads), inference and a training step
(forward + backward), and the Motionformer model with fewer blocks than the real 12 (``--model-depth``,
default 2, to keep the run short; memory and time of the attention part scale with depth), at the token
grids of 8×224 (F=4, P=196), 16×224 (F=8, P=196) and 8×336 (F=4, P=441) clips; batch 1, fp32.

* naive — the original's form: the (S, S) similarity per head is materialised (``naive=True``);
* ours — exact, SDPA over each frame's keys, 1024 queries per chunk (the default);
* ours-math — exact, explicit softmax per 256-query chunk (no fused kernel: chunking alone);
* orthoformer — 128 landmarks; "rel. err" is ‖y − y_exact‖ / ‖y_exact‖ of the layer output vs the exact
  layer with the same weights, on random inputs and weights (not representative of trained features).

CPU: every case runs in a forked child process; peak memory is the rise of the process's peak RSS
(``ru_maxrss``) over its RSS just before the measured call (after a warm-up on a tiny input), so it
counts what the call allocates; time is the median of ``--repeats`` calls after that. GPU (when CUDA is
available): ``torch.cuda.max_memory_allocated`` above the inputs, CUDA-synchronised times, SDPA vs
xformers (if installed) and fp32 vs bf16.

Run: ``python benchmarks/attention.py`` (about 3-4 minutes with the default single torch thread; more
threads speed up the large products but stall on a machine shared with other jobs). Writes
docs/benchmarks/attention.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import psutil
import torch

from zoo.models.layers.trajectory import TrajectoryAttention
from zoo.models.motionformer import VideoTransformer

GRIDS = {"8×224": (4, 14), "16×224": (8, 14), "8×336": (4, 21)}  # clip -> (F, grid side)
METHODS = ("naive", "ours", "ours-math", "orthoformer")
WIDTH, HEADS = 768, 12


def build_layer(method: str) -> TrajectoryAttention:
    return TrajectoryAttention(
        WIDTH, HEADS, approx="orthoformer" if method == "orthoformer" else "none", num_landmarks=128,
        chunk_size=256 if method == "ours-math" else 1024, naive=method == "naive",
        backend="math" if method == "ours-math" else None,
    )  # fmt: skip


def build_model(method: str, depth: int, side: int, frames: int) -> VideoTransformer:
    model = VideoTransformer(
        img_size=16 * side, num_frames=2 * frames, depth=depth, num_classes=400,
        attn_type="orthoformer" if method == "orthoformer" else "trajectory",
        chunk_size=256 if method == "ours-math" else 1024,
        attention_backend="math" if method == "ours-math" else None, drop_path_rate=0.0,
    )  # fmt: skip
    for module in model.modules():
        if isinstance(module, TrajectoryAttention):
            module.naive = method == "naive"
    return model


def make_case(case: dict, device: str, dtype: torch.dtype):
    """(callable to measure, warm-up callable, module) for a case description."""
    frames, side = case["frames"], case["side"]
    torch.manual_seed(0)
    if case["what"] == "model":
        module = build_model(case["method"], case["depth"], side, frames).to(device, dtype).eval()
        x = torch.randn(1, 3, 2 * frames, 16 * side, 16 * side, device=device, dtype=dtype)
        small = torch.randn(1, 3, 4, 32, 32, device=device, dtype=dtype)

        def run(inp=x):
            with torch.no_grad():
                return module(inp)

        return run, lambda: run(small), module, x
    module = build_layer(case["method"]).to(device, dtype)
    x = torch.randn(1, 1 + frames * side * side, WIDTH, device=device, dtype=dtype)
    small = torch.randn(1, 1 + 2 * 16, WIDTH, device=device, dtype=dtype)
    if case["what"] == "layer-train":
        module.train()
        x.requires_grad_(True)

        def run(inp=x, f=frames):
            out = module(inp, num_frames=f)
            out.sum().backward()
            module.zero_grad(set_to_none=True)
            inp.grad = None

        return run, lambda: run(small.requires_grad_(True), 2), module, x
    module.eval()

    def run(inp=x, f=frames):
        with torch.no_grad():
            return module(inp, num_frames=f)

    return run, lambda: run(small, 2), module, x


def layer_error(case: dict, module: TrajectoryAttention, x: torch.Tensor) -> float:
    """Relative error of the Orthoformer layer output vs the exact layer with the same weights."""
    with torch.no_grad():
        torch.manual_seed(0)
        approx = module(x, num_frames=case["frames"])
        module.approx = "none"
        exact = module(x, num_frames=case["frames"])
        module.approx = "orthoformer"
    return ((approx - exact).norm() / exact.norm()).item()


def timed(run, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def worker(case: dict) -> dict:
    """Measure one case in this process: peak memory of one call, then its time over repeated calls."""
    device = "cuda" if case.get("gpu") else "cpu"
    dtype = getattr(torch, case.get("dtype", "float32"))
    os.environ["ZOO_ATTENTION"] = case.get("backend", "sdpa")
    run, warm, module, x = make_case(case, device, dtype)
    warm()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        times = [timed(run, device)]
        peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        rss_before = psutil.Process().memory_info().rss
        maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        times = [timed(run, device)]
        maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        # the high-water mark only moves if the call went above everything before it
        peak_mb = (maxrss_after - rss_before) / 2**20 if maxrss_after > maxrss_before else None
    times += [timed(run, device) for _ in range(case["repeats"])]
    result = {"ms": 1e3 * statistics.median(times), "peak_mb": peak_mb}
    if case["method"] == "orthoformer" and case["what"] == "layer":
        result["rel_err"] = layer_error(case, module, x)
    return result


def _child(case: dict, conn) -> None:
    torch.set_num_threads(case["threads"])
    try:
        conn.send(worker(case))
    except Exception as exc:  # reported in the table
        conn.send({"error": f"{type(exc).__name__}: {exc}"})


def run_case(case: dict) -> dict:
    """CPU: a forked child per case, so that peak RSS does not carry over; GPU: in this process."""
    if case.get("gpu"):
        try:
            result = worker(case)
        except Exception as exc:  # e.g. out of memory for the naive form; reported in the table
            result = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
        torch.cuda.empty_cache()
        return result
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(case, send))
    child.start()
    result = receive.recv() if receive.poll(600) else {"error": "timeout"}
    child.join()
    return result


def fmt(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def table(rows: list[tuple[dict, dict]], title: str, gpu: bool = False) -> str:
    lines = [f"### {title}", ""]
    extra = " backend | dtype |" if gpu else ""
    lines.append(
        f"| clip | tokens F×P (S) | method |{extra} time (ms) | peak memory (MiB) | memory / naive | rel. err |"
    )
    lines.append("|---|---|---|" + ("---|---|" if gpu else "") + "---:|---:|---:|---:|")
    naive_mem = {}
    for case, res in rows:
        key = (case["clip"], case.get("backend"), case.get("dtype"))
        if case["method"] == "naive" and res.get("peak_mb"):
            naive_mem[key] = res["peak_mb"]
    for case, res in rows:
        frames, side = case["frames"], case["side"]
        tokens = f"{frames}×{side * side} ({frames * side * side})"
        gpu_cols = f" {case.get('backend')} | {case.get('dtype')} |" if gpu else ""
        if "error" in res:
            lines.append(
                f"| {case['clip']} | {tokens} | {case['method']} |{gpu_cols} failed: {res['error']} | | | |"
            )
            continue
        naive = naive_mem.get((case["clip"], case.get("backend"), case.get("dtype")))
        ratio = f"{res['peak_mb'] / naive:.2f}" if naive and res.get("peak_mb") is not None else "n/a"
        err = f"{res['rel_err']:.3f}" if "rel_err" in res else ""
        lines.append(
            f"| {case['clip']} | {tokens} | {case['method']} |{gpu_cols} {fmt(res['ms'], 1)} | "
            f"{fmt(res['peak_mb'])} | {ratio} | {err} |"
        )
    return "\n".join(lines) + "\n"


def cpu_cases(args) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    common = {"threads": args.threads, "repeats": args.repeats}
    for what, title in (
        ("layer", "One trajectory-attention layer, inference (CPU, fp32, batch 1)"),
        (
            "layer-train",
            "One trajectory-attention layer, training step: forward + backward (CPU, fp32, batch 1)",
        ),
        ("model", f"Motionformer, {args.model_depth} of 12 blocks, inference (CPU, fp32, batch 1)"),
    ):
        methods = [m for m in METHODS if not (what != "layer" and m == "ours-math")]
        groups[title] = [
            {
                **common,
                "what": what,
                "clip": clip,
                "frames": f,
                "side": s,
                "method": m,
                "depth": args.model_depth,
            }
            for clip, (f, s) in GRIDS.items()
            for m in methods
        ]
    return groups


def gpu_cases(args) -> dict[str, list[dict]]:
    import importlib.util

    backends = ["sdpa"] + (["xformers"] if importlib.util.find_spec("xformers") else [])
    grids = {**GRIDS, "16×336": (8, 21)}
    cases = []
    for clip, (f, s) in grids.items():
        for dtype in ("float32", "bfloat16"):
            for backend in backends:
                for m in ("naive", "ours", "orthoformer"):
                    cases.append({"threads": args.threads, "repeats": 10, "what": "layer", "clip": clip, "frames": f,
                                  "side": s, "method": m, "gpu": True, "dtype": dtype, "backend": backend})  # fmt: skip
    return {"One trajectory-attention layer, inference (GPU, batch 1)": cases}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per case (1: stable on a busy machine)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="timed calls after the measured one")
    parser.add_argument("--model-depth", type=int, default=2)
    parser.add_argument("--out", default="docs/benchmarks/attention.md")
    args = parser.parse_args()

    # the parent computes nothing with torch before forking (its thread pools must not exist yet)
    start = time.time()
    sections = []
    groups = cpu_cases(args)
    if torch.cuda.is_available():
        groups.update(gpu_cases(args))
    for title, cases in groups.items():
        rows = []
        for case in cases:
            rows.append((case, run_case(case)))
            print(
                f"  {case['what']:<11} {case['clip']:<7} {case['method']:<12} {rows[-1][1]}", file=sys.stderr
            )
        sections.append(table(rows, title, gpu="GPU" in title))
        print(sections[-1])
    header = (
        "# Trajectory attention: naive vs ours vs Orthoformer\n\n"
        "Generated by `python benchmarks/attention.py`; see its docstring for the method.\n\n"
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch threads: {args.threads}, torch {torch.__version__}"
        + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU")
        + f". Times are medians of {args.repeats + 1} calls and are noisy on a shared machine; memory is "
        "the rise of peak RSS during one call (CPU) or of `max_memory_allocated` (GPU). "
        f"The model rows use {args.model_depth} of the 12 blocks. Total run time: {time.time() - start:.0f} s.\n\n"
    )
    if not torch.cuda.is_available():
        header += (
            "The GPU table (SDPA vs xformers, fp32 vs bf16) is produced only where CUDA is available.\n\n"
        )
    text = header + "\n".join(sections)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
