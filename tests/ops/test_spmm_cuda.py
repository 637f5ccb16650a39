"""The CUDA merge-path SpMM against the float64 PyTorch reference (GPU), and its host checks."""

import pytest
import torch

from astrobio.ops import spmm_cuda as spmm_cuda_module
from astrobio.ops.graph import csr_from_edges_reference
from astrobio.ops.spmm import spmm_reference
from astrobio.ops.spmm_cuda import spmm_backward, spmm_cuda

needs_extension = pytest.mark.skipif(spmm_cuda_module._cuda is None,
                                     reason="astrobio._cuda is not built")
TOLERANCE = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 2e-2}


def random_csr(num_rows, num_cols, num_edges, hub_degree=0, device="cpu"):
    """A destination-sorted CSR with isolated rows, duplicates and, optionally, a hub row."""
    dst = torch.randint(0, max(num_rows // 2, 1), (num_edges,)) * 2  # odd rows stay empty
    src = torch.randint(0, num_cols, (num_edges,))
    if hub_degree:
        dst = torch.cat([dst, torch.full((hub_degree,), num_rows // 3)])
        src = torch.cat([src, torch.randint(0, num_cols, (hub_degree,))])
    dst = dst.clamp(max=num_rows - 1)
    # Square indices for csr_from_edges_reference, then keep the real column range.
    n = max(num_rows, num_cols)
    rowptr, col, _ = csr_from_edges_reference(torch.stack([src, dst]), n)
    return rowptr[: num_rows + 1].to(device), col.to(device)


def poison_next_allocation(shape, dtype):
    """Leave a NaN-filled block of this size in the caching allocator for the op's output."""
    torch.full(shape, float("nan"), dtype=dtype, device="cuda")


def relative_error(out, ref):
    return ((out.double() - ref).norm() / ref.norm().clamp(min=1e-30)).item()


@pytest.mark.gpu
@needs_extension
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
@pytest.mark.parametrize("shape", [(97, 83, 613, 0, 37), (301, 257, 5003, 4099, 130),
                                   (1, 5, 3, 0, 1), (7, 11, 0, 0, 64)])
@pytest.mark.parametrize("weighted", [False, True])
def test_spmm_cuda_matches_reference(dtype, reduce, shape, weighted):
    num_rows, num_cols, num_edges, hub, features = shape
    rowptr, col = random_csr(num_rows, num_cols, num_edges, hub, "cuda")
    x = torch.randn(num_cols, features, device="cuda").to(dtype)
    w = torch.rand(col.numel(), device="cuda") + 0.5 if weighted else None
    ref = spmm_reference(rowptr, col, x.double(), None if w is None else w.double(), reduce)
    poison_next_allocation(ref.shape, dtype)
    out = spmm_cuda(rowptr, col, x, w, reduce)
    assert out.dtype == dtype and out.shape == ref.shape
    assert torch.isfinite(out).all()
    if ref.numel() and ref.norm() > 0:
        assert relative_error(out, ref) <= TOLERANCE[dtype]
    else:
        assert torch.equal(out, torch.zeros_like(out))
    empty_rows = (rowptr[1:] == rowptr[:-1]).nonzero().flatten()
    assert torch.equal(out[empty_rows], torch.zeros_like(out[empty_rows]))


@pytest.mark.gpu
@needs_extension
def test_spmm_cuda_hub_rows_deterministic_and_int32():
    rowptr, col = random_csr(2001, 3001, 20_011, hub_degree=100_003, device="cuda")
    x = torch.randn(3001, 96, device="cuda")
    ref = spmm_reference(rowptr, col, x.double(), None, "sum")
    first = spmm_cuda(rowptr, col, x)
    assert relative_error(first, ref) <= 1e-5
    assert torch.equal(first, spmm_cuda(rowptr, col, x))
    assert torch.equal(first, spmm_cuda(rowptr.int(), col.int(), x))
    torch.library.opcheck(spmm_cuda_module._spmm_cuda_op, (rowptr, col, x, None, "max"))


def test_spmm_cuda_fake_gives_shape_on_meta():
    rowptr = torch.empty(12, dtype=torch.long, device="meta")
    col = torch.empty(40, dtype=torch.long, device="meta")
    x = torch.empty(9, 5, dtype=torch.float16, device="meta")
    out = spmm_cuda_module._spmm_cuda_op(rowptr, col, x, None, "mean", None, None, None)
    assert out.shape == (11, 5) and out.dtype == torch.float16 and out.device.type == "meta"


@needs_extension
def test_spmm_cuda_rejects_bad_input_on_the_host():
    rowptr, col = torch.tensor([0, 1, 2]), torch.tensor([0, 1])
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="CUDA device"):
        spmm_cuda(rowptr, col, x)
    with pytest.raises(ValueError, match="unknown reduce"):
        spmm_cuda(rowptr, col, x, reduce="min")
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        spmm_cuda(rowptr, col, x.double())
    with pytest.raises(ValueError, match="edge_weight"):
        spmm_cuda(rowptr, col, x, torch.ones(3))


def reference_sum(rowptr, col, x, weight):
    return spmm_reference(rowptr, col, x, weight, "sum")


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pass_transposed", [False, True])
def test_spmm_backward_formula_matches_reference_autograd(reduce, weighted, pass_transposed):
    """The backward the CUDA op registers, run with the references in place of the kernels."""
    num_rows, num_cols = 41, 29
    rowptr, col = random_csr(num_rows, num_cols, 317, hub_degree=53)
    x = torch.randn(num_cols, 7, dtype=torch.float64, requires_grad=True)
    w = (torch.rand(col.numel(), dtype=torch.float64) + 0.5).requires_grad_(weighted)
    weight = w if weighted else None
    out = spmm_reference(rowptr, col, x, weight, reduce)
    grad_out = torch.randn_like(out)
    expected = torch.autograd.grad(out, [x, w] if weighted else [x], grad_out)
    transposed = None
    if pass_transposed:
        rows = torch.repeat_interleave(torch.arange(num_rows), rowptr.diff())
        rowptr_t, col_t, perm_t = csr_from_edges_reference(torch.stack([rows, col]), num_rows)
        transposed = (rowptr_t[: num_cols + 1], col_t, perm_t)
    grad_x, grad_w = spmm_backward(rowptr, col, x.detach(), None if weight is None
                                   else w.detach(), reduce, out.detach(), grad_out, transposed,
                                   reference_sum, csr_from_edges_reference)
    assert torch.allclose(grad_x, expected[0])
    if weighted:
        assert torch.allclose(grad_w, expected[1])
    else:
        assert grad_w is None


@pytest.mark.gpu
@needs_extension
@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_spmm_cuda_gradients_match_reference(reduce):
    rowptr, col = random_csr(301, 257, 5003, 2099, "cuda")
    x = torch.randn(257, 70, device="cuda", dtype=torch.float64)
    w = torch.rand(col.numel(), device="cuda", dtype=torch.float64) + 0.5
    grad_out = torch.randn(301, 70, device="cuda", dtype=torch.float64)
    x32, w32 = x.float().requires_grad_(), w.float().requires_grad_()
    spmm_cuda(rowptr, col, x32, w32, reduce).backward(grad_out.float())
    x64, w64 = x.clone().requires_grad_(), w.clone().requires_grad_()
    spmm_reference(rowptr, col, x64, w64, reduce).backward(grad_out)
    assert relative_error(x32.grad, x64.grad) <= 1e-5
    assert relative_error(w32.grad, w64.grad) <= 1e-5
