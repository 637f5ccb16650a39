"""Input pipeline against the trainer: samples/s of the DALI and torch loaders beside the
samples/s one training step (forward + losses + backward) consumes, so the ratio says whether
the model would wait for data (ratio < 1) or not.

    python bench/bench_loaders.py                       # tiny preset, a markdown table
    python bench/bench_loaders.py --presets tiny small  # small too (meant for a GPU)
    pytest bench/test_pipeline.py --benchmark-only      # pytest-benchmark statistics (tiny)

Each preset gets a synthetic dataset of `--samples` planets of its shapes in a temporary
directory. Loaders run whole epochs (the DALI one rebuilds its pipeline each epoch, which is
counted); the consumer is `UnifiedMultiModalSystem` on the CUDA device when there is one
(bf16 autocast, as the trainer), else the CPU.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from astrobio.config import Config, load_config
from astrobio.data.build import build_dataset
from astrobio.data.dali import DALILoader, dali_available
from astrobio.data.loader import make_loader
from astrobio.data.reader import AstroBioDataset
from astrobio.models import UnifiedMultiModalSystem
from astrobio.train.losses import compute_losses

SECONDS = 5.0


def _config(preset: str, samples: int) -> Config:
    return load_config(preset, overrides=[f"data.n_samples={samples}", "data.val_fraction=0",
                                          "data.test_fraction=0"])


def _loaders(dataset: AstroBioDataset, batch_size: int, workers: int, threads: int) -> dict:
    """name -> a loader; shuffled, as in training."""
    cuda = torch.cuda.is_available()
    loaders = {"torch, 0 workers": make_loader(dataset, batch_size, seed=1)}
    if workers:
        loaders[f"torch, {workers} workers"] = make_loader(dataset, batch_size, seed=1,
                                                           num_workers=workers)
    if dali_available():
        devices = ["cpu", "cuda"] if cuda else ["cpu"]
        for device in devices:
            for augment in (False, True):
                name = f"dali {device}, {threads} threads{', augment' if augment else ''}"
                loaders[name] = DALILoader(dataset, batch_size, seed=1, augment=augment,
                                           device=device, num_threads=threads,
                                           num_workers=workers)
    return loaders


def loader_rate(loader, seconds: float = SECONDS) -> float:
    """Samples/s over whole epochs (at least one, after a warm-up epoch)."""
    device = torch.device("cuda") if torch.cuda.is_available() else None
    for _ in loader:
        pass
    samples, start = 0, time.perf_counter()
    while samples == 0 or time.perf_counter() - start < seconds:
        for batch in loader:
            if device is not None:  # what the trainer does with each batch
                batch = batch.to(device, non_blocking=True)
            samples += batch.batch_size
    if device is not None:
        torch.cuda.synchronize()
    return samples / (time.perf_counter() - start)


def training_step(config: Config, batch):
    """A function running forward + losses + backward of `config`'s model on `batch`."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = UnifiedMultiModalSystem(config).to(device).train()
    batch = batch.to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step():
        model.zero_grad(set_to_none=True)
        with autocast:
            total, _ = compute_losses(model(batch), batch, config.loss, step=0)
        total.backward()

    return step


def consumer_rate(config: Config, batch, seconds: float = SECONDS) -> float:
    """Samples/s of `training_step`, repeated (after one warm-up step)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    step = training_step(config, batch)
    step()
    steps, start = 0, time.perf_counter()
    while steps == 0 or time.perf_counter() - start < seconds:
        step()
        steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch.batch_size / (time.perf_counter() - start)


def _machine() -> str:
    cpu = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
           f"{torch.get_num_threads()} torch threads")
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} + {cpu}"
    return f"CPU only ({cpu})"


def _versions() -> str:
    parts = [f"torch {torch.__version__}"]
    if dali_available():
        import nvidia.dali

        parts.append(f"DALI {nvidia.dali.__version__}")
    return ", ".join(parts)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny"])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2, help="torch DataLoader workers")
    parser.add_argument("--threads", type=int, default=2, help="DALI CPU threads")
    parser.add_argument("--seconds", type=float, default=SECONDS)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            config = _config(preset, args.samples)
            root = build_dataset(config.data, Path(tmp) / preset, progress=True)
            dataset = AstroBioDataset(root, "train")
            batch_size = config.train.batch_size
            first = next(iter(make_loader(dataset, batch_size, shuffle=False)))
            consumer = consumer_rate(config, first, args.seconds)
            loaders = _loaders(dataset, batch_size, args.workers, args.threads)
            for name, loader in tqdm(loaders.items(), desc=f"{preset} loaders"):
                rows.append((preset, batch_size, name, loader_rate(loader, args.seconds),
                             consumer))
    date = datetime.date.today().isoformat()
    print(f"\n{date}, {_machine()}, {_versions()}, {args.samples} planets\n")
    print("| date | machine | versions | preset (batch) | loader | samples/s "
          "| consumer samples/s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for preset, batch_size, name, rate, consumer in rows:
        print(f"| {date} | {_machine()} | {_versions()} | {preset} ({batch_size}) | {name} "
              f"| {rate:,.0f} | {consumer:,.0f} | {rate / consumer:.2f} |")


if __name__ == "__main__":
    main()
