"""LoRA adapters (Hu et al. 2021) on the frozen LLM's projections, applied from outside.

`LoRALinear` replaces a `nn.Linear` by `base(x) + (alpha / r) * B(A(x))`, `A [r, in]`
(Kaiming-uniform), `B [out, r]` (zeros, so the adapted model starts equal to the base). The
base is frozen; only A and B train. Under tensor parallelism (`tensor_parallel.py`) the adapter
follows its base: for a colwise base (output features sharded) A is replicated and B sharded on
its output dim; for a rowwise base (input features sharded) A is sharded on its input dim, its
`r`-wide partial output reduce-scattered over the sequence, and the replicated B runs on this
rank's sequence slice, where the base's output is.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributed.tensor import DTensor

from astrobio.parallel.mesh import local_box

COLWISE = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")
ROWWISE = ("o_proj", "down_proj")
TARGETS = COLWISE + ROWWISE


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.base = base
        self.base.requires_grad_(False)
        self.scale = alpha / rank
        device = base.weight.device
        self.lora_a = _uninitialised_linear(base.in_features, rank, device)
        self.lora_b = _uninitialised_linear(rank, base.out_features, device)
        self.reset_adapters()

    @torch.no_grad()
    def reset_adapters(self) -> None:
        """A Kaiming-uniform, B zero: the adapted layer equals its base. A sharded A (a DTensor)
        is drawn whole and this rank keeps its shard, so that every rank, and one process with
        the same seed, hold the same matrix."""
        weight = self.lora_a.weight
        if isinstance(weight, DTensor):
            whole = torch.empty(weight.shape, dtype=weight.dtype, device=weight.device)
            nn.init.kaiming_uniform_(whole, a=math.sqrt(5))
            weight.to_local().copy_(whole[local_box(weight)])
        else:
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_b.weight)

    def forward(self, x):
        return self.base(x) + self.lora_b(self.lora_a(x)) * self.scale


def _uninitialised_linear(in_features: int, out_features: int, device) -> nn.Linear:
    """A bias-free Linear whose weight is left uninitialised: the adapters are drawn once, by
    `reset_adapters`, so the random numbers a build consumes do not depend on where it is
    built (a meta-device build draws none)."""
    linear = nn.Linear(in_features, out_features, bias=False, device="meta")
    linear.weight = nn.Parameter(torch.empty(out_features, in_features, device=device))
    return linear


def apply_lora(lm: nn.Module, rank: int, alpha: float) -> int:
    """Freeze every parameter of `lm` (a transformers Llama) and wrap the attention and MLP
    projections of each decoder layer in `LoRALinear`; returns how many were wrapped."""
    lm.requires_grad_(False)
    wrapped = 0
    for layer in lm.model.layers:
        for block in (layer.self_attn, layer.mlp):
            for name in TARGETS:
                base = getattr(block, name, None)
                if isinstance(base, nn.Linear):
                    setattr(block, name, LoRALinear(base, rank, alpha))
                    wrapped += 1
    return wrapped
