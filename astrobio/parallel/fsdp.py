"""FSDP2 (`fully_shard`) over the `dp` mesh dimension for everything the plan trains.

Encoders, fusion, heads, the LLM's prefix projectors and the text projections each become one
FSDP unit (parameters, gradients and optimizer state sharded over `dp`), under the whole
system as the root unit. With `dp > 1` the
LLM's decoder layers (already TP-sharded DTensors: 2D) and the rest of the LLM are FSDP units
too. Mixed precision: bf16 parameters and fp32 gradient reduction on CUDA, fp32 on the CPU.

gloo (the CPU tests) has no AVG reduction, and FSDP2 was reported to sum gradients there
instead of averaging them (pytorch#162338). With torch 2.13 the dp=2 test sees the mean with or
without `set_gradient_divide_factor(dp)`; the plan sets it anyway, so the gradients are the
mean over data-parallel ranks on every backend and version, which that test checks against
one process.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard


def mixed_precision(low_precision: bool) -> MixedPrecisionPolicy:
    if low_precision:
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def trained_units(model: nn.Module) -> list[nn.Module]:
    """The non-LLM modules of a `UnifiedMultiModalSystem`, one FSDP unit each."""
    names = ("climate_encoder", "graph_encoder", "spectrum_encoder", "param_encoder",
             "text_token_proj", "text_pooled_proj", "fusion", "heads")
    units = [getattr(model, name) for name in names]
    units += [model.llm.numerical_projector, model.llm.spectral_projector]
    return units


def llm_units(model: nn.Module) -> list[nn.Module]:
    """The modules `MultiModalLLM` calls itself (it never calls the Llama's own forward)."""
    lm = model.llm.lm
    return [*lm.model.layers, lm.model.embed_tokens, lm.lm_head, lm.model]


def _shard(module: nn.Module, mesh: DeviceMesh, policy: MixedPrecisionPolicy) -> None:
    fully_shard(module, mesh=mesh, mp_policy=policy)
    module.set_gradient_divide_factor(float(mesh.size()))


def apply_fsdp(model: nn.Module, dp_mesh: DeviceMesh, extra: list[nn.Module] = (),
               low_precision: bool | None = None) -> None:
    """Shard `model` (a `UnifiedMultiModalSystem`) and `extra` modules over `dp_mesh`;
    `low_precision` (default: on CUDA) computes in bf16."""
    if low_precision is None:
        low_precision = dp_mesh.device_type == "cuda"
    policy = mixed_precision(low_precision)
    units = trained_units(model) + list(extra)
    if dp_mesh.size() > 1:
        units += llm_units(model)
    for unit in units:
        _shard(unit, dp_mesh, policy)
    # The whole system is the root unit, so each unit above reshards (frees its gathered
    # copy) after its forward; parameters left to TP alone (dp = 1) are the root's to ignore.
    ignored = None if dp_mesh.size() > 1 else set(model.llm.lm.parameters())
    fully_shard(model, mesh=dp_mesh, mp_policy=policy, ignored_params=ignored)
    model.set_gradient_divide_factor(float(dp_mesh.size()))


def fsdp_modules(model: nn.Module) -> list[FSDPModule]:
    return [m for m in model.modules() if isinstance(m, FSDPModule)]
