"""One training step of `UnifiedMultiModalSystem` (forward, `compute_losses`, backward, AdamW),
`tiny` preset, batch 32, on 32 planets of the built-in synthetic dataset.

    pytest bench/test_pipeline.py --benchmark-only       # pytest-benchmark statistics
    python bench/bench_system_step.py                    # a printed table

The table gives wall time and process CPU time per step at torch's default thread count and at
1 thread: on a shared, busy CPU the wall time mostly measures the other processes (intra-op
threads spin-wait), while CPU time per step stays close to what an idle machine gives.
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
from astrobio.data.reader import AstroBioDataset
from astrobio.models import UnifiedMultiModalSystem
from astrobio.train.losses import compute_losses

BATCH_SIZE = 32
N_SAMPLES = 128


def _step_fn(root: Path):
    config = load_config("tiny")
    dataset = AstroBioDataset(root, "train")
    batch = multimodal_collate_fn([dataset[i] for i in range(BATCH_SIZE)])
    torch.manual_seed(0)
    model = UnifiedMultiModalSystem(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    counter = iter(range(10**12))

    def step():
        total, _ = compute_losses(model(batch), batch, config.loss, next(counter))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    return step, batch


def _build(directory: Path) -> Path:
    config = load_config("tiny", overrides=[f"data.n_samples={N_SAMPLES}"]).data
    return build_dataset(config, directory / "data", progress=False)


def _time(step, n: int = 12) -> tuple[float, float]:
    for _ in range(3):
        step()
    wall, cpu = [], []
    for _ in range(n):
        t, c = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return float(np.median(wall)), float(np.median(cpu))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        step, batch = _step_fn(_build(Path(tmp)))
        default = torch.get_num_threads()
        print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
        print(f"batch {BATCH_SIZE}: text {tuple(batch.input_ids.shape)}, "
              f"{batch.graph.node_features.shape[0]} nodes, {batch.graph.col.numel()} edges")
        print("| torch threads | wall s/step | CPU s/step |\n|---|---|---|")
        for threads in (default, 1):
            torch.set_num_threads(threads)
            wall, cpu = _time(step)
            print(f"| {threads} | {wall:.3f} | {cpu:.3f} |")
        torch.set_num_threads(default)


if __name__ == "__main__":
    main()
