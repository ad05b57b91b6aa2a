"""Extremal perturbations (Fong, Patrick & Vedaldi, ICCV 2019) for images and, in space-time, for videos.

An extremal perturbation is the smooth mask of a fixed area that keeps a model's score for a class highest
(preserve), or lowers it most when removed (delete), or both (dual). The input outside the mask is replaced
by a blurred (or faded) copy of itself, the mask is a smooth max of bumps placed on a coarse grid, and an
area term pulls the sorted mask values towards a step with the requested area (eq. 5 of the paper) with a
weight that grows every iteration.

The image path follows TorchRay's ``extremal_perturbation`` step by step, including what its code does
that the paper does not say: the blur pads with zeros (so it darkens borders), the area term is computed on
the mask with its margin, the optimiser is SGD with dampening equal to the momentum, jitter is a horizontal
flip on even iterations, and the masks returned are those of the last iteration *before* its optimiser
step. The video path is the same algorithm over a ``(T, H, W)`` mask: bumps on a coarse space-time grid,
each frame blurred on its own, and the area constraint on the volume.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from zoo.errors import UsageError

__all__ = [
    "Explanation",
    "MaskGenerator",
    "Perturbation",
    "TargetOutOfRangeError",
    "extremal_perturbation",
    "extremal_perturbation_video",
    "gaussian_blur",
]

VARIANTS = ("preserve", "delete", "dual")
PERTURBATIONS = ("blur", "fade")
_EPSILON = torch.finfo(torch.float32).eps


class TargetOutOfRangeError(UsageError):
    """The class to explain is not one of the model's outputs; names the target and the number of classes."""

    def __init__(self, target: int, num_classes: int):
        self.target, self.num_classes = target, num_classes
        super().__init__(
            f"target class {target} is out of range: the model has {num_classes} classes (0..{num_classes - 1})"
        )


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of the last two dimensions, zero padding (borders darken), same size.

    The kernel is ``exp(-i² / (√2 σ + ε)²)`` for ``|i| <= ceil(4σ)``, normalised to sum to one; σ = 0 is
    the identity. As TorchRay's ``imsmooth``.

    Args:
        x: a tensor ``(..., H, W)``; every leading position is blurred on its own.
        sigma: standard deviation in pixels.
    """
    width = math.ceil(4 * sigma)
    offsets = torch.arange(-width, width + 1, dtype=torch.float32, device=x.device)
    kernel = torch.exp(-((offsets / (math.sqrt(2.0) * sigma + _EPSILON)) ** 2))
    kernel = (kernel / kernel.sum()).to(x.dtype)
    planes = x.reshape(-1, 1, *x.shape[-2:])  # (N, 1, H, W)
    planes = F.conv2d(planes, kernel.view(1, 1, -1, 1), padding=(width, 0))  # vertical
    planes = F.conv2d(planes, kernel.view(1, 1, 1, -1), padding=(0, width))  # horizontal
    return planes.reshape(x.shape)


class Perturbation:
    """The perturbation pyramid of one input and its mask-driven interpolation (eq. 4 of the paper).

    Level ``l`` of ``L`` is the input blurred with σ = (1 − l/(L−1)) · ``max_blur`` (or faded to
    ``l/(L−1)`` of itself): level 0 is the strongest perturbation, level L−1 the input itself. A mask value
    ``m`` picks level ``m·(L−1)``, interpolating linearly between the two nearest levels.

    Args:
        input: one input ``(1, C, *S)``: an image ``(1, C, H, W)`` or a clip ``(1, C, T, H, W)``; blur acts on
            the last two dimensions (each frame on its own).
        num_levels: levels of the pyramid, at least 2.
        max_blur: σ of the strongest blur, pixels.
        kind: ``"blur"`` or ``"fade"`` (to black, i.e. to zero).
    """

    def __init__(self, input: Tensor, num_levels: int = 8, max_blur: float = 20.0, kind: str = "blur"):
        if kind not in PERTURBATIONS:
            raise UsageError(f"perturbation '{kind}' is not one of {PERTURBATIONS}")
        if num_levels < 2 or max_blur <= 0:
            raise UsageError(
                f"a perturbation needs num_levels >= 2 and max_blur > 0, got {num_levels}, {max_blur}"
            )
        self.num_levels = num_levels
        with torch.no_grad():
            levels = torch.linspace(0, 1, num_levels).tolist()
            if kind == "blur":
                self.pyramid = torch.cat(
                    [gaussian_blur(input, (1 - s) * max_blur) for s in levels]
                )  # (L, C, *S)
            else:
                self.pyramid = torch.cat([input * s for s in levels])

    def apply(self, mask: Tensor) -> Tensor:
        """Inputs ``(K, C, *S)`` perturbed by masks ``(K, 1, *S)`` with values in [0, 1] (1: untouched)."""
        level = mask.unsqueeze(1) * (self.num_levels - 1)  # (K, 1, 1, *S)
        lower = level.floor()
        frac = level - lower
        lower = lower.long().expand(-1, 1, *self.pyramid.shape[1:])  # (K, 1, C, *S)
        pyramid = self.pyramid.unsqueeze(0).expand(len(mask), *self.pyramid.shape)  # (K, L, C, *S)
        y0 = torch.gather(pyramid, 1, lower)
        y1 = torch.gather(pyramid, 1, (lower + 1).clamp(max=self.num_levels - 1))
        return ((1 - frac) * y0 + frac * y1).squeeze(1)


class MaskGenerator:
    """Smooth masks from parameters on a coarse grid (section 3.3 of the paper), in any number of dimensions.

    Parameter ``i`` sits at pixel ``step·i`` of each dimension. An output pixel takes the ``(2r+1)^d``
    parameters around it, each weighted by ``exp(-2·max(δ − 1/2, 0)²)`` where δ is the distance to the
    parameter's centre in units of σ (per dimension), and pools them with a smooth max,
    ``Σ m·softmax(20·m)``. The mask is computed on a grid with a margin of σ on every side (the area
    term sees it) and cropped to the input's shape.

    Args:
        shape: the mask's shape, e.g. ``(H, W)`` or ``(T, H, W)``.
        step: grid step per dimension, pixels (frames for time).
        sigma: bump size per dimension.
        coldness: the smooth max's inverse temperature.
    """

    def __init__(
        self, shape: Sequence[int], step: Sequence[int], sigma: Sequence[float], coldness: float = 20.0
    ):
        if not len(shape) == len(step) == len(sigma):
            raise UsageError(
                f"mask shape {tuple(shape)}, step {tuple(step)} and sigma {tuple(sigma)} differ in length"
            )
        if any(int(s) != s or s < 1 for s in step) or any(s <= 0 for s in sigma):
            raise UsageError(f"mask steps must be positive integers and sigmas positive, got {step}, {sigma}")
        self.shape, self.step, self.sigma = tuple(shape), tuple(int(s) for s in step), tuple(sigma)
        self.coldness = coldness
        self.margin = self.sigma
        self.padding = tuple(
            1 + math.ceil((m + s) / t) for m, s, t in zip(self.margin, self.sigma, self.step)
        )
        self.radius = tuple(1 + math.ceil(s / t) for s, t in zip(self.sigma, self.step))
        self.shape_in = tuple(math.ceil(z / t) for z, t in zip(self.shape, self.step))
        self.shape_mid = tuple(z + 2 * p - 2 * r for z, p, r in zip(self.shape_in, self.padding, self.radius))
        self.shape_up = tuple(t * z for t, z in zip(self.step, self.shape_mid))
        self.shape_out = tuple(z - t + 1 for z, t in zip(self.shape_up, self.step))
        self.offsets = list(itertools.product(*(range(2 * r + 1) for r in self.radius)))  # row-major
        self.weight = self._bump_weights()  # (1, N, *shape_out)

    def _bump_weights(self) -> Tensor:
        # distances are scaled to the last dimension's σ, then divided by it: for an isotropic image mask this
        # is TorchRay's ‖δ‖/σ to the bit
        reference = self.sigma[-1]
        coords = torch.meshgrid(
            *(torch.arange(z, dtype=torch.float32) for z in self.shape_out), indexing="ij"
        )
        inverse_step = [
            torch.tensor(mid, dtype=torch.float32) / torch.tensor(up, dtype=torch.float32)
            for mid, up in zip(self.shape_mid, self.shape_up)
        ]
        weights = []
        for offset in self.offsets:
            squared = 0.0
            for u, inv, k, pad, margin, step, sigma in zip(
                coords, inverse_step, offset, self.padding, self.margin, self.step, self.sigma
            ):
                centre = torch.floor(inv * u) + k - pad  # the parameter this offset reads at u
                squared = squared + ((u - (margin + step * centre)) * (reference / sigma)) ** 2
            distance = torch.sqrt(squared) / reference
            weights.append(torch.exp(-2 * (distance - 0.5).clamp(min=0) ** 2))
        return torch.stack(weights).unsqueeze(0)

    @property
    def num_parameters(self) -> int:
        return math.prod(self.shape_in)

    def to(self, device: torch.device | str) -> MaskGenerator:
        self.weight = self.weight.to(device)
        return self

    def generate(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """Masks from parameters ``(K, 1, *shape_in)``: cropped ``(K, 1, *shape)`` and full ``(K, 1, *shape_out)``."""
        pad = [p for p in reversed(self.padding) for _ in range(2)]
        padded = F.pad(params, pad)  # (K, 1, *(shape_in + 2·padding))
        # every parameter's (2r+1)^d neighbourhood: leading (time) offsets by slicing, the last two dimensions
        # by unfold (whose backward sums in TorchRay's order, so that image masks match it to the bit)
        *lead_mid, mid_h, _ = self.shape_mid
        kernel = (2 * self.radius[-2] + 1, 2 * self.radius[-1] + 1)
        blocks = []
        for offset in itertools.product(*(range(2 * r + 1) for r in self.radius[:-2])):
            part = padded[
                (..., *(slice(k, k + z) for k, z in zip(offset, lead_mid)), slice(None), slice(None))
            ]
            cols = F.unfold(part.reshape(-1, 1, *part.shape[-2:]), kernel)  # (K·Π lead_mid, N₂, mid_h·mid_w)
            cols = rearrange(cols, "(k l) n (h w) -> k n l h w", k=len(params), h=mid_h)
            blocks.append(cols.reshape(len(params), -1, *self.shape_mid))
        neighbours = torch.cat(blocks, dim=1)  # (K, N, *shape_mid)
        mask = F.interpolate(neighbours, size=self.shape_up, mode="nearest")  # (K, N, *shape_up)
        mask = mask[(..., *(slice(0, z) for z in self.shape_out))]
        mask = self.weight * mask
        mask = (mask * F.softmax(self.coldness * mask, dim=1)).sum(dim=1, keepdim=True)  # smooth max
        mask = mask.clamp(0, 1)  # (K, 1, *shape_out)
        cropped = mask[(..., *(slice(round(m), round(m) + z) for m, z in zip(self.margin, self.shape)))]
        return cropped, mask


def _target_score(logits: Tensor, target: int, contrastive: bool) -> Tensor:
    """(K,) the target's logit, or its margin over the best other class (TorchRay's contrastive reward)."""
    score = logits[:, target]
    if not contrastive:
        return score
    others = logits.clone()
    others[:, target] = -100.0
    return score - others.max(dim=1).values


def reward(logits: Tensor, target: int, variant: str, num_areas: int, contrastive: bool = False) -> Tensor:
    """The reward per area ``(num_areas,)`` of a batch of logits ``(K, Y)`` (eq. 6-7 of the paper).

    Args:
        logits: model outputs for the perturbed inputs; for ``"dual"`` the preserved inputs come first.
        target: the class explained.
        variant: ``"preserve"``, ``"delete"`` or ``"dual"``.
        num_areas: masks optimised together.
        contrastive: reward the margin over the best other class instead of the logit.
    """
    score = _target_score(logits, target, contrastive)
    if variant == "preserve":
        value = score
    elif variant == "delete":
        value = -score
    else:  # dual: preserved minus deleted
        value = score[:num_areas] - score[num_areas:]
    return value.reshape(num_areas, -1).mean(dim=1)


@dataclass
class Explanation:
    """The result of an extremal perturbation.

    Attributes:
        masks: ``(K, 1, *S)`` one mask per area, values in [0, 1], the input's shape (``S`` = H, W or T, H, W).
        areas: the K areas.
        history: ``(K, 2, iterations)`` reward and area term per iteration.
    """

    masks: Tensor
    areas: tuple[float, ...]
    history: Tensor


@contextmanager
def _frozen(model: nn.Module):
    """Model parameters without gradients for the duration; their flags are restored afterwards."""
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def _check(variant: str, areas: Sequence[float], target: int) -> tuple[float, ...]:
    if variant not in VARIANTS:
        raise UsageError(f"variant '{variant}' is not one of {VARIANTS}")
    areas = tuple(float(a) for a in areas)
    if not areas or any(not 0.0 < a < 1.0 for a in areas):
        raise UsageError(f"areas must lie strictly between 0 and 1, got {areas}")
    if isinstance(target, bool) or int(target) != target or target < 0:
        raise UsageError(f"target class must be a non-negative integer, got {target!r}")
    return areas


def optimise_masks(
    model: nn.Module,
    perturbation: Perturbation,
    generator: MaskGenerator,
    target: int,
    areas: Sequence[float],
    variant: str = "preserve",
    max_iter: int = 800,
    jitter: bool = True,
    contrastive: bool = False,
    learning_rate: float = 0.01,
    momentum: float = 0.9,
    area_weight: float = 300.0,
    area_weight_growth: float = 1.0035,
    on_iteration: Callable[[int], None] | None = None,
) -> Explanation:
    """The optimisation shared by images and videos (TorchRay's loop; the paper's eq. 7).

    Args:
        model: maps a batch of perturbed inputs ``(K, C, *S)`` to logits ``(K, Y)``; used as it is (eval mode
            is the caller's choice), its parameters frozen for the duration.
        perturbation: the pyramid of the input.
        generator: the mask generator, of the input's mask shape.
        target: the class explained.
        areas: the mask areas optimised together, fractions of the mask (with its margin).
        variant: ``"preserve"``, ``"delete"`` or ``"dual"``.
        max_iter: iterations.
        jitter: flip the perturbed inputs horizontally on even iterations.
        contrastive: reward the margin over the best other class instead of the target logit.
        learning_rate: SGD learning rate.
        momentum: SGD momentum, also its dampening (as TorchRay).
        area_weight: initial weight of the area term.
        area_weight_growth: factor applied to the area weight after every iteration.
        on_iteration: called with the iteration number after each step (progress bars).
    """
    areas = _check(variant, areas, target)
    device = perturbation.pyramid.device
    generator.to(device)
    num = len(areas)
    params = torch.ones(num, 1, *generator.shape_in, device=device)
    size = math.prod(generator.shape_out)
    reference = torch.ones(num, size, device=device)  # the sorted mask of area a: zeros then ones
    for i, a in enumerate(areas):
        reference[i, : int(size * (1 - a))] = 0
    optimizer = torch.optim.SGD([params], lr=learning_rate, momentum=momentum, dampening=momentum)
    history = torch.zeros(num, 2, max_iter)
    weight = area_weight
    mask = None
    with _frozen(model):
        for step in range(max_iter):
            params.requires_grad_(True)
            mask, mask_full = generator.generate(params)
            if variant == "preserve":
                x = perturbation.apply(mask)
            elif variant == "delete":
                x = perturbation.apply(1 - mask)
            else:
                x = torch.cat([perturbation.apply(mask), perturbation.apply(1 - mask)])
            if jitter and step % 2 == 0:
                x = torch.flip(x, dims=(-1,))
            logits = model(x)  # (K, Y)
            if step == 0 and not target < logits.shape[1]:
                raise TargetOutOfRangeError(int(target), logits.shape[1])
            gain = reward(logits, int(target), variant, num, contrastive)
            mask_sorted = mask_full.reshape(num, -1).sort(dim=1).values
            area_term = -((mask_sorted - reference) ** 2).mean(dim=1) * weight  # eq. 5
            energy = (gain + area_term).sum()
            optimizer.zero_grad()
            (-energy).backward()
            optimizer.step()
            params.data = params.data.clamp(0, 1)
            history[:, 0, step] = gain.detach().cpu()
            history[:, 1, step] = area_term.detach().cpu()
            weight *= area_weight_growth
            if on_iteration is not None:
                on_iteration(step + 1)
    return Explanation(masks=mask.detach(), areas=areas, history=history)


def extremal_perturbation(
    model: nn.Module,
    image: Tensor,
    target: int,
    areas: Sequence[float] = (0.1,),
    *,
    variant: str = "preserve",
    perturbation: str = "blur",
    max_iter: int = 800,
    num_levels: int = 8,
    max_blur: float = 20.0,
    step: int = 7,
    sigma: float = 21.0,
    jitter: bool = True,
    contrastive: bool = False,
    learning_rate: float = 0.01,
    on_iteration: Callable[[int], None] | None = None,
) -> Explanation:
    """Extremal perturbations of one image, with TorchRay's defaults (tuned for 224-pixel inputs).

    Args:
        model: an image classifier, ``(K, C, H, W)`` -> logits ``(K, Y)``.
        image: ``(1, C, H, W)``, preprocessed as the model expects.
        target: the class explained.
        areas: the mask areas, fractions of the image.
        variant: ``"preserve"``, ``"delete"`` or ``"dual"``.
        perturbation: ``"blur"`` or ``"fade"``.
        max_iter: iterations.
        num_levels: levels of the perturbation pyramid.
        max_blur: σ of the strongest blur, pixels.
        step: grid step of the mask parameters, pixels.
        sigma: bump size, pixels.
        jitter: flip horizontally on even iterations.
        contrastive: reward the margin over the best other class instead of the target logit.
        learning_rate: SGD learning rate (TorchRay's 0.01 goes with its 800 iterations).
        on_iteration: called with the iteration number after each step.
    """
    pyramid = Perturbation(image, num_levels=num_levels, max_blur=max_blur, kind=perturbation)
    generator = MaskGenerator(image.shape[-2:], (step, step), (sigma, sigma))
    return optimise_masks(
        model,
        pyramid,
        generator,
        target,
        areas,
        variant,
        max_iter,
        jitter,
        contrastive,
        learning_rate=learning_rate,
        on_iteration=on_iteration,
    )


def extremal_perturbation_video(
    model: nn.Module,
    video: Tensor,
    target: int,
    areas: Sequence[float] = (0.1,),
    *,
    variant: str = "preserve",
    perturbation: str = "blur",
    max_iter: int = 800,
    num_levels: int = 8,
    max_blur: float = 20.0,
    step: int = 7,
    sigma: float = 21.0,
    time_step: int = 1,
    time_sigma: float = 2.0,
    jitter: bool = False,
    contrastive: bool = False,
    learning_rate: float = 0.01,
    on_iteration: Callable[[int], None] | None = None,
) -> Explanation:
    """Extremal perturbations of one clip: a space-time mask ``(T, H, W)`` whose volume has the given areas.

    Each frame is blurred on its own (the pyramid does not mix frames); the mask's bumps sit on a grid of
    ``time_step`` frames by ``step`` pixels and reach ``time_sigma`` frames by ``sigma`` pixels. Jitter is off
    by default: a horizontal flip changes the class of direction-sensitive actions (left vs right).

    Args:
        model: a video classifier, ``(K, C, T, H, W)`` -> logits ``(K, Y)``.
        video: ``(1, C, T, H, W)``, preprocessed as the model expects.
        target: the class explained.
        areas: the mask volumes, fractions of the clip.
        variant: ``"preserve"``, ``"delete"`` or ``"dual"``.
        perturbation: ``"blur"`` or ``"fade"``.
        max_iter: iterations.
        num_levels: levels of the perturbation pyramid.
        max_blur: σ of the strongest blur, pixels.
        step: spatial grid step of the mask parameters, pixels.
        sigma: spatial bump size, pixels.
        time_step: temporal grid step, frames.
        time_sigma: temporal bump size, frames.
        jitter: flip horizontally on even iterations.
        contrastive: reward the margin over the best other class instead of the target logit.
        learning_rate: SGD learning rate (TorchRay's 0.01 goes with its 800 iterations).
        on_iteration: called with the iteration number after each step.
    """
    pyramid = Perturbation(video, num_levels=num_levels, max_blur=max_blur, kind=perturbation)
    generator = MaskGenerator(video.shape[-3:], (time_step, step, step), (time_sigma, sigma, sigma))
    return optimise_masks(
        model,
        pyramid,
        generator,
        target,
        areas,
        variant,
        max_iter,
        jitter,
        contrastive,
        learning_rate=learning_rate,
        on_iteration=on_iteration,
    )


def mask_geometry(size: int) -> tuple[int, float]:
    """TorchRay's (step, sigma) = (7, 21) for 224-pixel inputs, scaled to inputs of ``size`` pixels."""
    scale = size / 224
    return max(1, round(7 * scale)), 21.0 * scale
