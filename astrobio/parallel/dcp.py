"""Sharded checkpoints with `torch.distributed.checkpoint` (DCP): saved by N ranks, loadable by M.

Each rank writes its own shards of the model and optimizer state (DTensor TP/FSDP shards,
de-duplicated replicas) into one directory with a global metadata file; loading reshards to
whatever layout the loading model has, including one plain process without a process group.
State-dict keys are the unparallelized model's (`get_model_state_dict` strips FSDP and
checkpoint-wrapper prefixes), so a checkpoint also loads into `UnifiedMultiModalSystem` as is
(after the same `freeze_llm_base`, when LoRA adapters are part of the model).

Per-rank trainer state that is not a tensor shard (step, scheduler, this rank's data position,
RNG states) goes next to it as `trainer-rank<r>.pt`. A save is written to a temporary directory
and renamed over the previous one only once every rank has finished.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from astrobio.errors import RunError
from astrobio.parallel.dcp_safety import SafeLoadPlanner, check_metadata

DIRECTORY_NAME = "checkpoint-dcp"


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def save(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
         trainer_state: dict | None = None) -> None:
    """Collective: every rank calls it with its shard of the same model (and optimizer)."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.tmp")
    if _rank() == 0 and staging.exists():
        shutil.rmtree(staging)
    _barrier()
    state = {"model": get_model_state_dict(model)}
    if optimizer is not None:
        state["optimizer"] = get_optimizer_state_dict(model, optimizer)
    dcp.save(state, checkpoint_id=str(staging))
    if trainer_state is not None:
        torch.save(trainer_state, staging / f"trainer-rank{_rank()}.pt")
    _barrier()
    if _rank() == 0:
        previous = path.with_name(f".{path.name}.old")
        if path.exists():
            os.replace(path, previous)
        os.replace(staging, path)
        shutil.rmtree(previous, ignore_errors=True)
    _barrier()


def load(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
         strict: bool = True) -> dict | None:
    """Load into `model` (and `optimizer`) as laid out now; returns this rank's trainer state
    if one was saved for it."""
    path = Path(path)
    if not (path / ".metadata").is_file():
        raise FileNotFoundError(f"{path}: no distributed checkpoint there (.metadata missing)")
    state = {"model": get_model_state_dict(model)}
    if optimizer is not None:
        state["optimizer"] = get_optimizer_state_dict(model, optimizer)
    check_metadata(path)
    dcp.load(state, checkpoint_id=str(path), planner=SafeLoadPlanner())
    set_model_state_dict(model, state["model"], options=StateDictOptions(strict=strict))
    if optimizer is not None:
        set_optimizer_state_dict(model, optimizer, state["optimizer"])
    trainer_file = path / f"trainer-rank{_rank()}.pt"
    if trainer_file.is_file():
        try:
            return torch.load(trainer_file, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise RunError(f"{trainer_file}: refused: it holds Python objects beyond tensors "
                           "and plain values, which loading would run as code") from None
    return None
