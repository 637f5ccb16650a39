"""The Triton cross-attention kernels against a float64 naive attention and torch SDPA.

On the CPU the kernels run through the Triton interpreter (fp32 and fp16; bf16 only on a GPU).
Every batch of three mixes the cases the fusion layer produces: a sample with no key at all
(all other modalities missing), a sample with one modality's contiguous keys only, and a sample
with keys missing at random.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from astrobio import ops
from astrobio.kernels import cross_attention as kernels
from astrobio.kernels.cross_attention import cross_attention_bwd, cross_attention_fwd
from astrobio.ops.buckets import bucket

TOLERANCE = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 2e-2}
LOG2E = 1.0 / math.log(2.0)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def naive_attention64(q, k, v, mask=None, scale=None):
    """exp/sum attention in float64, written out; rows without a key give 0 (and 0 gradient)."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q.double() @ k.double().transpose(-1, -2) * scale
    keep = torch.ones_like(s, dtype=torch.bool) if mask is None else mask[:, None, None, :]
    keep = keep.expand_as(s)
    row_max = s.masked_fill(~keep, -math.inf).amax(-1, keepdim=True).detach()
    row_max = row_max.nan_to_num(neginf=0.0)
    e = torch.exp(s.masked_fill(~keep, 0.0) - row_max) * keep
    return (e / e.sum(-1, keepdim=True).clamp_min(1e-300)) @ v.double()


def lse_log2_64(q, k, mask, scale):
    s = (q.double() @ k.double().transpose(-1, -2) * scale).masked_fill(
        ~mask[:, None, None, :], -math.inf)
    return torch.logsumexp(s, -1) * LOG2E


def modality_mask(lk, b=3):
    """[b, lk] bool: sample 0 has no key, sample 1 one contiguous block, the rest random."""
    mask = torch.rand(b, lk) > 0.3
    mask[0] = False
    lo = int(torch.randint(0, lk, ()))
    hi = int(torch.randint(lo + 1, lk + 1, ()))
    mask[1] = False
    mask[1, lo:hi] = True
    return mask.to(DEVICE)


def randn(*shape, dtype):
    return torch.randn(*shape, device=DEVICE).to(dtype)


def poisoned(shape, dtype):
    return torch.full(shape, math.nan, dtype=dtype, device=DEVICE)


def rel(out, ref):
    return ((out.double() - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def reference_grads(q, k, v, mask, dout, scale=None):
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    out = naive_attention64(q64, k64, v64, mask, scale)
    out.backward(dout.double())
    return out.detach(), q64.grad, k64.grad, v64.grad


CASES = [(1, 7, 32), (7, 65, 64), (65, 300, 128), (300, 1, 40)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("lq", "lk", "d"), CASES)
def test_forward_matches_float64_and_sdpa(dtype, lq, lk, d):
    b, h = 3, 2
    q, k, v = randn(b, h, lq, d, dtype=dtype), randn(b, h, lk, d, dtype=dtype), \
        randn(b, h, lk, d, dtype=dtype)
    mask = modality_mask(lk)
    scale = 1.0 / math.sqrt(d)
    out, lse = cross_attention_fwd(q, k, v, mask, out=poisoned(q.shape, dtype),
                                   lse=poisoned((b, h, lq), torch.float32))
    assert out.dtype == dtype and torch.isfinite(out).all()
    ref = naive_attention64(q, k, v, mask)
    assert rel(out, ref) <= TOLERANCE[dtype]
    has_key = mask.any(-1)
    sdpa = F.scaled_dot_product_attention(q.double(), k.double(), v.double(),
                                          attn_mask=mask[:, None, None, :])
    assert rel(out[has_key], sdpa[has_key]) <= TOLERANCE[dtype]
    assert torch.equal(out[~has_key], torch.zeros_like(out[~has_key]))
    expected_lse = lse_log2_64(q, k, mask, scale)
    assert torch.equal(lse[~has_key], torch.full_like(lse[~has_key], math.inf))
    assert rel(lse[has_key], expected_lse[has_key]) <= TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("lq", "lk", "d"), CASES[:3])
def test_backward_matches_float64_autograd(dtype, lq, lk, d):
    b, h = 3, 2
    q, k, v = randn(b, h, lq, d, dtype=dtype), randn(b, h, lk, d, dtype=dtype), \
        randn(b, h, lk, d, dtype=dtype)
    dout = randn(b, h, lq, d, dtype=dtype)
    mask = modality_mask(lk)
    out, lse = cross_attention_fwd(q, k, v, mask)
    dq, dk, dv = cross_attention_bwd(
        dout, q, k, v, out, lse, mask,
        dq=poisoned(q.shape, dtype), dk=poisoned(k.shape, dtype), dv=poisoned(v.shape, dtype),
    )
    _, dq64, dk64, dv64 = reference_grads(q, k, v, mask, dout)
    for grad, ref in ((dq, dq64), (dk, dk64), (dv, dv64)):
        assert grad.dtype == dtype and torch.isfinite(grad).all()
        assert rel(grad, ref) <= TOLERANCE[dtype]
    no_key = ~mask.any(-1)
    assert torch.equal(dq[no_key], torch.zeros_like(dq[no_key]))
    absent = ~mask[:, None, :].expand(b, h, lk)
    assert torch.equal(dk[absent], torch.zeros_like(dk[absent]))
    assert torch.equal(dv[absent], torch.zeros_like(dv[absent]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("splits", [1, 2, 3, 7])
@pytest.mark.parametrize(("lq", "lk", "d"), [(8, 135, 16), (8, 77, 32), (3, 40, 64)])
def test_few_queries_split_keys(dtype, splits, lq, lk, d):
    """The fusion's shape (Lq = 8): keys split over programs and combined; 7 splits of 135
    keys in 32-key blocks leave some splits without a key block. Poisoned outputs, a sample
    without keys, forward, lse and every gradient against float64."""
    b, h = 3, 2
    q, k, v = (randn(b, h, n, d, dtype=dtype) for n in (lq, lk, lk))
    dout = randn(b, h, lq, d, dtype=dtype)
    mask = modality_mask(lk)
    out, lse = cross_attention_fwd(q, k, v, mask, out=poisoned(q.shape, dtype),
                                   lse=poisoned((b, h, lq), torch.float32), splits=splits)
    ref, dq64, dk64, dv64 = reference_grads(q, k, v, mask, dout)
    assert torch.isfinite(out).all() and rel(out, ref) <= TOLERANCE[dtype]
    has_key = mask.any(-1)
    assert torch.equal(out[~has_key], torch.zeros_like(out[~has_key]))
    assert torch.isinf(lse[~has_key]).all()
    assert rel(lse[has_key], lse_log2_64(q, k, mask, 1 / math.sqrt(d))[has_key]) \
        <= TOLERANCE[dtype]
    grads = cross_attention_bwd(dout, q, k, v, out, lse, mask, dq=poisoned(q.shape, dtype),
                                dk=poisoned(k.shape, dtype), dv=poisoned(v.shape, dtype))
    for grad, expected in zip(grads, (dq64, dk64, dv64)):
        assert torch.isfinite(grad).all() and rel(grad, expected) <= TOLERANCE[dtype]
    again = cross_attention_fwd(q, k, v, mask, splits=splits)[0]
    assert torch.equal(out, again)


@pytest.mark.parametrize("lq", [8, 40])
def test_fully_masked_key_blocks_are_never_read(lq):
    """Keys in whole absent blocks are NaN: a kernel that loaded them would spread NaN
    (0 · NaN); skipped blocks leave every output and gradient exact. Interpreter blocks:
    32 keys (few queries) and 64 / 32 keys (forward / backward) otherwise."""
    b, h, d, lk = 2, 2, 16, 320
    q, k, v = (randn(b, h, n, d, dtype=torch.float32) for n in (lq, lk, lk))
    dout = randn(b, h, lq, d, dtype=torch.float32)
    mask = torch.zeros(b, lk, dtype=torch.bool, device=DEVICE)
    mask[:, 128:192] = True  # keys 0-127 and 192-319 absent: whole blocks of 32 and 64
    mask[1, 200] = True  # one present key in an otherwise absent block
    ref, dq64, dk64, dv64 = reference_grads(q, k, v, mask, dout)
    absent_blocks = torch.ones(b, lk, dtype=torch.bool, device=DEVICE)
    absent_blocks[:, 128:192] = False
    absent_blocks[1, 192:256] = False
    for t in (k, v):
        t.masked_fill_(absent_blocks[:, None, :, None], math.nan)
    out, lse = cross_attention_fwd(q, k, v, mask, splits=3 if lq <= 16 else None)
    assert rel(out, ref) <= 1e-5
    dq, dk, dv = cross_attention_bwd(dout, q, k, v, out, lse, mask)
    assert rel(dq, dq64) <= 1e-5
    present = mask[:, None, :].expand(b, h, lk)
    assert rel(dk[present], dk64[present]) <= 1e-5 and rel(dv[present], dv64[present]) <= 1e-5
    assert torch.equal(dk[~present], torch.zeros_like(dk[~present]))


def recorded_keys(monkeypatch, autotuner):
    """The autotuning keys `autotuner` sees (its key arguments' values), call by call."""
    keys = []
    run = autotuner.run

    def recording(*args, **kwargs):
        named = dict(zip(autotuner.arg_names, args)) | kwargs
        keys.append(tuple(named[name] for name in autotuner.keys))
        return run(*args, **kwargs)

    monkeypatch.setattr(autotuner, "run", recording)
    return keys


def test_autotune_keys_are_buckets_of_the_lengths(monkeypatch):
    """50 batches whose padded key counts vary from 100 to 160 (as text lengths do) reach the
    autotuner as a handful of bucketed keys, forward and backward."""
    assert "Lk" not in kernels._TUNE_KEY and "Lq" not in kernels._TUNE_KEY
    forward = recorded_keys(monkeypatch, kernels._fwd_small_tuned)
    backward = recorded_keys(monkeypatch, kernels._dkdv_small_tuned)
    lengths = torch.randint(100, 161, (50,)).tolist()
    for lk in lengths:
        q, k, v = (randn(2, 1, n, 16, dtype=torch.float32).requires_grad_() for n in (8, lk, lk))
        with ops.use_backend("triton"):
            out = ops.cross_attention(q, k, v, modality_mask(lk, 2))
        out.sum().backward()
    assert len(forward) == len(backward) == 50
    assert {key[1] for key in forward} == {bucket(lk) for lk in lengths}
    assert len(set(forward)) <= 4 and len(set(backward)) <= 4


def test_autograd_through_op_and_backend_switch():
    b, h, lq, lk, d = 3, 2, 9, 33, 32
    leaves = [randn(b, h, n, d, dtype=torch.float32).requires_grad_() for n in (lq, lk, lk)]
    mask = modality_mask(lk)
    dout = randn(b, h, lq, d, dtype=torch.float32)
    results = {}
    for backend in ("reference", "triton"):
        with ops.use_backend(backend):
            out = ops.cross_attention(*leaves, key_padding_mask=mask)
        grads = torch.autograd.grad(out, leaves, dout)
        results[backend] = (out, *grads)
    ref = reference_grads(*leaves, mask, dout)
    for got, want, expected in zip(results["triton"], results["reference"], ref):
        assert rel(got, expected) <= TOLERANCE[torch.float32]
        assert rel(got, want.double()) <= TOLERANCE[torch.float32]


def test_scale_argument():
    b, h, lq, lk, d = 3, 1, 5, 19, 16
    q, k, v = (randn(b, h, n, d, dtype=torch.float32) for n in (lq, lk, lk))
    mask = modality_mask(lk)
    dout = randn(b, h, lq, d, dtype=torch.float32)
    out, lse = cross_attention_fwd(q, k, v, mask, scale=0.3)
    grads = cross_attention_bwd(dout, q, k, v, out, lse, mask, scale=0.3)
    ref = reference_grads(q, k, v, mask, dout, scale=0.3)
    default_out = naive_attention64(q, k, v, mask)
    assert rel(out, default_out) > 1e-3  # the scale matters for these inputs
    for got, expected in zip((out, *grads), ref):
        assert rel(got, expected) <= TOLERANCE[torch.float32]


def test_strided_inputs_without_mask():
    """q from a [B, L, H, D] layout, k with D not innermost, v broadcast over heads, dout
    transposed; no mask, so every key counts (compared to SDPA too)."""
    b, h, lq, lk, d = 2, 3, 11, 21, 24
    q = randn(b, lq, h, d, dtype=torch.float32).transpose(1, 2)
    k = randn(b, h, d, lk, dtype=torch.float32).transpose(2, 3)
    v = randn(b, 1, lk, d, dtype=torch.float32).expand(b, h, lk, d)
    dout = randn(b, lq, h, d, dtype=torch.float32).transpose(1, 2)
    out, lse = cross_attention_fwd(q, k, v)
    grads = cross_attention_bwd(dout, q, k, v, out, lse)
    ref = reference_grads(q, k, v, torch.ones(b, lk, dtype=torch.bool, device=DEVICE), dout)
    for got, expected in zip((out, *grads), ref):
        assert rel(got, expected) <= TOLERANCE[torch.float32]
    sdpa = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
    assert rel(out, sdpa) <= TOLERANCE[torch.float32]


def test_strided_mask_and_no_keys_at_all():
    b, h, lq, d = 3, 2, 6, 16
    lk = 13
    q, k, v = (randn(b, h, n, d, dtype=torch.float16) for n in (lq, lk, lk))
    mask = (torch.rand(lk, b, device=DEVICE) > 0.5).T  # non-contiguous [B, Lk]
    mask[0] = False
    out, lse = cross_attention_fwd(q, k, v, mask)
    assert rel(out[1:], naive_attention64(q, k, v, mask)[1:]) <= TOLERANCE[torch.float16]
    empty = k[:, :, :0]
    out, lse = cross_attention_fwd(q, empty, empty, mask[:, :0])
    assert torch.equal(out, torch.zeros_like(q)) and torch.isinf(lse).all()
    grads = cross_attention_bwd(torch.ones_like(q), q, empty, empty, out, lse, mask[:, :0])
    assert torch.equal(grads[0], torch.zeros_like(q)) and grads[1].shape == empty.shape


def test_custom_op_registration():
    b, h, lq, lk, d = 2, 1, 3, 5, 16
    q, k, v = (torch.randn(b, h, n, d, device=DEVICE, requires_grad=True) for n in (lq, lk, lk))
    mask = modality_mask(lk, b)
    # schema, fake tensors, autograd registration and AOT dispatch with dynamic shapes
    torch.library.opcheck(torch.ops.astrobio.cross_attention_fwd.default, (q, k, v, mask, 0.25))
    out, lse = cross_attention_fwd(q.detach(), k.detach(), v.detach(), mask, 0.25)
    torch.library.opcheck(
        torch.ops.astrobio.cross_attention_bwd.default,
        (torch.randn_like(out), q.detach(), k.detach(), v.detach(), out, lse, mask, 0.25),
        test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"),
    )
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        fq, fk, fv = (torch.empty(b, h, n, d, dtype=torch.float16) for n in (lq, lk, lk))
        out, lse = torch.ops.astrobio.cross_attention_fwd(fq, fk, fv, None, 0.25)
        dq, dk, dv = torch.ops.astrobio.cross_attention_bwd(out, fq, fk, fv, out, lse, None, 0.25)
    assert out.shape == fq.shape and out.dtype == torch.float16 and lse.shape == (b, h, lq)
    assert lse.dtype == torch.float32 and dk.shape == fk.shape and dv.dtype == torch.float16


def test_bad_inputs_raise_clear_errors():
    q = torch.randn(2, 1, 3, 16, device=DEVICE)
    k = torch.randn(2, 1, 5, 16, device=DEVICE)
    with ops.use_backend("triton"):
        with pytest.raises(ValueError, match="key_padding_mask must be bool"):
            ops.cross_attention(q, k, k, torch.ones(2, 5, device=DEVICE))
        with pytest.raises(ValueError, match="key_padding_mask must be bool"):
            ops.cross_attention(q, k, k, torch.ones(2, 4, dtype=torch.bool, device=DEVICE))
        with pytest.raises(ValueError, match=r"must be \[2, 1, Lk, 16\]"):
            ops.cross_attention(q, k[..., :8], k[..., :8])
        with pytest.raises(ValueError, match="share one dtype"):
            ops.cross_attention(q.double(), k.double(), k.double())
        with pytest.raises(ValueError, match="D=300 exceeds 256"):
            big = torch.randn(1, 1, 2, 300, device=DEVICE)
            ops.cross_attention(big, big, big)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_gpu_fusion_shapes_and_determinism(dtype):
    b, h, lq, lk, d = 5, 8, 77, 1031, 128
    q, k, v = (randn(b, h, n, d, dtype=dtype) for n in (lq, lk, lk))
    dout = randn(b, h, lq, d, dtype=dtype)
    mask = modality_mask(lk, b)
    out, lse = cross_attention_fwd(q, k, v, mask, out=poisoned(q.shape, dtype))
    grads = cross_attention_bwd(dout, q, k, v, out, lse, mask)
    ref = reference_grads(q, k, v, mask, dout)
    for got, expected in zip((out, *grads), ref):
        assert rel(got, expected) <= TOLERANCE[dtype]
    again = cross_attention_bwd(dout, q, k, v, out, lse, mask)
    assert all(torch.equal(x, y) for x, y in zip(grads, again))


def test_fusion_layer_same_with_either_backend():
    """astrobio.models.fusion end to end (masked cross-attention and unmasked self-attention,
    head dim 8, padded to 16 in the kernel): outputs and every gradient agree."""
    from astrobio.models.features import ModalityFeatures
    from astrobio.models.fusion import ModalityFusion

    b, d_model, tokens = 4, 32, (3, 7, 5, 1, 6)
    fusion = ModalityFusion(d_model, n_layers=2, n_heads=4).to(DEVICE)
    present = torch.rand(b, len(tokens), device=DEVICE) > 0.4
    present[0] = False  # nothing to read
    present[1] = False
    present[1, 2] = True  # one modality only
    features = {
        name: ModalityFeatures(
            pooled=torch.randn(b, d_model, device=DEVICE, requires_grad=True),
            tokens=torch.randn(b, n, d_model, device=DEVICE, requires_grad=True),
            mask=torch.rand(b, n, device=DEVICE) > 0.3,
        )
        for name, n in zip(fusion.modalities, tokens)
    }
    leaves = [*fusion.parameters()] + [t for f in features.values() for t in (f.pooled, f.tokens)]
    # a random read-out: a LayerNorm output's sum of squares is nearly constant
    readout = torch.randn(b, d_model, device=DEVICE)
    results = {}
    for backend in ("reference", "triton"):
        with ops.use_backend(backend):
            fused = fusion(features, present).fused
        results[backend] = (fused, *torch.autograd.grad((fused * readout).sum(), leaves))
    for got, want in zip(results["triton"], results["reference"], strict=True):
        assert torch.isfinite(got).all()
        assert rel(got, want.double()) <= 1e-5


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize(("b", "h", "lk", "d"), [(32, 4, 135, 16), (64, 8, 167, 32),
                                                 (1, 16, 2087, 64)])
def test_gpu_model_shapes(dtype, b, h, lk, d):
    """The fusion of the tiny, small and 13b presets (Lq = 8), split keys chosen by size."""
    q, k, v = (randn(b, h, n, d, dtype=dtype) for n in (8, lk, lk))
    dout = randn(b, h, 8, d, dtype=dtype)
    mask = modality_mask(lk, b)
    out, lse = cross_attention_fwd(q, k, v, mask, out=poisoned(q.shape, dtype))
    grads = cross_attention_bwd(dout, q, k, v, out, lse, mask)
    for got, expected in zip((out, *grads), reference_grads(q, k, v, mask, dout)):
        assert rel(got, expected) <= TOLERANCE[dtype]


@pytest.mark.gpu
def test_gpu_auto_backend_runs_triton_and_falls_back_for_float64():
    q, k, v = (torch.randn(2, 2, n, 64, device="cuda", dtype=torch.bfloat16) for n in (5, 40, 40))
    mask = modality_mask(40, 2)
    with ops.use_backend("auto"):
        out = ops.cross_attention(q, k, v, mask)
        out64 = ops.cross_attention(q.double(), k.double(), v.double(), mask)
    assert rel(out, naive_attention64(q, k, v, mask)) <= TOLERANCE[torch.bfloat16]
    assert out64.dtype == torch.float64
    assert rel(out64, naive_attention64(q, k, v, mask)) <= 1e-6
