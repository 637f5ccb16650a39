"""The CUDA backend of `spmm`: a load-balanced merge-path CSR SpMM (csrc/cuda/spmm.cu).

`out[i] = reduce_{e in rowptr[i]:rowptr[i+1]} edge_weight[e] * x[col[e]]`, `reduce` in
`sum | mean | max`, a row with no entries gives 0. Shapes: `rowptr [N+1]`, `col [E]` (int32 or
int64), `x [M, F]` fp32/fp16/bf16, `edge_weight [E]` or None, out `[N, F]` in x's
dtype. Accumulation is fp32; work is split evenly over row ends + edges, so hub rows of any
degree are spread over many warps; partial rows are combined in a fixed order (no atomics),
so results are bitwise reproducible.

Gradients for x and edge_weight (see `spmm_backward`) run on the same kernel over the
transposed CSR, built with the CUDA `csr_from_edges` unless passed in as `transposed`.
Column indices outside `[0, M)` are not checked on the host (that would synchronise); the
kernel skips them rather than read out of bounds.
"""

from __future__ import annotations

import torch

from astrobio.ops.graph import csr_from_edges

try:
    from astrobio import _cuda
except ImportError:  # built without nvcc
    _cuda = None

REDUCE_CODES = {"sum": 0, "mean": 1, "max": 2}
INDEX_DTYPES = (torch.int32, torch.int64)
DTYPE_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


def cuda_spmm_available() -> bool:
    """True where the extension was built with nvcc and a GPU is present."""
    return _cuda is not None and torch.cuda.is_available()


@torch.library.custom_op("astrobio::spmm_cuda", mutates_args=(), device_types="cuda")
def _spmm_cuda_op(
    rowptr: torch.Tensor,
    col: torch.Tensor,
    x: torch.Tensor,
    edge_weight: torch.Tensor | None,
    reduce: str,
    rowptr_t: torch.Tensor | None,
    col_t: torch.Tensor | None,
    perm_t: torch.Tensor | None,
) -> torch.Tensor:
    """The forward; the transposed CSR is only carried for the backward."""
    rowptr, col, x = rowptr.contiguous(), col.contiguous(), x.contiguous()
    weight = None if edge_weight is None else edge_weight.to(torch.float32).contiguous()
    num_rows, (num_cols, num_features) = rowptr.numel() - 1, x.shape
    out = x.new_empty(num_rows, num_features)
    num_edges = col.numel()
    workspace = torch.empty(_cuda.spmm_workspace_bytes(num_rows, num_edges, num_features),
                            dtype=torch.uint8, device=x.device)
    _cuda.spmm(
        x.device.index, rowptr.data_ptr(), col.data_ptr(), col.dtype == torch.int64,
        x.data_ptr(), DTYPE_CODES[x.dtype], 0 if weight is None else weight.data_ptr(),
        REDUCE_CODES[reduce], num_rows, num_cols, num_edges, num_features, out.data_ptr(),
        workspace.data_ptr(), workspace.numel(), torch.cuda.current_stream(x.device).cuda_stream,
    )
    return out


@_spmm_cuda_op.register_fake
def _spmm_cuda_fake(rowptr, col, x, edge_weight, reduce, rowptr_t, col_t, perm_t):
    return x.new_empty(rowptr.shape[0] - 1, x.shape[1])


def spmm_backward(rowptr, col, x, edge_weight, reduce, out, grad_out, transposed,
                  spmm_sum, csr_from_edges):
    """(grad_x, grad_edge_weight) of `out = spmm(rowptr, col, x, edge_weight, reduce)`.

    With `row[e]` the row of CSR edge e, `w` the weights (1 without) and `s[e] = w[e]` (sum,
    max) or `w[e] / deg(row[e])` (mean):
      sum/mean  grad_x[c] = sum_{e: col[e]=c} s[e] grad_out[row[e]]: a sum-SpMM over the
                transposed CSR; grad_w[e] = <grad_out[row[e]], x[col[e]]> (/ deg(row[e])).
      max       only the first edge of a row (CSR order) reaching the maximum of a feature
                gets that feature's gradient; the per-edge terms are summed per column by
                a sum-SpMM over the transposed CSR with an identity gather.
    `spmm_sum(rowptr, col, x, weight)` and `csr_from_edges(edge_index, num_nodes)` are
    injected (the CUDA ops here, the references in tests). Deterministic: no atomics.
    """
    num_rows, num_cols, num_edges = rowptr.numel() - 1, x.shape[0], col.numel()
    degree = (rowptr[1:] - rowptr[:-1]).long()
    rows = torch.repeat_interleave(torch.arange(num_rows, device=x.device), degree,
                                   output_size=num_edges)
    acc = torch.promote_types(x.dtype, torch.float32)  # the kernel's accumulation type
    weight = (torch.ones(num_edges, dtype=acc, device=x.device) if edge_weight is None
              else edge_weight.to(acc))
    per_row = (1.0 / degree.clamp(min=1).to(acc))[rows] if reduce == "mean" else 1.0
    scale = weight * per_row
    if transposed is None:
        n = max(num_rows, num_cols)
        rowptr_t, col_t, perm_t = csr_from_edges(torch.stack([rows, col.long()]), n)
        rowptr_t = rowptr_t[: num_cols + 1]
    else:
        rowptr_t, col_t, perm_t = transposed
    grad_out = grad_out.contiguous()
    if reduce != "max":
        grad_x = spmm_sum(rowptr_t, col_t, grad_out, scale[perm_t])
        grad_w = None
        if edge_weight is not None:
            dot = (grad_out[rows].to(acc) * x[col].to(acc)).sum(-1)
            grad_w = (dot * per_row).to(edge_weight.dtype)
        return grad_x, grad_w
    message = (weight[:, None] * x[col].to(acc)).to(x.dtype)
    edge_ids = torch.arange(num_edges, device=x.device)[:, None].expand(-1, x.shape[1])
    candidates = torch.where(message == out[rows], edge_ids, num_edges)
    first = torch.full_like(out, num_edges, dtype=torch.long).scatter_reduce(
        0, rows[:, None].expand_as(candidates), candidates, "amin")
    chosen = (first[rows] == edge_ids).to(acc) * grad_out[rows].to(acc)  # [E, F]
    identity = torch.arange(num_edges, device=x.device)
    grad_x = spmm_sum(rowptr_t, identity, (chosen * weight[:, None])[perm_t], None).to(x.dtype)
    grad_w = None
    if edge_weight is not None:
        grad_w = (chosen * x[col].to(acc)).sum(-1).to(edge_weight.dtype)
    return grad_x, grad_w


def _setup_context(ctx, inputs, output):
    rowptr, col, x, edge_weight, reduce, rowptr_t, col_t, perm_t = inputs
    ctx.reduce = reduce
    ctx.has_transposed = rowptr_t is not None
    ctx.save_for_backward(rowptr, col, x, edge_weight, output if reduce == "max" else None,
                          rowptr_t, col_t, perm_t)


def _backward(ctx, grad_out):
    rowptr, col, x, edge_weight, out, rowptr_t, col_t, perm_t = ctx.saved_tensors
    transposed = (rowptr_t, col_t, perm_t) if ctx.has_transposed else None
    grad_x, grad_w = spmm_backward(
        rowptr, col, x, edge_weight, ctx.reduce, out, grad_out, transposed,
        spmm_sum=lambda r, c, v, w: spmm_cuda(r, c, v, w, "sum"),
        csr_from_edges=csr_from_edges,
    )
    return None, None, grad_x, grad_w, None, None, None, None


_spmm_cuda_op.register_autograd(_backward, setup_context=_setup_context)


def spmm_cuda(
    rowptr: torch.Tensor,
    col: torch.Tensor,
    x: torch.Tensor,
    edge_weight: torch.Tensor | None = None,
    reduce: str = "sum",
    *,
    transposed: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The merge-path CUDA SpMM; see the module docstring. Raises ValueError on bad input.

    `transposed=(rowptr_t, col_t, perm_t)` (the source-sorted CSR, as `MultiModalBatch`
    carries) spares the backward a sort.
    """
    if _cuda is None:
        raise ValueError("spmm_cuda: astrobio._cuda was not built (no nvcc at install time)")
    if reduce not in REDUCE_CODES:
        raise ValueError(f"spmm_cuda: unknown reduce {reduce!r}; choose one of "
                         f"{tuple(REDUCE_CODES)}")
    if x.dtype not in DTYPE_CODES:
        raise ValueError(f"spmm_cuda: x must be float32, float16 or bfloat16, got {x.dtype}")
    if rowptr.dim() != 1 or rowptr.numel() == 0 or col.dim() != 1 or x.dim() != 2:
        raise ValueError(f"spmm_cuda: expected rowptr [N+1], col [E], x [M, F]; got "
                         f"{tuple(rowptr.shape)}, {tuple(col.shape)}, {tuple(x.shape)}")
    if rowptr.dtype not in INDEX_DTYPES or col.dtype not in INDEX_DTYPES:
        raise ValueError(f"spmm_cuda: rowptr and col must be int32 or int64, got "
                         f"{rowptr.dtype} and {col.dtype}")
    if edge_weight is not None and edge_weight.shape != col.shape:
        raise ValueError(f"spmm_cuda: edge_weight {tuple(edge_weight.shape)} does not match "
                         f"col {tuple(col.shape)}")
    if transposed is not None and (len(transposed) != 3 or transposed[0].shape != (
            x.shape[0] + 1,) or transposed[1].shape != col.shape
            or transposed[2].shape != col.shape):
        raise ValueError(f"spmm_cuda: transposed must be (rowptr_t [M+1], col_t [E], perm_t "
                         f"[E]) with M = {x.shape[0]}, E = {col.numel()}")
    tensors = [rowptr, col, x] + ([edge_weight] if edge_weight is not None else [])
    tensors += list(transposed or [])
    if any(t.device.type != "cuda" or t.device != x.device for t in tensors):
        raise ValueError("spmm_cuda: every input must be on the same CUDA device, got "
                         f"{[str(t.device) for t in tensors]}")
    if rowptr.dtype != col.dtype:  # the kernel reads both with one index type
        rowptr, col = rowptr.long(), col.long()
    rowptr_t, col_t, perm_t = transposed or (None, None, None)
    return _spmm_cuda_op(rowptr, col, x, edge_weight, reduce, rowptr_t, col_t, perm_t)
