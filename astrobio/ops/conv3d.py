"""3D convolution with the bias and activation fused: `act(F.conv3d(x, w, b, stride, padding))`.

Shapes: `x [N, Cin, D, H, W]` (any memory format), `weight [Cout, Cin, kD, kH, kW]`,
`bias [Cout]`; dilation 1, groups 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from astrobio.ops._backend import select_backend
from astrobio.ops.activations import apply_activation, check_activation

BACKENDS = ("reference",)


def conv3d_reference(x, weight, bias=None, stride=1, padding=0, activation=None):
    """The ground truth: plain PyTorch."""
    return apply_activation(F.conv3d(x, weight, bias, stride, padding), activation)


def conv3d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int, int] = 1,
    padding: int | tuple[int, int, int] = 0,
    activation: str | None = None,
) -> torch.Tensor:
    check_activation(activation)
    select_backend("conv3d", x, BACKENDS)
    return conv3d_reference(x, weight, bias, stride, padding, activation)
