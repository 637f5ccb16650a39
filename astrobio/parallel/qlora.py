"""QLoRA (Dettmers et al. 2023): the frozen base of every LoRA-wrapped projection held in NF4.

`quantize_base` replaces the weight of each `LoRALinear.base` by torchao's `NF4Tensor`: 4-bit
NormalFloat codes, two per byte, in blocks of `BLOCK` = 64 values; each block's absmax scale
double-quantized to int8 in blocks of `SCALER_BLOCK` = 256 scales, each such block with one
scale of the weight's dtype (bf16 on a GPU), and one mean and the 16-entry code table per
weight. Bytes per weight (`nf4_bytes`): 0.5 + 1/64 + 2/(64 * 256) = 0.5157 in bf16, against 2.
`F.linear` on an NF4 weight dequantizes it to the input's dtype for the product, in the
forward and in the input-gradient of the backward (torchao's `LinearNF4`); the base has no
gradient of its own, so the adapters train exactly as over the dequantized base. The
embedding, norms and `lm_head` stay in bf16, as in the paper.

Loading: on the meta device `quantize_base` leaves an NF4 placeholder (meta inner tensors of the
real sizes), and `load.materialize` fills it from its source one weight at a time: the whole
weight read in the base's dtype, quantized, the full-precision copy dropped before the next
weight is read. So a rank holds the NF4 base and at most one projection's weight in bf16 (plus
torchao's quantization temporaries of that one weight), never the bf16 base. Quantizing needs
the whole weight (the double quantization subtracts the mean of all its block scales), so with
an NF4 base the plan materializes before FSDP shards (`parallelize`): each rank quantizes the
whole base, then `fully_shard` keeps its rows (torchao defines how an NF4 tensor splits along
dim 0 and is all-gathered: codes, int8 scales and second-level scales are sharded, the mean and
code table replicated).

Refused (`check_compatible`, a `ConfigError`): `tp > 1` (torchao's NF4 tensor has no DTensor
sharding rules for tensor parallelism; data parallelism shards it instead) and an NF4 base
without LoRA adapters (nothing would train on it). With FSDP over `dp` ranks each projection's
rows must split evenly and each shard must hold whole second-level blocks (`scaler_block`).

The planner measures the NF4 plan on fake tensors with these same NF4 tensors: torchao's
quantization runs on fake tensors (a fake weight gives fake codes and scales of the real
sizes); what failed under `FakeTensorMode` was `to_empty` on an NF4 parameter, which the load
path above never calls (a placeholder is replaced, not emptied). Install:
`pip install 'astrobio[qlora]'`.
"""

from __future__ import annotations

import torch
from torch import nn

from astrobio.config import ParallelConfig
from astrobio.errors import ConfigError
from astrobio.parallel.lora import LoRALinear

BLOCK = 64  # values per absmax scale (QLoRA's block size)
SCALER_BLOCK = 256  # scales per second-level (double-quantization) scale


def nf4_bytes(numel: float, dtype_bytes: int = 2) -> float:
    """Bytes of `numel` NF4 weights quantized from a `dtype_bytes` dtype (the per-weight mean
    and 16-entry code table left out: 34 bytes a projection)."""
    return numel * (0.5 + 1 / BLOCK + dtype_bytes / (BLOCK * SCALER_BLOCK))


def check_compatible(parallel: ParallelConfig, tp: int) -> None:
    """A `ConfigError` for what an NF4 base does not support (module docstring)."""
    if parallel.quantize_base != "nf4":
        return
    if parallel.lora_rank < 1:
        raise ConfigError("parallel.quantize_base=nf4 quantizes the frozen base under LoRA "
                          "adapters; set parallel.lora_rank >= 1")
    if tp > 1:
        raise ConfigError(f"parallel.quantize_base=nf4 needs parallel.tp=1 (got {tp}): "
                          "torchao's NF4 tensor has no tensor-parallel sharding rules; use "
                          "data parallelism (FSDP2 shards the NF4 base over dp)")


def _to_nf4():
    try:
        from torchao.quantization.quantize_.workflows.nf4.nf4_tensor import to_nf4
    except ImportError:
        raise ConfigError("parallel.quantize_base=nf4 needs torchao: pip install "
                          "'astrobio[qlora]'") from None
    return to_nf4


def is_nf4(tensor: torch.Tensor) -> bool:
    return type(tensor).__name__ == "NF4Tensor"


def scaler_block(numel: int, shards: int = 1) -> int:
    """QLoRA's 256 scales per second-level block, or the largest power of two below it that
    divides each FSDP shard's blocks (torchao splits an NF4 tensor only between whole
    second-level blocks; the 13b projections take 256, small test models fewer)."""
    blocks = numel // BLOCK // shards
    size = SCALER_BLOCK
    while size > 1 and blocks % size:
        size //= 2
    return size


def quantize(weight: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`weight` in NF4 with the block sizes of the NF4 tensor `like` (a placeholder)."""
    return _to_nf4()(weight, like.block_size, like.scaler_block_size)


def quantize_base(lm: nn.Module, shards: int = 1) -> int:
    """Replace the base weight of every `LoRALinear` in `lm` by its NF4 tensor, splittable into
    `shards` FSDP shards; returns how many. A weight on the meta device becomes an NF4
    placeholder that `load.materialize` fills (module docstring)."""
    to_nf4 = _to_nf4()
    count = 0
    for module in lm.modules():
        if isinstance(module, LoRALinear):
            weight = module.base.weight
            if weight.shape[0] % shards or weight.numel() % (BLOCK * shards):
                raise ConfigError(f"parallel.quantize_base=nf4 over {shards} FSDP shards needs "
                                  f"rows divisible by {shards} and {BLOCK} values per shard; "
                                  f"a projection has shape {tuple(weight.shape)}")
            nf4 = to_nf4(weight.detach(), BLOCK, scaler_block(weight.numel(), shards))
            module.base.weight = nn.Parameter(nf4, requires_grad=False)
            count += 1
    return count
