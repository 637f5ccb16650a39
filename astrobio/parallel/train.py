"""The distributed training loop: `torchrun ... -m astrobio.train --tp T` lands here.

The same loss, schedule, data and logs as `astrobio.train.trainer.train`, over the `(dp, tp)`
mesh: `train.batch_size` is the global batch, each data-parallel rank loads its
`batch_size / dp` share (`make_loader(num_replicas=dp, rank=dp_rank)`), ranks of one TP group
load the same samples. Rank 0 alone writes metrics, the run config and the progress bar; every
rank writes its shards of the checkpoint (`dcp.py`). Each step logs tokens/s (LLM positions,
prefix included, over the whole job) and MFU: model FLOPs per token
(2N forward + 2N input gradients + 2N_trained weight gradients + 12 L h s attention, PaLM's
count without recomputation) times tokens/s over the job's peak dense bf16 FLOP/s.
Per-module gradient-flow logging is single-process only.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from astrobio.config import Config
from astrobio.data.dataset import AstroBioDataset, ensure_default_dataset
from astrobio.data.loader import make_loader
from astrobio.errors import ConfigError
from astrobio.eval.evaluate import predict, score
from astrobio.models import UnifiedMultiModalSystem
from astrobio.ops import use_backend
from astrobio.parallel import dcp
from astrobio.parallel.mesh import init_mesh, local_device
from astrobio.parallel.parallelize import (
    adamw,
    clip_grad_norm_,
    parallelize,
    trainable_parameters,
    uses_loss_parallel,
)
from astrobio.parallel.tensor_parallel import loss_parallel_context
from astrobio.train import checkpoint
from astrobio.train.losses import UncertaintyWeighting, compute_losses
from astrobio.train.schedule import warmup_cosine
from astrobio.train.trainer import (
    RunFiles,
    TrainingDiverged,
    _forever,
    _same_run,
    drop_modalities,
    make_train_loader,
    seed_everything,
)

# Dense bf16 tensor-core peaks (datasheets; H200 as measured here, DESIGN.md), by device name.
PEAK_BF16_FLOPS = {"A5000": 111e12, "A100": 312e12, "H100": 989e12, "H200": 790e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_FLOPS.items() if key in name), None)


def flops_per_token(model: torch.nn.Module, lm_config, seq_len: int) -> float:
    """Training FLOPs per LLM position, without recomputation (so MFU, not HFU)."""
    n_all = sum(p.numel() for p in model.parameters())  # a DTensor's numel is the global one
    n_trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    attention = 12 * lm_config.num_hidden_layers * lm_config.hidden_size * seq_len
    return 4 * n_all + 2 * n_trained + attention


def build_model(config: Config, low_precision: bool) -> UnifiedMultiModalSystem:
    """With `low_precision` (on CUDA) the LLM is built in bf16 (its frozen base stays bf16: 2
    bytes/param), the trained modules in fp32 (FSDP's policy casts them to bf16 for compute);
    otherwise all in fp32. On the current default device."""
    if not low_precision:
        return UnifiedMultiModalSystem(config)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = UnifiedMultiModalSystem(config)
    finally:
        torch.set_default_dtype(default)
    for name, module in model.named_children():
        if name != "llm":
            _to_fp32(module)
    _to_fp32(model.llm.numerical_projector)
    _to_fp32(model.llm.spectral_projector)
    return model


def _to_fp32(module: torch.nn.Module) -> None:
    """`module.float()` by new parameter objects (`.float()` swaps them in place, which fails
    on the fake tensors of the memory planner)."""
    for sub in module.modules():
        for key, param in sub._parameters.items():
            if param is not None and param.is_floating_point():
                sub._parameters[key] = torch.nn.Parameter(param.detach().float(),
                                                          requires_grad=param.requires_grad)
        for key, buffer in sub._buffers.items():
            if buffer is not None and buffer.is_floating_point():
                sub._buffers[key] = buffer.float()


def _mean_over(values: dict[str, torch.Tensor], group) -> dict[str, float]:
    names = sorted(values)
    stacked = torch.stack([values[n].detach().float().reshape(()) for n in names])
    dist.all_reduce(stacked, group=group)
    stacked /= dist.get_world_size(group)
    return dict(zip(names, stacked.tolist()))


def train_distributed(config: Config, run_dir: str | Path, data_dir: str | Path | None = None,
                      resume: bool = False, progress: bool = True) -> dict:
    """Train `config` on the ranks torchrun started; returns the test metrics (every rank)."""
    owns_group = not dist.is_initialized()
    mesh = init_mesh(config.parallel)
    try:
        return _train(config, mesh, run_dir, data_dir, resume, progress)
    finally:
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _train(config, mesh, run_dir, data_dir, resume, progress) -> dict:
    main = dist.get_rank() == 0
    dp_mesh = mesh["dp"]
    dp, dp_rank = dp_mesh.size(), dp_mesh.get_local_rank()
    device = local_device(mesh)
    cfg = config.train
    if cfg.batch_size % dp:
        raise ConfigError(f"train.batch_size={cfg.batch_size} is not divisible by dp={dp}")
    files = RunFiles(run_dir)
    ckpt_dir = files.root / dcp.DIRECTORY_NAME
    if main:
        files.root.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    if resume and not ckpt_dir.exists():
        raise FileNotFoundError(f"--resume: no distributed checkpoint at {ckpt_dir}")
    if not resume and ckpt_dir.exists():
        raise FileExistsError(f"{files.root} already holds a run; pass --resume to continue it "
                              "or choose another --out")
    if resume:
        _same_run(json.loads(files.config.read_text()), config)

    seed_everything(cfg.seed)
    root = ensure_default_dataset(config.data, data_dir, progress=progress and main)
    loader = make_train_loader(root, cfg, cfg.batch_size // dp, device, dp, dp_rank)
    model = build_model(config, device.type == "cuda")
    uncertainty = UncertaintyWeighting() if config.loss.uncertainty_weighting else None
    parallelize(model, mesh, config.parallel, extra=[uncertainty] if uncertainty else [])
    model.to(device)
    params = trainable_parameters(model, uncertainty)
    optimizer = adamw(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, cfg.warmup_steps, cfg.steps))
    sharded_loss = uses_loss_parallel(mesh, config.parallel)
    step = 0
    if resume:
        state = dcp.load(ckpt_dir, model, optimizer)
        scheduler.load_state_dict(state["scheduler"])
        loader.load_state_dict(state["data_position"])
        step = state["step"]
        checkpoint.restore_rng_states(state["rng"])
    if main:
        files.config.write_text(json.dumps({**config.to_dict(), "data_dir": str(root)},
                                           indent=2))
        if not resume:
            files.metrics.unlink(missing_ok=True)

    def save(step: int) -> None:
        dcp.save(ckpt_dir, model, optimizer, {
            "step": step, "scheduler": scheduler.state_dict(),
            "data_position": loader.state_dict(), "rng": checkpoint.rng_states()})

    lm_config = model.llm.lm.config
    prefix = config.model.numerical_prefix_tokens + config.model.spectral_prefix_tokens
    peak = peak_flops(device)
    world_peak = peak * dist.get_world_size() if peak else None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    batches = iter(_forever(loader))
    bad_in_row = 0
    model.train()
    with use_backend(cfg.backend), tqdm(total=cfg.steps, initial=step, desc="train",
                                        unit="step", disable=not (progress and main)) as bar:
        while step < cfg.steps:
            started = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            finite = torch.ones((), device=device)
            sums: dict[str, torch.Tensor] = {}
            positions = 0
            for _ in range(cfg.grad_accum):
                batch = drop_modalities(next(batches), cfg.modality_dropout)
                batch = batch.to(device, non_blocking=True)
                positions += batch.input_ids.shape[0] * (batch.input_ids.shape[1] + prefix)
                with loss_parallel_context(sharded_loss):
                    with autocast:
                        output = model(batch)
                        total, terms = compute_losses(output, batch, config.loss, step,
                                                      uncertainty)
                    finite = finite * torch.isfinite(total.detach())
                    (torch.nan_to_num(total) / cfg.grad_accum).backward()
                for name, value in terms.items():
                    sums[name] = sums.get(name, 0.0) + value.float() / cfg.grad_accum
            # Every rank skips a step together when any rank saw a non-finite loss.
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
            grad_norm = clip_grad_norm_(params, cfg.grad_clip)
            ok = bool(finite) and bool(torch.isfinite(grad_norm))
            if not ok:
                bad_in_row += 1
                if main:
                    warnings.warn(f"step {step}: non-finite loss or gradient; step skipped "
                                  f"({bad_in_row} in a row)", RuntimeWarning, stacklevel=1)
                if bad_in_row >= cfg.max_bad_steps:
                    raise TrainingDiverged(f"{bad_in_row} non-finite steps in a row at step "
                                           f"{step}; the last good checkpoint is {ckpt_dir}")
                optimizer.zero_grad(set_to_none=True)
            else:
                bad_in_row = 0
                optimizer.step()
                scheduler.step()
            step += 1
            losses = _mean_over(sums, dp_mesh.get_group())
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - started
            tokens_per_s = positions * dp / elapsed
            seq_len = batch.input_ids.shape[1] + prefix
            mfu = (flops_per_token(model, lm_config, seq_len) * tokens_per_s / world_peak
                   if world_peak else None)
            if main:
                record = {"step": step, "lr": scheduler.get_last_lr()[0],
                          "grad_norm": float(grad_norm) if ok else None, "step_time_s": elapsed,
                          "tokens_per_s": tokens_per_s, "mfu": mfu,
                          **{f"loss/{name}": value for name, value in losses.items()}}
                with open(files.metrics, "a") as handle:
                    handle.write(json.dumps(record) + "\n")
                bar.set_postfix(loss=f"{losses.get('total', float('nan')):.4f}",
                                tok_s=f"{tokens_per_s:.0f}",
                                mfu="n/a" if mfu is None else f"{100 * mfu:.1f}%")
                bar.update(1)
            if bad_in_row == 0 and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
                save(step)

    test_loader = make_loader(AstroBioDataset(root, "test"), cfg.batch_size, shuffle=False,
                              num_workers=cfg.num_workers)
    with torch.no_grad(), loss_parallel_context(sharded_loss), autocast:
        results = score(predict(model, test_loader, device))
    if main:
        files.test_metrics.write_text(json.dumps(results, indent=2))
        print(f"throughput: {tokens_per_s:.0f} tokens/s, MFU "
              + ("n/a (no known peak for this device)" if mfu is None else f"{100 * mfu:.1f}%"))
    return results
