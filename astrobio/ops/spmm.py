"""Sparse-dense product over a destination-sorted CSR graph (message passing).

`out[i] = reduce_{e in rowptr[i]:rowptr[i+1]} edge_weight[e] * x[col[e]]`, `reduce` in
`sum | mean | max`; a row with no entries gives 0. Shapes: `rowptr [N+1]`, `col [E]`,
`x [M, F]`, `edge_weight [E]` or None, out `[N, F]` in x's dtype. Deterministic.

Gradients (triton backend, fp32 accumulation, no atomics):
- x: `grad_x[j] = sum over edges e = (i <- j) of w[e] * grad_out[i]` (times `1/deg(i)` for
  mean; for max only at the features where e is the argmax of row i). It runs as the same
  segment reduction over the transposed (source-sorted) CSR; pass `transposed=(rowptr_t, col_t,
  perm_t)` (as `MultiModalBatch` carries: `rowptr_t [M+1]`, `col_t [E]` destination of each
  edge, `perm_t [E]` its position in CSR order) or it is built here with a sort.
- edge_weight: `grad_w[e] = dot(grad_out[i], x[col[e]])` (an SDDMM; `/deg(i)` for mean; for max
  only the features where e is the argmax).
- max ties: the first edge in CSR order holding the maximum takes the whole gradient.
Double backward is not supported by the triton backend.

The triton kernels work from a hub-split schedule of the graph (`kernels/spmm.py`). Built on
each call it costs ~50 small torch ops per direction; `spmm_schedule` builds both directions'
once per graph (C++ on the CPU, e.g. in collate), and `spmm(..., schedule=...)` reuses them in
the forward and the input gradient (the transposed aggregation).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from astrobio.kernels import sddmm as sddmm_kernels
from astrobio.kernels import spmm as spmm_kernels
from astrobio.ops._backend import requested_backend, select_backend
from astrobio.ops.spmm_cuda import spmm_cuda

try:
    from astrobio import _C
except ImportError:  # the package runs from a source tree without the built extension
    _C = None

REDUCTIONS = ("sum", "mean", "max")
INDEX_DTYPES = (torch.int32, torch.int64)
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _fail(message: str):
    raise ValueError(f"spmm: {message}")


def check_spmm_inputs(rowptr, col, x, edge_weight, reduce, transposed=None):
    if reduce not in REDUCTIONS:
        _fail(f"unknown reduce {reduce!r}; choose one of {REDUCTIONS}")
    if rowptr.dim() != 1 or rowptr.numel() == 0 or col.dim() != 1 or x.dim() != 2:
        _fail(
            f"expected rowptr [N+1], col [E], x [M, F]; got {tuple(rowptr.shape)}, "
            f"{tuple(col.shape)}, {tuple(x.shape)}"
        )
    if rowptr.dtype not in INDEX_DTYPES or col.dtype not in INDEX_DTYPES:
        _fail(f"rowptr and col must be int32 or int64, got {rowptr.dtype} and {col.dtype}")
    if not x.is_floating_point():
        _fail(f"x must be floating point, got {x.dtype}")
    if edge_weight is not None and edge_weight.shape != col.shape:
        _fail(f"edge_weight {tuple(edge_weight.shape)} does not match col {tuple(col.shape)}")
    tensors = [rowptr, col] + ([edge_weight] if edge_weight is not None else [])
    if any(t.device != x.device for t in tensors):
        _fail(f"all inputs must be on x's device {x.device}")
    if transposed is not None:
        if len(transposed) != 3:
            _fail("transposed must be (rowptr_t, col_t, perm_t)")
        rowptr_t, col_t, perm_t = transposed
        if (rowptr_t.shape != (x.shape[0] + 1,) or col_t.shape != col.shape
                or perm_t.shape != col.shape):
            _fail(
                f"transposed (rowptr_t {tuple(rowptr_t.shape)}, col_t {tuple(col_t.shape)}, "
                f"perm_t {tuple(perm_t.shape)}) must be [M+1] = [{x.shape[0] + 1}], [E], [E]"
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


class SpmmSchedule(NamedTuple):
    """The triton spmm's hub-split work lists of one graph, built once by `spmm_schedule`.

    forward     [4, K + S] int64 over the CSR by destination (`rowptr`): out = A x
    transposed  the same over the CSR by source (`rowptr_t`): grad x = A^T grad out, or None
    """

    forward: torch.Tensor
    transposed: torch.Tensor | None = None

    def apply(self, fn) -> SpmmSchedule:
        """This schedule with `fn` applied to its tensors (device moves, pinning)."""
        return SpmmSchedule(*(None if t is None else fn(t) for t in self))

    def transpose(self) -> SpmmSchedule:
        """The schedule of the transposed graph: for `spmm(rowptr_t, col_t, ...)`."""
        return SpmmSchedule(self.transposed, self.forward)


def _one_schedule(rowptr: torch.Tensor, num_edges: int) -> torch.Tensor:
    sizes = spmm_kernels.chunk_sizes(rowptr.numel() - 1, num_edges)
    chunk, per_program = sizes["chunk"], sizes["chunks_per_program"]
    if rowptr.device.type == "cpu" and _C is not None and requested_backend() != "reference":
        flat = rowptr.long().contiguous().numpy()
        return torch.from_numpy(_C.spmm_schedule(flat, num_edges, chunk, per_program))
    return spmm_kernels.build_schedule(rowptr, num_edges, chunk, per_program)


def spmm_schedule(rowptr: torch.Tensor, num_edges: int,
                  rowptr_t: torch.Tensor | None = None) -> SpmmSchedule:
    """The schedule of the graph with CSR `rowptr [N+1]` (by destination) and `num_edges`
    edges, and of its transpose when `rowptr_t [M+1]` (by source) is given, for
    `spmm(..., schedule=...)`. Built by the C++ extension for CPU tensors (one pass; move it
    with the batch: `GraphBatch.apply`), by torch ops on the tensors' device
    otherwise. Depends on the graph only, not on features, dtype or reduce; collate builds it
    for each batch (`GraphBatch.spmm_schedule`)."""
    if rowptr.dim() != 1 or rowptr.numel() == 0 or rowptr.dtype not in INDEX_DTYPES:
        _fail(f"spmm_schedule: rowptr must be int32/int64 [N+1], got {rowptr.dtype} "
              f"{tuple(rowptr.shape)}")
    transposed = None if rowptr_t is None else _one_schedule(rowptr_t, num_edges)
    return SpmmSchedule(_one_schedule(rowptr, num_edges), transposed)


def sorted_csr(keys: torch.Tensor, num_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rowptr [num_rows+1], perm [E]) grouping edges by `keys`, stable, with no host sync."""
    sorted_keys, perm = torch.sort(keys.long(), stable=True)
    boundaries = torch.arange(num_rows + 1, device=keys.device)
    return torch.searchsorted(sorted_keys, boundaries), perm


def csr_rows(rowptr: torch.Tensor, num_edges: int) -> torch.Tensor:
    """The row (destination) of every CSR edge, [E] int64."""
    rowptr = rowptr.long()
    rows = torch.arange(rowptr.numel() - 1, device=rowptr.device)
    return torch.repeat_interleave(rows, rowptr.diff(), output_size=num_edges)


@torch.library.custom_op("astrobio::spmm_csr", mutates_args=())
def spmm_csr(
    rowptr: torch.Tensor,
    col: torch.Tensor,
    x: torch.Tensor,
    edge_weight: torch.Tensor | None,
    reduce: str,
    rowptr_t: torch.Tensor | None,
    col_t: torch.Tensor | None,
    perm_t: torch.Tensor | None,
    schedule: torch.Tensor | None,
    schedule_t: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(out [N, F], argmax [N, F] int32 for max, else [0]); the transposed CSR and its
    schedule are for backward."""
    return spmm_kernels.spmm_csr(rowptr, col, x, edge_weight, reduce, schedule=schedule)


@spmm_csr.register_fake
def _spmm_csr_fake(rowptr, col, x, edge_weight, reduce, rowptr_t, col_t, perm_t, schedule,
                   schedule_t):
    shape = (rowptr.shape[0] - 1, x.shape[1])
    argmax_shape = shape if reduce == "max" else (0,)
    return x.new_empty(shape), x.new_empty(argmax_shape, dtype=torch.int32)


@torch.library.custom_op("astrobio::spmm_csr_grad_x", mutates_args=())
def spmm_csr_grad_x(
    rowptr_t: torch.Tensor,
    col_t: torch.Tensor,
    grad_out: torch.Tensor,
    weight_t: torch.Tensor | None,
    perm_t: torch.Tensor | None,
    argmax: torch.Tensor | None,
    schedule_t: torch.Tensor | None,
) -> torch.Tensor:
    """grad_x [M, F]: a sum over the transposed CSR, routed through `argmax` when given."""
    return spmm_kernels.spmm_csr(rowptr_t, col_t, grad_out, weight_t, "sum", argmax, perm_t,
                                 schedule=schedule_t)[0]


@spmm_csr_grad_x.register_fake
def _spmm_csr_grad_x_fake(rowptr_t, col_t, grad_out, weight_t, perm_t, argmax, schedule_t):
    return grad_out.new_empty(rowptr_t.shape[0] - 1, grad_out.shape[1])


@torch.library.custom_op("astrobio::spmm_csr_grad_weight", mutates_args=())
def spmm_csr_grad_weight(
    row: torch.Tensor,
    col: torch.Tensor,
    grad_out: torch.Tensor,
    x: torch.Tensor,
    argmax: torch.Tensor | None,
) -> torch.Tensor:
    """grad_w [E] fp32: dot(grad_out[row], x[col]) per edge, routed through `argmax` if given."""
    out = torch.empty(row.shape[0], dtype=torch.float32, device=x.device)
    return sddmm_kernels.sddmm(row, col, grad_out, x, route=argmax, out=out)


@spmm_csr_grad_weight.register_fake
def _spmm_csr_grad_weight_fake(row, col, grad_out, x, argmax):
    return x.new_empty(row.shape[0], dtype=torch.float32)


def _setup_context(ctx, inputs, output):
    rowptr, col, x, edge_weight, reduce, rowptr_t, col_t, perm_t, _, schedule_t = inputs
    ctx.reduce = reduce
    ctx.save_for_backward(rowptr, col, x, edge_weight, rowptr_t, col_t, perm_t, output[1],
                          schedule_t)


def _backward(ctx, grad_out, _grad_argmax):
    rowptr, col, x, edge_weight, rowptr_t, col_t, perm_t, argmax, schedule_t = ctx.saved_tensors
    grad_out = grad_out.contiguous()
    is_max, is_mean = ctx.reduce == "max", ctx.reduce == "mean"
    need_w = edge_weight is not None and ctx.needs_input_grad[3]
    row = csr_rows(rowptr, col.numel()) if need_w or rowptr_t is None else None
    inv_degree = 1.0 / rowptr.diff().clamp(min=1).float() if is_mean else None
    grad_x = grad_w = None
    if ctx.needs_input_grad[2]:
        if rowptr_t is None:
            rowptr_t, perm_t = sorted_csr(col, x.shape[0])
            col_t = row[perm_t]
            schedule_t = None  # it belongs to a transposed CSR that was not given
        weight_t = edge_weight[perm_t] if edge_weight is not None else None
        if is_mean:
            scale = inv_degree[col_t]
            weight_t = scale if weight_t is None else weight_t * scale
        grad_x = spmm_csr_grad_x(rowptr_t, col_t, grad_out, weight_t,
                                 perm_t if is_max else None, argmax if is_max else None,
                                 schedule_t)
    if need_w:
        grad_w = spmm_csr_grad_weight(row, col, grad_out, x, argmax if is_max else None)
        if is_mean:
            grad_w = grad_w * inv_degree[row]
        grad_w = grad_w.to(edge_weight.dtype)
    return None, None, grad_x, grad_w, None, None, None, None, None, None


spmm_csr.register_autograd(_backward, setup_context=_setup_context)


def spmm_triton(rowptr, col, x, edge_weight=None, reduce="sum", transposed=None,
                schedule=None):
    if x.dtype not in TRITON_DTYPES:
        _fail(f"the triton backend takes x in {TRITON_DTYPES}, got {x.dtype}")
    if col.numel() >= 2**31:
        _fail(f"{col.numel()} edges exceed the int32 argmax range of the triton backend")
    rowptr_t, col_t, perm_t = transposed if transposed is not None else (None, None, None)
    forward, backward = schedule if schedule is not None else (None, None)
    return spmm_csr(rowptr, col, x, edge_weight, reduce, rowptr_t, col_t, perm_t, forward,
                    backward)[0]


# backend -> fn(rowptr, col, x, edge_weight, reduce, transposed, schedule); one line each.
IMPLEMENTATIONS = {
    "reference": lambda rowptr, col, x, edge_weight, reduce, transposed, schedule:
        spmm_reference(rowptr, col, x, edge_weight, reduce),
    "triton": spmm_triton,
    "cuda": lambda rowptr, col, x, edge_weight, reduce, transposed, schedule: spmm_cuda(
        rowptr, col, x, edge_weight, reduce, transposed=transposed),
}
BACKENDS = tuple(IMPLEMENTATIONS)


def spmm(
    rowptr: torch.Tensor,
    col: torch.Tensor,
    x: torch.Tensor,
    edge_weight: torch.Tensor | None = None,
    reduce: str = "sum",
    *,
    transposed: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    schedule: SpmmSchedule | None = None,
) -> torch.Tensor:
    """Message passing over CSR; `transposed=(rowptr_t, col_t, perm_t)` spares the backward a
    sort (the triton and cuda backends use it; the reference ignores it), `schedule` (from
    `spmm_schedule(rowptr, E, rowptr_t)` of this graph, on x's device) spares the triton
    backend building its work lists in the forward and the input gradient."""
    check_spmm_inputs(rowptr, col, x, edge_weight, reduce, transposed)
    if schedule is not None:
        if not isinstance(schedule, SpmmSchedule) or schedule.forward.device != x.device:
            _fail("schedule must be an SpmmSchedule from spmm_schedule, on x's device")
        if schedule.transposed is not None and transposed is None:
            _fail("a transposed schedule needs the transposed CSR it was built from")
    backend = select_backend("spmm", x, BACKENDS)
    return IMPLEMENTATIONS[backend](rowptr, col, x, edge_weight, reduce, transposed, schedule)
