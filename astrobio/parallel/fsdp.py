"""FSDP2 (`fully_shard`) of everything the plan trains, and of the LLM over data parallelism.

The non-LLM trained modules (encoders, fusion, the LLM's prefix projectors; the system itself as
the root unit, holding the small rest: parameter encoder, text projections, heads) are sharded
over every rank of the job, `dp x tp` flattened: the ranks of one TP group compute the same
gradients for them (they see the same batch, and the LLM's inputs and outputs are replicated
over TP), so sharding over the world instead of `dp` alone splits their parameters, gradients
and AdamW state `tp` times finer at the price of gathering them (with `dp = 1` FSDP over `dp`
would shard nothing). Their gradients are reduce-scattered over the world with the divide factor
`world`, which is the mean over data-parallel ranks since TP peers contribute equal copies.
With `dp > 1` the LLM's decoder layers (TP DTensors already: 2D), its embedding, head and body
are FSDP units over `dp`. Mixed precision on CUDA: bf16 parameters, fp32 gradient reduction,
inputs left as they are (`mixed_precision`).

gloo (the CPU tests) has no AVG reduction, and FSDP2 was reported to sum gradients there instead
of averaging them (pytorch#162338); the plan sets every unit's divide factor, so the gradients
are the mean over data-parallel ranks on every backend, which the tests check against one
process.

FSDP2 warns when a unit returns a view ("an in-place op on this view ... can produce wrong
gradients"): the pre-backward hook it puts on the output would be lost if the output were
modified in place. The units above were chosen so that only the root returns views (its
outputs are `split`/`squeeze` views of the heads' logits); nothing modifies them in place (the
losses are out of place), and the gradient tests against one process show the hook runs, so
that one warning is silenced; modules that return views (the parameter encoder's `unflatten`,
the heads' `split`, a Linear over [B, T, h]) are not units of their own.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

ROOT_VIEW_WARNING = (r"FSDP2-wrapped module \(FSDPUnifiedMultiModalSystem\) returned a view "
                     r"tensor")


def mixed_precision(low_precision: bool) -> MixedPrecisionPolicy:
    """bf16 parameters and fp32 gradient reduction under `low_precision`. Inputs are not cast:
    the encoders read raw observations (transit depths of ~5000 ppm whose features are tens of
    ppm, temperatures of hundreds of kelvin), which bf16's 8 significant bits would blur before
    their normalisation; the trainer's autocast runs the matmuls and convolutions in bf16."""
    if low_precision:
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32,
                                    cast_forward_inputs=False)
    return MixedPrecisionPolicy()


def trained_units(model: nn.Module) -> list[nn.Module]:
    """The non-LLM modules of a `UnifiedMultiModalSystem` that are FSDP units of their own."""
    names = ("climate_encoder", "graph_encoder", "spectrum_encoder", "fusion")
    units = [getattr(model, name) for name in names]
    units += [model.llm.numerical_projector, model.llm.spectral_projector]
    return units


def llm_units(model: nn.Module) -> list[nn.Module]:
    """The modules `MultiModalLLM` calls itself (it never calls the Llama's own forward)."""
    lm = model.llm.lm
    return [*lm.model.layers, lm.model.embed_tokens, lm.lm_head, lm.model]


def world_mesh(mesh: DeviceMesh) -> DeviceMesh:
    """Every rank of the `(dp, tp)` mesh as one dimension."""
    if mesh["tp"].size() == 1:
        return mesh["dp"]
    if mesh["dp"].size() == 1:
        return mesh["tp"]
    return mesh["dp", "tp"]._flatten("dp_tp")


def _shard(module: nn.Module, mesh: DeviceMesh, policy: MixedPrecisionPolicy,
           **kwargs) -> None:
    fully_shard(module, mesh=mesh, mp_policy=policy, **kwargs)
    module.set_gradient_divide_factor(float(mesh.size()))


def apply_fsdp(model: nn.Module, mesh: DeviceMesh, extra: list[nn.Module] = (),
               low_precision: bool | None = None) -> None:
    """Shard `model` (a `UnifiedMultiModalSystem`) and the `extra` trained modules over the
    `(dp, tp)` `mesh` (module docstring); `low_precision` (default: on CUDA) computes in bf16."""
    if low_precision is None:
        low_precision = mesh.device_type == "cuda"
    policy = mixed_precision(low_precision)
    world = world_mesh(mesh)
    for unit in trained_units(model) + list(extra):
        _shard(unit, world, policy)
    dp = mesh["dp"]
    if dp.size() > 1:
        for unit in llm_units(model):
            _shard(unit, dp, policy)
    # The whole system is the root unit, so each unit above reshards (frees its gathered
    # copy) after its forward; LLM parameters left to TP alone (dp = 1) are not the root's.
    ignored = None if dp.size() > 1 else set(model.llm.lm.parameters())
    _shard(model, world, policy, ignored_params=ignored)
    warnings.filterwarnings("ignore", message=ROOT_VIEW_WARNING, category=UserWarning)


def fsdp_modules(model: nn.Module) -> list[FSDPModule]:
    return [m for m in model.modules() if isinstance(m, FSDPModule)]
