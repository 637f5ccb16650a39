"""Fused cross-modal attention with a key-padding mask (FlashAttention-2 style), fwd and bwd.

Shapes: `q [B, H, Lq, D]`, `k, v [B, H, Lk, D]`, `key_padding_mask [B, Lk]` (True = present),
`out [B, H, Lq, D]` in q's dtype, `lse [B, H, Lq]` float32 in log2 units.

Forward, per query row i (keys j present), with `s_ij = scale · q_i·k_j`:
    out_i = Σ_j exp(s_ij − m_i) v_j / Σ_j exp(s_ij − m_i),   m_i = max_j s_ij,
computed blockwise over keys with an online softmax in base 2 (`log2(e)` folded into the
scale, so `exp` becomes `exp2`). Absent keys get score −inf, a per-key select never stored as
`Lq × Lk`. A row with no present key keeps `l_i = 0`: it outputs 0 and stores `lse = +inf`,
so every backward probability `p_ij = exp2(s_ij·log2e − lse_i)` of that row is exactly 0.

Backward, with `δ_i = Σ_d out_id · dout_id` (preprocess kernel):
    dv_j = Σ_i p_ij dout_i,   ds_ij = p_ij (dout_i·v_j − δ_i),
    dk_j = scale Σ_i ds_ij q_i,   dq_i = scale Σ_j ds_ij k_j.
dK/dV loop over query blocks per key block, dQ loops over key blocks per query block: every
output element has one writer, so there are no atomics and the result is deterministic for a
given configuration.

Few queries (Lq <= SMALL_LQ, the fusion's 8 learned queries): BLOCK_M = 16 and, Flash-Decoding
style, the keys of each (b, h) are split over `splits` programs (enough to fill the GPU); each
writes its unnormalised fp32 accumulator, running max and sum, and a combine kernel merges the
splits in split order. In the backward the dK/dV programs, which already hold every query
row, also write their key block's share of dQ (fp32), summed in key-block order: no second
pass over all keys per query block. Key blocks with no present key are skipped everywhere
(forward, dQ) and a dK/dV program of such a block writes zeros without looping.

Inputs may be float32, float16 or bfloat16 and need not be contiguous (strides are passed);
accumulation is float32. Head dims that are not a power of two are zero-padded in registers
(`BLOCK_D`), which leaves every dot product unchanged. On CUDA the block sizes are autotuned
per (bucket(Lq), bucket(Lk), D, mask, dtype): the op passes the buckets (astrobio.ops.buckets),
so a batch whose text or graph is a little longer reuses the tuned kernel. Configurations whose
operand tiles exceed the GPU's shared memory per block (sm86: ~99 KB) are pruned before tuning.
Under the interpreter one fixed configuration runs.
"""

from __future__ import annotations

import functools
import math
import os

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634
MAX_HEAD_DIM = 256
MAX_GRID_Y = 65535  # B*H runs on the grid's second axis
DTYPES = (torch.float32, torch.float16, torch.bfloat16)

SMALL_LQ = 16  # at most this many queries: one 16-row block, keys split across programs
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

# Fixed blocks under the interpreter: unequal on purpose, small enough for odd-size tests.
_INTERPRET_FWD = {"BLOCK_M": 32, "BLOCK_N": 64}
_INTERPRET_SMALL_FWD = {"BLOCK_M": 16, "BLOCK_N": 32}
_INTERPRET_BWD = {"BLOCK_M": 64, "BLOCK_N": 32}
_INTERPRET_SMALL_BWD = {"BLOCK_M": 16, "BLOCK_N": 32}

_FWD_SHAPES = [(16, 32, 4, 1), (16, 64, 4, 2), (64, 64, 4, 2), (64, 64, 4, 3), (128, 64, 8, 2),
               (128, 32, 4, 3)]
_SMALL_FWD_SHAPES = [(16, 32, 2, 2), (16, 64, 4, 2), (16, 64, 4, 3), (16, 128, 4, 2),
                     (16, 128, 8, 3), (16, 256, 8, 2)]
_BWD_SHAPES = [(16, 16, 4, 1), (32, 32, 4, 2), (64, 32, 4, 2), (32, 64, 4, 2), (64, 64, 8, 2)]
_SMALL_BWD_SHAPES = [(16, 16, 2, 1), (16, 32, 4, 2), (16, 64, 4, 2), (16, 128, 8, 2)]
_TUNE_KEY = ["LQ_BUCKET", "LK_BUCKET", "HEAD_DIM", "HAS_MASK"]


@functools.cache
def _max_shared_memory(device_index: int) -> int:
    return triton.runtime.driver.active.utils.get_device_properties(device_index)["max_shared_mem"]


def shared_bytes(block_m, block_n, block_d, stages, itemsize, backward=False) -> int:
    """An upper bound of the shared memory Triton gives a config (checked against compiled
    sm_86/sm_90 kernels in tests/kernels/test_gpu_compile.py). Forward: a q tile and, per
    pipeline stage, k and v tiles. Backward: q, dO, k, v tiles per stage and the fp32
    score tile's layout conversions (triton 3.6 gives the 16x16 dK/dV + dQ kernel 12 KB)."""
    stages = max(stages, 1)
    if backward:
        return itemsize * block_d * 2 * (block_m + block_n) * stages + 16 * block_m * block_n
    return itemsize * block_d * (2 * block_m + 2 * block_n * stages)


def _prune(configs, named_args, **kwargs):
    q = named_args["Q"]
    block_d = named_args.get("BLOCK_D") or kwargs["BLOCK_D"]
    limit = _max_shared_memory(q.device.index or 0)

    backward = "DOut" in named_args

    def size(c):
        return shared_bytes(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], block_d, c.num_stages,
                            q.element_size(), backward)

    return [c for c in configs if size(c) <= limit] or [min(configs, key=size)]


def _tuned(kernel, shapes, interpreter_blocks):
    """`kernel` autotuned over `shapes` (BLOCK_M, BLOCK_N, warps, stages) keyed on _TUNE_KEY;
    under the interpreter one fixed config (the autotuner still sees every key)."""
    if INTERPRET:
        configs = [triton.Config(interpreter_blocks)]
    else:
        configs = [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=st)
                   for m, n, w, st in shapes]
    return triton.autotune(configs, key=_TUNE_KEY,
                           prune_configs_by={"early_config_prune": _prune})(kernel)


@triton.jit
def _key_present(KPM, b, offs_n, Lk, stride_mb, stride_mn, HAS_MASK: tl.constexpr):
    present = offs_n < Lk
    if HAS_MASK:
        flag = tl.load(KPM + b.to(tl.int64) * stride_mb + offs_n * stride_mn, mask=present,
                       other=0)
        present = present & (flag != 0)
    return present


@triton.jit
def _fwd_kernel(
    Q, K, V, KPM, Out, Lse, Acc, Max, Sum,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_om, stride_od,
    stride_mb, stride_mn,
    H, Lq, Lk, qk_scale, SPLITS, LQ_BUCKET, LK_BUCKET,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, HAS_MASK: tl.constexpr,
    SPLIT_K: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Grid: (query blocks × SPLITS, B·H). Each program reads its split's contiguous range of
    key blocks; with SPLIT_K it writes (acc, max, sum) of its rows to the fp32 workspaces
    Acc [SPLITS, B·H, Lq, BLOCK_D] and Max, Sum [SPLITS, B·H, Lq] for the combine kernel."""
    pid_m = tl.program_id(0) // SPLITS
    split = tl.program_id(0) % SPLITS
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    row_ok = offs_m < Lq

    q_ptrs = (Q + b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
              + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd)
    q = tl.load(q_ptrs, mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    k_base = K + b.to(tl.int64) * stride_kb + h.to(tl.int64) * stride_kh
    v_base = V + b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh

    key_blocks = tl.cdiv(Lk, BLOCK_N)
    per_split = tl.cdiv(key_blocks, SPLITS)
    first = split * per_split * BLOCK_N
    last = tl.minimum(first + per_split * BLOCK_N, Lk)

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start_n in range(first, last, BLOCK_N):
        cols = start_n + offs_n
        in_range = cols < Lk
        present = _key_present(KPM, b, cols, Lk, stride_mb, stride_mn, HAS_MASK)
        if tl.max(present.to(tl.int32), 0) > 0:  # a block of absent keys changes nothing
            kt = tl.load(k_base + cols[None, :] * stride_kn + offs_d[:, None] * stride_kd,
                         mask=in_range[None, :] & d_ok[:, None], other=0.0)
            s = tl.dot(q, kt, input_precision=DOT_PRECISION) * qk_scale
            s = tl.where(present[None, :], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            # While a row has seen no present key its max is -inf; shift by 0 so exp2 gives 0.
            m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
            p = tl.exp2(s - m_shift[:, None])
            alpha = tl.exp2(m_i - m_shift)
            l_i = l_i * alpha + tl.sum(p, 1)
            v = tl.load(v_base + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd,
                        mask=in_range[:, None] & d_ok[None, :], other=0.0)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
            m_i = m_new

    if SPLIT_K:
        row = (split * tl.num_programs(1) + pid_bh).to(tl.int64) * Lq + offs_m
        tl.store(Acc + row[:, None] * BLOCK_D + offs_d[None, :], acc, mask=row_ok[:, None])
        tl.store(Max + row, m_i, mask=row_ok)
        tl.store(Sum + row, l_i, mask=row_ok)
    else:
        _finish(acc, l_i, m_i, Out, Lse, b, h, pid_bh, offs_m, offs_d, row_ok, d_ok, Lq,
                stride_ob, stride_oh, stride_om, stride_od)


@triton.jit
def _finish(acc, l_i, m_i, Out, Lse, b, h, pid_bh, offs_m, offs_d, row_ok, d_ok, Lq,
            stride_ob, stride_oh, stride_om, stride_od):
    """out = acc / l and lse = m + log2(l); a row that saw no key outputs 0 with lse = +inf."""
    empty = l_i == 0.0
    l_safe = tl.where(empty, 1.0, l_i)
    out = acc / l_safe[:, None]
    lse = tl.where(empty, float("inf"), m_i + tl.log2(l_safe))
    o_ptrs = (Out + b.to(tl.int64) * stride_ob + h.to(tl.int64) * stride_oh
              + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od)
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=row_ok[:, None] & d_ok[None, :])
    tl.store(Lse + pid_bh.to(tl.int64) * Lq + offs_m, lse, mask=row_ok)


@triton.jit
def _fwd_combine_kernel(
    Acc, Max, Sum, Out, Lse,
    stride_ob, stride_oh, stride_om, stride_od,
    H, Lq, SPLITS,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
):
    """Merge the SPLITS partial softmaxes of BLOCK_M rows of one (b, h), in split order."""
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    row_ok = offs_m < Lq
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for split in range(0, SPLITS):
        row = (split * tl.num_programs(1) + pid_bh).to(tl.int64) * Lq + offs_m
        m_s = tl.load(Max + row, mask=row_ok, other=float("-inf"))
        l_s = tl.load(Sum + row, mask=row_ok, other=0.0)
        acc_s = tl.load(Acc + row[:, None] * BLOCK_D + offs_d[None, :], mask=row_ok[:, None],
                        other=0.0)
        m_new = tl.maximum(m_i, m_s)
        m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha, beta = tl.exp2(m_i - m_shift), tl.exp2(m_s - m_shift)
        l_i = l_i * alpha + l_s * beta
        acc = acc * alpha[:, None] + acc_s * beta[:, None]
        m_i = m_new
    _finish(acc, l_i, m_i, Out, Lse, b, h, pid_bh, offs_m, offs_d, row_ok, offs_d < HEAD_DIM,
            Lq, stride_ob, stride_oh, stride_om, stride_od)


@triton.jit
def _bwd_delta_kernel(
    Out, DOut, Delta,
    stride_ob, stride_oh, stride_om, stride_od,
    stride_gb, stride_gh, stride_gm, stride_gd,
    H, Lq,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    row_ok = offs_m < Lq
    ok = row_ok[:, None] & (offs_d < HEAD_DIM)[None, :]
    o = tl.load(Out + b.to(tl.int64) * stride_ob + h.to(tl.int64) * stride_oh
                + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od, mask=ok, other=0.0)
    do = tl.load(DOut + b.to(tl.int64) * stride_gb + h.to(tl.int64) * stride_gh
                 + offs_m[:, None] * stride_gm + offs_d[None, :] * stride_gd, mask=ok, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(Delta + pid_bh.to(tl.int64) * Lq + offs_m, delta, mask=row_ok)


@triton.jit
def _bwd_dkdv_kernel(
    Q, K, V, KPM, DOut, Lse, Delta, DK, DV, DQPartial,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_gb, stride_gh, stride_gm, stride_gd,
    stride_dkb, stride_dkh, stride_dkn, stride_dkd,
    stride_dvb, stride_dvh, stride_dvn, stride_dvd,
    stride_mb, stride_mn,
    H, Lq, Lk, qk_scale, sm_scale, LQ_BUCKET, LK_BUCKET,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, HAS_MASK: tl.constexpr,
    WRITE_DQ: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """dK, dV of one key block; with WRITE_DQ also this block's share of dQ (scaled, fp32) to
    DQPartial [key blocks, B·H, Lq, BLOCK_D]. A block with no present key loops zero times."""
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    key_ok = (offs_n < Lk)[:, None] & d_ok[None, :]
    present = _key_present(KPM, b, offs_n, Lk, stride_mb, stride_mn, HAS_MASK)

    k = tl.load(K + b.to(tl.int64) * stride_kb + h.to(tl.int64) * stride_kh
                + offs_n[:, None] * stride_kn + offs_d[None, :] * stride_kd, mask=key_ok, other=0.0)
    v = tl.load(V + b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh
                + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd, mask=key_ok, other=0.0)
    q_base = Q + b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    do_base = DOut + b.to(tl.int64) * stride_gb + h.to(tl.int64) * stride_gh
    row_base = pid_bh.to(tl.int64) * Lq

    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    rows_to_visit = tl.where(tl.max(present.to(tl.int32), 0) > 0, Lq, 0)
    for start_m in range(0, rows_to_visit, BLOCK_M):
        rows = start_m + offs_m
        row_ok = rows < Lq
        qt = tl.load(q_base + rows[None, :] * stride_qm + offs_d[:, None] * stride_qd,
                     mask=row_ok[None, :] & d_ok[:, None], other=0.0)
        do = tl.load(do_base + rows[:, None] * stride_gm + offs_d[None, :] * stride_gd,
                     mask=row_ok[:, None] & d_ok[None, :], other=0.0)
        # Padding rows read lse = +inf, so their probabilities are exactly 0.
        lse = tl.load(Lse + row_base + rows, mask=row_ok, other=float("inf"))
        delta = tl.load(Delta + row_base + rows, mask=row_ok, other=0.0)
        st = tl.dot(k, qt, input_precision=DOT_PRECISION) * qk_scale
        st = tl.where(present[:, None], st, float("-inf"))
        pt = tl.exp2(st - lse[None, :])
        dv += tl.dot(pt.to(do.dtype), do, input_precision=DOT_PRECISION)
        dpt = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)
        dst = pt * (dpt - delta[None, :])
        dk += tl.dot(dst.to(qt.dtype), tl.trans(qt), input_precision=DOT_PRECISION)
        if WRITE_DQ:
            dq = tl.dot(tl.trans(dst.to(k.dtype)), k, input_precision=DOT_PRECISION) * sm_scale
            at = (pid_n * tl.num_programs(1) + pid_bh).to(tl.int64) * Lq + rows
            tl.store(DQPartial + at[:, None] * BLOCK_D + offs_d[None, :], dq,
                     mask=row_ok[:, None])

    if WRITE_DQ:  # noqa: SIM102 (a constexpr test, then a runtime one)
        # a block that looped zero times still owes its (zero) share
        if rows_to_visit == 0:
            for start_m in range(0, Lq, BLOCK_M):
                rows = start_m + offs_m
                at = (pid_n * tl.num_programs(1) + pid_bh).to(tl.int64) * Lq + rows
                tl.store(DQPartial + at[:, None] * BLOCK_D + offs_d[None, :],
                         tl.zeros([BLOCK_M, BLOCK_D], tl.float32), mask=(rows < Lq)[:, None])
    dk = dk * sm_scale
    tl.store(DK + b.to(tl.int64) * stride_dkb + h.to(tl.int64) * stride_dkh
             + offs_n[:, None] * stride_dkn + offs_d[None, :] * stride_dkd,
             dk.to(DK.dtype.element_ty), mask=key_ok)
    tl.store(DV + b.to(tl.int64) * stride_dvb + h.to(tl.int64) * stride_dvh
             + offs_n[:, None] * stride_dvn + offs_d[None, :] * stride_dvd,
             dv.to(DV.dtype.element_ty), mask=key_ok)


@triton.jit
def _bwd_dq_kernel(
    Q, K, V, KPM, DOut, Lse, Delta, DQ,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_gb, stride_gh, stride_gm, stride_gd,
    stride_dqb, stride_dqh, stride_dqm, stride_dqd,
    stride_mb, stride_mn,
    H, Lq, Lk, qk_scale, sm_scale, LQ_BUCKET, LK_BUCKET,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, HAS_MASK: tl.constexpr,
    DOT_PRECISION: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    row_ok = offs_m < Lq
    tile_ok = row_ok[:, None] & d_ok[None, :]

    q = tl.load(Q + b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
                + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd,
                mask=tile_ok, other=0.0)
    do = tl.load(DOut + b.to(tl.int64) * stride_gb + h.to(tl.int64) * stride_gh
                 + offs_m[:, None] * stride_gm + offs_d[None, :] * stride_gd,
                 mask=tile_ok, other=0.0)
    lse = tl.load(Lse + pid_bh.to(tl.int64) * Lq + offs_m, mask=row_ok, other=float("inf"))
    delta = tl.load(Delta + pid_bh.to(tl.int64) * Lq + offs_m, mask=row_ok, other=0.0)
    k_base = K + b.to(tl.int64) * stride_kb + h.to(tl.int64) * stride_kh
    v_base = V + b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh

    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start_n in range(0, Lk, BLOCK_N):
        cols = start_n + offs_n
        in_range = cols < Lk
        present = _key_present(KPM, b, cols, Lk, stride_mb, stride_mn, HAS_MASK)
        if tl.max(present.to(tl.int32), 0) > 0:  # absent keys have p = 0: no share of dq
            kt = tl.load(k_base + cols[None, :] * stride_kn + offs_d[:, None] * stride_kd,
                         mask=in_range[None, :] & d_ok[:, None], other=0.0)
            vt = tl.load(v_base + cols[None, :] * stride_vn + offs_d[:, None] * stride_vd,
                         mask=in_range[None, :] & d_ok[:, None], other=0.0)
            s = tl.dot(q, kt, input_precision=DOT_PRECISION) * qk_scale
            s = tl.where(present[None, :], s, float("-inf"))
            p = tl.exp2(s - lse[:, None])
            dp = tl.dot(do, vt, input_precision=DOT_PRECISION)
            ds = p * (dp - delta[:, None])
            dq += tl.dot(ds.to(kt.dtype), tl.trans(kt), input_precision=DOT_PRECISION)

    dq = dq * sm_scale
    tl.store(DQ + b.to(tl.int64) * stride_dqb + h.to(tl.int64) * stride_dqh
             + offs_m[:, None] * stride_dqm + offs_d[None, :] * stride_dqd,
             dq.to(DQ.dtype.element_ty), mask=tile_ok)


_fwd_tuned = _tuned(_fwd_kernel, _FWD_SHAPES, _INTERPRET_FWD)
_fwd_small_tuned = _tuned(_fwd_kernel, _SMALL_FWD_SHAPES, _INTERPRET_SMALL_FWD)
_dkdv_tuned = _tuned(_bwd_dkdv_kernel, _BWD_SHAPES, _INTERPRET_BWD)
_dkdv_small_tuned = _tuned(_bwd_dkdv_kernel, _SMALL_BWD_SHAPES, _INTERPRET_SMALL_BWD)
_dq_tuned = _tuned(_bwd_dq_kernel, _BWD_SHAPES, _INTERPRET_BWD)


def unsupported_reason(q, k, v, key_padding_mask) -> str | None:
    """Why the kernels cannot take these inputs (shapes are checked by the op), else None."""
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in DTYPES:
        return f"q, k, v must share one dtype among {DTYPES}; got {q.dtype}, {k.dtype}, {v.dtype}"
    if q.shape[-1] > MAX_HEAD_DIM:
        return f"head dim D={q.shape[-1]} exceeds {MAX_HEAD_DIM}"
    if q.shape[0] * q.shape[1] > MAX_GRID_Y:
        return f"B*H={q.shape[0] * q.shape[1]} exceeds the launch grid's {MAX_GRID_Y}"
    devices = {t.device for t in (q, k, v)}
    if key_padding_mask is not None:
        devices.add(key_padding_mask.device)
    if len(devices) != 1:
        return f"inputs on several devices {devices}"
    return None


def check_triton_inputs(q, k, v, key_padding_mask):
    reason = unsupported_reason(q, k, v, key_padding_mask)
    if reason is not None:
        raise ValueError(f"cross_attention (triton): {reason}")


def _block_d(head_dim: int) -> int:
    return max(16, triton.next_power_of_2(head_dim))  # tl.dot needs K >= 16


def _mask_args(q, key_padding_mask):
    if key_padding_mask is None:
        return q, 0, 0, False
    flags = key_padding_mask.view(torch.uint8)  # same bytes as bool, loadable as integers
    return flags, flags.stride(0), flags.stride(1), True


def _dot_precision(dtype) -> str:
    # Full fp32 products (no TF32) so fp32 results match the fp32 reference to ~1e-6.
    return "ieee" if dtype == torch.float32 else "tf32"


def _sm_count(device) -> int:
    if device.type != "cuda":
        return 1
    return torch.cuda.get_device_properties(device).multi_processor_count


def key_splits(batch_heads: int, lk: int, device) -> int:
    """Flash-Decoding split count for the few-query path: enough programs for two per SM,
    each split at least 128 keys, at most 64 splits."""
    return max(1, min(triton.cdiv(2 * _sm_count(device), batch_heads), triton.cdiv(lk, 128),
                      64))


def cross_attention_fwd(q, k, v, key_padding_mask=None, scale=None, out=None, lse=None,
                        buckets=None, splits=None):
    """(out [B, H, Lq, D] in q.dtype, lse [B, H, Lq] float32, log2 units; +inf = no key).

    `out` and `lse` may be given preallocated (any strides for `out`; `lse` contiguous).
    `buckets` = (Lq, Lk) sizes the autotuner keys on (the op passes astrobio.ops.buckets';
    default the exact sizes). `splits` overrides the few-query path's key split count.
    """
    check_triton_inputs(q, k, v, key_padding_mask)
    B, H, Lq, D = q.shape
    Lk = k.shape[2]
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    if out is None:
        out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    if lse is None:
        lse = torch.empty((B, H, Lq), dtype=torch.float32, device=q.device)
    if out.numel() == 0 or Lk == 0:
        return out.zero_(), lse.fill_(float("inf"))
    kpm, stride_mb, stride_mn, has_mask = _mask_args(q, key_padding_mask)
    small = Lq <= SMALL_LQ
    if splits is None:
        splits = key_splits(B * H, Lk, q.device) if small else 1
    block_d = _block_d(D)
    if splits > 1:
        acc = torch.empty((splits, B * H, Lq, block_d), dtype=torch.float32, device=q.device)
        row_max = torch.empty((splits, B * H, Lq), dtype=torch.float32, device=q.device)
        row_sum = torch.empty_like(row_max)
    else:
        acc = row_max = row_sum = lse  # never touched
    kernel = _fwd_small_tuned if small else _fwd_tuned
    grid = lambda meta: (triton.cdiv(Lq, meta["BLOCK_M"]) * splits, B * H)
    kernel[grid](
        q, k, v, kpm, out, lse, acc, row_max, row_sum,
        *q.stride(), *k.stride(), *v.stride(), *out.stride(), stride_mb, stride_mn,
        H, Lq, Lk, scale * LOG2E, splits, *(buckets or (Lq, Lk)),
        HEAD_DIM=D, BLOCK_D=block_d, HAS_MASK=has_mask, SPLIT_K=splits > 1,
        DOT_PRECISION=_dot_precision(q.dtype),
    )
    if splits > 1:
        _fwd_combine_kernel[(triton.cdiv(Lq, 16), B * H)](
            acc, row_max, row_sum, out, lse, *out.stride(), H, Lq, splits,
            HEAD_DIM=D, BLOCK_D=block_d, BLOCK_M=16,
        )
    return out, lse


def cross_attention_bwd(
    dout, q, k, v, out, lse, key_padding_mask=None, scale=None, dq=None, dk=None, dv=None,
    buckets=None,
):
    """(dq, dk, dv) shaped and typed like (q, k, v); `dq`, `dk`, `dv` may be preallocated.
    `buckets` as for the forward."""
    check_triton_inputs(q, k, v, key_padding_mask)
    B, H, Lq, D = q.shape
    Lk = k.shape[2]
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    dq = torch.empty_like(q, memory_format=torch.contiguous_format) if dq is None else dq
    dk = torch.empty_like(k, memory_format=torch.contiguous_format) if dk is None else dk
    dv = torch.empty_like(v, memory_format=torch.contiguous_format) if dv is None else dv
    if Lq == 0 or Lk == 0 or B * H == 0:
        return dq.zero_(), dk.zero_(), dv.zero_()
    dout = dout.to(q.dtype)
    block_d = _block_d(D)
    delta = torch.empty((B, H, Lq), dtype=torch.float32, device=q.device)
    _bwd_delta_kernel[(triton.cdiv(Lq, 64), B * H)](
        out, dout, delta, *out.stride(), *dout.stride(), H, Lq,
        HEAD_DIM=D, BLOCK_D=block_d, BLOCK_M=64,
    )
    kpm, stride_mb, stride_mn, has_mask = _mask_args(q, key_padding_mask)
    common = dict(HEAD_DIM=D, BLOCK_D=block_d, HAS_MASK=has_mask,
                  DOT_PRECISION=_dot_precision(q.dtype))
    small = Lq <= SMALL_LQ
    tune = buckets or (Lq, Lk)
    # Few queries: dQ's shares come from the dK/dV programs (at most Lk / 16 key blocks).
    dq_partial = torch.empty((triton.cdiv(Lk, 16), B * H, Lq, block_d), dtype=torch.float32,
                             device=q.device) if small else delta
    kernel = _dkdv_small_tuned if small else _dkdv_tuned
    kernel[lambda meta: (triton.cdiv(Lk, meta["BLOCK_N"]), B * H)](
        q, k, v, kpm, dout, lse, delta, dk, dv, dq_partial,
        *q.stride(), *k.stride(), *v.stride(), *dout.stride(), *dk.stride(), *dv.stride(),
        stride_mb, stride_mn, H, Lq, Lk, scale * LOG2E, scale, *tune, WRITE_DQ=small,
        **common,
    )
    if small:
        key_blocks = triton.cdiv(Lk, kernel.best_config.kwargs["BLOCK_N"])
        shares = dq_partial[:key_blocks].sum(0)[..., :D].view(B, H, Lq, D)
        dq.copy_(shares)
        return dq, dk, dv
    _dq_tuned[lambda meta: (triton.cdiv(Lq, meta["BLOCK_M"]), B * H)](
        q, k, v, kpm, dout, lse, delta, dq,
        *q.stride(), *k.stride(), *v.stride(), *dout.stride(), *dq.stride(),
        stride_mb, stride_mn, H, Lq, Lk, scale * LOG2E, scale, *tune, **common,
    )
    return dq, dk, dv
