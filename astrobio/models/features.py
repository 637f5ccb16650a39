"""What every encoder hands to the fusion layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ModalityFeatures:
    """One modality's features for a batch of B samples.

    pooled  [B, d]     one summary vector per sample
    tokens  [B, n, d]  a short sequence for cross-modal attention
    mask    [B, n]     bool, True where the token carries data
    """

    pooled: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor

    def masked_by(self, present: torch.Tensor) -> ModalityFeatures:
        """Zero every feature of samples whose `present [B]` is False.

        Selecting with `where` (rather than indexing) keeps shapes static and makes both the
        values and the gradients of an absent modality exactly zero, whatever its inputs were.
        """
        return ModalityFeatures(
            pooled=torch.where(present[:, None], self.pooled, 0.0),
            tokens=torch.where(present[:, None, None], self.tokens, 0.0),
            mask=self.mask & present[:, None],
        )


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of `x` over `dim` where `mask` (broadcast to `x`) is True; 0 where none is."""
    weight = mask.to(x.dtype)
    while weight.dim() < x.dim():
        weight = weight.unsqueeze(-1)
    return (x * weight).sum(dim) / weight.sum(dim).clamp(min=1.0)


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[B, L, H*D] -> [B, H, L, D]"""
    return x.unflatten(-1, (n_heads, -1)).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, L, D] -> [B, L, H*D]"""
    return x.transpose(1, 2).flatten(2)


def learned_embeddings(n: int, d_model: int) -> nn.Parameter:
    """`n` learned vectors (queries, positions, modality embeddings), initialised N(0, 0.02²)."""
    return nn.Parameter(nn.init.normal_(torch.empty(n, d_model), std=0.02))
