"""k-means over a feature matrix, by a library: faiss when installed, else scikit-learn.

Used by the clustering evaluation (``zoo eval clustering``) and by clustering methods that re-cluster
their features every epoch (DeepCluster-style pseudo-labels). Both backends run Lloyd's algorithm
from several seeded initialisations and keep the one of lowest inertia (the k-means objective
``Σ_i ||x_i - c_{a(i)}||²``); faiss (``pip install 'zoo[cluster]'``) starts from random points and is
several times faster, scikit-learn starts from k-means++. With ``normalize=True`` the rows are
L2-normalised first, so that squared distances are ``2 - 2·cos``: the cosine geometry in which
self-supervised features are compared (DeepCluster clusters L2-normalised features the same way).

Results are deterministic for a given ``seed`` and backend.
"""

from __future__ import annotations

import importlib.util
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from zoo.errors import UsageError

__all__ = ["KMeansResult", "available_backends", "kmeans"]

Backend = Literal["auto", "faiss", "sklearn"]
BACKEND_PACKAGES = {"faiss": "faiss", "sklearn": "sklearn"}


class KMeansResult(NamedTuple):
    """Centroids (K, D), assignments (N,) and inertia of a k-means run."""

    centroids: torch.Tensor
    assignments: torch.Tensor
    inertia: float


def available_backends() -> list[str]:
    """The installed backends, preferred first."""
    return [name for name, package in BACKEND_PACKAGES.items() if importlib.util.find_spec(package)]


@torch.no_grad()
def kmeans(
    features: torch.Tensor,
    num_clusters: int,
    iters: int = 100,
    restarts: int = 3,
    seed: int = 0,
    normalize: bool = False,
    backend: Backend = "auto",
) -> KMeansResult:
    """Cluster the rows of ``features`` (N, D) into ``num_clusters``.

    Args:
        features: the points, one per row (any device and float dtype).
        num_clusters: K, between 1 and N.
        iters: Lloyd iterations per run (scikit-learn stops earlier once converged).
        restarts: initialisations tried; the run with the lowest inertia is kept.
        seed: seed of the initialisations.
        normalize: L2-normalise the rows first (cosine k-means); centroids are then means of unit
            vectors, and the inertia is measured on the normalised rows.
        backend: ``faiss``, ``sklearn``, or ``auto`` (faiss when installed).

    Returns:
        Centroids (K, D) and assignments (N,) on the device of ``features``, and the inertia.
    """
    if features.ndim != 2:
        raise UsageError(f"k-means needs a (N, D) feature matrix, got shape {tuple(features.shape)}")
    if not 1 <= num_clusters <= len(features):
        raise UsageError(f"k-means: num_clusters must be between 1 and N={len(features)}, got {num_clusters}")
    x = features.detach().float()
    if normalize:
        x = F.normalize(x, dim=1)
    points = np.ascontiguousarray(x.cpu().numpy(), dtype=np.float32)  # (N, D)
    name = _backend(backend)
    if name == "faiss":
        centroids, assignments = _faiss_kmeans(points, num_clusters, iters, restarts, seed)
    else:
        centroids, assignments = _sklearn_kmeans(points, num_clusters, iters, restarts, seed)
    centroids = torch.from_numpy(centroids).to(x.device)  # (K, D)
    assignments = torch.from_numpy(assignments).long().to(x.device)  # (N,)
    inertia = float((x - centroids[assignments]).square().sum())
    return KMeansResult(centroids, assignments, inertia)


def _backend(backend: Backend) -> str:
    installed = available_backends()
    if backend == "auto":
        if not installed:
            raise UsageError("k-means needs faiss or scikit-learn: pip install 'zoo[cluster]'")
        return installed[0]
    if backend not in BACKEND_PACKAGES:
        raise UsageError(f"unknown k-means backend '{backend}' (faiss, sklearn or auto)")
    if backend not in installed:
        raise UsageError(f"k-means backend '{backend}' is not installed (installed: {installed or 'none'})")
    return backend


def _faiss_kmeans(
    points: np.ndarray, k: int, iters: int, restarts: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    n, d = points.shape
    clustering = faiss.Kmeans(
        d,
        k,
        niter=iters,
        nredo=restarts,
        seed=seed,
        max_points_per_centroid=-(-n // k),  # every point takes part (faiss subsamples by default)
        min_points_per_centroid=1,  # small N is fine: no warning
    )
    clustering.train(points)
    _, nearest = clustering.index.search(points, 1)  # (N, 1)
    return clustering.centroids, nearest[:, 0]


def _sklearn_kmeans(
    points: np.ndarray, k: int, iters: int, restarts: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import KMeans

    fitted = KMeans(k, init="k-means++", n_init=restarts, max_iter=iters, random_state=seed).fit(points)
    return fitted.cluster_centers_.astype(np.float32), fitted.labels_
