"""Video transforms: one draw per clip, per-sample == batched, seeded determinism, presets, GPU == CPU."""

import math

import pytest
import torch

from zoo.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    ChannelOrder,
    ColorJitter,
    Compose,
    GaussianBlur,
    Normalize,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    ShortSideScale,
    ThreeCrop,
    ToFloat,
    build_transform,
    select_params,
)
from zoo.errors import UsageError

RANDOM_TRANSFORMS = {
    "rrc": lambda: RandomResizedCrop(16, scale=(0.1, 1.0)),
    "flip": lambda: RandomHorizontalFlip(0.5),
    "jitter": lambda: ColorJitter(0.8, 0.8, 0.8, 0.2, p=0.8),
    "gray": lambda: RandomGrayscale(0.5),
    "blur": lambda: GaussianBlur(5, p=0.5),
}


def _uint8_clips(*lead: int, t: int = 4, h: int = 24, w: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (*lead, t, h, w, 3), generator=g, dtype=torch.uint8)


def _static_clips(batch: int, t: int = 4) -> torch.Tensor:
    """Float clips (B, C, T, H, W) whose frames are all the same image."""
    frame = ToFloat()(_uint8_clips(batch, t=1))
    return frame.expand(-1, -1, t, -1, -1).contiguous()


def test_to_float_layout_and_range():
    clip = _uint8_clips(t=3)
    out = ToFloat()(clip)
    assert out.shape == (3, 3, 24, 32) and out.dtype == torch.float32
    assert torch.equal(out[1, 2], clip[2, :, :, 1].float() / 255)
    assert ToFloat()(_uint8_clips(2, t=3)).shape == (2, 3, 3, 24, 32)
    with pytest.raises(TypeError, match="uint8"):
        ToFloat()(out)


@pytest.mark.parametrize("name", sorted(RANDOM_TRANSFORMS))
def test_same_parameters_on_every_frame(name):
    torch.manual_seed(0)
    out = RANDOM_TRANSFORMS[name]()(_static_clips(6))
    assert torch.allclose(out, out[:, :, :1].expand_as(out), atol=1e-6)  # frames stay identical


@pytest.mark.parametrize("name", sorted(RANDOM_TRANSFORMS))
def test_independent_parameters_across_samples(name):
    clips = _static_clips(1).expand(16, -1, -1, -1, -1).contiguous()  # the same clip 16 times
    out = RANDOM_TRANSFORMS[name]()(clips, generator=torch.Generator().manual_seed(0))
    distinct = {tuple(o.flatten()[:64].round(decimals=4).tolist()) for o in out}
    assert len(distinct) > 1


@pytest.mark.parametrize("preset", ["train", "eval", "simclr", "three_crop"])
def test_per_sample_equals_batched_with_the_same_parameters(preset):
    transform = build_transform(preset, size=16)
    batch = _uint8_clips(5)
    out, params = transform.forward_with_params(batch, torch.Generator().manual_seed(3))
    for i in range(5):
        single = transform.replay(batch[i], select_params(params, i))
        torch.testing.assert_close(single, out[i], atol=1e-5, rtol=1e-5)


def test_eval_transform_per_sample_equals_batched_directly():
    transform = build_transform("eval", size=16)
    batch = _uint8_clips(4)
    batched = transform(batch)
    stacked = torch.stack([transform(clip) for clip in batch])
    torch.testing.assert_close(batched, stacked)


@pytest.mark.parametrize("preset", ["train", "simclr"])
def test_seeded_generator_is_deterministic(preset):
    transform = build_transform(preset, size=16)
    clips = _uint8_clips(3)
    a = transform(clips, generator=torch.Generator().manual_seed(11))
    b = transform(clips, generator=torch.Generator().manual_seed(11))
    c = transform(clips, generator=torch.Generator().manual_seed(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    torch.manual_seed(5)
    d = transform(clips)
    torch.manual_seed(5)
    assert torch.equal(d, transform(clips))  # the global generator when none is given


def test_random_resized_crop_boxes_follow_scale_and_ratio():
    crop = RandomResizedCrop(8, scale=(0.2, 0.6), ratio=(0.5, 2.0))
    params = crop.sample_params(2000, (3, 2, 60, 80), torch.Generator().manual_seed(0))
    top, left, h, w = params["box"].T.double()
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 60).all() and (left + w <= 80).all()
    area = h * w / (60 * 80)
    assert area.min() > 0.18 and area.max() < 0.62
    ratio = w / h
    assert ratio.min() > 0.45 and ratio.max() < 2.1
    assert abs(math.log(ratio.median().item())) < 0.1  # log-uniform around 1


def test_random_resized_crop_content_is_the_box():
    video = torch.arange(40 * 40, dtype=torch.float32).view(1, 1, 1, 40, 40).expand(1, 3, 2, 40, 40)
    crop = RandomResizedCrop(10, scale=(0.0625, 0.0625), ratio=(1.0, 1.0))  # 10x10 box: no resizing
    out, params = crop.forward_with_params(video, torch.Generator().manual_seed(1))
    top, left, h, w = params["box"][0].tolist()
    assert (h, w) == (10, 10)
    assert torch.equal(out[0, 0, 0], video[0, 0, 0, top : top + 10, left : left + 10])


def test_flip_mirrors():
    video = _static_clips(1)
    assert torch.equal(RandomHorizontalFlip(1.0)(video), video.flip(-1))
    assert torch.equal(RandomHorizontalFlip(0.0)(video), video)


def test_color_jitter_matches_torchvision_formulas_for_one_op():
    video = _static_clips(2)
    brightness = ColorJitter(brightness=(1.5, 1.5))
    torch.testing.assert_close(brightness(video), (video * 1.5).clamp(0, 1))
    saturation = ColorJitter(saturation=(0.0, 0.0))  # factor 0: the grey image
    out = saturation(video)
    gray = (0.299 * video[:, 0] + 0.587 * video[:, 1] + 0.114 * video[:, 2]).unsqueeze(1)
    torch.testing.assert_close(out, gray.expand_as(video), atol=1e-5, rtol=0)
    none = ColorJitter(0.5, 0.5, 0.5, 0.1, p=0.0)
    assert torch.equal(none(video), video.clamp(0, 1))


def test_color_jitter_order_is_drawn_per_clip():
    params = ColorJitter(0.4, 0.4, 0.4, 0.1).sample_params(32, (3, 2, 8, 8), torch.Generator().manual_seed(0))
    orders = {tuple(o.tolist()) for o in params["order"]}
    assert len(orders) > 5
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)


def test_grayscale_and_blur():
    video = _static_clips(2)
    gray = RandomGrayscale(1.0)(video)
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    blurred = GaussianBlur(7, sigma=(2.0, 2.0), p=1.0)(video)
    assert blurred.var() < video.var()  # noise is smoothed
    assert GaussianBlur()._kernel(224, 224) == 23  # 10% of the side, odd
    with pytest.raises(ValueError, match="odd"):
        GaussianBlur(4)


def test_short_side_center_three_crop_geometry():
    video = ToFloat()(_uint8_clips(2, h=30, w=60))
    scaled = ShortSideScale(20)(video)
    assert scaled.shape[-2:] == (20, 40)
    assert CenterCrop(20)(scaled).shape[-2:] == (20, 20)
    crops = ThreeCrop(20)(scaled)
    assert crops.shape == (2, 3, 3, 4, 20, 20)
    assert torch.equal(crops[:, 0], scaled[..., :20])
    assert torch.equal(crops[:, 2], scaled[..., 20:])
    assert ThreeCrop(20)(scaled[0]).shape == (3, 3, 4, 20, 20)
    portrait = ShortSideScale(20)(video.transpose(-1, -2))
    assert portrait.shape[-2:] == (40, 20)
    with pytest.raises(ValueError, match="does not fit"):
        CenterCrop(50)(scaled)


@pytest.mark.parametrize("preset", ["train", "eval", "three_crop", "simclr"])
def test_size_zero_is_a_usage_error_at_construction(preset):
    with pytest.raises(UsageError, match=r"size must be >= 1 pixel, got 0"):
        build_transform(preset, size=0)
    with pytest.raises(UsageError, match=r"size must be >= 1 pixel, got \(16, -2\)"):
        CenterCrop((16, -2))


def test_normalize_and_channel_order():
    video = _static_clips(2)
    out = Normalize(IMAGENET_MEAN, IMAGENET_STD)(video)
    torch.testing.assert_close(out[:, 1], (video[:, 1] - 0.456) / 0.224)
    assert torch.equal(ChannelOrder("bgr")(video), video[:, [2, 1, 0]])
    assert torch.equal(ChannelOrder("rgb")(video), video)


def test_presets_shapes_and_options():
    clips = _uint8_clips(2, h=48, w=64)
    assert build_transform("train", size=16)(clips).shape == (2, 3, 4, 16, 16)
    assert build_transform("eval", size=16)(clips[0]).shape == (3, 4, 16, 16)
    assert build_transform("three_crop", size=16)(clips).shape == (2, 3, 3, 4, 16, 16)
    simclr = build_transform({"name": "simclr", "size": 16, "strength": 0.5})
    jitter = next(t for t in simclr.transforms if isinstance(t, ColorJitter))
    assert jitter.ranges[0] == pytest.approx((0.6, 1.4)) and jitter.ranges[3] == pytest.approx((-0.1, 0.1))
    assert jitter.p == 0.8
    assert any(isinstance(t, RandomGrayscale) and t.p == 0.2 for t in simclr.transforms)
    assert build_transform("train", size=16, antialias=False).transforms[1].antialias is False
    bgr = build_transform("eval", size=16, channel_order="bgr")
    assert isinstance(bgr.transforms[-1], ChannelOrder)
    with pytest.raises(KeyError, match="unknown transform preset"):
        build_transform("nope")
    with pytest.raises(TypeError, match="does not take"):
        build_transform("eval", scale=(0.1, 1.0))


def test_compose_replay_round_trip_and_repr():
    transform = Compose([ToFloat(), RandomResizedCrop(8), RandomHorizontalFlip()])
    clips = _uint8_clips(3)
    out, params = transform.forward_with_params(clips)
    assert torch.equal(transform.replay(clips, params), out)
    assert "RandomResizedCrop" in repr(transform)


def test_transforms_pickle_for_workers():
    import pickle

    transform = build_transform("simclr", size=16)
    clone = pickle.loads(pickle.dumps(transform))
    clips = _uint8_clips(2)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(clone(clips, generator=g()), transform(clips, generator=g()))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA to compare GPU and CPU results")
@pytest.mark.parametrize("preset", ["train", "eval", "simclr", "three_crop"])
def test_gpu_batch_equals_cpu(preset):
    transform = build_transform(preset, size=16)
    clips = _uint8_clips(4)
    cpu = transform(clips, generator=torch.Generator().manual_seed(0))
    gpu = transform(clips.cuda(), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(gpu.cpu(), cpu, atol=2e-3, rtol=1e-3)
