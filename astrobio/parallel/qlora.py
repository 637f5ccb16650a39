"""QLoRA (Dettmers et al. 2023): the frozen base of every LoRA-wrapped projection held in NF4.

`quantize_base` replaces the weight of each `LoRALinear.base` by torchao's `NF4Tensor` (4-bit
NormalFloat in blocks of 64 values, each block's absmax scale double-quantized to int8 in
blocks of 256): 0.5 byte per weight plus 1/64 + 4/(64 * 256) for the scales, 0.516 in all,
against 2 in bf16. `F.linear` on an NF4 weight dequantizes it to the input's dtype for the
product, in the forward and in the input-gradient of the backward (torchao's `LinearNF4`); the
base has no gradient of its own, so the adapters train exactly as over the dequantized base.
The embedding, the final norm and `lm_head` stay in bf16, as in the paper.

torchao's NF4Tensor composes with FSDP2 (it defines how its shards are all-gathered), so the
quantized base can be sharded over data-parallel ranks; it has no DTensor sharding rules for
tensor parallelism, so QLoRA runs with `tp = 1` (`check_compatible`). Quantizing needs the real
weights: the base is materialized before FSDP shards it (`parallelize`). Install with
`pip install 'astrobio[qlora]'`.
"""

from __future__ import annotations

from torch import nn

from astrobio.config import ParallelConfig
from astrobio.errors import ConfigError
from astrobio.parallel.lora import LoRALinear

BLOCK = 64  # values per absmax scale (QLoRA's block size)
SCALER_BLOCK = 256  # scales per second-level (double-quantization) scale
NF4_BYTES_PER_PARAM = 0.5 + 1 / BLOCK + 4 / (BLOCK * SCALER_BLOCK)


def check_compatible(parallel: ParallelConfig, tp: int) -> None:
    if parallel.quantize_base != "nf4":
        return
    if parallel.lora_rank < 1:
        raise ConfigError("parallel.quantize_base=nf4 quantizes the frozen base of LoRA "
                          "adapters; set parallel.lora_rank >= 1")
    if tp > 1:
        raise ConfigError("parallel.quantize_base=nf4 needs parallel.tp=1: torchao's NF4 "
                          "tensor has no tensor-parallel sharding rules (use data "
                          "parallelism: FSDP2 shards the NF4 base)")


def _nf4():
    try:
        from torchao.quantization.quantize_.workflows.nf4.nf4_tensor import to_nf4
    except ImportError:
        raise ConfigError("parallel.quantize_base=nf4 needs torchao: pip install "
                          "'astrobio[qlora]'") from None
    return to_nf4


def scaler_block(numel: int, shards: int = 1) -> int:
    """QLoRA's 256 scales per second-level block, or the largest power of two below it that
    divides each FSDP shard's blocks (torchao splits an NF4 tensor only between whole
    second-level blocks; the 13b projections take 256, small test models fewer)."""
    blocks = numel // BLOCK // shards
    size = SCALER_BLOCK
    while size > 1 and blocks % size:
        size //= 2
    return size


def quantize_base(lm: nn.Module, shards: int = 1) -> int:
    """Replace the base weight of every `LoRALinear` in `lm` by its NF4 tensor, splittable into
    `shards` FSDP shards; returns how many. Weights must be real (not meta), with rows
    divisible by `shards` and a multiple of `BLOCK` values per shard."""
    to_nf4 = _nf4()
    count = 0
    for module in lm.modules():
        if isinstance(module, LoRALinear):
            weight = module.base.weight
            if weight.shape[0] % shards or weight.numel() % (BLOCK * shards):
                raise ConfigError(f"NF4 over {shards} FSDP shards needs rows divisible by "
                                  f"{shards} and {BLOCK} values per shard; a projection has "
                                  f"shape {tuple(weight.shape)}")
            nf4 = to_nf4(weight.detach(), BLOCK, scaler_block(weight.numel(), shards))
            module.base.weight = nn.Parameter(nf4, requires_grad=False)
            count += 1
    return count
