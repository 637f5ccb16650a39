"""Cross-modal attention with a key-padding mask.

`q [B, H, Lq, D]`, `k, v [B, H, Lk, D]`, `key_padding_mask [B, Lk]` bool (True = key present).
Equals SDPA with that mask where a query row has at least one key; a row with none outputs 0
and receives 0 gradient, never NaN.
"""

from __future__ import annotations

import math

import torch

from astrobio.ops._backend import select_backend

BACKENDS = ("reference",)


def cross_attention_reference(q, k, v, key_padding_mask=None, scale=None):
    """The ground truth: softmax(q k^T * scale) v in float32, masked keys at weight 0."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
    if key_padding_mask is None:
        weights = torch.softmax(scores, dim=-1)
    else:
        present = key_padding_mask[:, None, None, :]
        # finfo.min rather than -inf: a row with no key stays finite, then is zeroed.
        scores = scores.masked_fill(~present, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1) * present.any(dim=-1, keepdim=True)
    return torch.matmul(weights, v.float()).to(q.dtype)


def cross_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    select_backend("cross_attention", q, BACKENDS)
    return cross_attention_reference(q, k, v, key_padding_mask, scale)
