"""Triton sddmm (CPU interpreter on CPU) against the float64 reference and its autograd."""

import pytest
import torch

from astrobio import ops
from astrobio.kernels import sddmm as sddmm_kernels
from astrobio.ops.sddmm import sddmm_op, sddmm_reference

TOL = {torch.float32: 1e-5, torch.float16: 5e-3}


def rel_err(out, ref):
    return ((out.double() - ref.double()).norm() / ref.double().norm()).item()


def random_edges(num_edges, num_rows, num_cols, index_dtype=torch.int64):
    """Unsorted edges with repeats, as the VAE's edge decoder samples them."""
    row = torch.randint(0, num_rows, (num_edges,), dtype=index_dtype)
    col = torch.randint(0, num_cols, (num_edges,), dtype=index_dtype)
    return row, col


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("features", [1, 7, 33, 97])
def test_forward_matches_reference(dtype, features):
    index_dtype = torch.int32 if features in (7, 97) else torch.int64
    row, col = random_edges(301, 23, 31, index_dtype)
    a, b = torch.randn(23, features, dtype=dtype), torch.randn(31, features, dtype=dtype)
    out = torch.full((301,), float("nan"), dtype=dtype)
    assert sddmm_kernels.sddmm(row, col, a, b, out=out) is out
    assert rel_err(out, sddmm_reference(row, col, a.double(), b.double())) <= TOL[dtype]


def test_routed_counts_only_argmax_features():
    row, col = random_edges(90, 11, 13)
    a, b = torch.randn(11, 6), torch.randn(13, 6)
    route = torch.randint(-1, 90, (11, 6), dtype=torch.int32)
    route[row[:20], 0] = torch.arange(20, dtype=torch.int32)  # some edges are chosen
    chosen = route[row].long() == torch.arange(90)[:, None]
    expected = (a[row].double() * b[col].double() * chosen).sum(-1)
    out = torch.full((90,), float("nan"))
    sddmm_kernels.sddmm(row, col, a, b, route=route, out=out)
    assert chosen.any() and rel_err(out, expected) <= 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_gradients_match_float64_autograd(dtype):
    row, col = random_edges(257, 19, 29)
    a = torch.randn(19, 41, dtype=dtype, requires_grad=True)
    b = torch.randn(29, 41, dtype=dtype, requires_grad=True)
    with ops.use_backend("triton"):
        out = ops.sddmm(row, col, a, b)
    grad = torch.randn_like(out)
    grad_a, grad_b = torch.autograd.grad(out, (a, b), grad)
    a64, b64 = (t.detach().double().requires_grad_() for t in (a, b))
    ref = sddmm_reference(row, col, a64, b64)
    ref_a, ref_b = torch.autograd.grad(ref, (a64, b64), grad.double())
    assert grad_a.dtype == dtype and grad_b.dtype == dtype
    for ours, truth in ((out, ref), (grad_a, ref_a), (grad_b, ref_b)):
        assert rel_err(ours, truth) <= TOL[dtype]


def test_edge_decoder_scores_one_embedding_bitwise_repeatable():
    """Scores of z against itself, as the VAE decodes edges; the gradient sums both ends."""
    row, col = random_edges(180, 27, 27, torch.int32)
    z = torch.randn(27, 16, requires_grad=True)
    runs = []
    for _ in range(2):
        with ops.use_backend("triton"):
            score = ops.sddmm(row, col, z, z)
        runs.append((score, *torch.autograd.grad(torch.sigmoid(score).sum(), z)))
    assert all(torch.equal(x, y) for x, y in zip(*runs))
    z64 = z.detach().double().requires_grad_()
    ref = sddmm_reference(row.long(), col.long(), z64, z64)
    (ref_z,) = torch.autograd.grad(torch.sigmoid(ref).sum(), z64)
    assert rel_err(runs[0][0], ref) <= 1e-5 and rel_err(runs[0][1], ref_z) <= 1e-5


def test_no_edges():
    row = col = torch.zeros(0, dtype=torch.long)
    a = torch.randn(4, 5, requires_grad=True)
    with ops.use_backend("triton"):
        out = ops.sddmm(row, col, a, a)
    (grad_a,) = torch.autograd.grad(out.sum(), a)
    assert out.shape == (0,) and torch.equal(grad_a, torch.zeros_like(a))


def test_custom_op_registration_and_errors():
    row, col = random_edges(20, 5, 6)
    a = torch.randn(5, 3, requires_grad=True)
    b = torch.randn(6, 3, requires_grad=True)
    torch.library.opcheck(sddmm_op, (row, col, a, b),
                          test_utils=("test_schema", "test_autograd_registration",
                                      "test_faketensor"))
    with pytest.raises(ValueError, match="must be \\[\\*, F\\]"):
        ops.sddmm(row, col, a, b[:, :2])
    with pytest.raises(ValueError, match="int32 or int64"):
        ops.sddmm(row.float(), col, a, b)
    with pytest.raises(ValueError, match="one dtype"), ops.use_backend("triton"):
        ops.sddmm(row, col, a, b.half())


@pytest.mark.gpu
def test_bf16_on_gpu():
    row, col = (t.cuda() for t in random_edges(5003, 300, 400))
    a = torch.randn(300, 129, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    b = torch.randn(400, 129, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    with ops.use_backend("triton"):
        out = ops.sddmm(row, col, a, b)
    grad_a, grad_b = torch.autograd.grad(out.float().sum(), (a, b))
    a64, b64 = (t.detach().double().requires_grad_() for t in (a, b))
    ref = sddmm_reference(row, col, a64, b64)
    ref_a, ref_b = torch.autograd.grad(ref.sum(), (a64, b64))
    for ours, truth in ((out, ref), (grad_a, ref_a), (grad_b, ref_b)):
        assert rel_err(ours, truth) <= 2e-2
