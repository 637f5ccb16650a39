"""3D convolution with the bias and activation fused: `act(F.conv3d(x, w, b, stride, padding))`.

Shapes: `x [N, Cin, D, H, W]` (any memory format), `weight [Cout, Cin, kD, kH, kW]`,
`bias [Cout]`, out `[N, Cout, Do, Ho, Wo]` with `Do = (D + 2·pad - kD) // stride + 1`;
any kernel size, any stride, zero padding, dilation 1, groups 1 (`weight.shape[1]` must equal
`Cin`; grouped or dilated convolutions are not offered).

Backends: `reference` (plain PyTorch, the ground truth) and `triton` (`kernels/conv3d.py`:
an implicit GEMM on channels-last data with fp32 accumulation, for float32, float16 and
bfloat16). The triton output is channels_last_3d; values equal the reference whatever the
input's layout. fp32 is exact IEEE fp32 unless the caller passes `allow_tf32=True` (TF32
products, about 5e-4 relative error: the reference's F.conv3d follows
`torch.backends.cudnn.allow_tf32` instead, which this op deliberately does not read). Under
autocast the inputs are cast to the autocast dtype first, as autocast does for F.conv3d.
The kernels autotune on `bucket(M)` (astrobio.ops.buckets), not on M itself.

Gradients (triton): dx, dw and db by the kernels' backward; dw is a deterministic split-K
reduction. For silu and gelu the forward saves the pre-activation (one more output-sized
tensor) rather than recomputing the convolution; relu's backward reads only the output.
Double backward is not supported by the triton backend.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from astrobio.kernels import conv3d as conv3d_kernels
from astrobio.ops._backend import select_backend
from astrobio.ops.activations import apply_activation, check_activation
from astrobio.ops.buckets import bucket

BACKENDS = ("reference", "triton")
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def conv3d_reference(x, weight, bias=None, stride=1, padding=0, activation=None):
    """The ground truth: plain PyTorch."""
    return apply_activation(F.conv3d(x, weight, bias, stride, padding), activation)


def _triple(value, name: str) -> tuple[int, int, int]:
    values = (value,) * 3 if isinstance(value, int) else tuple(value)
    if len(values) != 3 or not all(isinstance(v, int) for v in values):
        raise ValueError(f"conv3d: {name} must be an int or 3 ints, got {value!r}")
    return values


def _check_triton_inputs(x, weight, bias, stride, padding):
    if x.dim() != 5 or weight.dim() != 5:
        raise ValueError(f"conv3d: expected x [N, Cin, D, H, W] and weight "
                         f"[Cout, Cin, kD, kH, kW], got {tuple(x.shape)} and {tuple(weight.shape)}")
    if weight.shape[1] != x.shape[1] or x.shape[1] == 0:
        raise ValueError(f"conv3d: weight has {weight.shape[1]} input channels and x has "
                         f"{x.shape[1]}; they must match and be >= 1 (groups=1 only)")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv3d: bias {tuple(bias.shape)} must be [Cout] = [{weight.shape[0]}]")
    tensors = [x, weight] + ([bias] if bias is not None else [])
    if any(t.dtype != x.dtype for t in tensors) or x.dtype not in TRITON_DTYPES:
        raise ValueError(f"conv3d (triton): x, weight and bias must share one dtype among "
                         f"{TRITON_DTYPES}, got {[t.dtype for t in tensors]}")
    if any(t.device != x.device for t in tensors):
        raise ValueError(f"conv3d: all inputs must be on x's device {x.device}")
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"conv3d: stride {stride} must be >= 1 and padding {padding} >= 0")
    size = conv3d_kernels.output_size(x.shape[2:], weight.shape[2:], stride, padding)
    if min(size) < 1:
        raise ValueError(f"conv3d: input {tuple(x.shape[2:])} with padding {padding} is smaller "
                         f"than the kernel {tuple(weight.shape[2:])}")


@torch.library.custom_op("astrobio::conv3d", mutates_args=())
def conv3d_fused(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: list[int],
    padding: list[int],
    activation: str | None,
    allow_tf32: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, saved): y channels_last_3d; saved = the pre-activation for silu/gelu, else [0]."""
    size = conv3d_kernels.output_size(x.shape[2:], weight.shape[2:], stride, padding)
    return conv3d_kernels.conv3d_forward(x, weight, bias, stride, padding, activation,
                                         allow_tf32, m_bucket=bucket(x.shape[0] * math.prod(size)))


@conv3d_fused.register_fake
def _conv3d_fused_fake(x, weight, bias, stride, padding, activation, allow_tf32):
    size = conv3d_kernels.output_size(x.shape[2:], weight.shape[2:], stride, padding)
    shape = (x.shape[0], weight.shape[0], *size)
    y = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last_3d)
    if activation in ("silu", "gelu"):
        return y, torch.empty_like(y)
    return y, x.new_empty(0)


@torch.library.custom_op("astrobio::conv3d_backward", mutates_args=())
def conv3d_fused_backward(
    grad_y: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    saved: torch.Tensor,
    stride: list[int],
    padding: list[int],
    activation: str | None,
    has_bias: bool,
    input_grad: bool,
    weight_grad: bool,
    allow_tf32: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, dw, db); each one not asked for (db: without a bias) is [0]."""
    m = grad_y.shape[0] * math.prod(grad_y.shape[2:])
    return conv3d_kernels.conv3d_backward(
        grad_y, x, weight, saved, stride, padding, activation, has_bias, input_grad,
        weight_grad, allow_tf32=allow_tf32, m_bucket=bucket(m),
        input_m_bucket=bucket(x.shape[0] * math.prod(x.shape[2:])))


@conv3d_fused_backward.register_fake
def _conv3d_fused_backward_fake(grad_y, x, weight, saved, stride, padding, activation, has_bias,
                                input_grad, weight_grad, allow_tf32):
    none = x.new_empty(0)
    dx = torch.empty(x.shape, dtype=x.dtype, device=x.device,
                     memory_format=torch.channels_last_3d) if input_grad else none
    dw = torch.empty_like(weight, memory_format=torch.contiguous_format) if weight_grad \
        else x.new_empty(0)
    db = x.new_empty(weight.shape[0]) if has_bias else x.new_empty(0)
    return dx, dw, db


def _setup_context(ctx, inputs, output):
    x, weight, bias, stride, padding, activation, allow_tf32 = inputs
    y, pre_activation = output
    ctx.mark_non_differentiable(pre_activation)
    ctx.save_for_backward(x, weight, y if activation == "relu" else pre_activation)
    ctx.conv = (stride, padding, activation, bias is not None, allow_tf32)


def _backward(ctx, grad_y, _grad_saved):
    x, weight, saved = ctx.saved_tensors
    stride, padding, activation, has_bias, allow_tf32 = ctx.conv
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    dx, dw, db = conv3d_fused_backward(grad_y, x, weight, saved, stride, padding, activation,
                                       has_bias and need_b, need_x, need_w, allow_tf32)
    return (dx if need_x else None, dw if need_w else None, db if has_bias and need_b else None,
            None, None, None, None)


conv3d_fused.register_autograd(_backward, setup_context=_setup_context)


def conv3d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int, int] = 1,
    padding: int | tuple[int, int, int] = 0,
    activation: str | None = None,
    *,
    allow_tf32: bool = False,
) -> torch.Tensor:
    """`act(F.conv3d(x, weight, bias, stride, padding))`; see the module docstring.
    `allow_tf32=True` lets the triton backend multiply fp32 operands in TF32."""
    check_activation(activation)
    if select_backend("conv3d", x, BACKENDS) == "reference":
        return conv3d_reference(x, weight, bias, stride, padding, activation)
    stride, padding = _triple(stride, "stride"), _triple(padding, "padding")
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
    _check_triton_inputs(x, weight, bias, stride, padding)
    return conv3d_fused(x, weight, bias, list(stride), list(padding), activation, allow_tf32)[0]
