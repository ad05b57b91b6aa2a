"""zoo's convolutions train correctly in bf16 on CPU, where oneDNN's bf16 backward gets the weight gradient wrong
for kernels longer than their input (zoo/models/layers/conv.py; measured in benchmarks/cpu_bf16_conv.py).

Tolerance: a bf16 gradient is compared with the float32 gradient of the same bf16-rounded inputs; bf16 keeps 8
significant bits, so sums of a few hundred products land within 2 % of the largest entry. The wrong gradients the
layers avoid are off by 100 % or more, or NaN.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoo.models.layers.conv import Conv2d, Conv3d, needs_float32_on_cpu, use_zoo_convolutions
from zoo.registry import build

REL_TOL = 0.02

# (layer, input shape, kernel, padding, stride): every kernel longer than its input along one dimension
AFFECTED = {
    "2-frame-clip-3-tap-kernel": (Conv3d, (8, 32, 2, 8, 8), 3, 1, 1),
    "temporal-kernel-only": (Conv3d, (2, 16, 2, 4, 4), (3, 1, 1), (1, 0, 0), 1),
    "kernel-4-on-3-frames": (Conv3d, (2, 16, 3, 4, 4), (4, 3, 3), (2, 1, 1), 1),
    "1x1-map-strided-3x3-kernel": (Conv2d, (4, 16, 1, 1), 3, 1, 2),
}


def _leave_nan_in_freed_memory() -> None:
    """Free buffers full of NaN, so memory read before it is written holds NaN rather than zeros."""
    for n in (1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20):
        for dtype in (torch.float32, torch.bfloat16):
            del_me = torch.full((n,), float("nan"), dtype=dtype)
            del del_me


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.detach().float(), expected.detach()
    return float((actual - expected).abs().max() / expected.abs().max())


@pytest.mark.parametrize("case", AFFECTED)
def test_weight_gradient_in_bf16_on_cpu_matches_float32(case):
    layer_type, shape, kernel, padding, stride = AFFECTED[case]
    torch.manual_seed(0)
    conv = layer_type(shape[1], 16, kernel, stride, padding, bias=False)
    x = torch.randn(shape).bfloat16()
    grad_out = None
    for _ in range(5):  # garbage differs between calls: one correct gradient proves little
        conv.weight.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(x)
        assert y.dtype == torch.bfloat16
        if grad_out is None:
            grad_out = (torch.randn(y.shape) * 1e-2).bfloat16()
        _leave_nan_in_freed_memory()
        y.backward(grad_out)
        dims = x.dim() - 2
        weight_grad = getattr(torch.nn.grad, f"conv{dims}d_weight")
        expected = weight_grad(x.float(), conv.weight.shape, grad_out.float(), conv.stride, conv.padding)
        assert torch.isfinite(conv.weight.grad).all(), case
        assert _relative_error(conv.weight.grad, expected) < REL_TOL, case


@pytest.mark.parametrize("case", AFFECTED)
def test_output_and_input_gradient_are_the_plain_layers(case):
    layer_type, shape, kernel, padding, stride = AFFECTED[case]
    torch.manual_seed(0)
    conv = layer_type(shape[1], 16, kernel, stride, padding)
    x = torch.randn(shape).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    y.float().square().sum().backward()
    plain = getattr(F, f"conv{x.dim() - 2}d")
    bf16 = lambda t: t.bfloat16().float()  # noqa: E731 — what autocast feeds the convolution
    x_ref = bf16(x.detach()).requires_grad_(True)
    y_ref = plain(x_ref, bf16(conv.weight.detach()), bf16(conv.bias.detach()), conv.stride, conv.padding)
    y_ref.bfloat16().float().square().sum().backward()
    assert _relative_error(y, y_ref) < REL_TOL
    assert _relative_error(x.grad, x_ref.grad) < REL_TOL


def test_float32_is_used_only_where_bf16_backward_is_wrong():
    conv = Conv3d(4, 4, 3, padding=1)
    short, long = torch.randn(1, 4, 2, 8, 8), torch.randn(1, 4, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert needs_float32_on_cpu(short, conv.weight, conv.dilation)
        assert not needs_float32_on_cpu(long, conv.weight, conv.dilation)  # the kernel fits
        with torch.no_grad():
            assert not needs_float32_on_cpu(short, conv.weight, conv.dilation)  # no weight gradient
    assert needs_float32_on_cpu(short.bfloat16(), conv.weight, conv.dilation)  # bf16 tensors, no autocast
    assert not needs_float32_on_cpu(short, conv.weight, conv.dilation)  # float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert needs_float32_on_cpu(long, conv.weight, (2, 1, 1))  # dilated: 5 taps over 3 frames
    frozen = Conv3d(4, 4, 3, padding=1).requires_grad_(False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not needs_float32_on_cpu(short, frozen.weight, frozen.dilation)


def test_state_dict_is_the_plain_layers():
    conv = Conv3d(3, 8, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False)
    plain = torch.nn.Conv3d(3, 8, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False)
    plain.load_state_dict(conv.state_dict())
    x = torch.randn(1, 3, 4, 16, 16)
    torch.testing.assert_close(conv(x), plain(x), rtol=0, atol=0)


def test_a_model_built_elsewhere_is_converted_in_place():
    torch.manual_seed(0)
    plain = torch.nn.Sequential(
        torch.nn.Conv3d(8, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 1)
    )
    state = {k: v.clone() for k, v in plain.state_dict().items()}
    converted = use_zoo_convolutions(plain)
    assert converted is plain
    assert type(plain[0]) is Conv3d and type(plain[2]) is Conv2d and type(plain[1]) is torch.nn.ReLU
    for name, value in plain.state_dict().items():
        assert torch.equal(value, state[name])
    x = torch.randn(4, 8, 2, 4, 4).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = plain[0](x)
    grad_out = (torch.randn(y.shape) * 1e-2).bfloat16()
    _leave_nan_in_freed_memory()
    y.backward(grad_out)
    expected = torch.nn.grad.conv3d_weight(x.float(), plain[0].weight.shape, grad_out.float(), 1, 1)
    assert _relative_error(plain[0].weight.grad, expected) < REL_TOL


def _gradients(model: torch.nn.Module, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    """All parameter gradients of a fixed random projection of ``model(x)``, flattened into one vector."""
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(x)
    projection = torch.randn(out.shape[1:], generator=torch.Generator().manual_seed(5))
    (out.float() * projection).sum().backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


# every convolutional backbone family of the registry, at a size whose later stages have kernels longer than
# their input (tiny transformers: their only convolution, the tubelet embedding, always fits)
BACKBONES = {
    "r3d_tiny": ((8, 3, 4, 32, 32), {}),
    "r3d_tiny_cmd": ((8, 3, 8, 32, 32), {}),
    "r3d_18": ((4, 3, 16, 32, 32), {}),
    "r2plus1d_tiny": ((8, 3, 8, 32, 32), {}),
    "c3d_bn": ((4, 3, 16, 32, 32), {}),
    "i3d": ((4, 3, 16, 64, 64), {}),
    "motionformer_tiny": ((8, 3, 8, 32, 32), {"img_size": 32, "num_frames": 8}),
    "resnet18": ((8, 3, 32, 32), {}),
    "resnet9_audio": ((8, 1, 40, 100), {}),
    "convnet_small": ((8, 3, 32, 32), {}),
}
GRADIENT_RTOL = 0.2  # measured: 0.004 (transformer) to 0.11 (r2plus1d_tiny); the plain layers: NaN, or 0.23


@pytest.mark.parametrize("name", BACKBONES)
def test_bf16_gradients_of_zoo_backbones_track_float32_on_cpu(name):
    """Eval mode: with batch statistics of 4-8 clips, a 0.4 % change of the input moves even the float32
    gradient of a randomly initialised i3d or resnet50 by 120-150 %, so train mode would compare noise."""
    shape, kwargs = BACKBONES[name]
    torch.manual_seed(0)
    model = build(name, num_classes=0, **kwargs).eval()
    x = torch.randn(shape)
    full, mixed = _gradients(model, x, bf16=False), _gradients(model, x, bf16=True)
    assert torch.isfinite(mixed).all(), name
    error = float((mixed - full).norm() / full.norm())
    assert error < GRADIENT_RTOL, f"{name}: bf16 gradients {error:.3f} away from float32 (relative)"
