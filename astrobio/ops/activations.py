"""The activations an op can fuse into its epilogue, and their reference forms."""

from __future__ import annotations

import torch
import torch.nn.functional as F

ACTIVATIONS = (None, "relu", "silu", "gelu")


def check_activation(activation: str | None) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {ACTIVATIONS}")


def apply_activation(x: torch.Tensor, activation: str | None) -> torch.Tensor:
    """`activation` applied to `x`; `gelu` is the exact (erf) form."""
    check_activation(activation)
    if activation is None:
        return x
    return {"relu": F.relu, "silu": F.silu, "gelu": F.gelu}[activation](x)
