"""Arithmetic over a block of planets that gives each planet the same bits in any block."""

from __future__ import annotations

import numpy as np


def row_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a @ b` for `a` [B, K] (one row per planet) and `b` [K, ...], as K elementwise products
    summed in a fixed order. BLAS splits a matmul's sums by the operands' sizes, so with `@`
    a planet's row could round differently with the size of the block it was generated in."""
    a, b = np.asarray(a), np.asarray(b)
    column = lambda k: a[:, k].reshape(-1, *([1] * (b.ndim - 1)))
    out = column(0) * b[0]
    for k in range(1, a.shape[1]):
        out = out + column(k) * b[k]
    return out
