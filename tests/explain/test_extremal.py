"""Extremal perturbations: the blur, the mask generator and the perturbation against independent reference math,
the optimisation finding what a model looks at (image and space-time), and bad input named."""

from __future__ import annotations

import itertools
import math
import os
import sys

import numpy as np
import pytest
import torch
from torch import nn

from zoo.errors import UsageError
from zoo.explain.extremal import (
    MaskGenerator,
    Perturbation,
    TargetOutOfRangeError,
    extremal_perturbation,
    extremal_perturbation_video,
    gaussian_blur,
)


def reference_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) convolved with the 2D kernel exp(-(i²+j²)/(2σ²)), |i|,|j| <= ceil(4σ), normalised; zero padding."""
    width = math.ceil(4 * sigma)
    offsets = np.arange(-width, width + 1)
    kernel = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma**2))
    kernel /= kernel.sum()
    padded = np.pad(image, width)
    out = np.zeros_like(image)
    for i, j in itertools.product(range(image.shape[0]), range(image.shape[1])):
        out[i, j] = (padded[i : i + 2 * width + 1, j : j + 2 * width + 1] * kernel).sum()
    return out


@pytest.mark.parity
@pytest.mark.parametrize("sigma", [0.7, 2.0, 3.5])
def test_blur_is_a_zero_padded_normalised_gaussian(sigma):
    image = torch.rand(2, 3, 13, 17)
    blurred = gaussian_blur(image, sigma)
    assert blurred.shape == image.shape
    expected = reference_blur(image[1, 2].double().numpy(), sigma)
    np.testing.assert_allclose(blurred[1, 2].numpy(), expected, atol=1e-5)
    assert torch.equal(gaussian_blur(image, 0.0), image)


def reference_mask(params: np.ndarray, shape, step, sigma, coldness=20.0) -> tuple[np.ndarray, np.ndarray]:
    """The smooth-max mask, pixel by pixel: each output pixel of the margin-padded grid pools the (2r+1)^d
    parameters around it, each weighted by exp(-2·max(δ - 1/2, 0)²) with δ the σ-scaled distance."""
    margin = sigma
    padding = [1 + math.ceil((m + s) / t) for m, s, t in zip(margin, sigma, step)]
    radius = [1 + math.ceil(s / t) for s, t in zip(sigma, step)]
    shape_in = params.shape
    shape_out = [t * (z + 2 * p - 2 * r) - t + 1 for t, z, p, r in zip(step, shape_in, padding, radius)]
    full = np.zeros(shape_out)
    for u in itertools.product(*(range(z) for z in shape_out)):
        values = []
        for k in itertools.product(*(range(2 * r + 1) for r in radius)):
            j = [ui // t + ki - p for ui, t, ki, p in zip(u, step, k, padding)]  # the parameter read
            inside = all(0 <= jj < z for jj, z in zip(j, shape_in))
            value = params[tuple(j)] if inside else 0.0
            delta = math.sqrt(
                sum(((ui - (m + t * jj)) / s) ** 2 for ui, m, t, jj, s in zip(u, margin, step, j, sigma))
            )
            values.append(math.exp(-2 * max(delta - 0.5, 0) ** 2) * value)
        values = np.array(values)
        soft = np.exp(coldness * values - (coldness * values).max())
        full[u] = np.clip((values * soft).sum() / soft.sum(), 0, 1)
    crop = tuple(slice(round(m), round(m) + z) for m, z in zip(margin, shape))
    return full[crop], full


@pytest.mark.parity
@pytest.mark.parametrize(
    "shape, step, sigma",
    [
        ((9, 11), (3, 3), (5.0, 5.0)),
        ((4, 7, 6), (1, 3, 3), (1.0, 4.0, 4.0)),
        ((5, 6, 5), (2, 2, 2), (1.5, 3.0, 3.0)),
    ],
)
def test_mask_generator_matches_pixel_by_pixel_reference(shape, step, sigma):
    generator = MaskGenerator(shape, step, sigma)
    params = torch.rand(2, 1, *generator.shape_in, generator=torch.Generator().manual_seed(0))
    cropped, full = generator.generate(params)
    assert cropped.shape == (2, 1, *shape)
    assert full.shape == (2, 1, *generator.shape_out)
    expected_cropped, expected_full = reference_mask(params[1, 0].double().numpy(), shape, step, sigma)
    np.testing.assert_allclose(full[1, 0].numpy(), expected_full, atol=1e-5)
    np.testing.assert_allclose(cropped[1, 0].numpy(), expected_cropped, atol=1e-5)


def test_perturbation_interpolates_between_pyramid_levels():
    video = torch.rand(1, 3, 4, 16, 16)
    pyramid = Perturbation(video, num_levels=3, max_blur=4.0)
    assert pyramid.pyramid.shape == (3, 3, 4, 16, 16)
    ones, zeros, half = (torch.full((1, 1, 4, 16, 16), v) for v in (1.0, 0.0, 0.5))
    torch.testing.assert_close(pyramid.apply(ones), video)
    strongest = gaussian_blur(video, 4.0)  # each frame blurred on its own, the frames not mixed
    torch.testing.assert_close(pyramid.apply(zeros), strongest)
    torch.testing.assert_close(pyramid.apply(half), gaussian_blur(video, 2.0))
    quarter = pyramid.apply(torch.full((1, 1, 4, 16, 16), 0.25))
    torch.testing.assert_close(quarter, 0.5 * strongest + 0.5 * gaussian_blur(video, 2.0))
    fade = Perturbation(video, num_levels=5, kind="fade")
    torch.testing.assert_close(fade.apply(zeros), torch.zeros_like(video))


class BoxDetector(nn.Module):
    """A 'classifier' whose class-1 logit is the high-frequency energy inside a box: blur removes it."""

    def __init__(self, box: tuple[slice, ...]):
        super().__init__()
        self.box = box
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (K, C, *S) -> (K, 2)
        detail = x - gaussian_blur(x, 1.0)
        energy = detail[(slice(None), slice(None), *self.box)].pow(2).mean(dim=tuple(range(1, x.dim())))
        return torch.stack([torch.zeros_like(energy), self.scale * 100 * energy], dim=1)


def test_image_mask_finds_the_box_the_model_reads():
    torch.manual_seed(0)
    box = (slice(4, 12), slice(20, 28))
    image = torch.rand(1, 3, 32, 32)
    model = BoxDetector(box)
    result = extremal_perturbation(model, image, 1, [0.08], max_iter=150, step=3, sigma=6.0, jitter=False)
    mask = result.masks[0, 0]  # (H, W)
    assert result.masks.shape == (1, 1, 32, 32)
    assert result.history.shape == (1, 2, 150)
    assert mask[box].mean() > 0.9  # the box is kept whole
    outside = torch.ones_like(mask, dtype=torch.bool)
    outside[box] = False
    assert mask[outside].mean() < 0.25
    assert mask[box].sum() / mask.sum() > 0.2  # three times the box's share of the image (6 %)
    assert model.scale.requires_grad  # the model's flags are restored


def test_space_time_mask_finds_the_frames_and_place_the_model_reads():
    torch.manual_seed(0)
    box = (slice(2, 4), slice(8, 16), slice(0, 8))  # frames 2-3 of 8, a corner of each
    video = torch.rand(1, 3, 8, 24, 24)
    result = extremal_perturbation_video(
        BoxDetector(box), video, 1, [0.05], max_iter=150, step=3, sigma=6.0, time_sigma=1.0
    )
    mask = result.masks[0, 0]  # (T, H, W)
    assert mask.shape == (8, 24, 24)
    assert mask[box].mean() > 0.9  # the box is kept whole
    per_frame = mask.sum(dim=(1, 2)) / mask.sum()
    assert per_frame[2:4].sum() > 0.5, per_frame  # two frames of eight
    assert mask[box].sum() / mask.sum() > 0.07  # five times the box's share of the clip (1.4 %)


@pytest.mark.parametrize(
    "explain, shape",
    [(extremal_perturbation, (1, 3, 16, 16)), (extremal_perturbation_video, (1, 3, 4, 16, 16))],
)
def test_learning_rate_reaches_the_optimiser(explain, shape):
    """A learning rate of 0 leaves the mask parameters at their start; a large one moves them."""
    model, data = BoxDetector((slice(0, 2), slice(0, 2))), torch.rand(shape)
    frozen, moved = (
        explain(model, data, 1, [0.1], max_iter=3, step=2, sigma=4.0, jitter=False, learning_rate=lr)
        for lr in (0.0, 1.0)
    )
    assert not torch.allclose(frozen.masks, moved.masks)


def test_target_out_of_range_is_named():
    model = BoxDetector((slice(0, 2), slice(0, 2)))
    with pytest.raises(
        TargetOutOfRangeError, match=r"target class 5 is out of range: the model has 2 classes"
    ):
        extremal_perturbation(model, torch.rand(1, 3, 16, 16), 5, max_iter=3, step=2, sigma=4.0)
    assert issubclass(TargetOutOfRangeError, UsageError)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"variant": "keep"}, "variant 'keep'"),
        ({"areas": [1.5]}, "areas must lie strictly between 0 and 1"),
        ({"perturbation": "noise"}, "perturbation 'noise'"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    model = BoxDetector((slice(0, 2), slice(0, 2)))
    with pytest.raises(UsageError, match=message):
        extremal_perturbation(model, torch.rand(1, 3, 16, 16), 1, max_iter=2, step=2, sigma=4.0, **kwargs)


TORCHRAY = os.environ.get("ZOO_TORCHRAY_PATH")


@pytest.mark.parity
@pytest.mark.skipif(
    not TORCHRAY, reason="set ZOO_TORCHRAY_PATH to a folder holding torchray (pip install --no-deps --target)"
)
@pytest.mark.parametrize("variant", ["preserve", "delete", "dual"])
def test_parity_with_torchray(variant):
    sys.path.insert(0, TORCHRAY)
    from torchray.attribution import extremal_perturbation as torchray_ep

    def toy():
        torch.manual_seed(0)
        layers = [nn.Conv2d(3, 8, 5, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU()]
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5)).eval()

    image = torch.randn(1, 3, 64, 80, generator=torch.Generator().manual_seed(1))
    theirs, history = torchray_ep.extremal_perturbation(
        toy(), image, 2, areas=[0.1, 0.3], max_iter=30, step=5, sigma=11, variant=variant
    )
    ours = extremal_perturbation(
        toy(), image, 2, [0.1, 0.3], max_iter=30, step=5, sigma=11.0, variant=variant
    )
    torch.testing.assert_close(ours.masks, theirs, atol=1e-5, rtol=0)  # bit-equal on one thread
    torch.testing.assert_close(ours.history, history)
