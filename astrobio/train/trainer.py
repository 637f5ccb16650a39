"""The training loop of the unified system: one loss, every encoder, checkpoints, guards.

`train` runs a `Trainer`: `__init__` sets the run up (run directory, data, model, optimizer,
resume), `run` loops `train_step`, logs, validates and checkpoints, then scores the test split.
Where the model lives is the layout's business (`layout.Layout`), so the same loop trains one
process or a torchrun job.

Guards: a step whose loss or gradient is not finite is skipped, and too many in a row stop the
run; a checkpoint is written only when every parameter and optimizer state is finite, and a run
ends with one or fails naming the planets of the failing batch and the last checkpoint's step.
SIGINT and SIGTERM finish the step, write a checkpoint and stop (`TrainingInterrupted`).
A resumed run continues as its config.json says; changes are printed, and those that would
train something else than the saved run (`RESUMABLE` lists the others) need `force`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from astrobio.checksum import checksum_path, checksum_problem, read_checksum, write_checksum
from astrobio.config import Config, TrainConfig
from astrobio.data.batch import MultiModalBatch
from astrobio.data.cache import ensure_default_dataset
from astrobio.data.format import read_card, read_recorded
from astrobio.data.loader import make_loader
from astrobio.data.reader import AstroBioDataset
from astrobio.data.tokenizer import TOKENIZER_FILE
from astrobio.errors import ConfigError, RunError
from astrobio.eval.evaluate import flat_metrics, predict, score
from astrobio.ops import use_backend
from astrobio.run import RunFiles, read_log, resolve_device
from astrobio.schema import CATALOGUE_MODALITIES, MODALITIES
from astrobio.train import checkpoint
from astrobio.train.layout import Layout, SingleProcess
from astrobio.train.losses import UncertaintyWeighting, compute_losses, supervised_terms
from astrobio.train.schedule import warmup_cosine
from astrobio.train.throughput import Throughput


class TrainingDiverged(RunError):
    """The run cannot finish cleanly (non-finite losses or state); the last finite checkpoint
    is kept."""


class TrainingInterrupted(RunError):
    """SIGINT or SIGTERM stopped the run; the message says how to resume it."""


# Fields a resumed run may change without `force`: how long it goes on, how often it logs,
# validates and saves, and where it runs. Any other change trains something else than the run
# that was saved.
RESUMABLE = frozenset({"train.steps", "train.checkpoint_every", "train.eval_every",
                       "train.gradient_flow_every", "train.max_bad_steps", "train.num_workers",
                       "train.cpu_threads", "train.device", "train.backend"})


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def _truncate_jsonl(path: Path, keep) -> None:
    """Keep the records `keep` accepts; lines a crash cut short are dropped (`read_log`)."""
    if path.exists():
        records = read_log(path)
        _write_atomic(path, "".join(json.dumps(r) + "\n" for r in records if keep(r)))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def make_train_loader(root: Path, cfg: TrainConfig, batch_size: int, device: torch.device,
                      num_replicas: int = 1, rank: int = 0,
                      planets: Callable[[dict], bool] | None = None):
    """The shuffled, resumable training loader of `cfg.loader`: the torch DataLoader (the
    reference) or DALI (`pip install 'astrobio[dali]'`; it alone augments)."""
    dataset = AstroBioDataset(root, "train", keep=planets)
    per_rank = math.ceil(len(dataset) / num_replicas)
    if batch_size > per_rank:
        raise ConfigError(
            f"train.batch_size={cfg.batch_size} is larger than the training split of {root} "
            f"({len(dataset)} samples{f' over {num_replicas} ranks' if num_replicas > 1 else ''})"
            f": only whole batches are drawn, so there would be none; use at most "
            f"{per_rank * num_replicas}")
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


def drop_modalities(batch: MultiModalBatch, modality_dropout: float,
                    catalogue_only: float = 0.0) -> MultiModalBatch:
    """`batch` with each present modality hidden with probability `modality_dropout`, and each
    sample reduced to its catalogue modalities with probability `catalogue_only`; a sample
    that would lose all of them keeps its own."""
    present = batch.present.bool()
    kept = present
    if modality_dropout > 0:
        kept = kept & (torch.rand(present.shape) >= modality_dropout)
    if catalogue_only > 0:
        catalogue = torch.tensor([m in CATALOGUE_MODALITIES for m in MODALITIES])
        as_catalogue = torch.rand(len(present), 1) < catalogue_only
        kept = torch.where(as_catalogue, present & catalogue, kept)
    if kept is present:
        return batch
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


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_changes(saved: dict, config: Config) -> dict[str, tuple]:
    """field -> (saved, now) for every field of `config` that differs from the run's
    config.json `saved` (compared as JSON, so tuples equal lists); the preset's name is not a
    setting and is left out."""
    before = _flatten({k: v for k, v in saved.items() if k not in ("preset", "data_dir")})
    after = _flatten(json.loads(json.dumps(config.to_dict())))
    after.pop("preset")
    return {key: (before.get(key), value) for key, value in after.items()
            if before.get(key) != value}


def _forever(loader):
    """Batches across epoch boundaries; the loader's sampler tracks the position. (A resumed
    epoch may hold only its remainder, no whole batch; two empty passes in a row would loop
    forever.)"""
    empty = 0
    while empty < 2:
        empty += 1
        for batch in loader:
            empty = 0
            yield batch
    raise RunError("the training loader yields no batch: fewer samples than one batch")


def _planets(ids: list[str], limit: int = 12) -> str:
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


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
          planets: Callable[[dict], bool] | None = None, force: bool = False) -> dict:
    """Train `config` into `run_dir`; returns the test metrics. See `python -m astrobio.train`.

    With `resume`, `config` should be the run's config.json with any changes wanted; a change
    outside `RESUMABLE` (and another `data_dir`) needs `force`. `data_dir` defaults to the run's.

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
                      layout=layout, planets=planets, force=force)
    return trainer.run()


class Trainer:
    """One run of `train` (its docstring); attributes are the run's live state."""

    def __init__(self, config: Config, run_dir: str | Path, data_dir: str | Path | None = None,
                 resume: bool = False, progress: bool = True,
                 batch_transform: Callable[[MultiModalBatch], MultiModalBatch] | None = None,
                 prepare_model: Callable[[torch.nn.Module], list[torch.nn.Module]] | None = None,
                 layout: Layout | None = None, planets: Callable[[dict], bool] | None = None,
                 force: bool = False):
        self.config, cfg = config, config.train
        self.layout = layout or SingleProcess(resolve_device(cfg.device))
        self.device, self.main = self.layout.device, self.layout.main
        self.progress = progress and self.main
        if cfg.batch_size % self.layout.dp:
            raise ConfigError(f"train.batch_size={cfg.batch_size} is not divisible by the "
                              f"data-parallel degree {self.layout.dp}")
        self.files = RunFiles(run_dir)
        self.checkpoint_path = self._claim_run_dir(resume)
        self.changes: list[str] = []
        if resume:
            data_dir = self._check_changes(data_dir, force)

        seed_everything(cfg.seed)
        if self.device.type == "cpu" and cfg.cpu_threads > 0:
            torch.set_num_threads(cfg.cpu_threads)
        self.data_root = ensure_default_dataset(config.data, data_dir, progress=self.progress)
        self.planets = planets
        if self.main:
            self._keep_tokenizer(resume)
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
        self.saved_step: int | None = None  # the step of the last checkpoint written
        self.step_planets: list[str] = []  # this rank's planets of the step just taken
        self.stop_signal: str | None = None
        if resume:
            self._restore()
            if self.main and self.changes:
                print(f"resuming {self.files.root} at step {self.step} with changes: "
                      + "; ".join(self.changes), flush=True)
        if self.main:
            self._start_logs(resume)

        self.transform = batch_transform or (lambda batch: batch)
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                       enabled=self.device.type == "cuda")
        self.throughput = Throughput(self.model, self.device, self.layout.world)
        self.batches = _forever(self.loader)

    def _claim_run_dir(self, resume: bool) -> Path:
        """The checkpoint path of this run; a fresh run refuses a directory holding one.
        Temporary files of saves that a crash cut short are cleaned (or finished) first."""
        path = self.layout.checkpoint_path(self.files)
        if self.main:
            self.files.root.mkdir(parents=True, exist_ok=True)
            if not path.is_dir():  # a single file: `checkpoint.save_atomic`'s
                for removed in checkpoint.recover(path):
                    print(f"removed {removed.name}, left by a save that did not finish",
                          file=sys.stderr)
        self.layout.barrier()
        if resume:
            if not path.exists():
                raise RunError(f"--resume: no checkpoint at {path}")
        elif path.exists():
            raise RunError(f"{self.files.root} already holds a run; pass --resume to continue "
                           "it or choose another --out")
        return path

    def _check_changes(self, data_dir: str | Path | None, force: bool) -> Path:
        """The run's dataset, unless `data_dir` names another; the changes from the saved
        config.json (kept for printing), refused outside `RESUMABLE` without `force`."""
        saved = self.files.read_config()
        changes = config_changes(saved, self.config)
        saved_data = saved.get("data_dir")
        if data_dir is None and saved_data is not None:
            data_dir = saved_data
        elif data_dir is not None and saved_data is not None \
                and Path(data_dir).resolve() != Path(saved_data).resolve():
            changes["data_dir"] = (saved_data, str(data_dir))
        self.changes = [f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items()]
        refused = [c for c, key in zip(self.changes, changes) if key not in RESUMABLE]
        if refused and not force:
            raise ConfigError(
                f"--resume: {'; '.join(refused)} would train something else than the run "
                f"saved in {self.files.root}; pass --force to apply "
                f"{'it' if len(refused) == 1 else 'them'} anyway, or leave "
                f"{'it' if len(refused) == 1 else 'them'} out (the run's config.json is used)")
        return data_dir

    def _keep_tokenizer(self, resume: bool) -> None:
        """The dataset's tokenizer, checked against the sha256 its card records and copied
        into the run with its sha256 (`Run.tokenizer` reads that copy); a resumed run's
        dataset must still have the same one."""
        source, kept = self.data_root / TOKENIZER_FILE, self.files.tokenizer
        if resume and kept.exists():
            problem = checksum_problem(kept)
            if problem is not None:
                raise RunError(f"{kept}: {problem}")
            if checksum_problem(source, accepted=(read_checksum(checksum_path(kept)),)):
                raise RunError(f"{source} differs from the tokenizer this run was trained with "
                               f"({kept}): the dataset's token ids would mean other text; "
                               "resume on the dataset the run started from")
            return
        tmp = kept.with_name(f".{kept.name}.tmp-{os.getpid()}")
        tmp.write_bytes(read_recorded(self.data_root, TOKENIZER_FILE, read_card(self.data_root)))
        os.replace(tmp, kept)
        write_checksum(kept)

    def _restore(self) -> None:
        saved = self.layout.load(self.checkpoint_path, self.model, self.optimizer)
        try:
            if self.uncertainty is not None:
                self.uncertainty.load_state_dict(saved["uncertainty"])
            self.scheduler.load_state_dict(saved["scheduler"])
            self.loader.load_state_dict(saved["data_position"])
            self.step = int(saved["step"])
            checkpoint.restore_rng_states(saved["rng"])
        except (KeyError, TypeError) as err:
            raise RunError(f"{self.checkpoint_path}: incomplete trainer state ({err!r} "
                           "missing or mistyped)") from None
        self.saved_step = self.step

    def _start_logs(self, resume: bool) -> None:
        files = self.files
        if resume:  # what was logged after the checkpoint is redone by this run
            _truncate_jsonl(files.metrics, lambda r: r["step"] <= self.step)
            _truncate_jsonl(files.gradient_flow, lambda r: r["step"] < self.step)
        else:
            for stale in (files.metrics, files.gradient_flow):
                stale.unlink(missing_ok=True)
        _write_atomic(files.config, json.dumps({**self.config.to_dict(),
                                                "data_dir": str(self.data_root)}, indent=2))

    def run(self) -> dict:
        """Train to `train.steps`, then score the test split (written by the main process)."""
        writer = _tensorboard(self.files.root) if self.main else None
        try:
            with self._stop_on_signals():
                self._loop(writer)
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once
            raise TrainingInterrupted(
                f"stopped at once during step {self.step + 1}; {self._last_checkpoint()}. "
                f"{self._resume_hint()}") from None
        finally:
            if writer is not None:
                writer.close()
        if self.bad_in_row:
            raise TrainingDiverged(
                f"the last {self.bad_in_row} step(s), up to step {self.step}, were skipped as "
                f"non-finite (planets of the failing batch: {_planets(self.step_planets)}), so "
                f"the run did not finish cleanly; {self._last_checkpoint()}. Lower --lr, or "
                "check the data with `python -m astrobio.data validate`")
        try:
            results = self.evaluate("test")
        except KeyboardInterrupt:
            raise TrainingInterrupted(
                f"training finished ({self._last_checkpoint()}); the test evaluation was "
                f"interrupted: python -m astrobio.evaluate --run {self.files.root}") from None
        if self.main:
            self.files.test_metrics.write_text(json.dumps(results, indent=2))
        return results

    def _loop(self, writer) -> None:
        cfg = self.config.train
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
                if self._stop_requested():
                    self._stop()

    @contextlib.contextmanager
    def _stop_on_signals(self):
        """SIGINT and SIGTERM ask the loop to stop after the step in progress; a second
        SIGINT stops at once (KeyboardInterrupt)."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return

        def request(signum, frame):
            if self.stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.stop_signal = signal.Signals(signum).name
            if self.main:
                print(f"\n{self.stop_signal}: finishing step {self.step + 1}, then saving a "
                      "checkpoint (Ctrl-C again stops at once)", file=sys.stderr, flush=True)

        previous = {s: signal.signal(s, request) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _stop_requested(self) -> bool:
        """Whether any rank got a stop signal (every rank stops at the same step)."""
        device = self.device if self.layout.world > 1 else "cpu"  # no GPU sync for one rank
        going_on = torch.tensor(0.0 if self.stop_signal else 1.0, device=device)
        return not self.layout.all_finite(going_on)

    def _stop(self) -> None:
        if self.saved_step != self.step and self.bad_in_row == 0:
            self.save()
        raise TrainingInterrupted(
            f"{self.stop_signal or 'a stop signal on another rank'} at step {self.step}: "
            f"{self._last_checkpoint()}. {self._resume_hint()}")

    def _resume_hint(self) -> str:
        return f"Resume with: python -m astrobio.train --out {self.files.root} --resume"

    def _last_checkpoint(self) -> str:
        if self.saved_step is None:
            return "no checkpoint was written"
        return f"the last finite checkpoint is step {self.saved_step}'s, {self.checkpoint_path}"

    def train_step(self) -> StepResult:
        """One optimizer step over `train.grad_accum` micro-batches; a step whose loss or
        gradient is not finite on any rank is skipped by every rank."""
        cfg = self.config.train
        self.optimizer.zero_grad(set_to_none=True)
        finite = torch.ones((), device=self.device)
        sums: dict[str, torch.Tensor] = {}
        positions = 0
        self.step_planets = []
        for micro in range(cfg.grad_accum):
            batch = drop_modalities(self.transform(next(self.batches)), cfg.modality_dropout,
                                    cfg.catalogue_only)
            self.step_planets += batch.planet_ids
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
            warnings.warn(f"step {self.step + 1}: non-finite loss or gradient; step skipped "
                          f"({self.bad_in_row} in a row; planets {_planets(self.step_planets)})",
                          RuntimeWarning, stacklevel=1)
        if self.bad_in_row >= self.config.train.max_bad_steps:
            raise TrainingDiverged(
                f"{self.bad_in_row} non-finite steps in a row at step {self.step + 1} (planets "
                f"of the failing batch: {_planets(self.step_planets)}); stopped: "
                f"{self._last_checkpoint()} (lower --lr, or check the data with "
                "`python -m astrobio.data validate`)")
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
        dataset = AstroBioDataset(self.data_root, split, keep=self.planets)
        # a user's small dataset may have no planet in a split: it scores n = 0
        loader = make_loader(dataset, self.config.train.batch_size, shuffle=False,
                             num_workers=self.config.train.num_workers) if len(dataset) else []
        with torch.no_grad(), self.layout.loss_context(), self.autocast:
            return score(predict(self.model, map(self.transform, loader), self.device))

    def save(self) -> None:
        """Write the checkpoint of this step, only if every parameter and optimizer state is
        finite (a `TrainingDiverged` otherwise: the last finite checkpoint stays)."""
        if not self._state_finite():
            raise TrainingDiverged(
                f"after step {self.step} (planets {_planets(self.step_planets)}) a parameter or "
                f"optimizer state is not finite, so no checkpoint was written; "
                f"{self._last_checkpoint()} (lower --lr)")
        self.layout.save(self.checkpoint_path, self.model, self.optimizer, {
            "step": self.step, "config": self.config.to_dict(), "data_dir": str(self.data_root),
            "scheduler": self.scheduler.state_dict(), "data_position": self.loader.state_dict(),
            "uncertainty": (self.uncertainty.state_dict() if self.uncertainty is not None
                            else None),
            "rng": checkpoint.rng_states()})
        self.saved_step = self.step

    def _state_finite(self) -> bool:
        """Whether every trained parameter, buffer and optimizer state is finite on every rank
        (a frozen weight never changes; an NF4 base has no elementwise ops to check it with)."""
        tensors = [p for p in self.model.parameters() if p.requires_grad]
        tensors += list(self.model.buffers())
        if self.uncertainty is not None:
            tensors += list(self.uncertainty.state_dict().values())
        tensors += [t for state in self.optimizer.state.values() for t in state.values()
                    if isinstance(t, torch.Tensor)]
        local = [t.to_local() if hasattr(t, "to_local") else t for t in tensors]  # DTensor
        flags = [torch.isfinite(t).all().to(self.device) for t in local if t.is_floating_point()]
        finite = torch.stack(flags).all().float() if flags else torch.ones((), device=self.device)
        return self.layout.all_finite(finite)

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
