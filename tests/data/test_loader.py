"""`make_loader`: batches of the collate, epoch orders from the seed, exact resumption."""

import os

import numpy as np
import pytest
import torch

from astrobio.config import DataConfig
from astrobio.data.batch import multimodal_collate_fn
from astrobio.data.build import build_dataset
from astrobio.data.loader import ResumableSampler, make_loader
from astrobio.data.reader import AstroBioDataset
from astrobio.errors import DataError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    seed = int(os.environ.get("ASTROBIO_TEST_SEED", int.from_bytes(os.urandom(4), "little")))
    print(f"ASTROBIO_TEST_SEED={seed} (dataset)")
    config = DataConfig(n_samples=30, shard_size=8, seed=seed, val_fraction=0.0,
                        test_fraction=0.0)
    root = build_dataset(config, tmp_path_factory.mktemp("ds") / "data", progress=False)
    return AstroBioDataset(root, "train")


def _ids(loader, batches=None):
    out = []
    for batch in loader:
        out.append(batch.planet_ids)
        if batches is not None and len(out) == batches:
            break
    return out


def test_batches_are_the_collate_of_the_items(dataset, rng):
    batch_size = int(rng.integers(3, 8))
    loader = make_loader(dataset, batch_size, shuffle=False)
    by_id = {dataset.records[i]["planet_id"]: i for i in range(len(dataset))}
    for batch in loader:
        truth = multimodal_collate_fn([dataset[by_id[p]] for p in batch.planet_ids])
        for name in ("climate", "spectrum", "params", "input_ids", "attention_mask", "present"):
            assert torch.equal(getattr(batch, name), getattr(truth, name)), name
        for name in ("node_features", "edge_index", "rowptr", "col"):
            assert torch.equal(getattr(batch.graph, name), getattr(truth.graph, name)), name
    assert [p for ids in _ids(loader) for p in ids] == [r["planet_id"] for r in dataset.records]


def test_every_epoch_is_a_fresh_permutation_from_the_seed(dataset, rng):
    seed = int(rng.integers(0, 2**31))
    loader = make_loader(dataset, 4, seed=seed)
    epochs = [[p for ids in _ids(loader) for p in ids] for _ in range(3)]
    everyone = sorted(r["planet_id"] for r in dataset.records)
    assert all(sorted(epoch) == everyone for epoch in epochs)
    assert epochs[0] != epochs[1] != epochs[2]
    assert loader.state_dict()["epoch"] == 3
    again = make_loader(dataset, 4, seed=seed)
    assert [p for ids in _ids(again) for p in ids] == epochs[0]
    assert [p for ids in _ids(make_loader(dataset, 4, seed=seed + 1)) for p in ids] != epochs[0]


def test_two_workers_give_the_same_batches(dataset, rng):
    seed = int(rng.integers(0, 2**31))
    serial = _ids(make_loader(dataset, 6, seed=seed, num_workers=0))
    parallel = make_loader(dataset, 6, seed=seed, num_workers=2)
    assert _ids(parallel) == serial
    assert parallel.state_dict()["epoch"] == 1


@pytest.mark.parametrize("drop_last", [False, True])
def test_resume_continues_exactly(dataset, rng, drop_last):
    seed, batch_size = int(rng.integers(0, 2**31)), int(rng.integers(3, 8))
    reference = make_loader(dataset, batch_size, seed=seed, drop_last=drop_last)
    per_epoch = len(reference)
    uninterrupted = _ids(reference) + _ids(reference)
    for stop in sorted({1, per_epoch - 1, per_epoch, per_epoch + 1,
                        int(rng.integers(1, 2 * per_epoch))}):
        first = make_loader(dataset, batch_size, seed=seed, drop_last=drop_last)
        head = []
        while len(head) < stop:
            head += _ids(first, batches=stop - len(head))
        state = first.state_dict()
        resumed = make_loader(dataset, batch_size, seed=seed, drop_last=drop_last)
        resumed.load_state_dict(state)
        tail = []
        while len(head) + len(tail) < len(uninterrupted):
            tail += _ids(resumed)
        assert head + tail == uninterrupted, stop


def test_replicas_split_each_epoch(rng):
    n, replicas = int(rng.integers(10, 40)), 3
    samplers = [ResumableSampler(n, seed=5, num_replicas=replicas, rank=r)
                for r in range(replicas)]
    shares = [list(s) for s in samplers]
    assert len({len(s) for s in shares}) == 1 and len(shares[0]) == -(-n // replicas)
    assert set().union(*map(set, shares)) == set(range(n))
    assert sum(map(len, shares)) - n == (-n) % replicas  # only the wrap-around padding repeats


def test_mismatched_state_is_refused(dataset):
    loader = make_loader(dataset, 4, seed=1)
    state = loader.state_dict()
    with pytest.raises(DataError, match="seed"):
        make_loader(dataset, 4, seed=2).load_state_dict(state)
    with pytest.raises(DataError, match="position"):
        loader.load_state_dict({**state, "position": len(dataset)})


def test_batch_tensors_hold_the_item_values(dataset):
    loader = make_loader(dataset, 5, shuffle=False)
    assert loader.pin_memory == torch.cuda.is_available()
    batch = next(iter(loader))
    assert batch.climate.dtype == torch.float32 and batch.input_ids.dtype == torch.long
    assert np.array_equal(batch.climate[0].numpy(), dataset[0].climate)
