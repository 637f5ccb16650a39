"""MLP over the planet/star parameter vector `[B, P]` (linear physical units in).

The vector is normalised with `normalisation.PARAM_NORMALISATION` (log10 of positive
quantities, fixed affine) and clamped to +-10 so an absurd value cannot blow up the features.
Pooled feature: the MLP output; tokens: `n_tokens` linear read-outs of the hidden layer.
"""

from __future__ import annotations

import torch
from torch import nn

from astrobio.models.features import ModalityFeatures
from astrobio.models.normalisation import param_normaliser
from astrobio.schema import PARAM_NAMES

NORMALISED_LIMIT = 10.0


class ParamEncoder(nn.Module):
    def __init__(self, hidden: int, d_model: int, n_tokens: int = 2):
        super().__init__()
        self.n_tokens = n_tokens
        self.normalise = param_normaliser()
        self.mlp = nn.Sequential(nn.Linear(len(PARAM_NAMES), hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU())
        self.pooled_proj = nn.Linear(hidden, d_model)
        self.token_proj = nn.Linear(hidden, n_tokens * d_model)

    def forward(self, params: torch.Tensor) -> ModalityFeatures:
        if params.shape[1:] != (len(PARAM_NAMES),):
            raise ValueError(f"ParamEncoder: params {tuple(params.shape)}, expected "
                             f"[B, {len(PARAM_NAMES)}] ordered as {PARAM_NAMES}")
        x = self.normalise(params).clamp(-NORMALISED_LIMIT, NORMALISED_LIMIT)
        hidden = self.mlp(x)
        tokens = self.token_proj(hidden).unflatten(-1, (self.n_tokens, -1))
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return ModalityFeatures(self.pooled_proj(hidden), tokens, mask)
