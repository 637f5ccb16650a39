"""Distributed training: `torchrun ... -m astrobio.train --tp T` lands here.

`trainer.train` is the one training loop; this module gives it the `MeshParallelism` layout
(`layout.Layout`) over the `(dp, tp)` mesh, with the plans of `astrobio.parallel`.
`train.batch_size` is the global batch, each data-parallel rank loads its `batch_size / dp`
share (`make_loader(num_replicas=dp, rank=dp_rank)`), ranks of one TP group load the same
samples. Rank 0 alone writes metrics, the run config and the progress bar;
every rank builds the model on the meta device and fills only its shards (`load.py`), and
writes its shards of the checkpoint (`dcp.py`: what trains, asynchronously; a frozen base read
from files is referenced by its digests, not copied). Each step logs tokens/s and MFU
(`astrobio.train.throughput`). Per-module gradient-flow logging is single-process only.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh

from astrobio.config import Config
from astrobio.errors import ConfigError
from astrobio.parallel import dcp
from astrobio.parallel.load import LLM_PREFIX, RankZeroModel, SafetensorsFiles, materialize
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
    on the meta device in mixed precision (`parallel.precision`), laid out by `parallelize` and
    materialized shard by shard (`parallel.load`), a DTensor-aware optimizer and clipping,
    losses averaged over data-parallel ranks, sharded checkpoints saved asynchronously
    (`parallel.dcp`)."""

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
        # DCP's asynchronous save runs its collectives in a thread: on a group of their own.
        self._checkpoint_group = dist.new_group(backend="gloo")
        self._pending: dcp.PendingSave | None = None
        self._base: Future | None = None
        self._config: Config | None = None

    def build(self, config: Config, uncertainty: torch.nn.Module | None) -> torch.nn.Module:
        """Every rank builds the system on the meta device and fills only its shards: from the
        files of a saved LLM (`model.llm.path`), or, for a random initialisation, from the one
        copy rank 0 draws (the numbers one process draws with this seed)."""
        self._config = config
        low = self.device.type == "cuda"
        path = config.model.llm.path
        extra = [uncertainty] if uncertainty else []
        if path is None:
            whole = build_model(config, low) if self.main else None
            _continue_from_rank0_generator(self.device)
            with torch.device("meta"):
                model = build_model(config, low)
            source = RankZeroModel(whole, self.device)
            parallelize(model, self.mesh, self.parallel, extra=extra, low_precision=low,
                        materialize=lambda m: materialize(m, source, self.device))
            del whole, source
            return model
        if self.main and self._frozen_base(config):
            self._base = ThreadPoolExecutor(1).submit(dcp.BaseReference.of, path)
        model = build_model(config, low, load_llm_weights=False)  # the LLM on the meta device
        with SafetensorsFiles(path) as files:
            parallelize(model, self.mesh, self.parallel, extra=extra, low_precision=low,
                        materialize=lambda m: materialize(m.llm.lm, files, self.device,
                                                          prefix=LLM_PREFIX))
        return model.to(self.device)

    @staticmethod
    def _frozen_base(config: Config) -> bool:
        return config.parallel.lora_rank > 0 or config.parallel.freeze_llm

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

    def base_reference(self) -> dcp.BaseReference | None:
        """The frozen base's files and digests (every rank), or None without such a base."""
        config = self._config
        if config.model.llm.path is None or not self._frozen_base(config):
            return None
        if self.main and self._base is None:
            self._base = ThreadPoolExecutor(1).submit(dcp.BaseReference.of,
                                                     config.model.llm.path)
        shared = [self._base.result() if self.main else None]
        dist.broadcast_object_list(shared, src=0)
        return shared[0]

    def save(self, path: Path, model, optimizer, state: dict) -> None:
        """Returns once the state is staged in host memory; the files are written while
        training goes on (the previous save is waited for first)."""
        self.finish_checkpoint()
        self._pending = dcp.save(path, model, optimizer, state, base=self.base_reference(),
                                 async_group=self._checkpoint_group)

    def finish_checkpoint(self) -> None:
        """Wait until the last save is on disk and has replaced the previous checkpoint."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.wait()
            dist.barrier()

    def load(self, path: Path, model, optimizer) -> dict:
        self.finish_checkpoint()
        return dcp.load(path, model, optimizer, base=self.base_reference())


def _continue_from_rank0_generator(device: torch.device) -> None:
    """Rank 0 drew the random initialisation and its CPU generator moved on; every rank
    continues from rank 0's state, as one process would (and the ranks stay in step)."""
    state = torch.get_rng_state().to(device)
    dist.broadcast(state, src=0)
    torch.set_rng_state(state.cpu())


def train_distributed(config: Config, run_dir: str | Path, data_dir: str | Path | None = None,
                      resume: bool = False, progress: bool = True, force: bool = False) -> dict:
    """Train `config` on the ranks torchrun started; returns the test metrics (every rank)."""
    if config.parallel.quantize_base != "none" and not config.model.llm.path:
        raise ConfigError(f"parallel.quantize_base={config.parallel.quantize_base} trains on a "
                          "saved LLM (model.llm.path, --llm-path): its checkpoints reference "
                          "that base, and a quantized base cannot be written into them")
    owns_group = not dist.is_initialized()
    mesh = init_mesh(config.parallel)
    layout = MeshParallelism(config, mesh)
    try:
        results = train(config, run_dir, data_dir, resume=resume, progress=progress,
                        layout=layout, force=force)
    finally:
        layout.finish_checkpoint()
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()
    return results
