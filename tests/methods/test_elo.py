"""ELo: λ-weighted task and distillation losses over teachers on other modalities, and the search over λ."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from zoo.data.batch import MissingBatchKeyError
from zoo.errors import UsageError
from zoo.methods.elo import ELo, _reverse
from zoo.methods.elo_search import Candidate, evolve, loss_names, mutate, pearson, spearman, tournament

TINY = {"motion_encoder_kwargs": {"widths": [16, 32, 48, 64]}, "embedding_dim": 16, "online_probe": False}


def _batch(b: int = 4, sound: bool = True) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {
        "video": torch.randn(b, 3, 4, 32, 32),
        "audio": torch.randn(b, 1, 40, 50),
        "audio_mask": torch.full((b, 50), sound),
        "motion_vectors": torch.randn(b, 2, 4, 4, 4),
        "index": torch.arange(b),
    }


def test_every_term_is_weighted_by_its_lambda():
    weights = {
        name: 0.1 * (i % 10)
        for i, name in enumerate(loss_names(["residual", "audio", "motion_vectors"], ["layer3", "layer4"]))
    }
    model = ELo(loss_weights=weights, **TINY)
    assert model.loss_names == list(weights)
    torch.manual_seed(1)
    out = model.ssl_step(_batch())
    terms = {k: v for k, v in out.items() if k in weights}
    assert set(terms) == {n for n, w in weights.items() if w > 0}  # a term with λ = 0 is not computed
    expected = sum(weights[name] * value for name, value in terms.items())
    torch.testing.assert_close(out["loss"].detach(), expected)
    assert out["features"].shape == (4, model.encoders["video"].num_features)


def test_lambdas_outside_the_unit_interval_or_unknown_are_refused():
    with pytest.raises(UsageError, match=r"'audio.align' is 1.5.*\[0, 1\]"):
        ELo(loss_weights={"audio.align": 1.5}, **TINY)
    with pytest.raises(UsageError, match=r"unknown name.*flow.align"):
        ELo(loss_weights={"flow.align": 0.5}, **TINY)
    with pytest.raises(UsageError, match="every λ is 0"):
        ELo(
            loss_weights=dict.fromkeys(loss_names(["audio"], []), 0.0),
            audio_encoder="resnet9_audio",
            residual_encoder=None,
            motion_encoder=None,
            distill_layers=[],
            online_probe=False,
        )


def test_a_teacher_whose_lambdas_are_all_zero_is_not_run():
    off = {n: 0.0 for n in loss_names(["audio"], ["layer3", "layer4"]) if "audio" in n}
    model = ELo(loss_weights=off, **TINY)
    out = model.ssl_step(_batch())
    out["loss"].backward()
    assert not any(k.startswith(("audio.", "distill.audio")) for k in out)
    assert all(p.grad is None for p in model.encoders["audio"].parameters())
    assert any(p.grad is not None for p in model.encoders["motion_vectors"].parameters())


def test_distillation_trains_the_student_and_not_the_teacher():
    only = {n: 0.0 for n in loss_names(["residual", "audio", "motion_vectors"], ["layer3", "layer4"])}
    only["distill.residual.layer4"] = 1.0
    model = ELo(loss_weights=only, **TINY)
    out = model.ssl_step(_batch())
    out["loss"].backward()
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoders["video"].layer4.parameters()
    )
    assert all(p.grad is None for p in model.encoders["residual"].parameters())


def test_silent_clips_are_left_out_of_the_audio_terms():
    model = ELo(**TINY)
    out = model.ssl_step(_batch(sound=False))
    assert not any(k.startswith(("audio.", "distill.audio")) for k in out)
    assert "motion_vectors.align" in out


def test_a_missing_modality_names_its_key_and_teacher():
    batch = _batch()
    del batch["motion_vectors"]
    with pytest.raises(MissingBatchKeyError, match=r"motion_vectors.*motion_vectors teacher"):
        ELo(**TINY).ssl_step(batch)


def test_reverse_flips_time_of_the_flagged_samples_only():
    x = torch.arange(2 * 3).float().view(2, 1, 3)
    flipped = _reverse(x, torch.tensor([True, False]), 2)
    torch.testing.assert_close(flipped, torch.tensor([[[2.0, 1.0, 0.0]], [[3.0, 4.0, 5.0]]]))


def test_residual_teacher_reads_frame_differences():
    model = ELo(**TINY)
    assert model.encoders["residual"].frame_difference and not model.encoders["video"].frame_difference


# --- the search ------------------------------------------------------------------------------------


def test_mutation_stays_in_the_unit_interval_and_changes_something():
    rng = random.Random(0)
    for _ in range(200):
        child = mutate({"a": 0.0, "b": 1.0, "c": 0.5}, rng, rate=0.5, std=2.0)
        assert all(0.0 <= w <= 1.0 for w in child.values())
        assert mutate({"a": 0.5, "b": 0.5}, rng, rate=0.01, std=0.1) != {"a": 0.5, "b": 0.5}  # at least one


def test_tournament_returns_the_fittest_of_its_draw():
    population = [Candidate(0, {"a": i / 10}, fitness=f) for i, f in enumerate([3.0, 1.0, 2.0])]
    assert tournament(population, random.Random(0), size=3).fitness == 1.0


def test_evolution_turns_a_noise_task_off():
    """A toy fitness that a noise task's λ hurts and a useful task's λ helps (papers' §4.4 check)."""
    calls = []

    def evaluate(w):
        calls.append(w)
        return {"fitness": w["noise"] - 0.5 * w["useful"], "accuracy": 1 - w["noise"]}

    result = evolve({"noise": 1.0, "useful": 0.5}, evaluate, population_size=6, generations=6, seed=0)
    assert len(calls) == len(result.history) == 6 * 7
    assert result.best.weights["noise"] < 0.15 and result.best.weights["useful"] > 0.5
    assert result.best.fitness < result.history[0].fitness - 0.9
    assert result.correlation("accuracy")["spearman"] < -0.5  # lower fitness, higher accuracy
    again = evolve({"noise": 1.0, "useful": 0.5}, evaluate, population_size=6, generations=6, seed=0)
    assert [c.weights for c in again.history] == [c.weights for c in result.history]


def test_evolution_refuses_lambdas_outside_the_interval():
    with pytest.raises(UsageError, match=r"\[0, 1\]"):
        evolve({"a": 2.0}, lambda w: {"fitness": 0.0})


def test_correlations_match_numpy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=20).tolist(), rng.normal(size=20).tolist()
    assert pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    ranks = lambda v: np.argsort(np.argsort(v)) + 1  # noqa: E731 (no ties)
    assert spearman(x, y) == pytest.approx(np.corrcoef(ranks(x), ranks(y))[0, 1])
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)


def test_the_search_driver_imports_without_lightning():
    code = "import sys, zoo.methods.elo_search; print(any(m.startswith('lightning') for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_cli_search_needs_an_existing_recipe(tmp_path, capsys):
    from zoo.cli import main

    assert main(["elo", "search", "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path)]) == 2
    assert "nope.yaml" in capsys.readouterr().err
