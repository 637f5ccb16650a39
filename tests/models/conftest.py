"""Fixtures for the model tests."""

import pytest
import torch
from model_inputs import random_batch, small_config

from astrobio.config import Config


@pytest.fixture
def config() -> Config:
    return small_config()


@pytest.fixture
def batch(rng):
    return random_batch(rng)


@pytest.fixture(autouse=True)
def single_thread():
    """These tensors are tiny: one intra-op thread is fastest, and on a shared, busy machine two
    spinning OpenMP threads slow a step down by 10x or more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
