"""The torch DataLoader path: `make_loader`, with a sampler whose position can be checkpointed.

The sampler's order for epoch `e` is a permutation drawn from `(seed, e)` alone, and its state
is `(epoch, position)` counted in samples the consumer has *received*: workers prefetch ahead
of the training loop, so the loader, not the sampler's iterator, advances the position as each
batch is handed over. Restoring the state in a fresh loader continues with exactly the batches
an uninterrupted run would have produced next.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from astrobio.data.batch import MultiModalBatch, multimodal_collate_fn
from astrobio.errors import ConfigError, DataError


class ResumableSampler(Sampler[int]):
    """Indices of this rank's share of each epoch, from the saved position on.

    With `num_replicas` > 1 the epoch's order is padded by wrapping around (as
    `DistributedSampler` does) to a multiple of `num_replicas` and rank `r` takes every
    `num_replicas`-th index from `r`; every rank sees the same count.
    """

    def __init__(self, num_samples: int, shuffle: bool = True, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0):
        if num_samples < 1:
            raise DataError(f"cannot sample from {num_samples} samples", field="dataset")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.num_samples, self.shuffle, self.seed = num_samples, shuffle, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.per_rank = math.ceil(num_samples / num_replicas)
        self.epoch, self.position = 0, 0

    def order(self, epoch: int) -> np.ndarray:
        """This rank's indices for a whole epoch."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
        else:
            order = np.arange(self.num_samples)
        padded = np.resize(order, self.per_rank * self.num_replicas)
        return padded[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order(self.epoch)[self.position:].tolist())

    def __len__(self) -> int:
        return self.per_rank - self.position

    def advance(self, count: int) -> None:
        """Record `count` more samples handed to the consumer."""
        self.position += count
        if self.position >= self.per_rank:
            self.start_next_epoch()

    def start_next_epoch(self) -> None:
        self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed,
                "shuffle": self.shuffle, "num_samples": self.num_samples,
                "num_replicas": self.num_replicas, "rank": self.rank}

    def load_state_dict(self, state: dict) -> None:
        for key in ("seed", "shuffle", "num_samples", "num_replicas", "rank"):
            if state.get(key) != getattr(self, key):
                raise DataError(f"the saved data position has {key}={state.get(key)!r}, this "
                                f"loader {getattr(self, key)!r}; it cannot resume there",
                                field=f"sampler.{key}")
        if not 0 <= state["position"] < self.per_rank or state["epoch"] < 0:
            raise DataError(f"saved position {state['position']} of epoch {state['epoch']} is "
                            f"outside an epoch of {self.per_rank}", field="sampler.position")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


def seed_worker(worker_id: int) -> None:
    """numpy's legacy global generator and `random` in each worker follow torch's per-worker
    seed, for any code that draws from them."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)  # noqa: NPY002 (seeding the global generator is the point)
    random.seed(seed)


class ResumableLoader(DataLoader):
    """A DataLoader over a `ResumableSampler` that advances it as batches are consumed; its
    `state_dict()` is the data position a checkpoint stores."""

    sampler: ResumableSampler

    def __iter__(self) -> Iterator[MultiModalBatch]:
        # Worker seeds drawn from (seed, epoch), so a resumed epoch seeds them alike.
        key = np.random.SeedSequence([self.sampler.seed, self.sampler.epoch])
        self.generator.manual_seed(int(key.generate_state(1, np.uint64)[0]))
        for batch in super().__iter__():
            self.sampler.advance(batch.batch_size)
            yield batch
        if self.sampler.position:  # drop_last left a remainder unconsumed
            self.sampler.start_next_epoch()

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool = True, num_workers: int = 0,
                seed: int = 0, drop_last: bool = False, pin_memory: bool | None = None,
                num_replicas: int = 1, rank: int = 0) -> ResumableLoader:
    """Batches of `multimodal_collate_fn`; `pin_memory` defaults to whether CUDA is there."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    sampler = ResumableSampler(len(dataset), shuffle=shuffle, seed=seed,
                               num_replicas=num_replicas, rank=rank)
    return ResumableLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=multimodal_collate_fn,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        drop_last=drop_last,
        worker_init_fn=seed_worker if num_workers > 0 else None,
        # fork() after OpenMP/BLAS threads have started can crash a worker (seen: a
        # segfault in the full test suite); forkserver workers start from a clean process
        multiprocessing_context="forkserver" if num_workers > 0 else None,
        generator=torch.Generator(),
    )
