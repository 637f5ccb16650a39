"""The DALI loader (CPU-only pipelines): the torch loader's batches, orders, shards, resumption,
named errors for bad files, and physically valid augmentation."""

import dataclasses
import shutil
import sys

import numpy as np
import pytest
import torch

from astrobio.config import load_config
from astrobio.data.cache import ensure_default_dataset
from astrobio.data.dali import DALI_INSTALL, dali_available, import_dali, make_dali_loader
from astrobio.data.loader import make_loader
from astrobio.data.reader import AstroBioDataset
from astrobio.errors import ConfigError, DataError

needs_dali = pytest.mark.skipif(not dali_available(),
                                reason=f"NVIDIA DALI is not installed ({DALI_INSTALL})")


@pytest.fixture(scope="session")
def root(tmp_path_factory):
    # 40 planets, 4 for validation and 4 for test: 32 to train on, as the counts below assume
    config = load_config("tiny", overrides=["data.n_samples=40", "data.shard_size=16",
                                            "data.val_fraction=0.1",
                                            "data.test_fraction=0.1"]).data
    return ensure_default_dataset(config, tmp_path_factory.mktemp("dali") / "ds",
                                  progress=False)


@pytest.fixture(scope="session")
def train_set(root):
    return AstroBioDataset(root, "train")


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def dali_loader(root, batch_size, device="cpu", **kwargs):
    return make_dali_loader(root, "train", batch_size, device=device, **kwargs)


def on_cpu(batches):
    return [batch.to("cpu") for batch in batches]


def assert_same_batches(dali_batches, torch_batches):
    assert len(dali_batches) == len(torch_batches)
    for ours, truth in zip(dali_batches, torch_batches, strict=True):
        assert ours.planet_ids == truth.planet_ids
        for mine_of, truth_of in ((ours, truth), (ours.graph, truth.graph)):
            for field in dataclasses.fields(truth_of):
                mine, theirs = getattr(mine_of, field.name), getattr(truth_of, field.name)
                if isinstance(theirs, torch.Tensor):
                    assert mine.dtype == theirs.dtype, field.name
                    assert torch.equal(mine, theirs), field.name


@needs_dali
@pytest.mark.parametrize("device", DEVICES)
def test_without_shuffle_or_augmentation_it_yields_the_torch_batches(root, train_set, rng,
                                                                      device):
    batch_size = int(rng.choice([3, 5, 7]))  # none divides the 32 train samples
    torch_batches = list(make_loader(train_set, batch_size, shuffle=False))
    dali_batches = on_cpu(dali_loader(root, batch_size, device, shuffle=False))
    assert dali_batches[-1].batch_size == len(train_set) % batch_size
    assert_same_batches(dali_batches, torch_batches)


@needs_dali
def test_shuffled_epochs_follow_the_sampler_on_each_rank(root, train_set, rng):
    seed, batch_size = int(rng.integers(0, 2**31)), 4
    everyone = [r["planet_id"] for r in train_set.records]
    for epoch in range(2):
        seen = []
        for rank in range(2):
            loader = dali_loader(root, batch_size, shuffle=True, seed=seed, num_replicas=2,
                                 rank=rank)
            reference = make_loader(train_set, batch_size, shuffle=True, seed=seed,
                                    num_replicas=2, rank=rank)
            for _ in range(epoch):  # into the wanted epoch
                loader.sampler.start_next_epoch()
                reference.sampler.start_next_epoch()
            ids = [b.planet_ids for b in loader]
            assert ids == [b.planet_ids for b in reference]
            assert loader.state_dict()["epoch"] == epoch + 1
            seen += [p for batch in ids for p in batch]
        assert sorted(seen) == sorted(everyone)  # 32 samples split evenly: no padding


@needs_dali
def test_epochs_differ_and_drop_last_and_resume_behave(root, train_set, rng):
    seed = int(rng.integers(0, 2**31))
    loader = dali_loader(root, 5, shuffle=True, seed=seed, drop_last=True)
    assert len(loader) == 6
    first, second = [[b.planet_ids for b in loader] for _ in range(2)]
    assert [len(b) for b in first] == [5] * 6 and len(second) == 6
    assert first != second
    assert len({p for b in first for p in b}) == 30

    interrupted = dali_loader(root, 5, shuffle=True, seed=seed)
    batches = iter(interrupted)
    for _ in range(3):
        next(batches)
    state = interrupted.state_dict()
    resumed = dali_loader(root, 5, shuffle=True, seed=seed)
    resumed.load_state_dict(state)
    reference = make_loader(train_set, 5, shuffle=True, seed=seed)
    reference.load_state_dict(state)
    assert_same_batches(list(resumed), list(reference))
    assert resumed.state_dict()["epoch"] == 1 and resumed.state_dict()["position"] == 0


@pytest.fixture
def damaged_root(root, tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(root, copy)
    return copy


def _first_file(root, field):
    return sorted((root / "train").glob(f"shard-*/{field}/*.npy"))[0]


@needs_dali
@pytest.mark.parametrize("damage", ["truncated", "missing", "not npy", "wrong shape", "nan",
                                    "nan params"])
def test_a_bad_array_file_is_a_data_error_naming_it(damaged_root, damage):
    field = {"missing": "spectrum", "nan params": "params"}.get(damage, "climate")
    path = (damaged_root / "train" / "shard-00000" / "params.npy" if field == "params"
            else _first_file(damaged_root, field))
    shape = (4, 8, 16, 32)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "missing":
        path.unlink()
    elif damage == "not npy":
        path.write_bytes(b"not an array" * 100)
    elif damage == "wrong shape":
        np.save(path, np.zeros((4, 8, 16, 31), np.float32))
    elif damage == "nan params":  # read by the torch side of the loader, checked alike
        params = np.load(path)
        params[0, 0] = np.nan
        np.save(path, params)
    else:
        values = np.ones(shape, np.float32)
        values[1, 2, 3, 4] = np.nan
        np.save(path, values)
    with pytest.raises(DataError) as raised:
        list(dali_loader(damaged_root, 4, shuffle=False))
    assert raised.value.file == str(path)
    assert raised.value.field == field
    assert raised.value.sample is not None
    assert len(str(raised.value)) < 400  # one line, not DALI's traceback


@needs_dali
@pytest.mark.parametrize("device", DEVICES)
def test_augmentation_rolls_longitude_and_adds_the_spectrum_noise(root, device):
    plain = list(dali_loader(root, 8, shuffle=False))
    noisy = on_cpu(dali_loader(root, 8, device, shuffle=False, augment=True))
    climate = torch.cat([b.climate for b in plain])
    rolled = torch.cat([b.climate for b in noisy])
    width = climate.shape[-1]
    shifts = []
    for original, augmented in zip(climate, rolled, strict=True):
        matches = [k for k in range(width)
                   if torch.equal(augmented, torch.roll(original, -k, dims=-1))]
        assert len(matches) >= 1  # a pure permutation of longitudes: a periodic roll
        shifts.append(matches[0])
    assert len(set(shifts)) > 1

    spectrum = torch.cat([b.spectrum for b in plain])
    err = torch.cat([b.spectrum_err for b in plain])
    mask = torch.cat([b.spectrum_mask for b in plain])
    for ours, truth in zip(noisy, plain, strict=True):
        for name in ("spectrum_err", "spectrum_mask", "params", "input_ids"):
            assert torch.equal(getattr(ours, name), getattr(truth, name)), name
        assert torch.equal(ours.graph.node_features, truth.graph.node_features)
    noise = torch.cat([b.spectrum for b in noisy]) - spectrum
    assert torch.equal(noise[~mask], torch.zeros_like(noise[~mask]))  # unobserved: untouched
    z = (noise[mask] / err[mask]).double()
    assert z.numel() > 1000
    # mean 0 and std 1 within about 10 standard errors of the estimates (generous)
    assert abs(z.mean().item()) < 10 / z.numel() ** 0.5
    assert abs(z.std().item() - 1) < 10 / (2 * z.numel()) ** 0.5


def test_without_dali_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)
    with pytest.raises(ConfigError, match="pip install"):
        import_dali()
    with pytest.raises(ConfigError, match="nvidia-dali"):
        make_dali_loader("/nonexistent", "train", 4)
