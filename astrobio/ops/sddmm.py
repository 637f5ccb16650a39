"""Sampled dense-dense product: one dot product per listed edge.

`out[e] = dot(a[row[e]], b[col[e]])`. Shapes: `row, col [E]`, `a [N, F]`, `b [M, F]`,
out `[E]`. It is the gradient of `spmm` with respect to the edge weights, and the score of
the graph VAE's edge decoder.
"""

from __future__ import annotations

import torch

from astrobio.ops._backend import select_backend

BACKENDS = ("reference",)


def sddmm_reference(row, col, a, b):
    """The ground truth: gather both ends, multiply, sum over features."""
    return (a[row] * b[col]).sum(dim=-1)


def sddmm(row: torch.Tensor, col: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if row.shape != col.shape or row.dim() != 1:
        raise ValueError(f"sddmm: row {tuple(row.shape)} and col {tuple(col.shape)} must be [E]")
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"sddmm: a {tuple(a.shape)} and b {tuple(b.shape)} must be [*, F]")
    select_backend("sddmm", a, BACKENDS)
    return sddmm_reference(row, col, a, b)
