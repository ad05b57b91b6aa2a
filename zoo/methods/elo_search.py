"""The evolutionary search over ELo's loss weights λ ∈ [0, 1] (``zoo elo search``).

ELo (Piergiovanni et al., CVPR 2020) evolves the weights of its task and distillation losses with
tournament selection and mutation, scoring each candidate by an unsupervised fitness: Zipf
distribution matching of the k-means clusters of the student's features
(:func:`zoo.objectives.zipf.zipf_fitness`, lower is better). The driver here does not import
Lightning: :func:`evolve` works with any ``evaluate(weights) -> {"fitness": ..., ...}``, and
:class:`ProxyTraining` is one that runs a short ``zoo fit`` of a recipe in a subprocess, then
``zoo eval knn`` on its checkpoint (which caches the features of the training and the test split)
and computes the fitness on the training split's features; the kNN top-1 on the test split is
recorded beside it (never used for selection), so the search reports how well the fitness
follows downstream accuracy.

The evolution (zoo's choices, the paper's settings were not read): the first individual is the
recipe's λ, the others uniform in [0, 1]; each generation makes ``population_size`` children, each
from the winner of a tournament of ``tournament_size`` individuals drawn without replacement, by
mutating every λ with probability ``mutation_rate`` (at least one) by Gaussian noise of standard
deviation ``mutation_std``, clamped to [0, 1]; parents and children compete and the best
``population_size`` survive (elitist (μ + λ) selection).
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import UsageError

__all__ = [
    "Candidate",
    "ProxyTraining",
    "SearchResult",
    "evolve",
    "loss_names",
    "mutate",
    "pearson",
    "spearman",
    "tournament",
]

Weights = dict[str, float]

STUDENT = "video"
# ELo's teachers: name -> (batch key of its input, dimension of time in that input, recipe argument)
TEACHERS = {
    "residual": ("video", 2, "residual_encoder"),
    "audio": ("audio", 3, "audio_encoder"),
    "motion_vectors": ("motion_vectors", 2, "motion_encoder"),
}


def loss_names(teachers: list[str], distill_layers: list[str]) -> list[str]:
    """The λ names of ELo with these teachers and distillation layers, in the order of the loss sum."""
    names = [f"{STUDENT}.reverse"]
    for teacher in teachers:
        names += [f"{teacher}.reverse", f"{teacher}.align"]
        names += [f"distill.{teacher}.{layer}" for layer in distill_layers]
    return names


@dataclass
class Candidate:
    """One evaluated λ vector: its generation, weights, fitness (lower is better) and other figures."""

    generation: int
    weights: Weights
    fitness: float
    figures: dict[str, float] = field(default_factory=dict)


@dataclass
class SearchResult:
    """Every candidate evaluated (in order) and the surviving population, best first."""

    history: list[Candidate]
    population: list[Candidate]

    @property
    def best(self) -> Candidate:
        return self.population[0]

    def correlation(self, figure: str) -> dict[str, float]:
        """Pearson and Spearman correlation of the fitness with ``figure`` over every candidate."""
        pairs = [(c.fitness, c.figures[figure]) for c in self.history if figure in c.figures]
        fitness, values = [p[0] for p in pairs], [p[1] for p in pairs]
        return {"pearson": pearson(fitness, values), "spearman": spearman(fitness, values), "n": len(pairs)}

    def to_json(self) -> dict[str, Any]:
        return {"history": [asdict(c) for c in self.history], "best": asdict(self.best)}


def mutate(weights: Weights, rng: random.Random, rate: float = 0.3, std: float = 0.2) -> Weights:
    """A child of ``weights``: each λ moved by N(0, std²) with probability ``rate`` (at least one
    λ), clamped to [0, 1]."""
    names = list(weights)
    chosen = [n for n in names if rng.random() < rate] or [rng.choice(names)]
    return {n: min(1.0, max(0.0, w + rng.gauss(0.0, std))) if n in chosen else w for n, w in weights.items()}


def tournament(population: list[Candidate], rng: random.Random, size: int = 2) -> Candidate:
    """The fittest (lowest fitness) of ``size`` candidates drawn without replacement."""
    return min(rng.sample(population, min(size, len(population))), key=lambda c: c.fitness)


def evolve(
    initial: Weights,
    evaluate: Callable[[Weights], Mapping[str, float]],
    population_size: int = 6,
    generations: int = 3,
    tournament_size: int = 2,
    mutation_rate: float = 0.3,
    mutation_std: float = 0.2,
    seed: int = 0,
    on_candidate: Callable[[Candidate], None] | None = None,
) -> SearchResult:
    """Evolve λ vectors from ``initial`` and return every candidate and the final population.

    Args:
        initial: the first individual (its names are the searched λ); every λ in [0, 1].
        evaluate: λ → figures with ``"fitness"`` (minimised) and any others to record.
        population_size: individuals kept per generation (and children made per generation).
        generations: generations of children after the initial population
            (``population_size · (1 + generations)`` evaluations).
        tournament_size: candidates per tournament.
        mutation_rate: probability that a λ of a child is mutated.
        mutation_std: standard deviation of a mutation.
        seed: seed of the initial population, the tournaments and the mutations.
        on_candidate: called with each candidate once evaluated (progress, logs).
    """
    if not initial:
        raise UsageError("the search needs at least one loss weight")
    if population_size < 2:
        raise UsageError(f"population_size must be at least 2, got {population_size}")
    outside = {n: w for n, w in initial.items() if not 0.0 <= w <= 1.0}
    if outside:
        raise UsageError(f"every λ must lie in [0, 1]: {outside}")
    rng = random.Random(seed)
    history: list[Candidate] = []

    def scored(weights: Weights, generation: int) -> Candidate:
        figures = dict(evaluate(weights))
        if "fitness" not in figures:
            raise UsageError(f"evaluate must return a 'fitness', got {sorted(figures)}")
        candidate = Candidate(generation, dict(weights), float(figures.pop("fitness")), figures)
        history.append(candidate)
        if on_candidate is not None:
            on_candidate(candidate)
        return candidate

    starts = [dict(initial)] + [{n: rng.random() for n in initial} for _ in range(population_size - 1)]
    population = [scored(w, 0) for w in starts]
    for generation in range(1, generations + 1):
        children = [
            scored(
                mutate(
                    tournament(population, rng, tournament_size).weights, rng, mutation_rate, mutation_std
                ),
                generation,
            )
            for _ in range(population_size)
        ]
        population = sorted(population + children, key=lambda c: c.fitness)[:population_size]
    return SearchResult(history, sorted(population, key=lambda c: c.fitness))


def pearson(x: list[float], y: list[float]) -> float:
    """Pearson correlation (nan with fewer than two points or a constant series)."""
    n = len(x)
    if n < 2:
        return math.nan
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx, syy = sum((a - mx) ** 2 for a in x), sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else math.nan


def _ranks(values: list[float]) -> list[float]:
    """Ranks 1..n, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman rank correlation: Pearson of the ranks."""
    return pearson(_ranks(x), _ranks(y))


@dataclass
class ProxyTraining:
    """evaluate(λ): a short ``zoo fit`` of ``recipe`` with these λ, then the fitness and the kNN top-1.

    Args:
        recipe: an ELo recipe (``configs/elo/synthmotion.yaml``).
        work_dir: one folder per candidate (``candidate_000``, ...) with its override, checkpoint,
            features and logs.
        max_steps: optimiser steps of each proxy training.
        num_clusters: k of the Zipf fitness.
        zipf_exponent: s of the Zipf prior.
        data_args: data-module arguments that override the recipe's (smaller data, workers).
        knn_k: neighbours of the kNN accuracy.
        seed: ``seed_everything`` of every proxy training (the same for all: candidates differ by λ only).
        python: the interpreter that runs ``zoo``.
        evaluated: candidates evaluated so far (numbers their folders).
    """

    recipe: Path
    work_dir: Path
    max_steps: int = 30
    num_clusters: int = 16
    zipf_exponent: float = 1.0
    data_args: dict[str, Any] = field(default_factory=dict)
    knn_k: int = 10
    seed: int = 0
    python: str = sys.executable
    evaluated: int = 0

    def initial_weights(self) -> Weights:
        """The recipe's λ with every searched name (1 where the recipe gives none)."""
        config = yaml.safe_load(Path(self.recipe).read_text())
        init = (config.get("model") or {}).get("init_args") or {}
        teachers = [
            t for t, (_, _, argument) in TEACHERS.items() if init.get(argument, "default") is not None
        ]
        names = loss_names(teachers, init.get("distill_layers") or ["layer3", "layer4"])
        given = init.get("loss_weights") or {}
        return {n: float(given.get(n, 1.0)) for n in names}

    def _data(self) -> dict[str, Any]:
        config = yaml.safe_load(Path(self.recipe).read_text())
        return {**((config.get("data") or {}).get("init_args") or {}), **self.data_args}

    def __call__(self, weights: Weights) -> dict[str, float]:
        run_dir = Path(self.work_dir) / f"candidate_{self.evaluated:03d}"
        self.evaluated += 1
        run_dir.mkdir(parents=True, exist_ok=True)
        override = {
            "seed_everything": self.seed,
            "trainer": {
                "max_epochs": 10_000,
                "max_steps": self.max_steps,
                "limit_val_batches": 0,
                "default_root_dir": str(run_dir),
                "logger": False,
                "enable_progress_bar": False,
                "callbacks": [
                    {
                        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                        "init_args": {"dirpath": str(run_dir / "ckpt"), "save_last": True},
                    }
                ],
            },
            "model": {"init_args": {"loss_weights": weights}},
            "data": {"init_args": self.data_args},
        }
        (run_dir / "override.yaml").write_text(yaml.safe_dump(override))
        (run_dir / "weights.json").write_text(json.dumps(weights, indent=1))
        self._zoo(["fit", "--config", str(self.recipe), "--config", str(run_dir / "override.yaml")], run_dir)
        knn = json.loads(self._zoo(self._eval_args(run_dir), run_dir).strip().splitlines()[-1])
        features = sorted((run_dir / "features").glob("*-train-*.safetensors"))
        if not features:
            raise UsageError(f"{run_dir}: zoo eval wrote no training-split features")
        from zoo.eval.features import load_features
        from zoo.objectives.zipf import zipf_fitness

        train = load_features(features[0]).features
        fitness = zipf_fitness(train, self.num_clusters, self.zipf_exponent, seed=self.seed)
        return {"fitness": fitness, "knn_top1": float(knn["top1"])}

    def _eval_args(self, run_dir: Path) -> list[str]:
        data = self._data()
        root = data.get("synth_root")
        args = ["eval", "knn", "--model", str(run_dir / "ckpt" / "last.ckpt")]
        args += ["--data", root or "synthmotion", "--modality", "video", "--k", str(self.knn_k)]
        args += ["--frames", str(data.get("num_frames", 8)), "--stride", str(data.get("stride", 1.0))]
        args += ["--size", str(data.get("size", 32)), "--workers", str(data.get("num_workers", 0))]
        return [*args, "--device", "cpu", "--cache-dir", str(run_dir / "features"), "--json"]

    def _zoo(self, args: list[str], run_dir: Path) -> str:
        done = subprocess.run(
            [self.python, "-m", "zoo.cli", *args], capture_output=True, text=True, cwd=Path.cwd()
        )
        (run_dir / f"{args[0]}.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise UsageError(f"zoo {args[0]} failed for {run_dir} (exit {done.returncode}): {tail[0]}")
        return done.stdout
