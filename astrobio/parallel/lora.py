"""LoRA adapters (Hu et al. 2021) on the frozen LLM's projections, applied from outside.

`LoRALinear` replaces a `nn.Linear` by `base(x) + (alpha / r) * B(A(x))`, `A [r, in]`
(Kaiming-uniform), `B [out, r]` (zeros, so the adapted model starts equal to the base). The
base is frozen; only A and B train. Under tensor parallelism (`tensor_parallel.py`) the adapter
follows its base: for a colwise base (output features sharded) A is replicated and B sharded on
its output dim; for a rowwise base (input features sharded) A is sharded on its input dim and B
replicated, so `B(A(x))` needs one all-reduce of an `r`-wide tensor.
"""

from __future__ import annotations

import math

from torch import nn

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
        factory = {"device": base.weight.device}
        self.lora_a = nn.Linear(base.in_features, rank, bias=False, **factory)
        self.lora_b = nn.Linear(rank, base.out_features, bias=False, **factory)
        self.reset_adapters()

    def reset_adapters(self) -> None:
        """A Kaiming-uniform, B zero: the adapted layer equals its base."""
        nn.init.kaiming_uniform_(self.lora_a.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_b.weight)

    def forward(self, x):
        return self.base(x) + self.lora_b(self.lora_a(x)) * self.scale


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
