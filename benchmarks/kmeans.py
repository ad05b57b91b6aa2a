"""k-means: the former hand-written torch Lloyd's against faiss and scikit-learn, time and inertia side by side.

``zoo.objectives.kmeans`` replaced a hand-written k-means (k-means++ seeding, Lloyd's in torch, best of 5
restarts); that implementation is kept below as the baseline. Data: Gaussian mixtures with overlapping
clusters, L2-normalised as the clustering evaluation does, at the size of a clustering evaluation
(2,000 x 128, K = 10) and of a per-epoch re-clustering (10,000 x 128, K = 50). Every backend runs
on one thread, 100 iterations at most; wall-clock time, median of 3 runs; inertia is
``Σ ||x - c||²`` on the same normalised rows (lower is better). Ratios are against the hand-written one.

Run: ``python benchmarks/kmeans.py``. Writes docs/benchmarks/kmeans.md.
"""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from zoo.objectives.kmeans import available_backends, kmeans

DEFAULT_RESTARTS = inspect.signature(kmeans).parameters["restarts"].default
REPEATS = 3
CASES = {"eval: 2,000 x 128, K=10": (2_000, 128, 10), "epoch: 10,000 x 128, K=50": (10_000, 128, 50)}


@torch.no_grad()
def handwritten_kmeans(x: torch.Tensor, num_clusters: int, iters: int = 100, restarts: int = 5) -> float:
    """The former ``zoo.eval.clustering.kmeans``: k-means++ seeding, Lloyd's, best of ``restarts``; its inertia."""
    g = torch.Generator().manual_seed(0)
    best_inertia = float("inf")
    for _ in range(restarts):
        centers = x[torch.randint(len(x), (1,), generator=g)]
        for _ in range(num_clusters - 1):
            d2 = torch.cdist(x, centers).min(dim=1).values.square()
            weights = d2 if d2.sum() > 0 else torch.ones_like(d2)
            centers = torch.cat([centers, x[torch.multinomial(weights, 1, generator=g)]])
        for _ in range(iters):
            assign = torch.cdist(x, centers).argmin(dim=1)
            counts = torch.bincount(assign, minlength=num_clusters).unsqueeze(1)
            sums = torch.zeros_like(centers).index_add_(0, assign, x)
            new = torch.where(counts > 0, sums / counts.clamp_min(1), centers)
            if torch.allclose(new, centers):
                break
            centers = new
        best_inertia = min(best_inertia, float(torch.cdist(x, centers).min(dim=1).values.square().sum()))
    return best_inertia


def mixture(n: int, d: int, k: int, seed: int = 0) -> torch.Tensor:
    """(N, D) unit rows: K Gaussian clusters whose spread makes them overlap."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(k, d, generator=g)
    labels = torch.randint(k, (n,), generator=g)
    return F.normalize(means[labels] + 1.5 * torch.randn(n, d, generator=g), dim=1)


def timed(run: Callable[[], float]) -> tuple[float, float]:
    """(median wall-clock seconds, inertia) over REPEATS runs."""
    times, inertia = [], 0.0
    for _ in range(REPEATS):
        start = time.perf_counter()
        inertia = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), inertia


def one_thread() -> None:
    """Every backend on one thread: torch, faiss's OpenMP, scikit-learn's OpenMP and BLAS."""
    torch.set_num_threads(1)
    if "faiss" in available_backends():
        import faiss

        faiss.omp_set_num_threads(1)
    if "sklearn" in available_backends():
        import sklearn.cluster  # noqa: F401  (loads its OpenMP runtime, which threadpoolctl then limits)
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="docs/benchmarks/kmeans.md")
    args = parser.parse_args()
    one_thread()
    started = time.perf_counter()
    rows: dict[str, Callable[[torch.Tensor, int], float]] = {
        "hand-written torch (5 restarts, former)": handwritten_kmeans
    }
    for backend in available_backends():
        for restarts in (1, 3):
            label = f"{restarts} restart{'s' * (restarts > 1)}{', default' * (restarts == DEFAULT_RESTARTS)}"
            rows[f"{backend} ({label})"] = lambda x, k, backend=backend, restarts=restarts: (
                kmeans(x, k, restarts=restarts, backend=backend).inertia
            )
    header = "| backend | " + " | ".join(f"{case}: time ms (x former) | inertia (x former)" for case in CASES)
    lines = [header + " |", "|---|" + "---|---|" * len(CASES)]
    results: dict[str, list[tuple[float, float]]] = {row: [] for row in rows}
    for n, d, k in CASES.values():
        x = mixture(n, d, k)
        for row, run in rows.items():
            results[row].append(timed(lambda run=run, x=x, k=k: run(x, k)))
    baseline = results[next(iter(rows))]
    for row, figures in results.items():
        cells = [
            f"{seconds * 1e3:.0f} ({seconds / base_s:.2f}x) | {inertia:.1f} ({inertia / base_i:.4f}x)"
            for (seconds, inertia), (base_s, base_i) in zip(figures, baseline)
        ]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    versions = [f"torch {torch.__version__}"]
    for backend, module in (("faiss", "faiss"), ("sklearn", "sklearn")):
        if backend in available_backends():
            versions.append(f"{backend} {__import__(module).__version__}")
    note = (
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared; every backend on one thread), "
        f"Python {platform.python_version()}, {', '.join(versions)}. Wall-clock time, median of {REPEATS} "
        f"runs. Total run {time.perf_counter() - started:.0f} s."
    )
    text = "# k-means\n\nGenerated by `python benchmarks/kmeans.py`.\n\n" + "\n".join(lines) + f"\n\n{note}\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
