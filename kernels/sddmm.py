"""Sampled dense-dense product: the Triton kernel behind `ops.sddmm` and spmm's weight gradient.

    out[e] = sum_f a[row[e], f] * b[col[e], f]

Shapes: `row, col [E]` (int32 or int64), `a [N, F]`, `b [M, F]` (fp32/fp16/bf16); out `[E]` in
a's dtype, accumulated in fp32. One program per block of edges walks the features in tiles in a
fixed order (no atomics): bitwise deterministic.

Routing mode (the weight gradient of spmm's max): with `route [N, F]` given, only the features f
where `route[row[e], f] == e` count, i.e. where edge e was the argmax.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from astrobio.kernels.spmm import device_guard


@triton.jit
def _sddmm_kernel(
    row_ptr, col_ptr, a_ptr, b_ptr, route_ptr, out_ptr,
    num_edges, num_features, stride_a, stride_b, stride_route,
    ROUTE: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr,
):
    e = tl.program_id(0).to(tl.int64) * BLOCK_E + tl.arange(0, BLOCK_E)
    e_mask = e < num_edges
    dst = tl.load(row_ptr + e, mask=e_mask, other=0).to(tl.int64)
    src = tl.load(col_ptr + e, mask=e_mask, other=0).to(tl.int64)
    acc = tl.zeros([BLOCK_E], tl.float32)
    for f0 in range(0, num_features, BLOCK_F):
        f = f0 + tl.arange(0, BLOCK_F)
        mask = e_mask[:, None] & (f < num_features)[None, :]
        a = tl.load(a_ptr + dst[:, None] * stride_a + f[None, :], mask=mask, other=0.0)
        b = tl.load(b_ptr + src[:, None] * stride_b + f[None, :], mask=mask, other=0.0)
        prod = a.to(tl.float32) * b.to(tl.float32)
        if ROUTE:
            chosen = tl.load(route_ptr + dst[:, None] * stride_route + f[None, :],
                             mask=mask, other=-1)
            prod = tl.where(chosen == e[:, None], prod, 0.0)
        acc += tl.sum(prod, axis=1)
    tl.store(out_ptr + e, acc.to(out_ptr.dtype.element_ty), mask=e_mask)


def block_sizes(num_features: int) -> dict[str, int]:
    """Tile sizes from the feature count alone, so every run sums in the same order."""
    block_f = min(triton.next_power_of_2(max(num_features, 1)), 64)
    return {"block_e": max(2048 // block_f, 16), "block_f": block_f}


def sddmm(
    row: torch.Tensor,
    col: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    route: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    **sizes: int,
) -> torch.Tensor:
    """Launch the kernel; `out` [E] may be given (overwritten), `sizes` overrides block sizes."""
    num_edges, num_features = row.numel(), a.shape[1]
    row, col = row.contiguous(), col.contiguous()
    a = a if a.stride(1) == 1 else a.contiguous()
    b = b if b.stride(1) == 1 else b.contiguous()
    if out is None:
        out = torch.empty(num_edges, dtype=a.dtype, device=a.device)
    if out.shape != (num_edges,) or not out.is_contiguous():
        raise ValueError(f"sddmm: out must be a contiguous [{num_edges}], got {tuple(out.shape)}")
    if num_edges == 0:
        return out
    cfg = block_sizes(num_features) | sizes
    routed = route is not None
    if routed:
        route = route.contiguous()
    with device_guard(a):
        _sddmm_kernel[(triton.cdiv(num_edges, cfg["block_e"]),)](
            row, col, a, b, route if routed else row, out,
            num_edges, num_features, a.stride(0), b.stride(0),
            route.stride(0) if routed else 0,
            ROUTE=routed, BLOCK_E=cfg["block_e"], BLOCK_F=cfg["block_f"],
        )
    return out
