"""The 2D device mesh (`dp`, `tp`) of a `torchrun` job.

`torchrun` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; `init_mesh` starts
the default process group from them (nccl on CUDA, gloo on the CPU, every collective bounded by
`timeout`) and lays the ranks out row-major as `[dp, tp]`, so the ranks of one TP group are
consecutive (on one node, where NVLink/PCIe is fastest).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch._subclasses.fake_tensor import unset_fake_temporarily
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.tensor import DTensor
from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

from astrobio.config import ParallelConfig
from astrobio.errors import ConfigError

DEFAULT_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class Degrees:
    dp: int
    tp: int

    @property
    def world(self) -> int:
        return self.dp * self.tp


def resolve_degrees(parallel: ParallelConfig, world_size: int) -> Degrees:
    """`parallel.dp = 0` means every rank that TP leaves over; the product must be the world."""
    tp = parallel.tp
    if tp < 1 or world_size % tp:
        raise ConfigError(f"parallel.tp={tp} does not divide the {world_size} ranks")
    dp = parallel.dp or world_size // tp
    if dp * tp != world_size:
        raise ConfigError(f"parallel.dp={dp} x parallel.tp={tp} = {dp * tp}, but torchrun "
                          f"started {world_size} ranks")
    return Degrees(dp=dp, tp=tp)


def is_distributed_launch() -> bool:
    """Whether this process was started by torchrun (or another launcher setting WORLD_SIZE),
    one process included: `torchrun --nproc_per_node 1` is how one GPU runs the mesh layout
    (LoRA, QLoRA)."""
    return "WORLD_SIZE" in os.environ


def is_main_rank() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def device_type() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def init_mesh(parallel: ParallelConfig, timeout: timedelta = DEFAULT_TIMEOUT) -> DeviceMesh:
    """The `(dp, tp)` mesh of this job, starting the process group if needed."""
    kind = device_type()
    if not dist.is_initialized():
        if kind == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if kind == "cuda" else "gloo", timeout=timeout)
    degrees = resolve_degrees(parallel, dist.get_world_size())
    return init_device_mesh(kind, (degrees.dp, degrees.tp), mesh_dim_names=("dp", "tp"))


def local_device(mesh: DeviceMesh) -> torch.device:
    if mesh.device_type == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(mesh.device_type)


def local_box(tensor: torch.Tensor) -> tuple[slice, ...]:
    """The index of this rank's shard in the whole tensor (all of it for a plain tensor)."""
    if not isinstance(tensor, DTensor):
        return tuple(slice(0, n) for n in tensor.shape)
    # DTensor finds this rank's mesh coordinate with a tensor op, which the memory planner's
    # FakeTensorMode could not evaluate; the coordinate is a fact about the mesh, not data.
    with unset_fake_temporarily():
        sizes, offsets = compute_local_shape_and_global_offset(
            tensor.shape, tensor.device_mesh, tensor.placements)
    return tuple(slice(o, o + n) for o, n in zip(offsets, sizes, strict=True))
