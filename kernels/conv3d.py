"""Implicit-GEMM 3D convolution on channels-last (NDHWC) data, bias and activation fused.

Layouts inside the kernels: `x [N, D, H, W, Cin]`, `w [kD, kH, kW, Cin, Cout]` (one row of
`Cout` per tap and input channel), `y, z [N, Do, Ho, Wo, Cout]`, all dense. The launchers take
and return the usual `[N, C, D, H, W]` shapes; outputs come back in channels_last_3d.

Forward, a GEMM with M = N·Do·Ho·Wo output positions, N = Cout, K = kD·kH·kW·Cin:

    z[m, co] = b[co] + Σ_{tap, ci} x[n, o·s - p + k, ci] · w[k, ci, co]     (o, k, s, p per axis)
    y = act(z)

The reduction is one flat loop over (tap, Cin block), tap-major, so every load of x is
contiguous along Cin and the compiler can software-pipeline the loop even when Cin fits one
block (nested tap / channel loops would leave a one-iteration inner loop); out-of-range taps
(the zero padding) are masked loads. Kernel 1×1×1 with stride 1 and no
padding is compiled as a plain [M, Cin] × [Cin, Cout] matmul (no position decode).

Few-channel layers (Cin < PACK_BELOW, e.g. the datacube's 4 variables) pack the reduction: one
loop over the flat K = taps·Cin index in BLOCK_K steps, each lane decoding its own (tap, ci),
so every MMA is full instead of Cin/BLOCK_K of it (4/32 for the first layer); the weight's
[taps·Cin, Cout] layout is already contiguous in that index. dw packs its rows the same way.

Split-K (forward and dx): where the output tiles are too few to fill the GPU (deep layers have
M of 8–256), grid axis 1 (forward) or 2 (dx) also splits the reduction steps into `splits`
contiguous ranges; each writes an fp32 partial and a fixed-order sum finishes it (the forward's
epilogue kernel adds the bias and activation there), so results stay deterministic.

Backward, given dy:

    dz = dy · act'(z)                      one elementwise pass, which also writes the grad-bias
    db = Σ_m dz[m, :]                      partial column sums (one row per M block, then a sum)
    dx[n, i, ci] = Σ_{k : (i + p - k) ≡ 0 mod s} Σ_co dz[n, (i + p - k) / s, co] · w[k, ci, co]
    dw[k, ci, co] = Σ_m x[n, o·s - p + k, ci] · dz[m, co]

`dx` is a gather: input positions are split into the s_d·s_h·s_w classes of equal residue
`i mod s`, and a class loops only over the taps with `k ≡ i + p (mod s)`, so a stride-2 conv
does no work for the 7/8 of (position, tap) pairs that never meet. `dw` reduces over M in
fixed split-K ranges: every split writes its own fp32 partial `[splits, K, Cout]`, and the
partials are summed afterwards, so the result is deterministic (no atomics).

The activation's backward needs the pre-activation `z`: the forward saves it (a second output
written by the same epilogue) for silu and gelu; relu needs only the sign, read from `y`.
act' is applied once in its own pass rather than inside the two GEMMs' operand loads, because
those loads re-read each dz tile many times (once per K block of dw, once per tap of dx).

Precision: fp32 operands multiply in exact IEEE fp32 unless the caller passes
`allow_tf32=True` (TF32 keeps 10 mantissa bits: about 5e-4 relative error per product).
Autotuning keys on the layer's constants and `M_BUCKET`, the op's bucket of M (astrobio.ops.
buckets), so a new batch size re-tunes only when it changes bucket. The weight's
[taps, Cin, Cout] layout is cached per parameter and `weight._version`.
"""

from __future__ import annotations

import functools
import math
import os
import weakref

import torch
import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

# --------------------------------------------------------------------------- configs

# (rows, columns, reduction) blocks, pipeline stages, warps. Forward and dx: rows = positions,
# columns = output channels of the GEMM, reduction = channels. dw: rows = Cin, columns = Cout,
# reduction = output positions. Configs over a device's shared memory are pruned before tuning.
_GEMM_SHAPES = [
    (128, 128, 32, 4, 8), (128, 64, 32, 4, 4), (64, 128, 32, 4, 4), (64, 64, 32, 4, 4),
    (128, 32, 32, 4, 4), (64, 32, 32, 5, 2), (128, 16, 16, 4, 4), (64, 64, 64, 3, 4),
    (128, 128, 64, 3, 8), (256, 64, 32, 3, 8),
]
_WEIGHT_GRAD_SHAPES = [
    (64, 64, 64, 4, 4), (128, 64, 64, 3, 8), (64, 128, 64, 3, 8), (128, 128, 32, 4, 8),
    (32, 32, 128, 4, 4), (16, 32, 128, 4, 4), (64, 32, 128, 3, 4), (128, 128, 64, 3, 8),
    (64, 64, 32, 4, 4), (32, 64, 64, 3, 4),
]
# The interpreter runs one config (no tuning): tests stay fast and see several tiles.
_INTERPRETER_GEMM = (64, 16, 16)
_INTERPRETER_WEIGHT_GRAD = (16, 16, 128)

# dw's split-K ranges are whole multiples of this, so they never cut a reduction block.
SPLIT_GRANULE = _INTERPRETER_WEIGHT_GRAD[2] if INTERPRET else 128


def _empty(shape, *, dtype, device, channels_last=False):
    """Every output and workspace is allocated here (tests replace it to poison buffers)."""
    if channels_last:
        return torch.empty(shape, dtype=dtype, device=device, memory_format=torch.channels_last_3d)
    return torch.empty(shape, dtype=dtype, device=device)


@functools.cache
def _max_shared_memory(device_index: int) -> int:
    props = triton.runtime.driver.active.utils.get_device_properties(device_index)
    return props["max_shared_mem"]


def _autotune(names, shapes, interpreter_blocks, key):
    """triton.autotune over `shapes`, keyed on the problem dims; configs whose pipelined
    operand tiles exceed the device's shared memory per block (sm86: ~99 KB) are dropped."""
    rows, cols, red = names

    def prune(configs, named_args, **kwargs):
        first = next(v for v in named_args.values() if isinstance(v, torch.Tensor))

        def shared_bytes(c):
            return c.num_stages * first.element_size() * c.kwargs[red] * (c.kwargs[rows]
                                                                         + c.kwargs[cols])

        limit = _max_shared_memory(first.device.index or 0)
        return [c for c in configs if shared_bytes(c) <= limit] or [min(configs, key=shared_bytes)]

    if INTERPRET:
        configs = [triton.Config(dict(zip(names, interpreter_blocks, strict=True)))]
    else:
        configs = [triton.Config(dict(zip(names, s[:3], strict=True)), num_stages=s[3],
                                 num_warps=s[4]) for s in shapes]
    return triton.autotune(configs=configs, key=key, prune_configs_by={"early_config_prune": prune})


_KEY = ["M_BUCKET", "Cin", "Cout", "KD", "KH", "KW", "SD", "SH", "SW"]
PACK_BELOW = 16  # Cin below which the (tap, channel) reduction is packed


# --------------------------------------------------------------------------- activations

@triton.jit
def _activation(z, ACTIVATION: tl.constexpr):
    if ACTIVATION == "relu":
        z = tl.maximum(z, 0.0)
    elif ACTIVATION == "silu":
        z = z * tl.sigmoid(z)
    elif ACTIVATION == "gelu":
        z = 0.5 * z * (1.0 + tl.math.erf(z * 0.7071067811865476))
    return z


@triton.jit
def _activation_grad(z, ACTIVATION: tl.constexpr):
    """d act / dz at z for relu, silu, gelu (for relu, z may be the output y: only its sign
    is used)."""
    if ACTIVATION == "relu":
        g = tl.where(z > 0.0, 1.0, 0.0)
    elif ACTIVATION == "silu":
        s = tl.sigmoid(z)
        g = s * (1.0 + z * (1.0 - s))
    elif ACTIVATION == "gelu":
        cdf = 0.5 * (1.0 + tl.math.erf(z * 0.7071067811865476))
        g = cdf + z * 0.3989422804014327 * tl.exp(-0.5 * z * z)
    return g


# --------------------------------------------------------------------------- kernels

@triton.jit
def _window_rows(offs_m, Do, Ho, Wo, SD: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                 PD, PH, PW):
    """Batch index and the window's first input coordinate of each output position."""
    d0 = ((offs_m // (Wo * Ho)) % Do) * SD - PD
    h0 = ((offs_m // Wo) % Ho) * SH - PH
    w0 = (offs_m % Wo) * SW - PW
    return offs_m // (Wo * Ho * Do), d0, h0, w0


@_autotune(("BLOCK_M", "BLOCK_N", "BLOCK_K"), _GEMM_SHAPES, _INTERPRETER_GEMM, _KEY)
@triton.jit
def _conv3d_fwd_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr, z_ptr, partial_ptr,
    M, D, H, W, Cin, Do, Ho, Wo, Cout, PD, PH, PW, SPLITS, M_BUCKET,
    KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    SD: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
    POINTWISE: tl.constexpr, PACKED: tl.constexpr, SPLIT_K: tl.constexpr,
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr,
    SAVE_Z: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """GEMM rows: output positions; columns: Cout; reduction: taps × Cin, one flat loop over
    (tap, Cin block), or over the flat (tap, ci) index when PACKED. Grid axis 1: the split of
    the reduction steps (SPLIT_K: an fp32 partial out, the epilogue kernel finishes). Triton
    software-pipelines the loads when Cin and Cout are multiples of 16 (its argument
    specialisation then proves them aligned); otherwise they are plain loads."""
    # Grouped launch order: neighbouring programs share x rows and w columns in L2.
    pid = tl.program_id(0)
    grid_m = tl.cdiv(M, BLOCK_M)
    group_size = 8 * tl.cdiv(Cout, BLOCK_N)
    first_m = (pid // group_size) * 8
    rows_in_group = tl.minimum(grid_m - first_m, 8)
    pid_m = first_m + (pid % group_size) % rows_in_group
    pid_n = (pid % group_size) // rows_in_group

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_ok = offs_m < M
    n_ok = offs_n < Cout
    nb, d0, h0, w0 = _window_rows(offs_m, Do, Ho, Wo, SD, SH, SW, PD, PH, PW)

    if PACKED:
        k_total = KD * KH * KW * Cin
        steps = tl.cdiv(k_total, BLOCK_K)
    else:
        cin_blocks = tl.cdiv(Cin, BLOCK_K)
        steps = KD * KH * KW * cin_blocks
    per_split = tl.cdiv(steps, SPLITS)
    first = tl.program_id(1) * per_split
    last = tl.minimum(first + per_split, steps)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for step in range(first, last):
        if PACKED:  # lane j of the step reduces over the flat index k = tap·Cin + ci
            k = step * BLOCK_K + offs_k
            k_ok = k < k_total
            tap = k // Cin
            id_ = d0[:, None] + (tap // (KH * KW))[None, :]
            ih = h0[:, None] + ((tap // KW) % KH)[None, :]
            iw = w0[:, None] + (tap % KW)[None, :]
            ok = (m_ok[:, None] & k_ok[None, :] & (id_ >= 0) & (id_ < D) & (ih >= 0) & (ih < H)
                  & (iw >= 0) & (iw < W))
            pos = ((nb[:, None] * D + id_) * H + ih) * W + iw
            a = tl.load(x_ptr + pos.to(tl.int64) * Cin + (k - tap * Cin)[None, :], mask=ok,
                        other=0.0)
            b = tl.load(w_ptr + k[:, None] * Cout + offs_n[None, :],
                        mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        else:
            tap = step // cin_blocks
            c = (step - tap * cin_blocks) * BLOCK_K + offs_k
            c_ok = c < Cin
            if POINTWISE:  # a plain [M, Cin] x [Cin, Cout] matmul
                ok = m_ok
                pos = offs_m
            else:
                id_ = d0 + tap // (KH * KW)
                ih = h0 + (tap // KW) % KH
                iw = w0 + tap % KW
                ok = m_ok & (id_ >= 0) & (id_ < D) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
                pos = ((nb * D + id_) * H + ih) * W + iw
            a = tl.load(x_ptr + pos.to(tl.int64)[:, None] * Cin + c[None, :],
                        mask=ok[:, None] & c_ok[None, :], other=0.0)
            b = tl.load(w_ptr + (tap * Cin + c)[:, None] * Cout + offs_n[None, :],
                        mask=c_ok[:, None] & n_ok[None, :], other=0.0)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)

    out = offs_m.to(tl.int64)[:, None] * Cout + offs_n[None, :]
    out_ok = m_ok[:, None] & n_ok[None, :]
    if SPLIT_K:
        tl.store(partial_ptr + tl.program_id(1).to(tl.int64) * M * Cout + out, acc, mask=out_ok)
    else:
        _epilogue(acc, b_ptr, y_ptr, z_ptr, out, out_ok, offs_n, n_ok, HAS_BIAS, ACTIVATION,
                  SAVE_Z)


@triton.jit
def _epilogue(acc, b_ptr, y_ptr, z_ptr, out, out_ok, offs_n, n_ok, HAS_BIAS: tl.constexpr,
              ACTIVATION: tl.constexpr, SAVE_Z: tl.constexpr):
    """z = acc + bias (stored when SAVE_Z), y = act(z)."""
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    if SAVE_Z:
        tl.store(z_ptr + out, acc.to(z_ptr.dtype.element_ty), mask=out_ok)
    y = _activation(acc, ACTIVATION)
    tl.store(y_ptr + out, y.to(y_ptr.dtype.element_ty), mask=out_ok)


@triton.jit
def _split_k_epilogue_kernel(
    partial_ptr, b_ptr, y_ptr, z_ptr, M, Cout, SPLITS,
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, SAVE_Z: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """The forward's split-K partials summed in split order, then bias and activation."""
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = offs_n < Cout
    out_ok = (offs_m < M)[:, None] & n_ok[None, :]
    out = offs_m.to(tl.int64)[:, None] * Cout + offs_n[None, :]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for split in range(0, SPLITS):
        acc += tl.load(partial_ptr + (split * M).to(tl.int64) * Cout + out, mask=out_ok,
                       other=0.0)
    _epilogue(acc, b_ptr, y_ptr, z_ptr, out, out_ok, offs_n, n_ok, HAS_BIAS, ACTIVATION, SAVE_Z)


@triton.jit
def _act_bias_bwd_kernel(
    dy_ptr, saved_ptr, dz_ptr, db_partial_ptr, M, Cout,
    ACTIVATION: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """dz = dy · act'(saved), and one row of grad-bias partial sums per M block."""
    pid_m = tl.program_id(0)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    ok = (offs_m < M)[:, None] & (offs_n < Cout)[None, :]
    idx = offs_m.to(tl.int64)[:, None] * Cout + offs_n[None, :]
    dz = tl.load(dy_ptr + idx, mask=ok, other=0.0).to(tl.float32)
    if ACTIVATION != "none":
        z = tl.load(saved_ptr + idx, mask=ok, other=0.0).to(tl.float32)
        dz = dz * _activation_grad(z, ACTIVATION)
        tl.store(dz_ptr + idx, dz.to(dz_ptr.dtype.element_ty), mask=ok)
    if HAS_BIAS:
        tl.store(db_partial_ptr + pid_m * Cout + offs_n, tl.sum(dz, axis=0), mask=offs_n < Cout)


@_autotune(("BLOCK_M", "BLOCK_N", "BLOCK_K"), _GEMM_SHAPES, _INTERPRETER_GEMM, _KEY)
@triton.jit
def _conv3d_bwd_input_kernel(
    dz_ptr, w_ptr, dx_ptr,
    NB, D, H, W, Cin, Do, Ho, Wo, Cout, PD, PH, PW, SPLITS, M_BUCKET,
    KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    SD: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """dx for the input positions of one residue class mod the stride, over one split of the
    reduction (grid axis 2 = split · classes + class). GEMM rows: that class's positions;
    columns: Cin; reduction: matching taps × Cout. With SPLITS > 1, dx_ptr is the fp32
    partial [SPLITS, NB·D·H·W, Cin]. M_BUCKET (of NB·D·H·W) is the autotuning key only."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    classes = SD * SH * SW
    residue = tl.program_id(2) % classes
    split = tl.program_id(2) // classes
    rw = residue % SW
    rh = (residue // SW) % SH
    rd = residue // (SW * SH)
    Dr = (D - rd + SD - 1) // SD
    Hr = (H - rh + SH - 1) // SH
    Wr = (W - rw + SW - 1) // SW
    Mr = NB * Dr * Hr * Wr

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_ok = offs_m < Mr
    n_ok = offs_n < Cin
    iw = rw + (offs_m % Wr) * SW
    ih = rh + ((offs_m // Wr) % Hr) * SH
    id_ = rd + ((offs_m // (Wr * Hr)) % Dr) * SD
    nb = offs_m // (Wr * Hr * Dr)

    # Only taps k ≡ i + p (mod s) reach this class: k = k0 + j·s, j < ceil((K - k0) / s);
    # for them (i + p - k) / s is exact.
    kd0 = (rd + PD) % SD
    kh0 = (rh + PH) % SH
    kw0 = (rw + PW) % SW
    nkh = (KH - kh0 + SH - 1) // SH
    nkw = (KW - kw0 + SW - 1) // SW
    n_taps = ((KD - kd0 + SD - 1) // SD) * nkh * nkw
    cout_blocks = tl.cdiv(Cout, BLOCK_K)
    per_split = tl.cdiv(n_taps * cout_blocks, SPLITS)
    first = split * per_split
    last = tl.minimum(first + per_split, n_taps * cout_blocks)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for step in range(first, last):
        j = step // cout_blocks
        c = (step - j * cout_blocks) * BLOCK_K + offs_k
        c_ok = c < Cout
        kd = kd0 + (j // (nkh * nkw)) * SD
        kh = kh0 + ((j // nkw) % nkh) * SH
        kw = kw0 + (j % nkw) * SW
        od = (id_ + PD - kd) // SD
        oh = (ih + PH - kh) // SH
        ow = (iw + PW - kw) // SW
        ok = m_ok & (od >= 0) & (od < Do) & (oh >= 0) & (oh < Ho) & (ow >= 0) & (ow < Wo)
        pos = ((nb * Do + od) * Ho + oh) * Wo + ow
        a = tl.load(dz_ptr + pos.to(tl.int64)[:, None] * Cout + c[None, :],
                    mask=ok[:, None] & c_ok[None, :], other=0.0)
        tap = (kd * KH + kh) * KW + kw
        b = tl.load(w_ptr + (tap * Cin + offs_n)[None, :] * Cout + c[:, None],
                    mask=c_ok[:, None] & n_ok[None, :], other=0.0)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)

    row = (((split * NB + nb) * D + id_) * H + ih) * W + iw
    out = row.to(tl.int64)[:, None] * Cin + offs_n[None, :]
    tl.store(dx_ptr + out, acc.to(dx_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


@_autotune(("BLOCK_CI", "BLOCK_CO", "BLOCK_P"), _WEIGHT_GRAD_SHAPES, _INTERPRETER_WEIGHT_GRAD,
           _KEY)
@triton.jit
def _conv3d_bwd_weight_kernel(
    x_ptr, dz_ptr, partial_ptr,
    M, D, H, W, Cin, Do, Ho, Wo, Cout, PD, PH, PW, M_PER_SPLIT, M_BUCKET,
    KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    SD: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr, PACKED: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_CI: tl.constexpr, BLOCK_CO: tl.constexpr, BLOCK_P: tl.constexpr,
):
    """One split's partial dw[tap, ci, co]: grid axis 0 = (tap, Cin block), or with PACKED a
    block of the flat row index tap·Cin + ci; axis 1 = Cout block, axis 2 = split; the
    reduction runs over output positions [split·M_PER_SPLIT, (split + 1)·M_PER_SPLIT) in
    BLOCK_P steps."""
    if PACKED:
        rows = tl.program_id(0) * BLOCK_CI + tl.arange(0, BLOCK_CI)  # tap·Cin + ci
        row_ok = rows < KD * KH * KW * Cin
        tap = rows // Cin
        offs_ci = rows - tap * Cin
    else:
        ci_blocks = tl.cdiv(Cin, BLOCK_CI)
        tap = tl.program_id(0) // ci_blocks
        offs_ci = (tl.program_id(0) % ci_blocks) * BLOCK_CI + tl.arange(0, BLOCK_CI)
        row_ok = offs_ci < Cin
        rows = tap * Cin + offs_ci
    offs_co = tl.program_id(1) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    split = tl.program_id(2)
    kw = tap % KW
    kh = (tap // KW) % KH
    kd = tap // (KW * KH)
    co_ok = offs_co < Cout

    acc = tl.zeros((BLOCK_CI, BLOCK_CO), dtype=tl.float32)
    m_start = split * M_PER_SPLIT
    m_end = tl.minimum(m_start + M_PER_SPLIT, M)
    for m0 in range(m_start, m_end, BLOCK_P):
        offs_m = m0 + tl.arange(0, BLOCK_P)
        m_ok = offs_m < m_end
        ow = offs_m % Wo
        oh = (offs_m // Wo) % Ho
        od = (offs_m // (Wo * Ho)) % Do
        nb = offs_m // (Wo * Ho * Do)
        if PACKED:  # [rows, positions]: every row its own tap
            id_ = (od * SD - PD)[None, :] + kd[:, None]
            ih = (oh * SH - PH)[None, :] + kh[:, None]
            iw = (ow * SW - PW)[None, :] + kw[:, None]
            ok = (m_ok[None, :] & row_ok[:, None] & (id_ >= 0) & (id_ < D) & (ih >= 0)
                  & (ih < H) & (iw >= 0) & (iw < W))
            pos = ((nb[None, :] * D + id_) * H + ih) * W + iw
            xt = tl.load(x_ptr + pos.to(tl.int64) * Cin + offs_ci[:, None], mask=ok, other=0.0)
        else:
            id_ = od * SD - PD + kd
            ih = oh * SH - PH + kh
            iw = ow * SW - PW + kw
            ok = m_ok & (id_ >= 0) & (id_ < D) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            pos = (((nb * D + id_) * H + ih) * W + iw).to(tl.int64) * Cin
            xt = tl.load(x_ptr + pos[None, :] + offs_ci[:, None],
                         mask=ok[None, :] & row_ok[:, None], other=0.0)
        g = tl.load(dz_ptr + offs_m.to(tl.int64)[:, None] * Cout + offs_co[None, :],
                    mask=m_ok[:, None] & co_ok[None, :], other=0.0)
        acc = tl.dot(xt, g, acc, input_precision=PRECISION)

    K = KD * KH * KW * Cin
    out = (split * K + rows).to(tl.int64)[:, None] * Cout + offs_co[None, :]
    tl.store(partial_ptr + out, acc, mask=row_ok[:, None] & co_ok[None, :])


# --------------------------------------------------------------------------- launchers

def output_size(size, kernel, stride, padding):
    """(Do, Ho, Wo) of a convolution with dilation 1."""
    return tuple((s + 2 * p - k) // st + 1
                 for s, k, st, p in zip(size, kernel, stride, padding, strict=True))


def _ndhwc(t: torch.Tensor) -> torch.Tensor:
    """[N, C, D, H, W] in any layout -> a dense [N, D, H, W, C] tensor (copied only if needed)."""
    return t.permute(0, 2, 3, 4, 1).contiguous()


# id(weight) -> (a weak reference to it, its _version, its data_ptr, the [kD, kH, kW, Cin,
# Cout] copy); an entry leaves with its weight. Optimizer steps update weights in place, which
# bumps `_version`, so a stale layout never runs.
_LAYOUTS: dict[int, tuple] = {}


def weight_layout(weight: torch.Tensor) -> torch.Tensor:
    """[Cout, Cin, kD, kH, kW] -> dense [kD, kH, kW, Cin, Cout], cached per weight version."""
    try:
        version = weight._version
    except RuntimeError:  # inference tensors have no version counter: no cache
        return weight.permute(2, 3, 4, 1, 0).contiguous()
    key = id(weight)
    cached = _LAYOUTS.get(key)
    if cached is not None and cached[0]() is weight and cached[1:3] == (version,
                                                                       weight.data_ptr()):
        return cached[3]
    layout = weight.detach().permute(2, 3, 4, 1, 0).contiguous()
    gone = weakref.ref(weight, lambda _, key=key: _LAYOUTS.pop(key, None))
    _LAYOUTS[key] = (gone, version, weight.data_ptr(), layout)
    return layout


def _precision(t: torch.Tensor, allow_tf32: bool) -> str:
    return "tf32" if allow_tf32 and t.dtype == torch.float32 else "ieee"


def _dims(x, weight, stride, padding):
    n, cin, d, h, w = x.shape
    cout, _, kd, kh, kw = weight.shape
    return n, cin, (d, h, w), cout, (kd, kh, kw), output_size((d, h, w), (kd, kh, kw), stride,
                                                                padding)


def _sm_count(device) -> int:
    if device.type != "cuda":
        return 1
    return torch.cuda.get_device_properties(device).multi_processor_count


def reduction_splits(m, cols, steps, device) -> int:
    """Split-K count of a GEMM with `m` rows, `cols` columns and `steps` reduction steps of 32:
    enough programs for two per SM counting 64×64 output tiles, each split >= 4 steps, <= 16."""
    tiles = triton.cdiv(m, 64) * triton.cdiv(cols, 64)
    return max(1, min(triton.cdiv(2 * _sm_count(device), tiles), steps // 4, 16))


def conv3d_forward(x, weight, bias, stride, padding, activation, allow_tf32=False,
                   m_bucket=None, packed=None, splits=None):
    """(y, saved): `y = act(conv3d(x, w) + b)` in channels_last_3d, and what backward needs
    besides x and w: the pre-activation z (channels_last_3d) for silu and gelu, else empty.

    x [N, Cin, D, H, W] (Cin >= 1), weight [Cout, Cin, kD, kH, kW], bias [Cout] or None, one
    dtype; stride and padding: 3 ints each; activation None | "relu" | "silu" | "gelu".
    `allow_tf32`: fp32 products in TF32 (else exact fp32). `m_bucket`: the size the autotuner
    keys on for M = N·Do·Ho·Wo (the op passes its bucket; default M). `packed` (Cin <
    PACK_BELOW) and `splits` (by size) override the schedule, for tests.
    """
    n, cin, (d, h, w), cout, ks, (do, ho, wo) = _dims(x, weight, stride, padding)
    act = activation or "none"
    save_z = act in ("silu", "gelu")
    y = _empty((n, cout, do, ho, wo), dtype=x.dtype, device=x.device, channels_last=True)
    z = _empty((n, cout, do, ho, wo) if save_z else (0,), dtype=x.dtype, device=x.device,
               channels_last=save_z)
    m = n * do * ho * wo
    if y.numel() == 0:
        return y, z
    taps = ks[0] * ks[1] * ks[2]
    pointwise = ks == (1, 1, 1) and tuple(stride) == (1, 1, 1) and tuple(padding) == (0, 0, 0)
    packed = cin < PACK_BELOW and not pointwise if packed is None else packed
    if splits is None:
        steps = triton.cdiv(taps * cin, 32) if packed else taps * triton.cdiv(cin, 32)
        splits = reduction_splits(m, cout, steps, x.device)
    partial = _empty((splits, m, cout), dtype=torch.float32, device=x.device) if splits > 1 \
        else y

    def grid(meta):
        return (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(cout, meta["BLOCK_N"]), splits)

    wk = weight_layout(weight)
    b = bias if bias is not None else wk
    z_or_y = z if save_z else y
    _conv3d_fwd_kernel[grid](
        _ndhwc(x), wk, b, y, z_or_y, partial,
        m, d, h, w, cin, do, ho, wo, cout, *padding, splits, m_bucket or m, *ks, *stride,
        POINTWISE=pointwise, PACKED=packed, SPLIT_K=splits > 1, HAS_BIAS=bias is not None,
        ACTIVATION=act, SAVE_Z=save_z, PRECISION=_precision(x, allow_tf32),
    )
    if splits > 1:
        block_n = min(triton.next_power_of_2(cout), 64)
        _split_k_epilogue_kernel[(triton.cdiv(m, 64), triton.cdiv(cout, block_n))](
            partial, b, y, z_or_y, m, cout, splits, HAS_BIAS=bias is not None, ACTIVATION=act,
            SAVE_Z=save_z, BLOCK_M=64, BLOCK_N=block_n,
        )
    return y, z


def _weight_grad_splits(m, cin, cout, taps, device) -> int:
    """Split-K count for dw's reduction over M: enough programs to fill the GPU (two per SM,
    counting 64×64 output tiles), and every range at least 4 granules long."""
    tiles = taps * triton.cdiv(cin, 64) * triton.cdiv(cout, 64)
    return max(1, min(triton.cdiv(2 * _sm_count(device), tiles),
                      triton.cdiv(m, 4 * SPLIT_GRANULE)))


def _grad_output_pre_activation(dy, saved, act, has_bias, m, cout):
    """(dz = dy · act'(saved), db) in one pass; db is fp32 [Cout] or None without a bias."""
    if act == "none" and not has_bias:
        return dy, None
    block_m, block_n = 64, min(triton.next_power_of_2(cout), 64)
    grid = (triton.cdiv(m, block_m), triton.cdiv(cout, block_n))
    dz = _empty(dy.shape, dtype=dy.dtype, device=dy.device) if act != "none" else dy
    db_partial = _empty((grid[0], cout), dtype=torch.float32, device=dy.device) if has_bias \
        else dz
    _act_bias_bwd_kernel[grid](
        dy, _ndhwc(saved) if act != "none" else dy, dz, db_partial, m, cout,
        ACTIVATION=act, HAS_BIAS=has_bias, BLOCK_M=block_m, BLOCK_N=block_n,
    )
    return dz, db_partial.sum(0) if has_bias else None


def _grad_input(dz, weight, x_shape, dims, stride, padding, precision, m_bucket, splits):
    """dx; `m_bucket` keys the autotuner for N·D·H·W (default: that size)."""
    n, cin, (d, h, w), cout, ks, (do, ho, wo) = dims
    classes = stride[0] * stride[1] * stride[2]
    class_rows = n * triton.cdiv(d, stride[0]) * triton.cdiv(h, stride[1]) \
        * triton.cdiv(w, stride[2])
    if splits is None:
        taps = math.prod(triton.cdiv(k, s) for k, s in zip(ks, stride, strict=True))
        splits = reduction_splits(class_rows * classes, cin, taps * triton.cdiv(cout, 32),
                                  dz.device)
    if splits > 1:
        out = _empty((splits, n, d, h, w, cin), dtype=torch.float32, device=dz.device)
    else:
        out = _empty(x_shape, dtype=dz.dtype, device=dz.device, channels_last=True)

    def grid(meta):
        return (triton.cdiv(class_rows, meta["BLOCK_M"]), triton.cdiv(cin, meta["BLOCK_N"]),
                classes * splits)

    _conv3d_bwd_input_kernel[grid](
        dz, weight_layout(weight), out, n, d, h, w, cin, do, ho, wo, cout, *padding, splits,
        m_bucket or n * d * h * w, *ks, *stride, PRECISION=precision,
    )
    if splits == 1:
        return out
    return out.sum(0).to(dz.dtype).permute(0, 4, 1, 2, 3)  # channels_last_3d [N, Cin, D, H, W]


def _grad_weight(x, dz, dims, stride, padding, precision, splits, m_bucket):
    n, cin, (d, h, w), cout, ks, (do, ho, wo) = dims
    m = n * do * ho * wo
    taps = ks[0] * ks[1] * ks[2]
    if splits is None:
        splits = _weight_grad_splits(m, cin, cout, taps, x.device)
    m_per_split = triton.cdiv(triton.cdiv(m, splits), SPLIT_GRANULE) * SPLIT_GRANULE
    splits = triton.cdiv(m, m_per_split)
    partial = _empty((splits, taps * cin, cout), dtype=torch.float32, device=x.device)
    packed = cin < PACK_BELOW

    def grid(meta):
        rows = triton.cdiv(taps * cin, meta["BLOCK_CI"]) if packed \
            else taps * triton.cdiv(cin, meta["BLOCK_CI"])
        return (rows, triton.cdiv(cout, meta["BLOCK_CO"]), splits)

    _conv3d_bwd_weight_kernel[grid](
        _ndhwc(x), dz, partial, m, d, h, w, cin, do, ho, wo, cout, *padding, m_per_split,
        m_bucket or m, *ks, *stride, PACKED=packed, PRECISION=precision,
    )
    return partial.sum(0).view(*ks, cin, cout).permute(4, 3, 0, 1, 2).contiguous()


def conv3d_backward(grad_y, x, weight, saved, stride, padding, activation, has_bias,
                    input_grad=True, weight_grad=True, splits=None, allow_tf32=False,
                    m_bucket=None, input_m_bucket=None, input_splits=None):
    """(dx, dw, db) of `conv3d_forward` given dL/dy; a gradient not asked for (or db without a
    bias) is an empty tensor. dx is channels_last_3d. `saved` is forward's z for silu/gelu
    and its y for relu. `splits` fixes dw's split-K count and `input_splits` dx's (default:
    chosen by size); `allow_tf32` and `m_bucket` as for the forward; dx's autotuner keys on
    `input_m_bucket` for N·D·H·W (default that size)."""
    dims = _dims(x, weight, stride, padding)
    n, cin, (d, h, w), cout, _, (do, ho, wo) = dims
    m = n * do * ho * wo
    act = activation or "none"
    dtype = x.dtype
    if m == 0 or cout == 0:  # nothing flows back
        dx = torch.zeros(x.shape, dtype=dtype, device=x.device,
                         memory_format=torch.channels_last_3d) if input_grad else x.new_empty(0)
        dw = torch.zeros_like(weight) if weight_grad else x.new_empty(0)
        return dx, dw, x.new_zeros(cout if has_bias else 0)
    precision = _precision(x, allow_tf32)
    dz, db = _grad_output_pre_activation(_ndhwc(grad_y.to(dtype)), saved, act, has_bias, m, cout)
    dx = _grad_input(dz, weight, x.shape, dims, stride, padding, precision, input_m_bucket,
                     input_splits) if input_grad else x.new_empty(0)
    dw = _grad_weight(x, dz, dims, stride, padding, precision, splits, m_bucket).to(dtype) \
        if weight_grad else x.new_empty(0)
    return dx, dw, db.to(dtype) if has_bias else x.new_empty(0)
