"""3D CNN over the climate datacube `[B, V, Z, H, W]` (variables as channels).

Each block is one `astrobio.ops.conv3d` (kernel 3, stride 2, padding 1, GELU fused) followed
by a GroupNorm; the spatial grid halves per block (`ceil(n / 2)`). The input is normalised
with the fixed per-variable affine of `normalisation.CLIMATE_NORMALISATION` and converted to
channels-last-3d, the layout the fused kernel and oneDNN prefer.

Tokens are the final feature map's grid positions (`z * h * w` of them, e.g. 1 x 2 x 4 for the
tiny `[4, 8, 16, 32]` cube) projected to `d_model` plus a learned position embedding; the pooled
feature is their mean.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from astrobio.models.features import ModalityFeatures
from astrobio.models.normalisation import climate_normaliser
from astrobio.ops import conv3d


def _halved(n: int, times: int) -> int:
    for _ in range(times):
        n = (n + 1) // 2  # kernel 3, stride 2, padding 1
    return n


class Conv3dBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, groups: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 3, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.kaiming_normal_(self.weight, nonlinearity="relu")
        self.norm = nn.GroupNorm(math.gcd(groups, out_channels), out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = conv3d(x, self.weight, self.bias, stride=2, padding=1, activation="gelu")
        return self.norm(x)


class DatacubeCNN(nn.Module):
    def __init__(self, climate_shape: tuple[int, int, int, int], channels: tuple[int, ...],
                 d_model: int, groups: int = 8):
        super().__init__()
        n_vars, *grid = climate_shape
        self.climate_shape = tuple(climate_shape)
        self.normalise = climate_normaliser()
        widths = (n_vars, *channels)
        self.blocks = nn.ModuleList(
            Conv3dBlock(c_in, c_out, groups) for c_in, c_out in itertools.pairwise(widths)
        )
        self.out_grid = tuple(_halved(n, len(channels)) for n in grid)
        self.n_tokens = math.prod(self.out_grid)
        self.token_proj = nn.Linear(channels[-1], d_model)
        self.position = nn.Parameter(torch.zeros(self.n_tokens, d_model))
        nn.init.normal_(self.position, std=0.02)
        self.pooled_proj = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, d_model))

    def forward(self, climate: torch.Tensor) -> ModalityFeatures:
        if tuple(climate.shape[1:]) != self.climate_shape:
            raise ValueError(f"DatacubeCNN: climate {tuple(climate.shape)} does not match the "
                             f"configured [B, {', '.join(map(str, self.climate_shape))}]")
        x = self.normalise(climate).contiguous(memory_format=torch.channels_last_3d)
        for block in self.blocks:
            x = block(x)
        tokens = self.token_proj(x.flatten(2).transpose(1, 2)) + self.position
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return ModalityFeatures(self.pooled_proj(tokens.mean(1)), tokens, mask)
