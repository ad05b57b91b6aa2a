"""Convolutions that train correctly in bf16 on CPU.

oneDNN's bfloat16 convolution backward on CPU (torch 2.13's CPU build; ``benchmarks/cpu_bf16_conv.py``) gets the
weight gradient wrong when a kernel is longer than its input along some dimension: garbage, NaN wherever freed
memory held NaN, and in a sweep of such shapes now and then a heap corruption that killed the process. It happens
in real networks: the 3-tap temporal kernels of a video ResNet's last stage see 2 frames once 16 input frames have
been halved three times. The forward pass and the input gradient are right. :class:`Conv2d` and :class:`Conv3d`
run exactly those convolutions in float32 when bf16 is in use on CPU (autocast or bf16 tensors) and a weight
gradient is wanted, and return bf16 as the plain layer would; every other convolution — all of them on GPUs — is
the plain layer's. Every model of zoo builds its convolutions from this module; :func:`use_zoo_convolutions`
converts another model's.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Conv2d", "Conv3d", "needs_float32_on_cpu", "use_zoo_convolutions"]


def _bf16_in_use(input: torch.Tensor) -> bool:
    autocast_bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    return input.dtype == torch.bfloat16 or autocast_bf16


def needs_float32_on_cpu(input: torch.Tensor, weight: torch.Tensor, dilation: tuple[int, ...]) -> bool:
    """Whether oneDNN's bf16 backward would get this convolution's weight gradient wrong: on CPU, in bf16, with a
    gradient to compute, and a (dilated) kernel longer than the input along some dimension."""
    if input.device.type != "cpu" or not torch.is_grad_enabled() or not weight.requires_grad:
        return False
    if not _bf16_in_use(input):
        return False
    kernel = [(k - 1) * d + 1 for k, d in zip(weight.shape[2:], dilation)]
    return any(k > size for k, size in zip(kernel, input.shape[2:]))


class _CPUBf16SafeConv:
    """Mixin over ``nn.ConvNd``: the affected convolutions in float32, outside autocast, cast back to bf16."""

    def _conv_forward(
        self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        if not needs_float32_on_cpu(input, weight, self.dilation):
            return super()._conv_forward(input, weight, bias)
        with torch.autocast("cpu", enabled=False):
            bias = None if bias is None else bias.float()
            output = super()._conv_forward(input.float(), weight.float(), bias)
        return output.to(torch.bfloat16)


class Conv2d(_CPUBf16SafeConv, nn.Conv2d):
    """``nn.Conv2d`` (same arguments, same state dict) that trains correctly in bf16 on CPU."""


class Conv3d(_CPUBf16SafeConv, nn.Conv3d):
    """``nn.Conv3d`` (same arguments, same state dict) that trains correctly in bf16 on CPU."""


def use_zoo_convolutions(model: nn.Module) -> nn.Module:
    """Make every plain ``nn.Conv2d`` / ``nn.Conv3d`` of ``model`` one of this module's, in place (same weights,
    same state dict), so a model built elsewhere trains correctly in bf16 on CPU too; returns ``model``."""
    for module in model.modules():
        if type(module) is nn.Conv2d:
            module.__class__ = Conv2d
        elif type(module) is nn.Conv3d:
            module.__class__ = Conv3d
    return model
