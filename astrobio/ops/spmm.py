"""Sparse-dense product over a destination-sorted CSR graph (message passing).

`out[i] = reduce_{e in rowptr[i]:rowptr[i+1]} edge_weight[e] * x[col[e]]`, `reduce` in
`sum | mean | max`; a row with no entries gives 0. Shapes: `rowptr [N+1]`, `col [E]`,
`x [M, F]`, `edge_weight [E]` or None, out `[N, F]`.
"""

from __future__ import annotations

import torch

from astrobio.ops._backend import select_backend

BACKENDS = ("reference",)
REDUCTIONS = ("sum", "mean", "max")


def check_spmm_inputs(rowptr, col, x, edge_weight, reduce):
    if reduce not in REDUCTIONS:
        raise ValueError(f"spmm: unknown reduce {reduce!r}; choose one of {REDUCTIONS}")
    if rowptr.dim() != 1 or col.dim() != 1 or x.dim() != 2:
        raise ValueError(
            f"spmm: expected rowptr [N+1], col [E], x [M, F]; got {tuple(rowptr.shape)}, "
            f"{tuple(col.shape)}, {tuple(x.shape)}"
        )
    if edge_weight is not None and edge_weight.shape != col.shape:
        raise ValueError(
            f"spmm: edge_weight {tuple(edge_weight.shape)} does not match col {tuple(col.shape)}"
        )


def spmm_reference(rowptr, col, x, edge_weight=None, reduce="sum"):
    """The ground truth: gather, then `index_add_` / `scatter_reduce`."""
    check_spmm_inputs(rowptr, col, x, edge_weight, reduce)
    n_rows = rowptr.numel() - 1
    degree = rowptr[1:] - rowptr[:-1]
    row = torch.repeat_interleave(torch.arange(n_rows, device=x.device), degree)
    message = x[col]
    if edge_weight is not None:
        message = message * edge_weight.to(x.dtype).unsqueeze(-1)
    out = x.new_zeros(n_rows, x.shape[1])
    if reduce == "max":
        index = row.unsqueeze(-1).expand_as(message)
        return out.scatter_reduce(0, index, message, reduce="amax", include_self=False)
    out = out.index_add(0, row, message)
    if reduce == "mean":
        out = out / degree.clamp(min=1).to(x.dtype).unsqueeze(-1)
    return out


def spmm(
    rowptr: torch.Tensor,
    col: torch.Tensor,
    x: torch.Tensor,
    edge_weight: torch.Tensor | None = None,
    reduce: str = "sum",
) -> torch.Tensor:
    select_backend("spmm", x, BACKENDS)
    return spmm_reference(rowptr, col, x, edge_weight, reduce)
