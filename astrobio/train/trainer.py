"""The training loop of the unified system: one loss, every encoder, checkpoints, guards.

`train` runs a `Trainer`: `__init__` sets the run up (run directory, data, model, optimizer,
resume), `run` loops `train_step`, logs, validates and checkpoints, then scores the test split.
Where the model lives is the layout's business (`layout.Layout`), so the same loop trains one
process or a torchrun job.
"""

from __future__ import annotations

import json
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from astrobio.config import Config, TrainConfig
from astrobio.data.batch import MultiModalBatch
from astrobio.data.cache import ensure_default_dataset
from astrobio.data.loader import make_loader
from astrobio.data.reader import AstroBioDataset
from astrobio.errors import ConfigError, RunError
from astrobio.eval.evaluate import flat_metrics, predict, score
from astrobio.ops import use_backend
from astrobio.run import RunFiles, resolve_device
from astrobio.train import checkpoint
from astrobio.train.layout import Layout, SingleProcess
from astrobio.train.losses import UncertaintyWeighting, compute_losses, supervised_terms
from astrobio.train.schedule import warmup_cosine
from astrobio.train.throughput import Throughput


class TrainingDiverged(RunError):
    """Too many non-finite losses in a row; the last good checkpoint is kept."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def _truncate_jsonl(path: Path, keep) -> None:
    if path.exists():
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        path.write_text("".join(json.dumps(r) + "\n" for r in records if keep(r)))


def make_train_loader(root: Path, cfg: TrainConfig, batch_size: int, device: torch.device,
                      num_replicas: int = 1, rank: int = 0,
                      planets: Callable[[dict], bool] | None = None):
    """The shuffled, resumable training loader of `cfg.loader`: the torch DataLoader (the
    reference) or DALI (`pip install 'astrobio[dali]'`; it alone augments)."""
    dataset = AstroBioDataset(root, "train", keep=planets)
    if cfg.loader == "dali":
        from astrobio.data.dali import DALILoader

        return DALILoader(dataset, batch_size, shuffle=True, seed=cfg.seed, drop_last=True,
                          augment=cfg.augment, num_workers=cfg.num_workers, device=device,
                          num_replicas=num_replicas, rank=rank)
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
    return batch.masked(torch.where(kept.any(dim=1, keepdim=True), kept, present))


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


def _forever(loader):
    """Batches across epoch boundaries; the loader's sampler tracks the position."""
    while True:
        yield from loader


@dataclass
class StepResult:
    """What one optimizer step did: mean loss terms, the gradient norm, whether it was applied
    (every loss and gradient finite), and the LLM positions it trained on."""

    losses: dict[str, float]
    grad_norm: torch.Tensor
    applied: bool
    positions: int
    seq_len: int


def train(config: Config, run_dir: str | Path, data_dir: str | Path | None = None,
          resume: bool = False, progress: bool = True,
          batch_transform: Callable[[MultiModalBatch], MultiModalBatch] | None = None,
          prepare_model: Callable[[torch.nn.Module], list[torch.nn.Module]] | None = None,
          layout: Layout | None = None,
          planets: Callable[[dict], bool] | None = None) -> dict:
    """Train `config` into `run_dir`; returns the test metrics. See `python -m astrobio.train`.

    `layout` places the model: `SingleProcess` on `train.device` by default, or
    `astrobio.train.distributed.MeshParallelism` for the ranks torchrun started. For the
    study's variants (`astrobio.experiments`): `batch_transform` rewrites every batch, training
    and evaluation alike (e.g. withholding modalities through `present`); `prepare_model(model)`
    runs once on the new model and returns the modules it froze, which stay in eval mode and
    out of the optimizer; `planets(record)` selects the planets of every split by their
    manifest record (an out-of-distribution split trains on some and tests on others).
    """
    trainer = Trainer(config, run_dir, data_dir, resume=resume, progress=progress,
                      batch_transform=batch_transform, prepare_model=prepare_model,
                      layout=layout, planets=planets)
    return trainer.run()


class Trainer:
    """One run of `train` (its docstring); attributes are the run's live state."""

    def __init__(self, config: Config, run_dir: str | Path, data_dir: str | Path | None = None,
                 resume: bool = False, progress: bool = True,
                 batch_transform: Callable[[MultiModalBatch], MultiModalBatch] | None = None,
                 prepare_model: Callable[[torch.nn.Module], list[torch.nn.Module]] | None = None,
                 layout: Layout | None = None, planets: Callable[[dict], bool] | None = None):
        self.config, cfg = config, config.train
        self.layout = layout or SingleProcess(resolve_device(cfg.device))
        self.device, self.main = self.layout.device, self.layout.main
        self.progress = progress and self.main
        if cfg.batch_size % self.layout.dp:
            raise ConfigError(f"train.batch_size={cfg.batch_size} is not divisible by the "
                              f"data-parallel degree {self.layout.dp}")
        self.files = RunFiles(run_dir)
        self.checkpoint_path = self._claim_run_dir(resume)

        seed_everything(cfg.seed)
        if self.device.type == "cpu" and cfg.cpu_threads > 0:
            torch.set_num_threads(cfg.cpu_threads)
        self.data_root = ensure_default_dataset(config.data, data_dir, progress=self.progress)
        self.planets = planets
        self.loader = make_train_loader(self.data_root, cfg, cfg.batch_size // self.layout.dp,
                                        self.device, self.layout.dp, self.layout.dp_rank,
                                        planets)
        self.uncertainty = UncertaintyWeighting() if config.loss.uncertainty_weighting else None
        self.model = self.layout.build(config, self.uncertainty)
        self.frozen = prepare_model(self.model) if prepare_model is not None else []
        self.params = [p for m in (self.model, self.uncertainty) if m is not None
                       for p in m.parameters() if p.requires_grad]
        self.optimizer = self.layout.optimizer(self.params, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: warmup_cosine(s, cfg.warmup_steps, cfg.steps))
        self.step = 0
        self.bad_in_row = 0
        if resume:
            self._restore()
        if self.main:
            self._start_logs(resume)

        self.transform = batch_transform or (lambda batch: batch)
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                       enabled=self.device.type == "cuda")
        self.throughput = Throughput(self.model, self.device, self.layout.world)
        self.batches = _forever(self.loader)

    def _claim_run_dir(self, resume: bool) -> Path:
        """The checkpoint path of this run; a fresh run refuses a directory holding one."""
        if self.main:
            self.files.root.mkdir(parents=True, exist_ok=True)
        self.layout.barrier()
        path = self.layout.checkpoint_path(self.files)
        if resume:
            if not path.exists():
                raise RunError(f"--resume: no checkpoint at {path}")
            _same_run(json.loads(self.files.config.read_text()), self.config)
        elif path.exists():
            raise RunError(f"{self.files.root} already holds a run; pass --resume to continue "
                           "it or choose another --out")
        return path

    def _restore(self) -> None:
        saved = self.layout.load(self.checkpoint_path, self.model, self.optimizer)
        if self.uncertainty is not None:
            self.uncertainty.load_state_dict(saved["uncertainty"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.loader.load_state_dict(saved["data_position"])
        self.step = saved["step"]
        checkpoint.restore_rng_states(saved["rng"])

    def _start_logs(self, resume: bool) -> None:
        files = self.files
        if resume:  # what was logged after the checkpoint is redone by this run
            _truncate_jsonl(files.metrics, lambda r: r["step"] <= self.step)
            _truncate_jsonl(files.gradient_flow, lambda r: r["step"] < self.step)
        else:
            for stale in (files.metrics, files.gradient_flow):
                stale.unlink(missing_ok=True)
        files.config.write_text(json.dumps({**self.config.to_dict(),
                                            "data_dir": str(self.data_root)}, indent=2))

    def run(self) -> dict:
        """Train to `train.steps`, then score the test split (written by the main process)."""
        cfg = self.config.train
        writer = _tensorboard(self.files.root) if self.main else None
        self._train_mode()
        with use_backend(cfg.backend), tqdm(total=cfg.steps, initial=self.step, desc="train",
                                            unit="step", disable=not self.progress) as bar:
            while self.step < cfg.steps:
                started = time.perf_counter()
                result = self.train_step()
                self.step += 1
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                if self.main:
                    self._log(result, time.perf_counter() - started, bar, writer)
                if self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                    self._validate()
                # During a run of skipped steps the last good checkpoint stays as it is.
                if self.bad_in_row == 0 and (self.step % cfg.checkpoint_every == 0
                                             or self.step == cfg.steps):
                    self.save()
        if writer is not None:
            writer.close()
        results = self.evaluate("test")
        if self.main:
            self.files.test_metrics.write_text(json.dumps(results, indent=2))
        return results

    def train_step(self) -> StepResult:
        """One optimizer step over `train.grad_accum` micro-batches; a step whose loss or
        gradient is not finite on any rank is skipped by every rank."""
        cfg = self.config.train
        self.optimizer.zero_grad(set_to_none=True)
        finite = torch.ones((), device=self.device)
        sums: dict[str, torch.Tensor] = {}
        positions = 0
        for micro in range(cfg.grad_accum):
            batch = drop_modalities(self.transform(next(self.batches)), cfg.modality_dropout)
            batch = batch.to(self.device, non_blocking=True)
            seq_len = batch.input_ids.shape[1] + self.config.model.prefix_tokens
            positions += batch.input_ids.shape[0] * seq_len
            terms, micro_finite = self._forward_backward(batch, log_flow=micro == 0)
            finite = finite * micro_finite
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value.detach().float() / cfg.grad_accum
        finite = self.layout.all_finite(finite)
        grad_norm = self.layout.clip_grad_norm(self.params, cfg.grad_clip)
        applied = finite and bool(torch.isfinite(grad_norm))
        if applied:
            self.bad_in_row = 0
            self.optimizer.step()
            self.scheduler.step()
        else:
            self._skip()
        return StepResult(self.layout.mean_losses(sums), grad_norm, applied, positions, seq_len)

    def _forward_backward(self, batch: MultiModalBatch, log_flow: bool):
        """The loss terms of one micro-batch and whether its total is finite; its gradient is
        accumulated (every rank runs its backward, so that collectives stay matched)."""
        with self.layout.loss_context():
            with self.autocast:
                output = self.model(batch)
                total, terms = compute_losses(output, batch, self.config.loss, self.step,
                                              self.uncertainty)
            finite = torch.isfinite(total.detach())
            every = self.config.train.gradient_flow_every
            if log_flow and self.layout.gradient_flow and self.step % every == 0 and finite:
                habitable_loss = supervised_terms(output, batch)["habitable"]
                flow = gradient_norms(habitable_loss, _flow_modules(self.model))
                _append_jsonl(self.files.gradient_flow, {"step": self.step, **flow})
            (torch.nan_to_num(total) / self.config.train.grad_accum).backward()
        return terms, finite

    def _skip(self) -> None:
        self.bad_in_row += 1
        if self.main:
            warnings.warn(f"step {self.step}: non-finite loss or gradient; step skipped "
                          f"({self.bad_in_row} in a row)", RuntimeWarning, stacklevel=1)
        if self.bad_in_row >= self.config.train.max_bad_steps:
            raise TrainingDiverged(
                f"{self.bad_in_row} non-finite steps in a row at step {self.step}; stopped. The "
                f"last good checkpoint is {self.checkpoint_path} (lower --lr, or check the data "
                "with `python -m astrobio.data validate`)")
        self.optimizer.zero_grad(set_to_none=True)

    def _log(self, result: StepResult, elapsed: float, bar, writer) -> None:
        tokens_per_s, mfu = self.throughput.measure(result.positions * self.layout.dp, elapsed,
                                                    result.seq_len)
        _append_jsonl(self.files.metrics, {
            "step": self.step, "lr": self.scheduler.get_last_lr()[0],
            "grad_norm": float(result.grad_norm) if result.applied else None,
            "step_time_s": elapsed, "tokens_per_s": tokens_per_s, "mfu": mfu,
            **{f"loss/{name}": value for name, value in result.losses.items()}})
        if writer is not None:
            for name, value in result.losses.items():
                writer.add_scalar(f"loss/{name}", value, self.step)
        bar.set_postfix(loss=f"{result.losses.get('total', float('nan')):.4f}",
                        tok_s=f"{tokens_per_s:.0f}",
                        **({} if mfu is None else {"mfu": f"{100 * mfu:.1f}%"}))
        bar.update(1)

    def _validate(self) -> None:
        val = self.evaluate("val")
        if self.main:
            _append_jsonl(self.files.metrics, {"step": self.step, **{
                f"val/{k}": v for k, v in flat_metrics(val).items()}})
        self._train_mode()

    def evaluate(self, split: str) -> dict:
        loader = make_loader(AstroBioDataset(self.data_root, split, keep=self.planets),
                             self.config.train.batch_size, shuffle=False,
                             num_workers=self.config.train.num_workers)
        with torch.no_grad(), self.layout.loss_context(), self.autocast:
            return score(predict(self.model, map(self.transform, loader), self.device))

    def save(self) -> None:
        self.layout.save(self.checkpoint_path, self.model, self.optimizer, {
            "step": self.step, "config": self.config.to_dict(), "data_dir": str(self.data_root),
            "scheduler": self.scheduler.state_dict(), "data_position": self.loader.state_dict(),
            "uncertainty": (self.uncertainty.state_dict() if self.uncertainty is not None
                            else None),
            "rng": checkpoint.rng_states()})

    def _train_mode(self) -> None:
        self.model.train()
        for module in self.frozen:
            module.eval()


def _flow_modules(model) -> dict[str, torch.nn.Module]:
    return {**model.modality_modules(), "fusion": model.fusion, "heads": model.heads}


def _tensorboard(root: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(root / "tensorboard"))
