"""A toy dataset and one toy run shared by the experiment tests (built once per session)."""

import pytest

from astrobio.config import load_config
from astrobio.data.cache import ensure_default_dataset
from astrobio.experiments.__main__ import QUICK_SIZES


@pytest.fixture(scope="session")
def toy_config():
    return load_config("tiny", overrides=[*QUICK_SIZES, "train.device=cpu"])


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory, toy_config):
    return ensure_default_dataset(toy_config.data, tmp_path_factory.mktemp("data") / "ds",
                                  progress=False)
