"""The training loop of the unified system: one loss, every encoder, checkpoints, guards."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from astrobio.config import Config
from astrobio.data.batch import MultiModalBatch
from astrobio.data.dataset import AstroBioDataset, ensure_default_dataset
from astrobio.data.loader import make_loader
from astrobio.errors import ConfigError
from astrobio.eval.evaluate import flat_metrics, predict, score
from astrobio.models import UnifiedMultiModalSystem
from astrobio.ops import use_backend
from astrobio.train import checkpoint
from astrobio.train.checkpoint import restore_rng_states
from astrobio.train.losses import UncertaintyWeighting, compute_losses, supervised_terms
from astrobio.train.schedule import warmup_cosine
from astrobio.train.throughput import flops_per_token, parameter_counts, peak_flops


class TrainingDiverged(RuntimeError):
    """Too many non-finite losses in a row; the last good checkpoint is kept."""


@dataclass
class RunFiles:
    """Where a run keeps its outputs."""

    root: Path

    def __post_init__(self):
        self.root = Path(self.root)

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def checkpoint(self) -> Path:
        return self.root / checkpoint.CHECKPOINT_NAME

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def gradient_flow(self) -> Path:
        return self.root / "gradient_flow.jsonl"

    @property
    def test_metrics(self) -> Path:
        return self.root / "test_metrics.json"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but CUDA is not available here")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def make_train_loader(root: Path, cfg, batch_size: int, device: torch.device,
                      num_replicas: int = 1, rank: int = 0):
    """The shuffled, resumable training loader of `cfg.loader`: the torch DataLoader (the
    reference) or DALI (`pip install 'astrobio[dali]'`; it alone augments)."""
    dataset = AstroBioDataset(root, "train")
    if cfg.loader == "dali":
        from astrobio.data.dali import DALILoader

        return DALILoader(dataset, batch_size, shuffle=True, seed=cfg.seed, drop_last=True,
                          augment=cfg.augment, num_workers=cfg.num_workers, device=device,
                          num_replicas=num_replicas, rank=rank)
    if cfg.loader != "torch":
        raise ConfigError(f"train.loader must be 'torch' or 'dali', got {cfg.loader!r}")
    if cfg.augment:
        raise ConfigError("train.augment: augmentation is implemented in the DALI loader; "
                          "use --loader dali")
    return make_loader(dataset, batch_size, shuffle=True, num_workers=cfg.num_workers,
                       seed=cfg.seed, drop_last=True, num_replicas=num_replicas, rank=rank)


def drop_modalities(batch: MultiModalBatch, modality_dropout: float) -> MultiModalBatch:
    """`batch` with each present modality hidden with probability `modality_dropout`; a sample
    that would lose all of them keeps its own."""
    if modality_dropout <= 0:
        return batch
    present = batch.present.bool()
    kept = present & (torch.rand(present.shape) >= modality_dropout)
    kept = torch.where(kept.any(dim=1, keepdim=True), kept, present)
    return dataclasses.replace(batch, present=kept)


def _truncate_jsonl(path: Path, keep) -> None:
    if path.exists():
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        path.write_text("".join(json.dumps(r) + "\n" for r in records if keep(r)))


def _forever(loader):
    """Batches across epoch boundaries; the loader's sampler tracks the position."""
    while True:
        yield from loader


def gradient_norms(loss: torch.Tensor, modules: dict[str, torch.nn.Module]) -> dict[str, float]:
    """‖∂loss/∂θ‖ over each module's parameters, leaving `.grad` untouched."""
    names = list(modules)
    params = [[p for p in modules[n].parameters() if p.requires_grad] for n in names]
    flat = [p for group in params for p in group]
    grads = torch.autograd.grad(loss, flat, retain_graph=True, allow_unused=True)
    norms, start = {}, 0
    for name, group in zip(names, params):
        squares = [g.float().square().sum() for g in grads[start:start + len(group)]
                   if g is not None]
        norms[name] = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
        start += len(group)
    return norms


def _same_run(saved: dict, config: Config) -> None:
    """Resuming with another model, data or loss would silently train something else.
    `saved` is the run's config.json, so `config` is compared as JSON (tuples as lists)."""
    current = json.loads(json.dumps(config.to_dict()))
    for section in ("data", "model", "loss"):
        if saved[section] != current[section]:
            raise ConfigError(
                f"--resume: the run was trained with a different {section} config; resume with "
                f"the same preset, config file and overrides (saved: {saved[section]})"
            )


class SingleProcess:
    """The whole model in this process, the default layout of `train`: its checkpoint is one
    file written atomically. `astrobio.parallel.train.MeshParallelism` is the other layout,
    the same methods over a device mesh."""

    main = True  # the process that writes logs and prints
    world = 1  # processes in the job
    dp, dp_rank = 1, 0  # data-parallel degree and rank: the loader's shard
    gradient_flow = True  # per-module gradient norms (`gradient_norms`) can be measured

    def __init__(self, device: torch.device):
        self.device = device

    def build(self, config: Config, uncertainty: torch.nn.Module | None) -> torch.nn.Module:
        if uncertainty is not None:
            uncertainty.to(self.device)
        return UnifiedMultiModalSystem(config).to(self.device)

    def optimizer(self, params, cfg) -> torch.optim.Optimizer:
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


def train(config: Config, run_dir: str | Path, data_dir: str | Path | None = None,
          resume: bool = False, progress: bool = True,
          batch_transform: Callable[[MultiModalBatch], MultiModalBatch] | None = None,
          prepare_model: Callable[[torch.nn.Module], list[torch.nn.Module]] | None = None,
          layout=None) -> dict:
    """Train `config` into `run_dir`; returns the test metrics. See `python -m astrobio.train`.

    `layout` places the model: `SingleProcess` on `train.device` by default, or
    `astrobio.parallel.train.MeshParallelism` for the ranks torchrun started. For the study's
    variants (`astrobio.experiments`): `batch_transform` rewrites every batch, training and
    evaluation alike (e.g. withholding modalities through `present`); `prepare_model(model)`
    runs once on the new model and returns the modules it froze, which stay in eval mode and
    out of the optimizer.
    """
    cfg = config.train
    layout = layout if layout is not None else SingleProcess(resolve_device(cfg.device))
    device, main = layout.device, layout.main
    if cfg.batch_size % layout.dp:
        raise ConfigError(f"train.batch_size={cfg.batch_size} is not divisible by the "
                          f"data-parallel degree {layout.dp}")
    files = RunFiles(run_dir)
    if main:
        files.root.mkdir(parents=True, exist_ok=True)
    layout.barrier()
    ckpt = layout.checkpoint_path(files)
    if resume:
        if not ckpt.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}")
        _same_run(json.loads(files.config.read_text()), config)
    elif ckpt.exists():
        raise FileExistsError(f"{files.root} already holds a run; pass --resume to continue it "
                              "or choose another --out")

    seed_everything(cfg.seed)
    if device.type == "cpu" and cfg.cpu_threads > 0:
        torch.set_num_threads(cfg.cpu_threads)
    root = ensure_default_dataset(config.data, data_dir, progress=progress and main)
    loader = make_train_loader(root, cfg, cfg.batch_size // layout.dp, device, layout.dp,
                               layout.dp_rank)
    uncertainty = UncertaintyWeighting() if config.loss.uncertainty_weighting else None
    model = layout.build(config, uncertainty)
    frozen = prepare_model(model) if prepare_model is not None else []
    params = [p for m in (model, uncertainty) if m is not None for p in m.parameters()
              if p.requires_grad]
    optimizer = layout.optimizer(params, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, cfg.warmup_steps, cfg.steps))
    step = 0
    if resume:
        saved = layout.load(ckpt, model, optimizer)
        if uncertainty is not None:
            uncertainty.load_state_dict(saved["uncertainty"])
        scheduler.load_state_dict(saved["scheduler"])
        loader.load_state_dict(saved["data_position"])
        step = saved["step"]
        restore_rng_states(saved["rng"])
    if main:
        if resume:  # what was logged after the checkpoint is redone by this run
            _truncate_jsonl(files.metrics, lambda r: r["step"] <= step)
            _truncate_jsonl(files.gradient_flow, lambda r: r["step"] < step)
        else:
            for stale in (files.metrics, files.gradient_flow):
                stale.unlink(missing_ok=True)
        files.config.write_text(json.dumps({**config.to_dict(), "data_dir": str(root)},
                                           indent=2))

    def save(step: int) -> None:
        layout.save(ckpt, model, optimizer, {
            "step": step, "config": config.to_dict(), "data_dir": str(root),
            "scheduler": scheduler.state_dict(), "data_position": loader.state_dict(),
            "uncertainty": uncertainty.state_dict() if uncertainty is not None else None,
            "rng": checkpoint.rng_states()})

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    writer = _tensorboard(files.root) if main else None
    lm_config = model.llm.lm.config
    prefix = config.model.numerical_prefix_tokens + config.model.spectral_prefix_tokens
    peak = peak_flops(device)
    job_peak = peak * layout.world if peak else None
    counts = parameter_counts(model) if job_peak else None
    batches = _forever(loader)
    bad_in_row = 0
    transform = batch_transform or (lambda batch: batch)

    def train_mode() -> None:
        model.train()
        for module in frozen:
            module.eval()

    def evaluate(split: str) -> dict:
        with torch.no_grad(), layout.loss_context(), autocast:
            return score(predict(model, map(transform, _eval_loader(root, split, cfg)), device))

    train_mode()
    with use_backend(cfg.backend), tqdm(total=cfg.steps, initial=step, desc="train",
                                        unit="step", disable=not (progress and main)) as bar:
        while step < cfg.steps:
            started = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            finite = torch.ones((), device=device)
            sums: dict[str, torch.Tensor] = {}
            positions = 0
            for micro in range(cfg.grad_accum):
                batch = drop_modalities(transform(next(batches)), cfg.modality_dropout)
                batch = batch.to(device, non_blocking=True)
                positions += batch.input_ids.shape[0] * (batch.input_ids.shape[1] + prefix)
                with layout.loss_context():
                    with autocast:
                        output = model(batch)
                        total, terms = compute_losses(output, batch, config.loss, step,
                                                      uncertainty)
                    finite = finite * torch.isfinite(total.detach())
                    if (layout.gradient_flow and micro == 0 and step % cfg.gradient_flow_every == 0
                            and bool(finite)):
                        habitable_loss = supervised_terms(output, batch)["habitable"]
                        flow = gradient_norms(habitable_loss, _flow_modules(model))
                        _append_jsonl(files.gradient_flow, {"step": step, **flow})
                    # every rank runs its backward, so that collectives stay matched
                    (torch.nan_to_num(total) / cfg.grad_accum).backward()
                for name, value in terms.items():
                    sums[name] = sums.get(name, 0.0) + value.detach().float() / cfg.grad_accum
            finite = layout.all_finite(finite)  # every rank skips a step together
            grad_norm = layout.clip_grad_norm(params, cfg.grad_clip)
            ok = finite and bool(torch.isfinite(grad_norm))
            if not ok:
                bad_in_row += 1
                if main:
                    warnings.warn(f"step {step}: non-finite loss or gradient; step skipped "
                                  f"({bad_in_row} in a row)", RuntimeWarning, stacklevel=1)
                if bad_in_row >= cfg.max_bad_steps:
                    raise TrainingDiverged(
                        f"{bad_in_row} non-finite steps in a row at step {step}; stopped. The "
                        f"last good checkpoint is {ckpt} (lower --lr, or check the data with "
                        "`python -m astrobio.data validate`)")
                optimizer.zero_grad(set_to_none=True)
            else:
                bad_in_row = 0
                optimizer.step()
                scheduler.step()
            step += 1
            losses = layout.mean_losses(sums)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - started
            tokens_per_s = positions * layout.dp / elapsed
            seq_len = batch.input_ids.shape[1] + prefix
            mfu = (flops_per_token(counts, lm_config, seq_len) * tokens_per_s / job_peak
                   if job_peak else None)
            if main:
                _append_jsonl(files.metrics, {
                    "step": step, "lr": scheduler.get_last_lr()[0],
                    "grad_norm": float(grad_norm) if ok else None, "step_time_s": elapsed,
                    "tokens_per_s": tokens_per_s, "mfu": mfu,
                    **{f"loss/{name}": value for name, value in losses.items()}})
                if writer is not None:
                    for name, value in losses.items():
                        writer.add_scalar(f"loss/{name}", value, step)
                bar.set_postfix(loss=f"{losses.get('total', float('nan')):.4f}",
                                tok_s=f"{tokens_per_s:.0f}",
                                **({} if mfu is None else {"mfu": f"{100 * mfu:.1f}%"}))
                bar.update(1)
            if step % cfg.eval_every == 0 and step < cfg.steps:
                val = evaluate("val")
                if main:
                    _append_jsonl(files.metrics, {"step": step, **{
                        f"val/{k}": v for k, v in flat_metrics(val).items()}})
                train_mode()
            # During a run of skipped steps the last good checkpoint stays as it is.
            if bad_in_row == 0 and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
                save(step)
    if writer is not None:
        writer.close()

    results = evaluate("test")
    if main:
        files.test_metrics.write_text(json.dumps(results, indent=2))
    return results


def _flow_modules(model) -> dict[str, torch.nn.Module]:
    return {**model.modality_modules(), "fusion": model.fusion, "heads": model.heads}


def _eval_loader(root: Path, split: str, cfg):
    return make_loader(AstroBioDataset(root, split), cfg.batch_size, shuffle=False,
                       num_workers=cfg.num_workers)


def _tensorboard(root: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(root / "tensorboard"))
