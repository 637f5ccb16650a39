"""`astrobio.ops.conv3d` with the triton backend: backend switching, memory formats, the
custom op's fake and autograd registrations, errors, and DatacubeCNN with either backend."""

import copy

import pytest
import torch
import torch.nn.functional as F

from astrobio import ops
from astrobio.kernels import conv3d as kernels
from astrobio.models.datacube_cnn import DatacubeCNN
from astrobio.ops.conv3d import conv3d_fused, conv3d_fused_backward, conv3d_reference


def rel_error(out, ref):
    return ((out.double() - ref.double()).norm() / ref.double().norm()).item()


@pytest.fixture
def forward_calls(monkeypatch):
    """Counts launches of the triton forward."""
    calls = []
    launch = kernels.conv3d_forward

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return launch(*args, **kwargs)

    monkeypatch.setattr(kernels, "conv3d_forward", counted)
    return calls


def test_backend_switch(forward_calls, monkeypatch):
    x, w = torch.randn(1, 3, 4, 5, 3), torch.randn(2, 3, 3, 3, 3)
    expected = F.silu(F.conv3d(x, w, None, 1, 1))
    assert torch.allclose(ops.conv3d(x, w, padding=1, activation="silu"), expected)
    assert not forward_calls  # auto on the CPU: the reference
    with ops.use_backend("triton"):
        out = ops.conv3d(x, w, padding=1, activation="silu")
    assert len(forward_calls) == 1 and rel_error(out, expected) <= 1e-5
    monkeypatch.setenv("ASTROBIO_BACKEND", "triton")
    ops.conv3d(x, w, padding=1, activation="silu")
    assert len(forward_calls) == 2
    with ops.use_backend("reference"):
        ops.conv3d(x, w, padding=1, activation="silu")
    assert len(forward_calls) == 2


@pytest.mark.parametrize("layout", ["contiguous", "channels_last_3d", "strided_view"])
def test_any_memory_format_same_values(layout):
    x = torch.randn(2, 5, 5, 7, 6, dtype=torch.float64)
    if layout == "channels_last_3d":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    elif layout == "strided_view":  # neither layout: a channel slice of a permuted tensor
        x = torch.randn(2, 7, 6, 5, 8, dtype=torch.float64).permute(0, 4, 3, 1, 2)[:, 1:6]
    w = torch.randn(4, 5, 3, 3, 3, dtype=torch.float64) * 0.2
    b = torch.randn(4, dtype=torch.float64)
    with ops.use_backend("triton"):
        out = ops.conv3d(x.float(), w.float(), b.float(), stride=2, padding=1,
                         activation="gelu")
    assert out.is_contiguous(memory_format=torch.channels_last_3d)
    assert rel_error(out, conv3d_reference(x, w, b, 2, 1, "gelu")) <= 1e-5


@pytest.mark.parametrize("activation", [None, "relu", "silu", "gelu"])
def test_autograd_wiring(activation):
    """Gradients reach exactly the inputs that require them, and match float64 autograd."""
    x64 = torch.randn(2, 3, 5, 4, 3, dtype=torch.float64)
    w64 = torch.randn(5, 3, 3, 1, 3, dtype=torch.float64) * 0.3
    b64 = torch.randn(5, dtype=torch.float64)
    x, w, b = (t.float().requires_grad_() for t in (x64, w64, b64))
    b.requires_grad_(activation != "relu")  # a bias that needs no gradient
    with ops.use_backend("triton"):
        y = ops.conv3d(x, w, b, stride=(2, 1, 2), padding=(1, 0, 1), activation=activation)
    grad_y = torch.randn(y.shape, dtype=torch.float64)
    y.backward(grad_y.float())
    refs = [t.clone().requires_grad_() for t in (x64, w64, b64)]
    ref_y = conv3d_reference(*refs, (2, 1, 2), (1, 0, 1), activation)
    ref_y.backward(grad_y)
    assert rel_error(y, ref_y) <= 1e-5
    assert rel_error(x.grad, refs[0].grad) <= 1e-5 and rel_error(w.grad, refs[1].grad) <= 1e-5
    if activation == "relu":
        assert b.grad is None
    else:
        assert rel_error(b.grad, refs[2].grad) <= 1e-5


def test_input_needing_no_gradient_skips_dx(monkeypatch):
    asked = []
    backward = kernels.conv3d_backward

    def recorded(*args, **kwargs):
        asked.append(args[8:10])  # (input_grad, weight_grad)
        return backward(*args, **kwargs)

    monkeypatch.setattr(kernels, "conv3d_backward", recorded)
    x, w = torch.randn(1, 2, 3, 3, 3), torch.randn(3, 2, 3, 3, 3, requires_grad=True)
    with ops.use_backend("triton"):
        ops.conv3d(x, w, stride=2, padding=1, activation="gelu").sum().backward()
    assert asked == [(False, True)] and w.grad is not None


def test_custom_ops_pass_opcheck():
    """Schema, fake (meta) impl, and autograd registration are consistent with the kernels."""
    x, w, b = torch.randn(2, 3, 5, 4, 3), torch.randn(4, 3, 3, 3, 3), torch.randn(4)
    args = (x, w, b, [2, 1, 2], [1, 1, 0], "gelu", False)
    torch.library.opcheck(conv3d_fused, args)
    y, saved = conv3d_fused(*args)
    grad_y = torch.randn_like(y)
    torch.library.opcheck(conv3d_fused_backward,
                          (grad_y, x, w, saved, [2, 1, 2], [1, 1, 0], "gelu", True, True, True,
                           False),
                          test_utils=("test_schema", "test_faketensor"))


def test_fake_tensors_give_shapes_and_layout():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(), ops.use_backend("triton"):
        x = torch.empty(8, 4, 16, 32, 64)
        w = torch.empty(32, 4, 3, 3, 3)
        y = ops.conv3d(x, w, torch.empty(32), stride=2, padding=1, activation="silu")
    assert y.shape == (8, 32, 8, 16, 32)
    assert y.is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "kwargs", "message"),
    [
        ((1, 4, 5, 5, 5), (3, 2, 3, 3, 3), {}, "groups=1"),
        ((1, 2, 5, 5), (3, 2, 3, 3, 3), {}, r"x \[N, Cin, D, H, W\]"),
        ((1, 2, 2, 5, 5), (3, 2, 3, 3, 3), {}, "smaller than the kernel"),
        ((1, 2, 5, 5, 5), (3, 2, 3, 3, 3), {"stride": 0}, "stride"),
        ((1, 2, 5, 5, 5), (3, 2, 3, 3, 3), {"padding": (1, 1)}, "padding must be"),
    ],
)
def test_bad_input_is_a_clear_error(x_shape, w_shape, kwargs, message):
    with ops.use_backend("triton"), pytest.raises(ValueError, match=message):
        ops.conv3d(torch.randn(x_shape), torch.randn(w_shape), **kwargs)


def test_unsupported_dtype_is_a_clear_error():
    x, w = torch.randn(1, 2, 3, 3, 3, dtype=torch.float64), torch.randn(2, 2, 1, 1, 1)
    with ops.use_backend("triton"), pytest.raises(ValueError, match="share one dtype"):
        ops.conv3d(x, w.double())
    with ops.use_backend("triton"), pytest.raises(ValueError, match="share one dtype"):
        ops.conv3d(x.float(), w.half())


def test_datacube_cnn_same_outputs_and_gradients_with_either_backend():
    """The triton model in fp32 against the reference model in float64."""
    model = DatacubeCNN((4, 3, 5, 6), channels=(5, 7), d_model=8, groups=2)
    model64 = copy.deepcopy(model).double()
    climate = torch.randn(2, 4, 3, 5, 6) * 3 + 1
    with ops.use_backend("triton"):
        out = model(climate)
    with ops.use_backend("reference"):
        ref = model64(climate.double())
    assert rel_error(out.pooled, ref.pooled) <= 1e-5
    assert rel_error(out.tokens, ref.tokens) <= 1e-5
    w_tokens, w_pooled = torch.randn_like(ref.tokens), torch.randn_like(ref.pooled)
    ((out.tokens * w_tokens.float()).sum() + (out.pooled * w_pooled.float()).sum()).backward()
    ((ref.tokens * w_tokens).sum() + (ref.pooled * w_pooled).sum()).backward()
    for (name, p), p64 in zip(model.named_parameters(), model64.parameters(), strict=True):
        assert rel_error(p.grad, p64.grad) <= 1e-5, name


@pytest.mark.gpu
def test_gpu_autocast_runs_in_bf16():
    x = torch.randn(2, 3, 7, 9, 8, device="cuda")
    w = torch.randn(16, 3, 3, 3, 3, device="cuda", requires_grad=True)
    b = torch.randn(16, device="cuda", requires_grad=True)
    with torch.autocast("cuda", dtype=torch.bfloat16), ops.use_backend("triton"):
        y = ops.conv3d(x, w, b, stride=2, padding=1, activation="gelu")
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert w.grad.dtype == torch.float32
    ref = conv3d_reference(x.double(), w.double(), b.double(), 2, 1, "gelu")
    assert rel_error(y, ref) <= 2e-2
