"""The synthetic dataset: the generator's planets written by `write_dataset`.

The same config gives byte-identical files, whatever the number of worker processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from astrobio.config import DataConfig
from astrobio.data.format import SPLITS
from astrobio.data.sample import PlanetSample
from astrobio.data.synthetic import GENERATOR_VERSION, generate_samples
from astrobio.data.writer import write_dataset
from astrobio.errors import ConfigError

# Spawn key of the split permutation's random stream, apart from the generator's streams.
SPLIT_STREAM = 0x5B117


def split_indices(n: int, val_fraction: float, test_fraction: float,
                  seed: int) -> dict[str, np.ndarray]:
    """Generator indices of each split, ascending: a seeded permutation of `range(n)` cut into
    `round(n * test_fraction)` test, `round(n * val_fraction)` val, the rest train."""
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"config key 'data.{key}': {value} is not in [0, 1)")
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    if n - n_val - n_test < 1:
        raise ConfigError(f"n_samples={n} with val_fraction={val_fraction} and "
                          f"test_fraction={test_fraction} leaves no train sample")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLIT_STREAM,)))
    order = rng.permutation(n)
    return {"test": np.sort(order[:n_test]), "val": np.sort(order[n_test:n_test + n_val]),
            "train": np.sort(order[n_test + n_val:])}


def _generate_chunk(args: tuple[int, int, DataConfig]) -> list[PlanetSample]:
    start, stop, config = args
    return generate_samples(start, stop, config)


def _generated(config: DataConfig, workers: int) -> Iterator[PlanetSample]:
    """The planets in index order, generated a shard's worth at a time."""
    n = config.n_samples
    chunks = [(start, min(start + config.shard_size, n), config)
              for start in range(0, n, config.shard_size)]
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        for samples in (pool.map(_generate_chunk, chunks) if pool
                        else map(_generate_chunk, chunks)):
            yield from samples
    finally:
        if pool:
            pool.shutdown()


def build_dataset(config: DataConfig, out: str | Path, *, preset: str | None = None,
                  overwrite: bool = False, progress: bool = True, workers: int = 1) -> Path:
    """Generate `config.n_samples` planets and write them under `out`; returns `out`.

    `workers` > 1 generates in that many processes (same files: each sample depends only on
    the seed and its index).
    """
    n = config.n_samples
    if n < 1 or config.shard_size < 1:
        raise ConfigError(f"n_samples ({n}) and shard_size ({config.shard_size}) must be >= 1")
    splits = split_indices(n, config.val_fraction, config.test_fraction, config.seed)
    split_of = np.empty(n, dtype=np.int64)
    for number, split in enumerate(SPLITS):
        split_of[splits[split]] = number
    return write_dataset(
        _generated(config, workers), out, config,
        split=lambda index, _: SPLITS[split_of[index]], overwrite=overwrite,
        progress=progress, total=n, preset=preset,
        source={"kind": "synthetic", "generator_version": GENERATOR_VERSION},
        generator_version=GENERATOR_VERSION)
