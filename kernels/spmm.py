"""Segment reduction over a destination-sorted CSR graph: the Triton kernels behind `ops.spmm`.

    out[i, f] = reduce_{k in rowptr[i]:rowptr[i+1]} w[k] * x[col[k], f],   reduce: sum|mean|max

Shapes: `rowptr [N+1]`, `col [E]` (int32 or int64), `x [M, F]` (fp32/fp16/bf16), `w [E]`;
out `[N, F]` in x's dtype, accumulated in fp32. A row with no entries gives 0.

Schedule (hub-aware, no atomics, bitwise deterministic). Rows are cut into chunks of at most
`chunk` edges; a row of degree `d` gives `max(1, ceil(d / chunk))` chunks, so one hub of degree
thousands becomes many programs instead of serialising one. Pass 1: each program reduces
`chunks_per_program` consecutive chunks, each chunk a loop over `block_e x block_f` tiles in
edge order; a chunk that is a whole row writes `out` directly, a piece of a split row writes its
partial (and, for max, its argmax) to a workspace slot. Pass 2: one program per split row folds
its partials in chunk order. Every sum has a fixed order for given sizes, and the sizes follow
from shapes only (never autotuned), so repeated runs are bitwise equal.

The schedule is one int64 tensor [4, K + S]: K chunk entries, then S split-row entries. The
number of chunks is bounded by `N + E // chunk` (K) and the number of split rows by
`E // (chunk + 1)` (S), both known from shapes, so the grid is sized by those bounds and surplus
entries are empty (they do nothing). `build_schedule` makes it on any device with torch ops
and no host sync; `astrobio.ops.spmm.spmm_schedule` builds it once per graph (C++ on the CPU)
so repeated calls over one batch's graph skip those ~50 small ops.

Max keeps, per (row, feature), the first edge in CSR order that reaches the maximum (ties go to
the earlier edge) and returns it as `argmax` (int32, -1 for an empty row), for the backward.

Routing mode (the backward of max): with `route` and `edge_id` given, edge k contributes to
output row i only at the features f where `route[col[k], f] == edge_id[k]`; the backward runs it
over the transposed CSR with `route` = the forward argmax and `edge_id` = perm_t.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

REDUCE_CODES = {"sum": 0, "mean": 1, "max": 2}
# Workspace slot codes in the schedule (the kernel spells them as literals).
_DIRECT = -1
_SURPLUS = -2


@triton.jit
def _spmm_chunks_kernel(
    x_ptr, col_ptr, weight_ptr, edge_id_ptr, route_ptr, schedule_ptr,
    out_ptr, argmax_ptr, partial_ptr, partial_arg_ptr,
    stride_schedule, num_features, stride_x, stride_out, stride_route,
    HAS_WEIGHT: tl.constexpr, ROUTE: tl.constexpr, REDUCE: tl.constexpr,
    CHUNKS_PER_PROGRAM: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr,
):
    f = tl.program_id(1) * BLOCK_F + tl.arange(0, BLOCK_F)
    f_mask = f < num_features
    lane = tl.arange(0, BLOCK_E)
    for c in range(CHUNKS_PER_PROGRAM):
        chunk = tl.program_id(0) * CHUNKS_PER_PROGRAM + c
        row = tl.load(schedule_ptr + chunk)
        start = tl.load(schedule_ptr + stride_schedule + chunk)
        end = tl.load(schedule_ptr + 2 * stride_schedule + chunk)
        slot = tl.load(schedule_ptr + 3 * stride_schedule + chunk)
        if REDUCE == 2:
            acc = tl.full([BLOCK_F], float("-inf"), tl.float32)
        else:
            acc = tl.zeros([BLOCK_F], tl.float32)
        arg = tl.full([BLOCK_F], -1, tl.int32)
        for e0 in range(start, end, BLOCK_E):
            e = e0 + lane
            e_mask = e < end
            src = tl.load(col_ptr + e, mask=e_mask, other=0).to(tl.int64)
            mask = e_mask[:, None] & f_mask[None, :]
            val = tl.load(x_ptr + src[:, None] * stride_x + f[None, :], mask=mask, other=0.0)
            val = val.to(tl.float32)
            if HAS_WEIGHT:
                w = tl.load(weight_ptr + e, mask=e_mask, other=0.0).to(tl.float32)
                val = val * w[:, None]
            if ROUTE:
                edge_id = tl.load(edge_id_ptr + e, mask=e_mask, other=-1)
                chosen = tl.load(route_ptr + src[:, None] * stride_route + f[None, :],
                                 mask=mask, other=-1)
                val = tl.where(chosen == edge_id[:, None], val, 0.0)
            if REDUCE == 2:
                val = tl.where(mask, val, float("-inf"))
                tile_max = tl.max(val, axis=0)
                is_max = mask & (val == tile_max[None, :])
                tile_arg = tl.min(tl.where(is_max, e[:, None], end), axis=0).to(tl.int32)
                # Strictly greater: on a tie the earlier tile, hence the earlier edge, stays.
                better = tile_max > acc
                acc = tl.where(better, tile_max, acc)
                arg = tl.where(better, tile_arg, arg)
            else:
                acc += tl.sum(val, axis=0)
        if REDUCE == 2:
            acc = tl.where(end > start, acc, 0.0)
        if REDUCE == 1:  # a split row's partials stay sums; pass 2 divides by the degree
            count = tl.where(slot == -1, tl.maximum(end - start, 1), 1)
            acc = acc / count.to(tl.float32)
        slot_f = slot + tl.zeros([BLOCK_F], tl.int64)  # broadcast, for a vector store mask
        direct = f_mask & (slot_f == -1)  # -1: a whole row, written directly; -2: surplus
        out_at = row * stride_out + f
        tl.store(out_ptr + out_at, acc.to(out_ptr.dtype.element_ty), mask=direct)
        partial_at = tl.maximum(slot, 0) * num_features + f
        to_partial = f_mask & (slot_f >= 0)
        tl.store(partial_ptr + partial_at, acc, mask=to_partial)
        if REDUCE == 2:
            tl.store(argmax_ptr + row * num_features + f, arg, mask=direct)
            tl.store(partial_arg_ptr + partial_at, arg, mask=to_partial)


@triton.jit
def _spmm_combine_kernel(
    partial_ptr, partial_arg_ptr, schedule_ptr, out_ptr, argmax_ptr,
    stride_schedule, num_chunks, num_features, stride_out,
    REDUCE: tl.constexpr, BLOCK_F: tl.constexpr,
):
    """Split row s: its entry is column num_chunks + s of the schedule."""
    split_ptr = schedule_ptr + num_chunks
    s = tl.program_id(0)
    f = tl.program_id(1) * BLOCK_F + tl.arange(0, BLOCK_F)
    f_mask = f < num_features
    row = tl.load(split_ptr + s)
    first = tl.load(split_ptr + stride_schedule + s)
    last = tl.load(split_ptr + 2 * stride_schedule + s)
    degree = tl.load(split_ptr + 3 * stride_schedule + s)
    if REDUCE == 2:
        acc = tl.full([BLOCK_F], float("-inf"), tl.float32)
    else:
        acc = tl.zeros([BLOCK_F], tl.float32)
    arg = tl.full([BLOCK_F], -1, tl.int32)
    for slot in range(first, last):
        part = tl.load(partial_ptr + slot * num_features + f, mask=f_mask, other=0.0)
        if REDUCE == 2:
            part_arg = tl.load(partial_arg_ptr + slot * num_features + f, mask=f_mask, other=-1)
            better = part > acc
            acc = tl.where(better, part, acc)
            arg = tl.where(better, part_arg, arg)
        else:
            acc += part
    if REDUCE == 1:
        acc = acc / tl.maximum(degree, 1).to(tl.float32)
    live = f_mask & ((last + tl.zeros([BLOCK_F], tl.int64)) > first)
    tl.store(out_ptr + row * stride_out + f, acc.to(out_ptr.dtype.element_ty), mask=live)
    if REDUCE == 2:
        tl.store(argmax_ptr + row * num_features + f, arg, mask=live)


def device_guard(tensor: torch.Tensor):
    """Triton launches on the current CUDA device: make it the tensor's."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext()


def chunk_sizes(num_rows: int, num_edges: int) -> dict[str, int]:
    """The schedule's sizes from shapes alone (never timing), so every run sums in the same
    order: edge tile ~ average degree (4..32 lanes); a chunk is at most 16 tiles, so no program
    walks more than 16 tiles of one row however large the hub."""
    avg_degree = -(-num_edges // max(num_rows, 1))
    block_e = min(max(triton.next_power_of_2(max(avg_degree, 1)), 4), 32)
    return {"block_e": block_e, "chunk": 16 * block_e, "chunks_per_program": 4}


def block_sizes(num_rows: int, num_edges: int, num_features: int) -> dict[str, int]:
    """`chunk_sizes` and the feature tile."""
    block_f = min(triton.next_power_of_2(max(num_features, 1)), 128)
    return chunk_sizes(num_rows, num_edges) | {"block_f": block_f}


def schedule_size(num_rows: int, num_edges: int, chunk: int, chunks_per_program: int):
    """(K chunk entries, S split-row entries, workspace slots) bounded from the sizes."""
    max_chunks = num_rows + num_edges // chunk
    max_chunks = -(-max_chunks // chunks_per_program) * chunks_per_program
    max_split = num_edges // (chunk + 1)
    # A split row has degree > chunk, so its pieces number under degree / chunk + 1.
    return max_chunks, max_split, num_edges // chunk + max_split


def build_schedule(rowptr: torch.Tensor, num_edges: int, chunk: int, chunks_per_program: int):
    """The schedule [4, K + S] int64 (see the module docstring) on rowptr's device, no host
    sync. Chunk rows: output row, first edge, end edge, workspace slot (-1: writes `out`
    directly, -2: surplus entry); split rows: split row, first slot, end slot, degree."""
    num_rows = rowptr.numel() - 1
    device = rowptr.device
    max_chunks, max_split, _ = schedule_size(num_rows, num_edges, chunk, chunks_per_program)
    rowptr = rowptr.long()
    degree = rowptr[1:] - rowptr[:-1]
    pieces = torch.div(degree + chunk - 1, chunk, rounding_mode="floor").clamp_(min=1)
    pieces_end = torch.cumsum(pieces, 0)
    k = torch.arange(max_chunks, device=device)
    row = torch.searchsorted(pieces_end, k, right=True)
    live = row < num_rows
    row = row.clamp_(max=num_rows - 1)
    start = rowptr[row] + (k - pieces_end[row] + pieces[row]) * chunk
    end = torch.minimum(start + chunk, rowptr[row + 1])
    is_split = degree > chunk
    split_chunk = is_split[row] & live
    slot = torch.where(split_chunk, torch.cumsum(split_chunk, 0) - 1, _DIRECT)
    slot = torch.where(live, slot, _SURPLUS)
    start, end = torch.where(live, start, 0), torch.where(live, end, 0)
    schedule = torch.stack([row, start, end, slot])

    s = torch.arange(max_split, device=device)
    split_row = torch.searchsorted(torch.cumsum(is_split, 0), s, right=True)
    split_live = split_row < num_rows
    split_row = split_row.clamp_(max=num_rows - 1)
    slot_end = torch.cumsum(torch.where(is_split, pieces, 0), 0)[split_row]
    slot_first = slot_end - pieces[split_row]
    split = torch.stack([
        split_row,
        torch.where(split_live, slot_first, 0),
        torch.where(split_live, slot_end, 0),
        degree[split_row],
    ])
    return torch.cat([schedule, split], 1)


def spmm_csr(
    rowptr: torch.Tensor,
    col: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    reduce: str = "sum",
    route: torch.Tensor | None = None,
    edge_id: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    schedule: torch.Tensor | None = None,
    **sizes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the segment reduction; returns (out [N, F], argmax [N, F] int32 for max else [0]).

    `route`/`edge_id` select routing mode (sum only). `out` may be given (it is overwritten
    everywhere); `schedule` (from `build_schedule` with this graph's `chunk_sizes`) spares
    building it; `sizes` overrides `block_sizes` (benchmarks; not with a given schedule).
    """
    num_rows, num_edges, num_features = rowptr.numel() - 1, col.numel(), x.shape[1]
    if num_edges >= 2**31:
        raise ValueError(f"spmm: {num_edges} edges exceed the int32 argmax range")
    x = x if x.stride(1) == 1 else x.contiguous()
    col = col.contiguous()
    if out is None:
        out = torch.empty(num_rows, num_features, dtype=x.dtype, device=x.device)
    if out.shape != (num_rows, num_features) or out.stride(1) != 1 or out.dtype != x.dtype:
        raise ValueError(f"spmm: out must be [{num_rows}, {num_features}] {x.dtype} with unit "
                         f"feature stride, got {tuple(out.shape)} {out.dtype}")
    argmax_shape = (num_rows, num_features) if reduce == "max" else (0,)
    argmax = torch.empty(argmax_shape, dtype=torch.int32, device=x.device)
    if num_rows == 0 or num_features == 0:
        return out, argmax
    cfg = block_sizes(num_rows, num_edges, num_features) | sizes
    num_chunks, num_split, num_slots = schedule_size(num_rows, num_edges, cfg["chunk"],
                                                     cfg["chunks_per_program"])
    if schedule is None:
        schedule = build_schedule(rowptr, num_edges, cfg["chunk"], cfg["chunks_per_program"])
    elif (schedule.shape != (4, num_chunks + num_split) or schedule.dtype != torch.int64
          or schedule.stride(1) != 1 or sizes):
        raise ValueError(f"spmm: schedule {tuple(schedule.shape)} was not built for this graph "
                         f"({num_rows} rows, {num_edges} edges: [4, {num_chunks + num_split}])")
    partial = torch.empty(max(num_slots, 1), num_features, dtype=torch.float32, device=x.device)
    partial_arg = torch.empty(partial.shape if reduce == "max" else (1,), dtype=torch.int32,
                              device=x.device)
    routed = route is not None
    if routed:
        route, edge_id = route.contiguous(), edge_id.contiguous()
    feature_tiles = triton.cdiv(num_features, cfg["block_f"])
    grid = (num_chunks // cfg["chunks_per_program"], feature_tiles)
    # Unused pointer arguments get a stand-in tensor (never read nor written).
    argmax_arg = argmax if reduce == "max" else partial_arg
    has_weight = weight is not None
    with device_guard(x):
        _spmm_chunks_kernel[grid](
            x, col, weight.contiguous() if has_weight else x, edge_id if routed else col,
            route if routed else argmax_arg, schedule,
            out, argmax_arg, partial, partial_arg,
            schedule.stride(0), num_features, x.stride(0), out.stride(0),
            route.stride(0) if routed else 0,
            HAS_WEIGHT=has_weight, ROUTE=routed, REDUCE=REDUCE_CODES[reduce],
            CHUNKS_PER_PROGRAM=cfg["chunks_per_program"], BLOCK_E=cfg["block_e"],
            BLOCK_F=cfg["block_f"],
        )
        if num_split:
            _spmm_combine_kernel[(num_split, feature_tiles)](
                partial, partial_arg, schedule, out, argmax_arg,
                schedule.stride(0), num_chunks, num_features, out.stride(0),
                REDUCE=REDUCE_CODES[reduce], BLOCK_F=cfg["block_f"],
            )
    return out, argmax
