"""Distributed training: `torchrun ... -m astrobio.train --tp T` lands here.

`trainer.train` is the one training loop; this module gives it the `MeshParallelism` layout
(`layout.Layout`) over the `(dp, tp)` mesh, with the plans of `astrobio.parallel`.
`train.batch_size` is the global batch, each data-parallel rank loads its `batch_size / dp`
share (`make_loader(num_replicas=dp, rank=dp_rank)`), ranks of one TP group load the same
samples. Rank 0 alone writes metrics, the run config and the progress bar;
every rank writes its shards of the checkpoint (`dcp.py`) and reads only its shards of a saved
LLM (`load.py`). Each step logs tokens/s and MFU (`astrobio.train.throughput`). Per-module
gradient-flow logging is single-process only.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh

from astrobio.config import Config
from astrobio.parallel import dcp
from astrobio.parallel.load import load_llm_shards
from astrobio.parallel.mesh import init_mesh, local_device
from astrobio.parallel.parallelize import (
    adamw,
    clip_grad_norm_,
    parallelize,
    uses_loss_parallel,
)
from astrobio.parallel.precision import build_model
from astrobio.parallel.tensor_parallel import loss_parallel_context
from astrobio.run import RunFiles
from astrobio.train.trainer import train


class MeshParallelism:
    """The `(dp, tp)` mesh of the ranks torchrun started, as a `layout.Layout`: the model built
    in mixed precision (`parallel.precision`) and parallelized by `parallelize`, a
    DTensor-aware optimizer and clipping, losses averaged over data-parallel ranks, a sharded
    checkpoint directory (`dcp.py`)."""

    gradient_flow = False  # per-module gradient norms are measured in a single process

    def __init__(self, config: Config, mesh: DeviceMesh):
        self.mesh, self.parallel = mesh, config.parallel
        self.device = local_device(mesh)
        self.main = dist.get_rank() == 0
        self.world = dist.get_world_size()
        dp_mesh = mesh["dp"]
        self.dp, self.dp_rank = dp_mesh.size(), dp_mesh.get_local_rank()
        self._dp_group = dp_mesh.get_group()
        self._sharded_loss = uses_loss_parallel(mesh, config.parallel)

    def build(self, config: Config, uncertainty: torch.nn.Module | None) -> torch.nn.Module:
        """A saved LLM (`model.llm.path`) is read shard by shard (`load.py`), never whole."""
        path = config.model.llm.path
        model = build_model(config, self.device.type == "cuda", load_llm_weights=path is None)
        materialize = None
        if path is not None:
            def materialize(m):
                load_llm_shards(m.llm.lm, path, self.device)
        parallelize(model, self.mesh, self.parallel, extra=[uncertainty] if uncertainty else [],
                    materialize_llm=materialize)
        return model.to(self.device)

    def optimizer(self, params, cfg) -> torch.optim.Optimizer:
        return adamw(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)

    def clip_grad_norm(self, params, max_norm: float) -> torch.Tensor:
        return clip_grad_norm_(params, max_norm)

    def all_finite(self, finite: torch.Tensor) -> bool:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite)

    def mean_losses(self, sums: dict[str, torch.Tensor]) -> dict[str, float]:
        names = sorted(sums)
        stacked = torch.stack([sums[n].float().reshape(()) for n in names])
        dist.all_reduce(stacked, group=self._dp_group)
        stacked /= dist.get_world_size(self._dp_group)
        return dict(zip(names, stacked.tolist(), strict=True))

    def loss_context(self):
        return loss_parallel_context(self._sharded_loss)

    def barrier(self) -> None:
        dist.barrier()

    def checkpoint_path(self, files: RunFiles) -> Path:
        return files.root / dcp.DIRECTORY_NAME

    def save(self, path: Path, model, optimizer, state: dict) -> None:
        dcp.save(path, model, optimizer, state)

    def load(self, path: Path, model, optimizer) -> dict:
        return dcp.load(path, model, optimizer)


def train_distributed(config: Config, run_dir: str | Path, data_dir: str | Path | None = None,
                      resume: bool = False, progress: bool = True, force: bool = False) -> dict:
    """Train `config` on the ranks torchrun started; returns the test metrics (every rank)."""
    owns_group = not dist.is_initialized()
    mesh = init_mesh(config.parallel)
    try:
        results = train(config, run_dir, data_dir, resume=resume, progress=progress,
                        layout=MeshParallelism(config, mesh), force=force)
    finally:
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()
    return results
