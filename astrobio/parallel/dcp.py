"""Sharded checkpoints with `torch.distributed.checkpoint` (DCP): saved by N ranks, loadable by M.

Each rank writes its own shards of the model and optimizer state (DTensor TP/FSDP shards,
de-duplicated replicas) into one directory with a global metadata file; loading reshards to
whatever layout the loading model has, including one plain process without a process group.
State-dict keys are the unparallelized model's (`get_model_state_dict` strips FSDP and
checkpoint-wrapper prefixes), so a checkpoint also loads into `UnifiedMultiModalSystem` as is
(after the same `freeze_llm_base`, when LoRA adapters are part of the model).

A frozen base loaded from a directory (`model.llm.path`) is not written: the checkpoint holds
what trains (adapters, encoders, fusion, heads: `ignore_frozen_params`) and `base.json`, the
base's path and the sha256 of each of its files; loading such a checkpoint needs a model built
from a base with the same digests (`BaseReference`). A frozen base without files (a random
initialisation) is written with the rest, since nothing else holds it.

Per-rank trainer state that is not a tensor shard (step, scheduler, this rank's data position,
RNG states) goes next to it as `trainer-rank<r>.pt`. A save is written to a temporary directory
and renamed over the previous one only once every rank has finished; `save(..., async_group=g)`
returns at once after staging the state in host memory (`dcp.async_save`, its collectives on
the separate process group `g`) and the rename follows when the writes end
(`PendingSave.wait`).

Loading never unpickles arbitrary objects: DCP's metadata and non-tensor items pass
`dcp_safety` first (refused with a named error otherwise), the trainer state is read with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from concurrent.futures import Future
from dataclasses import asdict, dataclass
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

from astrobio.checksum import sha256_file
from astrobio.errors import ConfigError, RunError
from astrobio.parallel.dcp_safety import SafeLoadPlanner, check_metadata

DIRECTORY_NAME = "checkpoint-dcp"
BASE_FILE = "base.json"


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


@dataclass(frozen=True)
class BaseReference:
    """A frozen base by its directory and the sha256 of each file in it."""

    path: str
    sha256: dict[str, str]

    @classmethod
    def of(cls, path: str | Path) -> BaseReference:
        path = Path(path)
        return cls(str(path), {file.name: sha256_file(file)
                               for file in sorted(p for p in path.iterdir() if p.is_file())})


class PendingSave:
    """An asynchronous save: `wait()` blocks until every rank's writes have ended and the
    checkpoint has replaced the previous one (raising what the save raised)."""

    def __init__(self, future: Future, staging: Path, path: Path):
        self._done: Future = Future()

        def promote(finished: Future) -> None:
            try:
                finished.result()
                if _rank() == 0:
                    _promote(staging, path)
                self._done.set_result(None)
            except BaseException as err:  # handed to whoever waits
                self._done.set_exception(err)

        future.add_done_callback(promote)

    def wait(self) -> None:
        self._done.result()


def _promote(staging: Path, path: Path) -> None:
    previous = path.with_name(f".{path.name}.old")
    if path.exists():
        os.replace(path, previous)
    os.replace(staging, path)
    shutil.rmtree(previous, ignore_errors=True)


def model_state(model: nn.Module, without_frozen: bool) -> dict:
    """The model's state dict as a checkpoint holds it: `without_frozen` when the base is
    referenced by its files (`BaseReference`)."""
    return get_model_state_dict(model, options=StateDictOptions(
        ignore_frozen_params=without_frozen))


def save(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
         trainer_state: dict | None = None, base: BaseReference | None = None,
         async_group: dist.ProcessGroup | None = None) -> PendingSave | None:
    """Collective: every rank calls it with its shard of the same model (and optimizer).
    `base`: the frozen base's files, referenced instead of written (module docstring).
    With `async_group`, returns a `PendingSave` once the state is staged."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.tmp")
    if _rank() == 0 and staging.exists():
        shutil.rmtree(staging)
    _barrier()
    state = {"model": model_state(model, without_frozen=base is not None)}
    if optimizer is not None:
        state["optimizer"] = get_optimizer_state_dict(model, optimizer)
    staging.mkdir(parents=True, exist_ok=True)
    if trainer_state is not None:
        torch.save(trainer_state, staging / f"trainer-rank{_rank()}.pt")
    if base is not None and _rank() == 0:
        (staging / BASE_FILE).write_text(json.dumps(asdict(base), indent=2))
    if async_group is not None:
        future = dcp.async_save(state, checkpoint_id=str(staging), process_group=async_group)
        return PendingSave(future, staging, path)
    dcp.save(state, checkpoint_id=str(staging))
    _barrier()
    if _rank() == 0:
        _promote(staging, path)
    _barrier()
    return None


def saved_base(path: str | Path) -> BaseReference | None:
    """The base a checkpoint references, or None when it holds its base itself."""
    file = Path(path) / BASE_FILE
    if not file.is_file():
        return None
    values = json.loads(file.read_text())
    return BaseReference(str(values["path"]), dict(values["sha256"]))


def load(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
         strict: bool = True, base: BaseReference | None = None) -> dict | None:
    """Load into `model` (and `optimizer`) as laid out now; returns this rank's trainer state
    if one was saved for it. A checkpoint that references its frozen base needs `base`, the
    model's own base, with the same digests."""
    path = Path(path)
    if not (path / ".metadata").is_file():
        raise FileNotFoundError(f"{path}: no distributed checkpoint there (.metadata missing)")
    referenced = saved_base(path)
    if referenced is not None and (base is None or base.sha256 != referenced.sha256):
        have = "a base without files" if base is None else f"the base at {base.path!r}"
        raise ConfigError(f"{path}: the checkpoint trained LoRA adapters on the frozen base at "
                          f"{referenced.path!r} (sha256 in {BASE_FILE}); this model has {have}, "
                          "whose files differ: set model.llm.path to that base")
    state = {"model": model_state(model, without_frozen=referenced is not None)}
    if optimizer is not None:
        state["optimizer"] = get_optimizer_state_dict(model, optimizer)
    check_metadata(path)
    dcp.load(state, checkpoint_id=str(path), planner=SafeLoadPlanner())
    keys = set_model_state_dict(model, state["model"], options=StateDictOptions(strict=False))
    if strict:  # a referenced base is missing by design; anything else is a mismatch
        frozen = set(get_model_state_dict(model)) - set(state["model"])
        missing = set(keys.missing_keys) - (frozen if referenced is not None else set())
        if missing or keys.unexpected_keys:
            raise RuntimeError(f"{path}: checkpoint and model differ: missing "
                               f"{sorted(missing)}, unexpected {sorted(keys.unexpected_keys)}")
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

