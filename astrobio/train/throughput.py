"""Tokens per second and model FLOPs utilisation (MFU) of a training step.

Model FLOPs per LLM position (prefix included): 2N forward + 2N input gradients + 2N_trained
weight gradients + 12 L h s attention (PaLM's count without recomputation, so MFU, not HFU),
over the job's peak dense bf16 FLOP/s.
"""

from __future__ import annotations

import torch

# Dense bf16 tensor-core peaks (datasheets; H200 as measured here, DESIGN.md), by device name.
PEAK_BF16_FLOPS = {"A5000": 111e12, "A100": 312e12, "H100": 989e12, "H200": 790e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_FLOPS.items() if key in name), None)


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(all, trained) parameters; a DTensor's numel is the global one. Fixed during a run, so
    counted once rather than every step."""
    n_all = sum(p.numel() for p in model.parameters())
    n_trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return n_all, n_trained


def flops_per_token(counts: tuple[int, int], lm_config, seq_len: int) -> float:
    """Training FLOPs per LLM position for `parameter_counts` `counts`, without recomputation
    (so MFU, not HFU)."""
    n_all, n_trained = counts
    attention = 12 * lm_config.num_hidden_layers * lm_config.hidden_size * seq_len
    return 4 * n_all + 2 * n_trained + attention


class Throughput:
    """Tokens/s and MFU of the steps of one run of `model` on `world` ranks of `device`."""

    def __init__(self, model: torch.nn.Module, device: torch.device, world: int):
        peak = peak_flops(device)
        self.job_peak = peak * world if peak else None
        self.counts = parameter_counts(model) if self.job_peak else None
        self.lm_config = model.llm.lm.config

    def measure(self, positions: int, seconds: float, seq_len: int) -> tuple[float, float | None]:
        """(tokens/s, MFU or None where the peak is unknown) of a step over `positions` LLM
        positions (all ranks) of length-`seq_len` sequences."""
        tokens_per_s = positions / seconds
        if not self.job_peak:
            return tokens_per_s, None
        flops = flops_per_token(self.counts, self.lm_config, seq_len)
        return tokens_per_s, flops * tokens_per_s / self.job_peak
