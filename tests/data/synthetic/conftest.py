"""Shared synthetic planets for these tests: generated once per session under a fresh seed
(printed; replay with ASTROBIO_TEST_SEED)."""

import os

import pytest

from astrobio.config import DataConfig
from astrobio.data.synthetic import generate_samples

N_SHARED = 400


@pytest.fixture(scope="session")
def shared_config():
    seed = int(os.environ.get("ASTROBIO_TEST_SEED", int.from_bytes(os.urandom(4), "little")))
    print(f"shared synthetic samples: ASTROBIO_TEST_SEED={seed}")
    return DataConfig(seed=seed, missing_modality_rate=0.0)


@pytest.fixture(scope="session")
def shared_samples(shared_config):
    return generate_samples(0, N_SHARED, shared_config)
