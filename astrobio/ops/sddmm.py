"""Sampled dense-dense product: one dot product per listed edge.

`out[e] = dot(a[row[e]], b[col[e]])`. Shapes: `row, col [E]`, `a [N, F]`, `b [M, F]`,
out `[E]`. It is the gradient of `spmm` with respect to the edge weights, and the score of
the graph VAE's edge decoder.

Gradients (triton backend): `grad_a[i] = sum_{e: row[e]=i} g[e] * b[col[e]]` and
`grad_b[j] = sum_{e: col[e]=j} g[e] * a[row[e]]`, each a deterministic CSR segment sum
(`spmm`'s kernel) after a stable sort of the edges by `row` / `col`; edges need no order.
Double backward is not supported by the triton backend.
"""

from __future__ import annotations

import torch

from astrobio.kernels import sddmm as sddmm_kernels
from astrobio.ops._backend import select_backend
from astrobio.ops.spmm import INDEX_DTYPES, TRITON_DTYPES, sorted_csr, spmm_csr


def sddmm_reference(row, col, a, b):
    """The ground truth: gather both ends, multiply, sum over features."""
    return (a[row] * b[col]).sum(dim=-1)


@torch.library.custom_op("astrobio::sddmm", mutates_args=())
def sddmm_op(
    row: torch.Tensor, col: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    return sddmm_kernels.sddmm(row, col, a, b)


@sddmm_op.register_fake
def _sddmm_fake(row, col, a, b):
    return a.new_empty(row.shape[0])


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad):
    row, col, a, b = ctx.saved_tensors
    grad = grad.contiguous()
    grad_a = grad_b = None
    if ctx.needs_input_grad[2]:
        rowptr, perm = sorted_csr(row, a.shape[0])
        grad_a = spmm_csr(rowptr, col[perm], b, grad[perm], "sum", None, None, None, None,
                          None)[0]
    if ctx.needs_input_grad[3]:
        rowptr, perm = sorted_csr(col, b.shape[0])
        grad_b = spmm_csr(rowptr, row[perm], a, grad[perm], "sum", None, None, None, None,
                          None)[0]
    return None, None, grad_a, grad_b


sddmm_op.register_autograd(_backward, setup_context=_setup_context)


def _sddmm_triton(row, col, a, b):
    if a.dtype not in TRITON_DTYPES or b.dtype != a.dtype:
        raise ValueError(
            f"sddmm: the triton backend takes a and b of one dtype in {TRITON_DTYPES}, "
            f"got {a.dtype} and {b.dtype}"
        )
    return sddmm_op(row, col, a, b)


# backend -> fn(row, col, a, b); one line per backend.
IMPLEMENTATIONS = {
    "reference": sddmm_reference,
    "triton": _sddmm_triton,
}
BACKENDS = tuple(IMPLEMENTATIONS)


def sddmm(row: torch.Tensor, col: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if row.shape != col.shape or row.dim() != 1:
        raise ValueError(f"sddmm: row {tuple(row.shape)} and col {tuple(col.shape)} must be [E]")
    if row.dtype not in INDEX_DTYPES or col.dtype not in INDEX_DTYPES:
        raise ValueError(f"sddmm: row and col must be int32 or int64, got {row.dtype}, {col.dtype}")
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"sddmm: a {tuple(a.shape)} and b {tuple(b.shape)} must be [*, F]")
    if any(t.device != a.device for t in (row, col, b)):
        raise ValueError(f"sddmm: all inputs must be on a's device {a.device}")
    backend = select_backend("sddmm", a, BACKENDS)
    return IMPLEMENTATIONS[backend](row, col, a, b)
