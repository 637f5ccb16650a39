"""The conv3d Triton kernels (forward, dx, dw, db) against float64 F.conv3d + activation.

Fresh random odd shapes every run; every buffer the launchers allocate (outputs and split-K
workspaces) is filled with NaN first, so an element a kernel fails to write shows up.
"""

import pytest
import torch
import torch.nn.functional as F

from astrobio.kernels import conv3d as kernels
from astrobio.ops.activations import apply_activation

TOLERANCE = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 2e-2}
# TF32 keeps 10 mantissa bits (unit roundoff 2^-11 ≈ 4.9e-4 per operand); reductions of
# K = 27·Cin products measured 4–8e-4 on GPUs, so 3e-4 is below what TF32 itself can give.
TF32_TOLERANCE = 1.5e-3


@pytest.fixture(autouse=True)
def poisoned_buffers(monkeypatch):
    allocate = kernels._empty

    def nan_filled(*args, **kwargs):
        return allocate(*args, **kwargs).fill_(float("nan"))

    monkeypatch.setattr(kernels, "_empty", nan_filled)


def rel_error(out, ref):
    return ((out.double() - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def draw(low, high):
    return int(torch.randint(low, high + 1, ()))


def reference(x, w, b, stride, padding, activation, grad_y):
    """Forward and the three gradients in float64 through autograd."""
    x, w = x.double().requires_grad_(), w.double().requires_grad_()
    b = b.double().requires_grad_() if b is not None else None
    y = apply_activation(F.conv3d(x, w, b, stride, padding), activation)
    grads = torch.autograd.grad(y, [x, w] + ([b] if b is not None else []), grad_y)
    return y.detach(), *grads


def run_case(kernel, stride, padding, activation, bias, dtype, device="cpu", size=(3, 7),
             batch=2, channels=(3, 7), tol=None, allow_tf32=False, packed=None, splits=None):
    cin, cout = draw(*channels), draw(*channels)
    spatial = tuple(draw(*size) for _ in range(3))
    x = torch.randn(batch, cin, *spatial, device=device).to(dtype)
    w = (torch.randn(cout, cin, *kernel, device=device) / (cin * kernel[0] * kernel[1]
                                                            * kernel[2]) ** 0.5).to(dtype)
    b = torch.randn(cout, device=device).to(dtype) if bias else None

    y, saved = kernels.conv3d_forward(x, w, b, stride, padding, activation, allow_tf32,
                                      packed=packed, splits=splits)
    grad_y = torch.randn(y.shape, device=device, dtype=torch.float64)
    ref_y, ref_dx, ref_dw, *ref_db = reference(x, w, b, stride, padding, activation, grad_y)
    tol = tol or TOLERANCE[dtype]
    assert y.shape == ref_y.shape and y.dtype == dtype
    assert y.is_contiguous(memory_format=torch.channels_last_3d)
    assert rel_error(y, ref_y) <= tol, (tuple(x.shape), cout, rel_error(y, ref_y))

    dx, dw, db = kernels.conv3d_backward(grad_y.to(dtype), x, w,
                                         y if activation == "relu" else saved, stride, padding,
                                         activation, bias, allow_tf32=allow_tf32,
                                         input_splits=splits)
    assert dx.shape == x.shape and dw.shape == w.shape
    assert rel_error(dx, ref_dx) <= tol, ("dx", tuple(x.shape), cout, rel_error(dx, ref_dx))
    assert rel_error(dw, ref_dw) <= tol, ("dw", tuple(x.shape), cout, rel_error(dw, ref_dw))
    if bias:
        assert rel_error(db, ref_db[0]) <= tol, ("db", rel_error(db, ref_db[0]))
    else:
        assert db.numel() == 0


CASES = [  # kernel, stride, padding, activation, bias
    ((3, 3, 3), (1, 1, 1), (1, 1, 1), "gelu", True),
    ((3, 3, 3), (2, 2, 2), (1, 1, 1), "silu", True),
    ((3, 3, 3), (2, 2, 2), (0, 0, 0), "relu", False),
    ((1, 1, 1), (1, 1, 1), (0, 0, 0), None, True),  # the plain-matmul path
    ((1, 1, 1), (2, 2, 2), (0, 0, 0), "gelu", True),  # stride > kernel: dx has untouched zeros
    ((3, 1, 2), (2, 1, 3), (1, 0, 1), "relu", True),  # per-axis kernel, stride and padding
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"k{c[0]}-s{c[1]}-p{c[2]}-{c[3]}-b{c[4]}")
def test_fp32(case):
    run_case(*case, torch.float32)


@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[5]],
                         ids=lambda c: f"k{c[0]}-s{c[1]}-p{c[2]}-{c[3]}-b{c[4]}")
def test_fp16(case):
    run_case(*case, torch.float16)


def test_more_tiles_than_one():
    """Positions and channels past one block in every GEMM (interpreter blocks: 64 × 16)."""
    run_case((3, 3, 3), (1, 1, 1), (1, 1, 1), "gelu", True, torch.float32, size=(4, 5),
             channels=(17, 20))


@pytest.mark.parametrize("packed", [False, True], ids=["per-tap", "packed"])
def test_packed_and_per_tap_reductions_both_exact(packed):
    """Either reduction order on either side of PACK_BELOW (the auto choice is by Cin)."""
    channels = (17, 19) if packed else (3, 5)
    run_case((3, 3, 3), (2, 2, 2), (1, 1, 1), "gelu", True, torch.float32, channels=channels,
             packed=packed)


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[5]],
                         ids=lambda c: f"k{c[0]}-s{c[1]}-p{c[2]}-{c[3]}-b{c[4]}")
def test_split_k_forward_and_input_grad(case):
    """Three reduction splits in the forward and in dx (fp32 partials, then a fixed-order sum)
    match the float64 reference, and repeat bit for bit."""
    run_case(*case, torch.float32, splits=3, channels=(5, 18))
    x, w = torch.randn(2, 18, 4, 5, 3), torch.randn(7, 18, 3, 3, 3) * 0.1
    runs = [kernels.conv3d_forward(x, w, None, (1,) * 3, (1,) * 3, "relu", splits=3)[0]
            for _ in range(2)]
    assert torch.equal(runs[0], runs[1])


def test_reduction_splits_fill_the_gpu_only_when_tiles_are_few(monkeypatch):
    monkeypatch.setattr(kernels, "_sm_count", lambda device: 132)  # an H100/H200
    cuda = torch.device("cuda")
    # 13b's last layer, batch 1: M = 8 positions x 512 channels = 8 tiles for 132 SMs
    assert kernels.reduction_splits(8, 512, 27 * 8, cuda) == 16
    assert kernels.reduction_splits(1 << 20, 64, 216, cuda) == 1  # tiles enough
    assert kernels.reduction_splits(8, 8, 3, cuda) == 1  # too few steps to split
    monkeypatch.setattr(kernels, "_sm_count", lambda device: 1)
    assert kernels.reduction_splits(64, 64, 100, torch.device("cpu")) == 2


def test_weight_layout_cached_per_version():
    w = torch.nn.Parameter(torch.randn(5, 3, 3, 3, 3))
    first = kernels.weight_layout(w)
    assert kernels.weight_layout(w) is first
    assert torch.equal(first, w.detach().permute(2, 3, 4, 1, 0))
    with torch.no_grad():
        w.mul_(2.0)  # an optimizer step: in place, version bumped
    second = kernels.weight_layout(w)
    assert second is not first and torch.equal(second, w.detach().permute(2, 3, 4, 1, 0))
    # the forward sees the new values
    x = torch.randn(1, 3, 4, 4, 4)
    y = kernels.conv3d_forward(x, w.detach(), None, (1,) * 3, (1,) * 3, None)[0]
    assert rel_error(y, F.conv3d(x.double(), w.detach().double(), None, 1, 1)) <= 1e-5
    key = id(w)
    del w, first, second
    assert key not in kernels._LAYOUTS  # the entry left with its weight


def test_tf32_is_only_used_when_allowed():
    x = torch.randn(1, 3, 4, 4, 4)
    assert kernels._precision(x, allow_tf32=False) == "ieee"
    assert kernels._precision(x, allow_tf32=True) == "tf32"
    assert kernels._precision(x.half(), allow_tf32=True) == "ieee"  # fp16 ignores it anyway


def test_weight_grad_split_k_is_deterministic():
    """dw over several split-K ranges equals the single-range sum and repeats bit for bit."""
    x = torch.randn(2, 3, 5, 7, 6)
    w = torch.randn(4, 3, 3, 3, 3) * 0.1
    stride, padding = (1, 1, 1), (1, 1, 1)
    y, saved = kernels.conv3d_forward(x, w, None, stride, padding, "silu")
    grad_y = torch.randn_like(y)
    args = (grad_y, x, w, saved, stride, padding, "silu", False, False, True)
    m = y.numel() // y.shape[1]
    assert m > 3 * kernels.SPLIT_GRANULE  # so that splits=4 gives several ranges
    split = [kernels.conv3d_backward(*args, splits=4)[1] for _ in range(2)]
    single = kernels.conv3d_backward(*args, splits=1)[1]
    assert torch.equal(split[0], split[1])
    ref_dw = reference(x, w, None, stride, padding, "silu", grad_y.double())[2]
    assert rel_error(split[0], ref_dw) <= 1e-5 and rel_error(single, ref_dw) <= 1e-5


def test_skipped_gradients_are_empty():
    x, w = torch.randn(1, 3, 4, 4, 4), torch.randn(2, 3, 3, 3, 3)
    y, saved = kernels.conv3d_forward(x, w, None, (1,) * 3, (0,) * 3, None)
    dx, dw, db = kernels.conv3d_backward(torch.ones_like(y), x, w, saved, (1,) * 3, (0,) * 3,
                                         None, False, input_grad=False, weight_grad=True)
    assert dx.numel() == 0 and db.numel() == 0
    # all-ones dy: dw[co, ci, tap] = sum of x over the window each tap sees
    expected = torch.stack([x[0, :, i:i + 2, j:j + 2, k:k + 2].sum((1, 2, 3))
                            for i in range(3) for j in range(3) for k in range(3)], -1)
    assert torch.allclose(dw, expected.view(1, 3, 3, 3, 3).expand_as(dw), atol=1e-5)


def test_gelu_is_the_exact_erf_form():
    z = torch.linspace(-4, 4, 17, dtype=torch.float64).view(1, 17, 1, 1, 1)
    w = torch.eye(17).view(17, 17, 1, 1, 1)
    y, saved = kernels.conv3d_forward(z.float(), w, None, (1,) * 3, (0,) * 3, "gelu")
    assert torch.allclose(saved.double(), z)
    assert rel_error(y, F.gelu(z)) <= 1e-6
    assert rel_error(y, F.gelu(z, approximate="tanh")) > 1e-5


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"k{c[0]}-s{c[1]}-p{c[2]}-{c[3]}-b{c[4]}")
def test_gpu_larger_shapes(case, dtype):
    """fp32 stays exact whatever cudnn.allow_tf32 says (the default turns it on)."""
    run_case(*case, dtype, device="cuda", size=(9, 33), batch=4, channels=(13, 150))


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES[:3], ids=lambda c: f"k{c[0]}-s{c[1]}-p{c[2]}-{c[3]}")
def test_gpu_tf32_when_allowed(case):
    run_case(*case, torch.float32, device="cuda", size=(9, 33), batch=4, channels=(13, 150),
             tol=TF32_TOLERANCE, allow_tf32=True)


@pytest.mark.gpu
@pytest.mark.parametrize("splits", [1, 4])
def test_gpu_deep_layer_split_k(splits):
    """A deep layer of the 13b preset (M = 8·1·2·4 = 64): split-K forward and dx."""
    run_case((3, 3, 3), (2, 2, 2), (1, 1, 1), "gelu", True, torch.bfloat16, device="cuda",
             size=(2, 8), batch=8, channels=(256, 256), splits=splits)
