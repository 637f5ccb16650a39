"""CPU input-pipeline throughput: `multimodal_collate_fn` batches/s (batch 32, tiny preset) and
`AstroBioDataset.__getitem__` samples/s (with and without per-item validation).

    pytest bench/test_pipeline.py --benchmark-only     # pytest-benchmark statistics
    python bench/bench_collate.py                      # a printed table

Both build a 256-planet tiny dataset in a temporary directory first.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from astrobio.config import load_config
from astrobio.data.batch import multimodal_collate_fn
from astrobio.data.build import build_dataset
from astrobio.data.loader import make_loader
from astrobio.data.reader import AstroBioDataset

BATCH_SIZE = 32
N_SAMPLES = 256


def _build(directory: Path) -> Path:
    config = load_config("tiny", overrides=[f"data.n_samples={N_SAMPLES}"]).data
    return build_dataset(config, directory / "data", progress=False)


def _cases(root: Path) -> dict:
    """name -> (function running one unit, units per call, unit name)."""
    dataset = AstroBioDataset(root, "train")
    unchecked = AstroBioDataset(root, "train", check=False)
    samples = [dataset[i] for i in range(BATCH_SIZE)]
    counter = iter(range(10**12))
    loader = make_loader(dataset, BATCH_SIZE, shuffle=True, num_workers=0, pin_memory=False)
    return {
        "collate (batch 32)": (lambda: multimodal_collate_fn(samples), 1, "batches/s"),
        "getitem, checked": (lambda: dataset[next(counter) % len(dataset)], 1, "samples/s"),
        "getitem, unchecked": (lambda: unchecked[next(counter) % len(unchecked)], 1,
                               "samples/s"),
        "loader epoch, 0 workers": (lambda: sum(1 for _ in loader), len(loader), "batches/s"),
    }


def _rate(fn, units: int, seconds: float = 2.0) -> float:
    fn()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        calls += 1
    return calls * units / elapsed


def main() -> None:
    """Each case at torch's default thread count and at 1 thread, which is what DataLoader
    workers run with (on a busy CPU, intra-op threads spin-wait and can cost more than the
    work)."""
    with tempfile.TemporaryDirectory() as tmp:
        cases = _cases(_build(Path(tmp)))
        default = torch.get_num_threads()
        print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"torch {torch.__version__}, numpy {np.__version__}")
        print(f"| case | {default} torch threads | 1 torch thread |\n|---|---|---|")
        for name, (fn, units, unit) in cases.items():
            rates = []
            for threads in (default, 1):
                torch.set_num_threads(threads)
                rates.append(f"{_rate(fn, units):,.0f} {unit}")
            torch.set_num_threads(default)
            print(f"| {name} | {rates[0]} | {rates[1]} |")


if __name__ == "__main__":
    main()
