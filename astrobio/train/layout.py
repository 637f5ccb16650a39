"""Where the model runs: the `Layout` protocol `trainer.train` takes, and `SingleProcess`.

One training loop serves every layout, as torchtitan's trainer takes its `parallelize_fn`: the
loop asks its layout to build and place the model, make the optimizer, clip, agree across
ranks, and save or load a checkpoint. `SingleProcess` (here) keeps the whole model in this
process; `astrobio.train.distributed.MeshParallelism` lays it over the ranks torchrun started.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Protocol

import torch

from astrobio.config import Config, TrainConfig
from astrobio.models import UnifiedMultiModalSystem
from astrobio.run import RunFiles
from astrobio.train import checkpoint


class Layout(Protocol):
    device: torch.device
    main: bool  # the process that writes logs and prints
    world: int  # processes in the job
    dp: int  # data-parallel degree: the loader is split over this many ranks
    dp_rank: int  # this process's share of the loader
    gradient_flow: bool  # whether per-module gradient norms can be measured here

    def build(self, config: Config, uncertainty: torch.nn.Module | None) -> torch.nn.Module:
        """The model (and the learned loss weights `uncertainty`) placed on this layout."""

    def optimizer(self, params, cfg: TrainConfig) -> torch.optim.Optimizer: ...

    def clip_grad_norm(self, params, max_norm: float) -> torch.Tensor: ...

    def all_finite(self, finite: torch.Tensor) -> bool:
        """Whether every rank's loss was finite, so that all ranks skip a step together."""

    def mean_losses(self, sums: dict[str, torch.Tensor]) -> dict[str, float]:
        """Each loss term averaged over data-parallel ranks."""

    def loss_context(self) -> contextlib.AbstractContextManager: ...

    def barrier(self) -> None: ...

    def checkpoint_path(self, files: RunFiles) -> Path: ...

    def save(self, path: Path, model, optimizer, state: dict) -> None: ...

    def load(self, path: Path, model, optimizer) -> dict: ...


class SingleProcess:
    """The whole model in this process on `device`; its checkpoint is one file written
    atomically."""

    main = True
    world = 1
    dp, dp_rank = 1, 0
    gradient_flow = True

    def __init__(self, device: torch.device):
        self.device = device

    def build(self, config: Config, uncertainty: torch.nn.Module | None) -> torch.nn.Module:
        if uncertainty is not None:
            uncertainty.to(self.device)
        return UnifiedMultiModalSystem(config).to(self.device)

    def optimizer(self, params, cfg: TrainConfig) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                 fused=self.device.type == "cuda")

    def clip_grad_norm(self, params, max_norm: float) -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    def all_finite(self, finite: torch.Tensor) -> bool:
        return bool(finite)

    def mean_losses(self, sums: dict[str, torch.Tensor]) -> dict[str, float]:
        return {name: float(value) for name, value in sums.items()}

    def loss_context(self):
        return contextlib.nullcontext()

    def barrier(self) -> None:
        pass

    def checkpoint_path(self, files: RunFiles) -> Path:
        return files.checkpoint

    def save(self, path: Path, model, optimizer, state: dict) -> None:
        checkpoint.save_atomic({**state, "model": model.state_dict(),
                                "optimizer": optimizer.state_dict()}, path)

    def load(self, path: Path, model, optimizer) -> dict:
        saved = checkpoint.load(path)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        return saved
