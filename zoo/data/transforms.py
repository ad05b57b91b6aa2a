"""Video transforms: pure torch, batched, the same code on CPU (DataLoader workers) and GPU (whole batches).

Layout: float clips are ``(*, C, T, H, W)``. A 4-D input is one clip; any leading dimensions (samples, views)
are flattened and every clip gets its own random parameters, shared by all of its frames. Only
:class:`ToFloat` reads the decoder's layout, uint8 ``(*, T, H, W, C)``.

Randomness: parameters are drawn on the CPU from ``generator`` (a ``torch.Generator``; the global torch
generator when ``None``) and then moved to the clip's device, so a seeded generator gives the same
augmentation on CPU and GPU. Each transform splits into ``sample_params`` and ``apply``;
:meth:`VideoTransform.forward_with_params` returns the parameters it used and :meth:`VideoTransform.replay`
applies given ones, which is how per-sample results are checked against batched ones.

Colour operations use kornia's kernels (torchvision semantics: multiplicative brightness, contrast and
saturation blended with the grey image, hue rotation). ``kornia.augmentation.VideoSequential(same_on_frame=True)``
also keeps one draw per clip on ``(B, C, T, H, W)``, but it draws from the global generator only and shares
the colour-jitter order across the whole batch; drawing the parameters here gives per-clip orders and
explicit seeding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from kornia.color import rgb_to_grayscale
from kornia.enhance import (
    adjust_brightness_accumulative,
    adjust_contrast_with_mean_subtraction,
    adjust_hue,
    adjust_saturation_with_gray_subtraction,
)
from kornia.filters import gaussian_blur2d
from torch import Tensor, nn

from zoo.errors import UsageError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "KINETICS_MEAN",
    "KINETICS_STD",
    "CenterCrop",
    "ChannelOrder",
    "ColorJitter",
    "Compose",
    "GaussianBlur",
    "Normalize",
    "RandomGrayscale",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "ShortSideScale",
    "ThreeCrop",
    "ToFloat",
    "VideoTransform",
    "build_transform",
    "select_params",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)

Params = dict[str, Tensor]
AnyParams = Params | list["AnyParams"]


def _side(size: int, name: str = "size") -> int:
    if int(size) < 1:
        raise UsageError(f"{name} must be >= 1 pixel, got {size}")
    return int(size)


def _pair(size: int | Sequence[int], name: str = "size") -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else size
    if int(height) < 1 or int(width) < 1:
        raise UsageError(f"{name} must be >= 1 pixel, got {size}")
    return int(height), int(width)


def _range(
    value: float | Sequence[float], name: str, center: float, bound: tuple[float, float]
) -> tuple[float, float]:
    """torchvision's convention: ``v`` means ``[center - v, center + v]`` clipped to ``bound``; or an explicit range."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
        low, high = center - value, center + value
    else:
        low, high = (float(v) for v in value)
    low, high = max(low, bound[0]), min(high, bound[1])
    if low > high:
        raise ValueError(f"{name} range is empty: [{low}, {high}]")
    return low, high


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64) * (high - low) + low


def _bernoulli(n: int, p: float, generator: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=generator) < p


def select_params(params: AnyParams, index: int) -> AnyParams:
    """The parameters of sample ``index`` of a batch (for :meth:`VideoTransform.replay` on that sample)."""
    if isinstance(params, list):
        return [select_params(p, index) for p in params]
    return {key: value[index] for key, value in params.items()}


class VideoTransform(nn.Module):
    """Base class: flattens leading dimensions, draws per-clip parameters, applies them.

    Subclasses implement ``sample_params(n, clip_shape, generator)`` (tensors with leading dim ``n``; clip_shape
    is ``(C, T, H, W)``) and ``apply(video, params)`` on ``(n, C, T, H, W)``. ``num_crops`` declares the
    output: 1 keeps the clip's shape, more adds a crop dimension after the leading ones.
    """

    num_crops: int = 1

    def sample_params(self, n: int, clip_shape: tuple[int, ...], generator: torch.Generator | None) -> Params:
        return {}

    def apply(self, video: Tensor, params: Params) -> Tensor:
        raise TypeError(f"{type(self).__name__} must define apply()")

    def _check(self, video: Tensor) -> None:
        if video.ndim < 4:
            raise ValueError(f"{type(self).__name__} expects (*, C, T, H, W); got shape {tuple(video.shape)}")
        if not video.is_floating_point():
            raise TypeError(
                f"{type(self).__name__} expects a float clip; apply ToFloat first (got {video.dtype})"
            )

    def forward_with_params(
        self, video: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Params]:
        self._check(video)
        lead, clip_shape = video.shape[:-4], tuple(video.shape[-4:])
        n = math.prod(lead)
        params = self.sample_params(n, clip_shape, generator)
        out = self.apply(video.reshape(n, *clip_shape), {k: v.to(video.device) for k, v in params.items()})
        return out.reshape(*lead, *out.shape[1:]), {
            k: v.reshape((*lead, *v.shape[1:])) for k, v in params.items()
        }

    def replay(self, video: Tensor, params: Params) -> Tensor:
        """Apply with given parameters (as returned by :meth:`forward_with_params`, possibly sliced)."""
        self._check(video)
        lead, clip_shape = video.shape[:-4], tuple(video.shape[-4:])
        n = math.prod(lead)
        flat = {k: v.reshape((n, *v.shape[len(lead) :])).to(video.device) for k, v in params.items()}
        out = self.apply(video.reshape(n, *clip_shape), flat)
        return out.reshape(*lead, *out.shape[1:])

    def forward(self, video: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.forward_with_params(video, generator)[0]


class ToFloat(VideoTransform):
    """uint8 ``(*, T, H, W, C)`` (decoder layout) -> float ``(*, C, T, H, W)`` in ``[0, 1]``."""

    def forward_with_params(
        self, video: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Params]:
        return self.replay(video, {}), {}

    def replay(self, video: Tensor, params: Params) -> Tensor:
        if video.dtype != torch.uint8 or video.ndim < 4 or video.shape[-1] not in (1, 3):
            raise TypeError(f"ToFloat expects uint8 (*, T, H, W, C); got {video.dtype} {tuple(video.shape)}")
        return rearrange(video, "... t h w c -> ... c t h w").contiguous().float().div_(255.0)


class Compose(VideoTransform):
    """Apply transforms in order; parameters are a list, one entry per transform."""

    def __init__(self, transforms: Sequence[VideoTransform]) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    @property
    def num_crops(self) -> int:
        """Crops per input clip, over all steps."""
        return math.prod(transform.num_crops for transform in self.transforms)

    def forward_with_params(
        self, video: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, list[AnyParams]]:
        all_params = []
        for transform in self.transforms:
            video, params = transform.forward_with_params(video, generator)
            all_params.append(params)
        return video, all_params

    def replay(self, video: Tensor, params: Sequence[AnyParams]) -> Tensor:
        for transform, p in zip(self.transforms, params, strict=True):
            video = transform.replay(video, p)
        return video

    def __repr__(self) -> str:
        inner = "\n".join(f"  {t!r}," for t in self.transforms)
        return f"Compose([\n{inner}\n])"


def _resize(video: Tensor, size: tuple[int, int], antialias: bool = True) -> Tensor:
    """``(n, C, T, H, W)`` -> ``(n, C, T, *size)``, bilinear, frames resized together."""
    n, c, t, h, w = video.shape
    if (h, w) == size:
        return video
    out = F.interpolate(
        video.reshape(n, c * t, h, w), size=size, mode="bilinear", align_corners=False, antialias=antialias
    )
    return out.reshape(n, c, t, *size)


class RandomResizedCrop(VideoTransform):
    """Crop a random area fraction ``scale`` with aspect ratio in ``ratio`` (log-uniform), resize to ``size``.

    Same draw for every frame of a clip. Sampling follows torchvision: 10 attempts, then a centre crop
    with the ratio clamped. Bilinear resize, with antialiasing unless ``antialias=False``.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        attempts: int = 10,
        antialias: bool = True,
    ) -> None:
        super().__init__()
        self.size = _pair(size)
        self.antialias = antialias
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.attempts = attempts

    def sample_params(self, n: int, clip_shape: tuple[int, ...], generator: torch.Generator | None) -> Params:
        height, width = clip_shape[-2:]
        area = height * width
        scale = torch.rand(n, self.attempts, generator=generator, dtype=torch.float64)
        scale = scale * (self.scale[1] - self.scale[0]) + self.scale[0]
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        log_ratio = torch.rand(n, self.attempts, generator=generator, dtype=torch.float64)
        aspect = torch.exp(log_ratio * (log_hi - log_lo) + log_lo)
        crop_w = torch.round(torch.sqrt(area * scale * aspect)).long()
        crop_h = torch.round(torch.sqrt(area * scale / aspect)).long()
        valid = (crop_w > 0) & (crop_w <= width) & (crop_h > 0) & (crop_h <= height)
        first = valid.long().argmax(dim=1, keepdim=True)
        crop_w, crop_h = crop_w.gather(1, first)[:, 0], crop_h.gather(1, first)[:, 0]
        # fallback (no attempt fits): centre crop of the whole frame with the ratio clamped
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            fb_w, fb_h = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            fb_w, fb_h = round(height * self.ratio[1]), height
        else:
            fb_w, fb_h = width, height
        found = valid.any(dim=1)
        crop_w = torch.where(found, crop_w, torch.full_like(crop_w, fb_w))
        crop_h = torch.where(found, crop_h, torch.full_like(crop_h, fb_h))
        position = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        top = torch.floor(position[:, 0] * (height - crop_h + 1)).long()
        left = torch.floor(position[:, 1] * (width - crop_w + 1)).long()
        top = torch.where(found, top, (height - crop_h) // 2)
        left = torch.where(found, left, (width - crop_w) // 2)
        return {"box": torch.stack([top, left, crop_h, crop_w], dim=1)}  # (n, 4)

    def apply(self, video: Tensor, params: Params) -> Tensor:
        boxes = params["box"].tolist()
        crops = [
            _resize(clip[None, :, :, top : top + h, left : left + w], self.size, self.antialias)
            for clip, (top, left, h, w) in zip(video, boxes)
        ]
        return torch.cat(crops, dim=0)

    def extra_repr(self) -> str:
        return f"size={self.size}, scale={self.scale}, ratio={self.ratio}"


class ShortSideScale(VideoTransform):
    """Resize so that the short side is ``size`` (long side ``int(size * long / short)``), bilinear.

    ``antialias=False`` is several times faster when shrinking a lot (and aliases, as SlowFast/PyTorchVideo do).
    """

    def __init__(self, size: int, antialias: bool = True) -> None:
        super().__init__()
        self.size = _side(size)
        self.antialias = antialias

    def apply(self, video: Tensor, params: Params) -> Tensor:
        height, width = video.shape[-2:]
        if height <= width:
            new = (self.size, int(self.size * width / height))
        else:
            new = (int(self.size * height / width), self.size)
        return _resize(video, new, self.antialias)

    def extra_repr(self) -> str:
        return f"size={self.size}"


def _check_crop(height: int, width: int, crop: tuple[int, int], name: str) -> None:
    if crop[0] > height or crop[1] > width:
        raise ValueError(f"{name} of {crop} does not fit a {height}x{width} frame; scale the clip first")


class CenterCrop(VideoTransform):
    """Crop the centre ``size`` (int or ``(h, w)``) of every frame."""

    def __init__(self, size: int | Sequence[int]) -> None:
        super().__init__()
        self.size = _pair(size)

    def apply(self, video: Tensor, params: Params) -> Tensor:
        height, width = video.shape[-2:]
        _check_crop(height, width, self.size, "CenterCrop")
        top, left = (height - self.size[0]) // 2, (width - self.size[1]) // 2
        return video[..., top : top + self.size[0], left : left + self.size[1]]

    def extra_repr(self) -> str:
        return f"size={self.size}"


class ThreeCrop(VideoTransform):
    """Three ``size x size`` crops along the long side (start, centre, end), centred on the short side.

    Adds a view dimension: ``(*, C, T, H, W)`` -> ``(*, 3, C, T, size, size)`` (the "3 crops" test protocol;
    scale the short side to ``size`` first so that the crops cover the frame).
    """

    num_crops = 3

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = _side(size)

    def apply(self, video: Tensor, params: Params) -> Tensor:
        height, width = video.shape[-2:]
        s = self.size
        _check_crop(height, width, (s, s), "ThreeCrop")
        if width >= height:
            top = (height - s) // 2
            offsets = [(top, 0), (top, (width - s) // 2), (top, width - s)]
        else:
            left = (width - s) // 2
            offsets = [(0, left), ((height - s) // 2, left), (height - s, left)]
        return torch.stack([video[..., y : y + s, x : x + s] for y, x in offsets], dim=1)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class RandomHorizontalFlip(VideoTransform):
    """Mirror the whole clip left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def sample_params(self, n: int, clip_shape: tuple[int, ...], generator: torch.Generator | None) -> Params:
        return {"flip": _bernoulli(n, self.p, generator)}

    def apply(self, video: Tensor, params: Params) -> Tensor:
        flip = params["flip"].view(-1, 1, 1, 1, 1)
        return torch.where(flip, video.flip(-1), video)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _on_subset(video: Tensor, mask: Tensor, fn) -> Tensor:
    """Apply ``fn(subset, index)`` to the clips selected by ``mask`` only (copy-on-write)."""
    index = mask.nonzero().flatten()
    if index.numel() == 0:
        return video
    video = video.clone()
    video[index] = fn(video[index], index)
    return video


class ColorJitter(VideoTransform):
    """Random brightness, contrast, saturation and hue, in a random order per clip, applied with probability ``p``.

    Ranges follow torchvision: ``brightness=b`` draws a factor in ``[max(0, 1-b), 1+b]`` (same for contrast and
    saturation), ``hue=h`` a shift in ``[-h, h]`` turns of the colour wheel (``h <= 0.5``). Contrast blends each
    frame with its mean grey level (as torchvision does per image). RGB input in ``[0, 1]``.
    """

    def __init__(
        self,
        brightness: float | Sequence[float] = 0.0,
        contrast: float | Sequence[float] = 0.0,
        saturation: float | Sequence[float] = 0.0,
        hue: float | Sequence[float] = 0.0,
        p: float = 1.0,
    ) -> None:
        super().__init__()
        inf = float("inf")
        self.ranges = (
            _range(brightness, "brightness", 1.0, (0.0, inf)),
            _range(contrast, "contrast", 1.0, (0.0, inf)),
            _range(saturation, "saturation", 1.0, (0.0, inf)),
            _range(hue, "hue", 0.0, (-0.5, 0.5)),
        )
        self.p = p

    def sample_params(self, n: int, clip_shape: tuple[int, ...], generator: torch.Generator | None) -> Params:
        apply = _bernoulli(n, self.p, generator)
        factors = torch.stack([_uniform(n, low, high, generator) for low, high in self.ranges], dim=1)
        order = torch.argsort(torch.rand(n, 4, generator=generator), dim=1)
        return {"apply": apply, "factors": factors.float(), "order": order}

    def apply(self, video: Tensor, params: Params) -> Tensor:
        neutral = (1.0, 1.0, 1.0, 0.0)
        ops = (
            adjust_brightness_accumulative,
            adjust_contrast_with_mean_subtraction,
            adjust_saturation_with_gray_subtraction,
            lambda x, f: adjust_hue(x, f * 2 * math.pi),
        )
        apply, factors, order = params["apply"], params["factors"], params["order"]
        x = rearrange(video, "n c t h w -> n t c h w")  # kornia wants channels at dim -3
        x = x.clamp(0.0, 1.0)
        for step in range(4):
            for op_id, op in enumerate(ops):
                if self.ranges[op_id] == (neutral[op_id], neutral[op_id]):
                    continue
                mask = apply & (order[:, step] == op_id)
                x = _on_subset(x, mask, lambda sub, idx, op=op, k=op_id: op(sub, factors[idx, k]))
        return rearrange(x, "n t c h w -> n c t h w")

    def extra_repr(self) -> str:
        return f"ranges={self.ranges}, p={self.p}"


class RandomGrayscale(VideoTransform):
    """Replace the clip by its grey image (ITU-R 601 luma, repeated on 3 channels) with probability ``p``."""

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        self.p = p

    def sample_params(self, n: int, clip_shape: tuple[int, ...], generator: torch.Generator | None) -> Params:
        return {"gray": _bernoulli(n, self.p, generator)}

    def apply(self, video: Tensor, params: Params) -> Tensor:
        def to_gray(sub: Tensor, index: Tensor) -> Tensor:
            gray = rgb_to_grayscale(rearrange(sub, "n c t h w -> n t c h w"))
            return rearrange(gray, "n t c h w -> n c t h w").expand_as(sub)

        return _on_subset(video, params["gray"], to_gray)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class GaussianBlur(VideoTransform):
    """Gaussian blur with sigma uniform in ``sigma``, probability ``p``; one sigma per clip.

    ``kernel_size=None`` uses the odd size closest to 10% of the short side (as in SimCLR), at least 3.
    """

    def __init__(
        self, kernel_size: int | None = None, sigma: Sequence[float] = (0.1, 2.0), p: float = 0.5
    ) -> None:
        super().__init__()
        if kernel_size is not None and (kernel_size < 3 or kernel_size % 2 == 0):
            raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}")
        self.kernel_size = kernel_size
        self.sigma = (float(sigma[0]), float(sigma[1]))
        self.p = p

    def sample_params(self, n: int, clip_shape: tuple[int, ...], generator: torch.Generator | None) -> Params:
        return {
            "blur": _bernoulli(n, self.p, generator),
            "sigma": _uniform(n, *self.sigma, generator).float(),
        }

    def _kernel(self, height: int, width: int) -> int:
        if self.kernel_size is not None:
            return self.kernel_size
        k = round(0.1 * min(height, width))
        return max(3, k + 1 - k % 2)

    def apply(self, video: Tensor, params: Params) -> Tensor:
        _, _, t, height, width = video.shape
        kernel = self._kernel(height, width)

        def blur(sub: Tensor, index: Tensor) -> Tensor:
            frames = rearrange(sub, "n c t h w -> (n t) c h w")
            sigma = params["sigma"][index].repeat_interleave(t)[:, None].expand(-1, 2).to(sub.dtype)
            out = gaussian_blur2d(frames, (kernel, kernel), sigma, border_type="reflect")
            return rearrange(out, "(n t) c h w -> n c t h w", t=t)

        return _on_subset(video, params["blur"], blur)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, sigma={self.sigma}, p={self.p}"


class Normalize(VideoTransform):
    """``(x - mean) / std`` per channel (channel dim -4)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean and std differ in length: {mean} vs {std}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def apply(self, video: Tensor, params: Params) -> Tensor:
        if video.shape[1] != len(self.mean):
            raise ValueError(f"Normalize has {len(self.mean)} channels, clip has {video.shape[1]}")
        mean = torch.tensor(self.mean, device=video.device, dtype=video.dtype).view(1, -1, 1, 1, 1)
        std = torch.tensor(self.std, device=video.device, dtype=video.dtype).view(1, -1, 1, 1, 1)
        return (video - mean) / std

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


class ChannelOrder(VideoTransform):
    """Reorder RGB input channels: ``"bgr"`` reverses them, ``"rgb"`` keeps them."""

    def __init__(self, order: str = "bgr") -> None:
        super().__init__()
        if order not in ("rgb", "bgr"):
            raise ValueError(f"order must be 'rgb' or 'bgr', got {order!r}")
        self.order = order

    def apply(self, video: Tensor, params: Params) -> Tensor:
        return video.flip(1) if self.order == "bgr" else video

    def extra_repr(self) -> str:
        return f"order={self.order!r}"


PRESETS = ("train", "eval", "three_crop", "simclr")


def build_transform(
    name_or_cfg: str | Mapping[str, Any],
    *,
    size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    channel_order: str = "rgb",
    **overrides: Any,
) -> Compose:
    """A preset pipeline from uint8 ``(*, T, H, W, C)`` to normalised float ``(*, C, T, H, W)``.

    Presets (all start with ``ToFloat`` and end with ``Normalize`` then, for ``channel_order="bgr"``,
    ``ChannelOrder``; mean/std are given in RGB order):

    - ``"train"``: RandomResizedCrop(size, scale=``scale`` (0.25, 1)) + RandomHorizontalFlip;
    - ``"eval"``: ShortSideScale(``short_side``, default ``round(size / 0.875)``) + CenterCrop(size);
    - ``"three_crop"``: ShortSideScale(size) + ThreeCrop(size) (adds a view dimension);
    - ``"simclr"`` (Chen et al. 2020, App. A): RandomResizedCrop(size, scale (0.08, 1)) + flip + colour distortion
      of strength ``strength`` s (ColorJitter(0.8s, 0.8s, 0.8s, 0.2s) with p=0.8, RandomGrayscale p=0.2) +
      GaussianBlur (p=``blur_p`` 0.5, sigma in (0.1, 2), kernel 10% of the side).

    Every preset takes ``antialias`` (default True) for its resizes. ``name_or_cfg`` may be a mapping
    ``{"name": ..., **kwargs}``; its keys override the keyword arguments.
    """
    if isinstance(name_or_cfg, Mapping):
        cfg = dict(name_or_cfg)
        if "name" not in cfg:
            raise KeyError(f"transform config needs a 'name' (one of {PRESETS}); got keys {sorted(cfg)}")
        name = cfg.pop("name")
        size, mean, std = cfg.pop("size", size), cfg.pop("mean", mean), cfg.pop("std", std)
        channel_order = cfg.pop("channel_order", channel_order)
        overrides = {**overrides, **cfg}
    else:
        name = name_or_cfg
    allowed = {
        "train": {"scale", "ratio", "flip_p", "antialias"},
        "eval": {"short_side", "antialias"},
        "three_crop": {"antialias"},
        "simclr": {"scale", "ratio", "strength", "blur_p", "flip_p", "antialias"},
    }
    if name not in allowed:
        raise KeyError(f"unknown transform preset {name!r}; known: {PRESETS}")
    unknown = set(overrides) - allowed[name]
    if unknown:
        raise TypeError(f"preset {name!r} does not take {sorted(unknown)}; it takes {sorted(allowed[name])}")

    aa = bool(overrides.get("antialias", True))
    steps: list[VideoTransform] = [ToFloat()]
    if name == "train":
        steps += [
            RandomResizedCrop(
                size,
                scale=overrides.get("scale", (0.25, 1.0)),
                ratio=overrides.get("ratio", (3 / 4, 4 / 3)),
                antialias=aa,
            ),
            RandomHorizontalFlip(overrides.get("flip_p", 0.5)),
        ]
    elif name == "eval":
        steps += [ShortSideScale(overrides.get("short_side", round(size / 0.875)), aa), CenterCrop(size)]
    elif name == "three_crop":
        steps += [ShortSideScale(size, aa), ThreeCrop(size)]
    else:
        s = float(overrides.get("strength", 1.0))
        steps += [
            RandomResizedCrop(
                size,
                scale=overrides.get("scale", (0.08, 1.0)),
                ratio=overrides.get("ratio", (3 / 4, 4 / 3)),
                antialias=aa,
            ),
            RandomHorizontalFlip(overrides.get("flip_p", 0.5)),
            ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s, p=0.8),
            RandomGrayscale(0.2),
            GaussianBlur(None, sigma=(0.1, 2.0), p=overrides.get("blur_p", 0.5)),
        ]
    steps.append(Normalize(mean, std))
    if channel_order != "rgb":
        steps.append(ChannelOrder(channel_order))
    return Compose(steps)
