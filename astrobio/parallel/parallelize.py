"""`parallelize`: the whole plan (LoRA / freezing, NF4, TP, activation checkpointing, FSDP)
applied to an unchanged `UnifiedMultiModalSystem`, in torchtitan's order: TP first (it names
modules by their original paths), then checkpoint wrappers, then FSDP units over whole wrapped
layers; a model built on the meta device is materialized shard by shard at the end (`load.py`),
or, with an NF4 base, weight by weight before FSDP (quantizing needs whole weights: `qlora.py`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor, Partial, Replicate

from astrobio.config import ParallelConfig
from astrobio.parallel.checkpointing import apply_activation_checkpointing
from astrobio.parallel.fsdp import apply_fsdp
from astrobio.parallel.lora import apply_lora
from astrobio.parallel.qlora import check_compatible, quantize_base
from astrobio.parallel.tensor_parallel import apply_tensor_parallel


def freeze_llm_base(model: nn.Module, parallel: ParallelConfig) -> None:
    """LoRA adapters on a frozen base, or a frozen base alone, as `parallel` says."""
    if parallel.lora_rank > 0:
        apply_lora(model.llm.lm, parallel.lora_rank, parallel.lora_alpha)
    elif parallel.freeze_llm:
        model.llm.lm.requires_grad_(False)


def parallelize(model: nn.Module, mesh: DeviceMesh, parallel: ParallelConfig,
                extra: list[nn.Module] = (), low_precision: bool | None = None,
                materialize: Callable[[nn.Module], None] | None = None) -> nn.Module:
    """Apply the plan to `model` in place over the `(dp, tp)` `mesh`; `extra` modules (e.g. the
    loss's `UncertaintyWeighting`) are FSDP units too; `low_precision` (default: on CUDA)
    makes FSDP compute in bf16. A model built on the meta device is given memory by
    `materialize(model)` (`load.materialize` with a source) once it is laid out, so that each
    rank allocates only its shards; with an NF4 base (`qlora.py`) before FSDP, each weight
    quantized as it is read, so that no rank holds the bf16 base. Returns `model`."""
    check_compatible(parallel, mesh["tp"].size())
    freeze_llm_base(model, parallel)
    nf4 = parallel.quantize_base == "nf4"
    if nf4:
        quantize_base(model.llm.lm, shards=mesh["dp"].size())
    if mesh["tp"].size() > 1:
        apply_tensor_parallel(model.llm, mesh["tp"], parallel.sequence_parallel,
                              parallel.loss_parallel)
    apply_activation_checkpointing(model.llm.lm.model.layers, parallel.activation_checkpointing)
    if nf4 and materialize is not None:
        materialize(model)
    apply_fsdp(model, mesh, list(extra), low_precision)
    if materialize is not None and not nf4:
        materialize(model)
    return model


def uses_loss_parallel(mesh: DeviceMesh, parallel: ParallelConfig) -> bool:
    return parallel.loss_parallel and mesh["tp"].size() > 1


def trainable_parameters(*modules: nn.Module | None) -> list[nn.Parameter]:
    return [p for m in modules if m is not None for p in m.parameters() if p.requires_grad]


def adamw(params: list[nn.Parameter], lr: float, weight_decay: float,
          foreach: bool | None = None) -> torch.optim.AdamW:
    """AdamW with one parameter group per kind of tensor (plain, or DTensor on each mesh):
    the foreach kernels take one kind per call (plain and DTensor, or two meshes, do not mix)."""
    groups: dict[object, list[nn.Parameter]] = {}
    for p in params:
        key = p.device_mesh if isinstance(p, DTensor) else None  # meshes hash by ranks
        groups.setdefault(key, []).append(p)
    return torch.optim.AdamW([{"params": g} for g in groups.values()], lr=lr,
                             weight_decay=weight_decay, foreach=foreach)


def clip_grad_norm_(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """`torch.nn.utils.clip_grad_norm_` over a mix of plain, TP- and FSDP-sharded (DTensor)
    gradients. Each gradient's local sum of squares is a partial sum over the mesh dims it is
    sharded on and the same on the dims it is replicated on; the sums of one mesh and layout
    are added locally and reduced in one collective per (mesh, layout), not one per tensor."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    groups: dict[object, list[torch.Tensor]] = {}
    for grad in grads:
        if isinstance(grad, DTensor):
            layout = tuple(Replicate() if p.is_replicate() else Partial() for p in grad.placements)
            local = grad.to_local().float().square().sum()
            groups.setdefault((grad.device_mesh, layout), []).append(local)
        else:
            groups.setdefault(None, []).append(grad.float().square().sum())
    squares = []
    for key, locals_ in groups.items():
        total = torch.stack(locals_).sum()
        if key is not None:
            mesh, layout = key
            total = DTensor.from_local(total, mesh, layout, run_check=False).full_tensor()
        squares.append(total)
    total = torch.stack(squares).sum().sqrt()
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(scale.to(grad.device))
    return total
