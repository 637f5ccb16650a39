"""Test-wide setup: Triton kernels run through the interpreter when there is no GPU.

TRITON_INTERPRET must be set before triton is first imported, hence at the top of conftest.
"""

import os

import torch

if "TRITON_INTERPRET" not in os.environ and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def test_seed():
    """Fresh random inputs on every run; the seed is printed, so a failure can be replayed
    with ASTROBIO_TEST_SEED."""
    seed = int(os.environ.get("ASTROBIO_TEST_SEED", int.from_bytes(os.urandom(4), "little")))
    print(f"ASTROBIO_TEST_SEED={seed}")
    torch.manual_seed(seed)
    return seed


@pytest.fixture
def rng(test_seed):
    """A numpy generator seeded like torch for this test."""
    import numpy as np

    return np.random.default_rng(test_seed)
