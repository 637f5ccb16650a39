"""Cross-modal attention with a key-padding mask.

`q [B, H, Lq, D]`, `k, v [B, H, Lk, D]`, `key_padding_mask [B, Lk]` bool (True = key present).
Equals SDPA with that mask where a query row has at least one key; a row with none outputs 0
and receives 0 gradient, never NaN.

Backends: `reference` (plain PyTorch, float32 math) and `triton` (the fused kernels of
`astrobio.kernels.cross_attention`, bound as the custom ops `astrobio::cross_attention_fwd` and
`astrobio::cross_attention_bwd` with fake implementations and autograd; first-order gradients
only). The kernels autotune on `bucket(Lq)` and `bucket(Lk)` (astrobio.ops.buckets), so
batches whose padded lengths share a bucket share one tuned kernel.
"""

from __future__ import annotations

import math

import torch

from astrobio.ops._backend import requested_backend, select_backend
from astrobio.ops.buckets import bucket

BACKENDS = ("reference", "triton")


def check_cross_attention_inputs(q, k, v, key_padding_mask=None):
    """Raise ValueError naming the argument whose shape or dtype breaks the contract."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"cross_attention: q, k, v must be [B, H, L, D]; got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    B, H, _, D = q.shape
    if k.shape != v.shape or k.shape[:2] != (B, H) or k.shape[3] != D or D == 0:
        raise ValueError(
            f"cross_attention: k {tuple(k.shape)} and v {tuple(v.shape)} must be "
            f"[{B}, {H}, Lk, {D}] to match q {tuple(q.shape)} (D > 0)"
        )
    if key_padding_mask is not None and (
        key_padding_mask.dtype != torch.bool or tuple(key_padding_mask.shape) != (B, k.shape[2])
    ):
        raise ValueError(
            f"cross_attention: key_padding_mask must be bool [{B}, {k.shape[2]}] (True = key "
            f"present); got {key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
        )


def cross_attention_reference(q, k, v, key_padding_mask=None, scale=None):
    """The ground truth: softmax(q k^T * scale) v in float32 (float64 stays float64), masked
    keys at weight 0."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    compute = torch.promote_types(q.dtype, torch.float32)
    scores = torch.matmul(q.to(compute), k.to(compute).transpose(-1, -2)) * scale
    if key_padding_mask is None:
        weights = torch.softmax(scores, dim=-1)
    else:
        present = key_padding_mask[:, None, None, :]
        # finfo.min rather than -inf: a row with no key stays finite, then is zeroed.
        scores = scores.masked_fill(~present, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1) * present.any(dim=-1, keepdim=True)
    return torch.matmul(weights, v.to(compute)).to(q.dtype)


@torch.library.custom_op("astrobio::cross_attention_fwd", mutates_args=())
def _triton_fwd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    from astrobio.kernels.cross_attention import cross_attention_fwd

    return cross_attention_fwd(q, k, v, key_padding_mask, scale, buckets=_buckets(q, k))


def _buckets(q, k):
    return bucket(q.shape[2]), bucket(k.shape[2])


@_triton_fwd.register_fake
def _(q, k, v, key_padding_mask, scale):
    return q.new_empty(q.shape), q.new_empty(q.shape[:3], dtype=torch.float32)


@torch.library.custom_op("astrobio::cross_attention_bwd", mutates_args=())
def _triton_bwd(
    dout: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from astrobio.kernels.cross_attention import cross_attention_bwd

    return cross_attention_bwd(dout, q, k, v, out, lse, key_padding_mask, scale,
                               buckets=_buckets(q, k))


@_triton_bwd.register_fake
def _(dout, q, k, v, out, lse, key_padding_mask, scale):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output):
    q, k, v, key_padding_mask, scale = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, key_padding_mask)
    ctx.scale = scale


def _backward(ctx, dout, _dlse):
    q, k, v, out, lse, key_padding_mask = ctx.saved_tensors
    dq, dk, dv = _triton_bwd(dout, q, k, v, out, lse, key_padding_mask, ctx.scale)
    return dq, dk, dv, None, None


_triton_fwd.register_autograd(_backward, setup_context=_setup_context)


def cross_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    check_cross_attention_inputs(q, k, v, key_padding_mask)
    backend = select_backend("cross_attention", q, BACKENDS)
    if backend == "triton" and requested_backend() == "auto":
        from astrobio.kernels.cross_attention import unsupported_reason

        # `auto` means whatever runs: float64 or D > 256 on CUDA go to the reference.
        if unsupported_reason(q, k, v, key_padding_mask) is not None:
            backend = "reference"
    if backend == "triton":
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
        return _triton_fwd(q, k, v, key_padding_mask, scale)[0]
    return cross_attention_reference(q, k, v, key_padding_mask, scale)
