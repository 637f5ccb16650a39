"""Code that runs inside each spawned rank of the distributed tests (gloo, CPU).

Every rank starts its process group with a short timeout, so a rank that dies cannot leave the
others waiting forever; the parent joins with a deadline as well (`run_ranks`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import time
import traceback
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from astrobio.config import load_config

COLLECTIVE_TIMEOUT = timedelta(seconds=60)

# `tiny` with small sizes; every TP-sharded size divisible by 2.
OVERRIDES = [
    "data.climate_levels=4", "data.lat=8", "data.lon=12", "data.spectrum_bins=61",
    "data.max_text_tokens=12", "data.vocab_size=96",
    "model.d_model=32", "model.cnn_channels=8,16", "model.gnn_hidden=24", "model.gnn_latent=12",
    "model.spectral_channels=16", "model.param_hidden=24", "model.numerical_prefix_tokens=2",
    "model.spectral_prefix_tokens=3", "model.fusion_layers=1", "model.fusion_heads=4",
    "model.llm.hidden_size=32", "model.llm.num_layers=2", "model.llm.num_heads=4",
    "model.llm.num_kv_heads=2", "model.llm.intermediate_size=48", "model.llm.vocab_size=96",
    "model.llm.max_position_embeddings=32",
]


def small_config(*extra: str):
    return load_config("tiny", overrides=OVERRIDES + list(extra))


def _model_test_helpers():
    path = Path(__file__).parents[1] / "models" / "model_inputs.py"
    spec = importlib.util.spec_from_file_location("_model_inputs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_batch(seed: int, size: int, config):
    """The same random, valid batch in every process that asks with the same seed."""
    import numpy as np

    return _model_test_helpers().random_batch(np.random.default_rng(seed), size,
                                              data=config.data)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _entry(rank: int, world: int, port: int, fn, args, out: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", timeout=COLLECTIVE_TIMEOUT)
        result = fn(rank, *args)
        torch.save(result, Path(out) / f"rank{rank}.pt")
    except BaseException:
        (Path(out) / f"rank{rank}.err").write_text(traceback.format_exc())
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_ranks(fn, world: int, out: Path, *args, timeout_s: float = 150.0) -> list:
    """`fn(rank, *args)` on `world` spawned ranks; each rank's return value, in rank order."""
    out.mkdir(parents=True, exist_ok=True)
    context = mp.start_processes(_entry, args=(world, free_port(), fn, args, str(out)),
                                 nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout_s
    try:
        while not context.join(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                raise TimeoutError(f"ranks still running after {timeout_s} s")
    except Exception as err:
        errors = "\n".join(p.read_text() for p in sorted(out.glob("rank*.err")))
        raise RuntimeError(f"a rank failed:\n{errors}") from err
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world)]


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def clean(name: str) -> str:
    """The unparallelized model's name of a parameter (checkpoint wrappers add a prefix)."""
    return name.replace("_checkpoint_wrapped_module.", "")


def loss_and_grads(model, config, batch, loss_parallel: bool = False):
    """One forward and backward of the training loss; (loss, {name: full gradient})."""
    from astrobio.parallel.tensor_parallel import loss_parallel_context
    from astrobio.train.losses import compute_losses

    torch.manual_seed(1)  # the graph VAE's sampling draws the same numbers in every process
    with loss_parallel_context(loss_parallel):
        output = model(batch)
        total, _ = compute_losses(output, batch, config.loss, step=10)
        total.backward()
    grads = {clean(n): full_tensor(p.grad).detach().clone()
             for n, p in model.named_parameters() if p.grad is not None}
    return float(total.detach()), grads


def parallel_model(config):
    from astrobio.models import UnifiedMultiModalSystem
    from astrobio.parallel.mesh import init_mesh
    from astrobio.parallel.parallelize import parallelize, uses_loss_parallel

    torch.manual_seed(0)
    model = UnifiedMultiModalSystem(config)
    mesh = init_mesh(config.parallel, timeout=COLLECTIVE_TIMEOUT)
    parallelize(model, mesh, config.parallel)
    return model, uses_loss_parallel(mesh, config.parallel)


def equivalence_rank(rank: int, cases: list[list[str]], seed: int, batch_size: int,
                     checkpoint_dir: str) -> list:
    """For each case (override list): loss and gradients of one step; the last case also
    takes an optimizer step, saves a distributed checkpoint and returns eval outputs."""
    from astrobio.parallel import dcp
    from astrobio.parallel.parallelize import adamw, trainable_parameters

    results = []
    for index, extra in enumerate(cases):
        config = small_config(*extra)
        model, sharded = parallel_model(config)
        if config.parallel.lora_rank:
            set_lora_b(model, seed)
        batch = make_batch(seed, batch_size, config)
        if dist.get_world_size() > config.parallel.tp:  # each data-parallel rank: its share
            batch = make_batch(seed + 1 + rank // config.parallel.tp, batch_size, config)
        loss, grads = loss_and_grads(model, config, batch, sharded)
        outputs = None
        if index == len(cases) - 1:
            optimizer = adamw(trainable_parameters(model), lr=1e-2, weight_decay=0.0)
            optimizer.step()
            dcp.save(checkpoint_dir, model)
            model.eval()
            from astrobio.parallel.tensor_parallel import loss_parallel_context

            with torch.no_grad(), loss_parallel_context(sharded):
                out = model(make_batch(seed + 100, batch_size, config))
            outputs = {"habitable_logit": out.habitable_logit,
                       "surface_temperature": out.surface_temperature,
                       "lm_loss": full_tensor(out.lm_loss)}
        results.append((loss, grads, outputs))
    return results


def train_rank(rank: int, config_overrides: list[str], data: str, out: str) -> dict:
    from astrobio.config import load_config as load
    from astrobio.train.distributed import train_distributed

    config = load("tiny", overrides=config_overrides)
    return train_distributed(config, out, data, progress=False)


class Crash(RuntimeError):
    """The failure `crash_then_resume_rank` injects."""


def crash_then_resume_rank(rank: int, config_overrides: list[str], data: str, out: str,
                           crash_after_step: int) -> dict:
    """Train until step `crash_after_step` is logged, fail on every rank at once (a crash
    between two checkpoints), then `--resume` in the same process group; returns the last
    step logged before the resume and the resumed run's test metrics."""
    from astrobio.config import load_config as load
    from astrobio.train import distributed as parallel_train

    config = load("tiny", overrides=config_overrides)
    layout = parallel_train.MeshParallelism
    mean_losses, steps = layout.mean_losses, 0

    def crash_after(self, sums):  # called once per step, before the step is logged
        nonlocal steps
        steps += 1
        if steps > crash_after_step:
            raise Crash(f"injected after step {crash_after_step}")
        return mean_losses(self, sums)

    layout.mean_losses = crash_after
    try:
        parallel_train.train_distributed(config, out, data, progress=False)
    except Crash:
        pass
    finally:
        layout.mean_losses = mean_losses
    lines = (Path(out) / "metrics.jsonl").read_text().splitlines()
    logged = max(json.loads(line)["step"] for line in lines)
    return logged, parallel_train.train_distributed(config, out, data, resume=True,
                                                    progress=False)


def sharded_llm_rank(rank: int, overrides: list[str], lm_dir: str, seed: int,
                     batch_size: int) -> list:
    """Loss and full gradients of one step under the plan, with the saved LLM at `lm_dir`
    read whole (`from_pretrained`) and read shard by shard into a meta-device build
    (`load.materialize`); both built from the same seed."""
    from astrobio.parallel.load import LLM_PREFIX, SafetensorsFiles, materialize
    from astrobio.parallel.mesh import init_mesh
    from astrobio.parallel.parallelize import parallelize, uses_loss_parallel
    from astrobio.parallel.precision import build_model

    config = small_config(*overrides, f"model.llm.path={lm_dir}")
    mesh = init_mesh(config.parallel, timeout=COLLECTIVE_TIMEOUT)
    batch = make_batch(seed, batch_size, config)
    results = []
    for whole in (True, False):
        torch.manual_seed(seed)
        model = build_model(config, low_precision=False, load_llm_weights=whole)
        with SafetensorsFiles(lm_dir) as files:
            parallelize(model, mesh, config.parallel, materialize=None if whole else (
                lambda m, files=files: materialize(m.llm.lm, files, torch.device("cpu"),
                                                   prefix=LLM_PREFIX)))
        results.append(loss_and_grads(model, config, batch,
                                      uses_loss_parallel(mesh, config.parallel)))
    return results


def set_lora_b(model, seed: int, std: float = 0.1, matrix: str = "lora_b") -> None:
    """Every LoRA B (or `matrix`) drawn N(0, std^2) from `seed`, whole, each rank keeping its
    shard: the same matrices in every process (B = 0 at initialisation would leave A without
    gradients)."""
    from astrobio.parallel.lora import LoRALinear
    from astrobio.parallel.mesh import local_box

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoRALinear):
                weight = getattr(module, matrix).weight
                whole = torch.randn(weight.shape, generator=generator) * std
                local = weight.to_local() if hasattr(weight, "to_local") else weight
                local.copy_(whole[local_box(weight)].to(local.dtype))


def even_positions(batch, config):
    """`batch` with its text cut by one token if the LLM's positions would be odd (TP splits the
    sequence in two; an odd one is padded, which the ideal traffic does not count)."""
    import dataclasses

    text = batch.input_ids.shape[1]
    if (config.model.prefix_tokens + text) % 2 == 0:
        return batch
    return dataclasses.replace(batch, input_ids=batch.input_ids[:, :text - 1].contiguous(),
                               attention_mask=batch.attention_mask[:, :text - 1].contiguous())


def traffic_rank(rank: int, overrides: list[str], seed: int, batch_size: int) -> dict:
    """The collectives of one training step (forward, backward, clipping, AdamW) under the
    plan, counted; with the positions and supervised tokens the ideal needs."""
    from astrobio.parallel.parallelize import adamw, clip_grad_norm_, trainable_parameters
    from astrobio.parallel.tensor_parallel import loss_parallel_context
    from astrobio.plan.traffic import CollectiveCounter
    from astrobio.train.losses import compute_losses

    config = small_config(*overrides)
    model, sharded = parallel_model(config)
    set_lora_b(model, seed)
    batch = even_positions(make_batch(seed, batch_size, config), config)
    params = trainable_parameters(model)
    optimizer = adamw(params, lr=1e-3, weight_decay=0.0)
    torch.manual_seed(1)
    with CollectiveCounter() as counter:
        with loss_parallel_context(sharded):
            output = model(batch)
            total, _ = compute_losses(output, batch, config.loss, step=10)
            total.backward()
        clip_grad_norm_(params, 1.0)
        optimizer.step()
    supervised = int((output.lm.labels[:, 1:] != -100).sum())
    return {"text": batch.input_ids.shape[1], "supervised": supervised,
            "tp": counter.traffic.bytes("tp"), "fsdp": counter.traffic.bytes("fsdp"),
            "table": counter.traffic.table()}


def bf16_rank(rank: int, overrides: list[str], seed: int, batch_size: int):
    """Loss and full gradients of one step of the mixed-precision plan (bf16 LLM and compute,
    fp32 trained weights and reductions, as on a GPU) on the CPU, LoRA B drawn nonzero."""
    from astrobio.parallel.mesh import init_mesh
    from astrobio.parallel.parallelize import parallelize, uses_loss_parallel
    from astrobio.parallel.precision import build_model

    config = small_config(*overrides)
    torch.manual_seed(0)
    model = build_model(config, low_precision=True)
    mesh = init_mesh(config.parallel, timeout=COLLECTIVE_TIMEOUT)
    parallelize(model, mesh, config.parallel, low_precision=True)
    set_lora_b(model, seed)
    batch = make_batch(seed, batch_size, config)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return loss_and_grads(model, config, batch, uses_loss_parallel(mesh, config.parallel))


def load_checkpoint_rank(rank: int, overrides: list[str], lm_dir: str, checkpoint: str,
                         seed: int, batch_size: int) -> dict:
    """Build the plan from the saved LLM at `lm_dir` shard by shard, load the checkpoint another
    world size wrote, and return eval outputs and a few optimizer moments (whole)."""
    from astrobio.parallel import dcp
    from astrobio.parallel.load import LLM_PREFIX, SafetensorsFiles, materialize
    from astrobio.parallel.mesh import init_mesh
    from astrobio.parallel.parallelize import (
        adamw,
        parallelize,
        trainable_parameters,
        uses_loss_parallel,
    )
    from astrobio.parallel.precision import build_model
    from astrobio.parallel.tensor_parallel import loss_parallel_context

    config = small_config(*overrides, f"model.llm.path={lm_dir}")
    mesh = init_mesh(config.parallel, timeout=COLLECTIVE_TIMEOUT)
    torch.manual_seed(seed + 7)  # encoders drawn differently from the saved ones
    model = build_model(config, low_precision=False, load_llm_weights=False)
    with SafetensorsFiles(lm_dir) as files:
        parallelize(model, mesh, config.parallel, materialize=lambda m: materialize(
            m.llm.lm, files, torch.device("cpu"), prefix=LLM_PREFIX))
    optimizer = adamw(trainable_parameters(model), lr=1e-2, weight_decay=0.0)
    dcp.load(checkpoint, model, optimizer, base=dcp.BaseReference.of(lm_dir))
    model.eval()
    with torch.no_grad(), loss_parallel_context(uses_loss_parallel(mesh, config.parallel)):
        out = model(make_batch(seed + 100, batch_size, config))
    moments = {clean(name): full_tensor(optimizer.state[p]["exp_avg"]).clone()
               for name, p in model.named_parameters()
               if p.requires_grad and ("lora_a" in name or "fusion.queries" in name)}
    return {"habitable_logit": out.habitable_logit, "lm_loss": full_tensor(out.lm_loss),
            "moments": moments}


def qlora_rank(rank: int, overrides: list[str], lm_dir: str, seed: int, batch_size: int):
    """Loss and full gradients of one step of this rank's batch share under the plan with an
    NF4 base, the saved LLM at `lm_dir` read weight by weight into a meta-device build and
    quantized as read (`load.materialize`), LoRA A and B set from `seed`."""
    from astrobio.parallel.load import LLM_PREFIX, SafetensorsFiles, materialize
    from astrobio.parallel.mesh import init_mesh
    from astrobio.parallel.parallelize import parallelize
    from astrobio.parallel.precision import build_model

    config = small_config(*overrides, f"model.llm.path={lm_dir}")
    mesh = init_mesh(config.parallel, timeout=COLLECTIVE_TIMEOUT)
    torch.manual_seed(seed)
    model = build_model(config, low_precision=False, load_llm_weights=False)
    with SafetensorsFiles(lm_dir) as files:
        parallelize(model, mesh, config.parallel, materialize=(
            lambda m: materialize(m.llm.lm, files, torch.device("cpu"), prefix=LLM_PREFIX)))
    set_lora_b(model, seed)
    set_lora_b(model, seed + 1, matrix="lora_a")
    dp_rank = mesh["dp"].get_local_rank()
    return loss_and_grads(model, config, make_batch(seed + 1 + dp_rank, batch_size, config))
