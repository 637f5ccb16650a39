"""1D CNN over the transmission spectrum's wavelength bins, honouring the valid-bin mask.

Per sample, over the observed bins only: `median` of the depth and `scale` = RMS of
`depth - median` (at least 1 ppm). The network sees three channels per bin,
`(depth - median) / scale`, `err / scale` and the mask, all zeroed where the bin is not observed,
and three global scalars, `log10(median)`, `log10(scale)` (ppm, floored at 1) and the observed
fraction, which keep the absolute depth (planet size) the per-sample normalisation removes.

Three strided conv layers (kernel 5, stride 2) halve the bins each; after each, features are
re-zeroed where no observed bin falls in the window, so a masked bin contributes nothing but
what the mask channel says. Tokens: the features average-pooled over the observed bins into
`n_tokens` windows (mask = window has an observed bin); pooled: a masked mean plus the globals.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from astrobio.models.features import ModalityFeatures, learned_embeddings, masked_mean

N_DOWNSAMPLE = 3


class SpectralEncoder(nn.Module):
    def __init__(self, n_bins: int, channels: int, d_model: int, n_tokens: int = 16):
        super().__init__()
        self.n_bins = n_bins
        widths = (3, channels, channels, channels)
        self.convs = nn.ModuleList(
            nn.Conv1d(c_in, c_out, kernel_size=5, stride=2, padding=2)
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )
        final_bins = n_bins
        for _ in range(N_DOWNSAMPLE):
            final_bins = (final_bins + 1) // 2
        self.n_tokens = min(n_tokens, final_bins)
        self.token_proj = nn.Linear(channels, d_model)
        self.position = learned_embeddings(self.n_tokens, d_model)
        self.pooled_proj = nn.Sequential(nn.Linear(channels + 3, d_model), nn.GELU(),
                                         nn.Linear(d_model, d_model))

    @staticmethod
    def normalise(spectrum, spectrum_err, mask):
        """(inputs [B, 3, L], globals [B, 3]) as described in the module docstring."""
        observed = mask.to(spectrum.dtype)
        median = torch.nanmedian(spectrum.masked_fill(~mask, float("nan")), dim=1).values
        median = torch.nan_to_num(median, nan=0.0)
        residual = (spectrum - median[:, None]) * observed
        n_observed = observed.sum(1)
        rms = (residual.square().sum(1) / n_observed.clamp(min=1)).sqrt()
        scale = rms.clamp(min=1.0)
        inputs = torch.stack(
            [residual / scale[:, None], spectrum_err * observed / scale[:, None], observed], dim=1
        )
        globals_ = torch.stack(
            [torch.log10(median.clamp(min=1.0)), torch.log10(scale), n_observed / mask.shape[1]],
            dim=1,
        )
        return inputs, globals_

    def forward(self, spectrum: torch.Tensor, spectrum_err: torch.Tensor,
                mask: torch.Tensor) -> ModalityFeatures:
        if spectrum.shape[1] != self.n_bins:
            raise ValueError(f"SpectralEncoder: spectrum {tuple(spectrum.shape)}, expected "
                             f"[B, {self.n_bins}]")
        x, globals_ = self.normalise(spectrum, spectrum_err, mask)
        window_observed = mask[:, None, :].to(x.dtype)
        for conv in self.convs:
            window_observed = F.max_pool1d(window_observed, 5, stride=2, padding=2)
            x = F.gelu(conv(x)) * window_observed
        observed = window_observed[:, 0] > 0  # [B, L']
        token_sum = F.adaptive_avg_pool1d(x, self.n_tokens)
        token_count = F.adaptive_avg_pool1d(window_observed, self.n_tokens)
        token_mask = token_count[:, 0] > 0
        tokens = token_sum / token_count.clamp(min=1e-6)
        tokens = self.token_proj(tokens.transpose(1, 2)) + self.position
        tokens = torch.where(token_mask[:, :, None], tokens, 0.0)
        pooled_in = torch.cat([masked_mean(x.transpose(1, 2), observed, dim=1), globals_], -1)
        return ModalityFeatures(self.pooled_proj(pooled_in), tokens, token_mask)
