"""The plain-PyTorch references against hand-computed cases and independent formulations."""

import math

import pytest
import torch
import torch.nn.functional as F

from astrobio import ops
from astrobio.ops.cross_attention import cross_attention_reference
from astrobio.ops.spmm import spmm_reference


def test_spmm_hand_computed():
    # rows: 0 <- {1 (w=2), 2 (w=-1)}, 1 <- {}, 2 <- {0, 0}
    rowptr = torch.tensor([0, 2, 2, 4])
    col = torch.tensor([1, 2, 0, 0])
    w = torch.tensor([2.0, -1.0, 1.0, 3.0])
    x = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    assert torch.equal(spmm_reference(rowptr, col, x, w, "sum"),
                       torch.tensor([[1.0, 10.0], [0.0, 0.0], [4.0, 40.0]]))
    assert torch.equal(spmm_reference(rowptr, col, x, w, "mean"),
                       torch.tensor([[0.5, 5.0], [0.0, 0.0], [2.0, 20.0]]))
    assert torch.equal(spmm_reference(rowptr, col, x, w, "max"),
                       torch.tensor([[4.0, 40.0], [0.0, 0.0], [3.0, 30.0]]))


def test_cross_attention_matches_sdpa_and_zeroes_empty_rows():
    b, h, lq, lk, d = 3, 2, 5, 7, 16
    q, k, v = (torch.randn(b, h, n, d, dtype=torch.float64) for n in (lq, lk, lk))
    mask = torch.rand(b, lk) > 0.4
    mask[0] = False  # no key at all
    mask[1, 0] = True
    out = cross_attention_reference(q, k, v, mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
    assert torch.allclose(out[1:], expected[1:])
    assert torch.equal(out[0], torch.zeros_like(out[0]))
    q.requires_grad_(True)
    cross_attention_reference(q, k, v, mask).sum().backward()
    assert torch.isfinite(q.grad).all() and torch.equal(q.grad[0], torch.zeros_like(q.grad[0]))


def test_cross_attention_scale():
    q, k, v = (torch.randn(1, 1, 3, 8, dtype=torch.float64) for _ in range(3))
    scores = (q @ k.transpose(-1, -2)) * 0.3
    assert torch.allclose(cross_attention_reference(q, k, v, scale=0.3),
                          torch.softmax(scores, -1) @ v)
    assert not math.isclose(0.3, 1 / math.sqrt(8))


def test_backend_selection():
    x = torch.randn(1, 2, 3, 3, 3)
    w = torch.randn(2, 2, 1, 1, 1)
    with ops.use_backend("reference"):
        assert torch.allclose(ops.conv3d(x, w, activation="relu"), F.relu(F.conv3d(x, w)))
    with pytest.raises(ValueError, match="backend"), ops.use_backend("cuda"):
        ops.conv3d(x, w)
    with pytest.raises(ValueError, match="unknown kernel backend"):
        ops.use_backend("fast").__enter__()
    with pytest.raises(ValueError, match="activation"):
        ops.conv3d(x, w, activation="tanh")
