"""A tiny dataset and a trained 4-step run shared by the fault tests (each test that changes a
run works on its own copy)."""

import importlib.util
import shutil
from pathlib import Path

import pytest

from astrobio.config import load_config
from astrobio.data.cache import ensure_default_dataset
from astrobio.train.trainer import train


def _load(name: str, path: Path):
    """A module of another test folder, by path (`import` would find this folder's)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_train_conftest = _load("train_conftest", Path(__file__).parents[1] / "train" / "conftest.py")
_edits = _load("dataset_edits", Path(__file__).parents[1] / "data" / "_edits.py")
# The training tests' tiny sizes; 4 steps, checkpoints at 2 and 4, no validation pass.
OVERRIDES = [*_train_conftest.SMALL, "train.steps=4", "train.eval_every=100"]


@pytest.fixture(scope="session")
def overrides():
    return list(OVERRIDES)


@pytest.fixture(scope="session")
def train_args(dataset):
    """`python -m astrobio.train` arguments for a run of the fault tests' size into `out`."""
    def args(out, *extra, sizes=True) -> list[str]:
        flags = ["--data", str(dataset), "--out", str(out), "--quiet"]
        for item in OVERRIDES if sizes else ():
            flags += ["--set", item]
        return flags + list(extra)  # after the sizes, so that they win

    return args


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    config = load_config("tiny", overrides=OVERRIDES)
    return ensure_default_dataset(config.data, tmp_path_factory.mktemp("faults") / "ds",
                                  progress=False)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, dataset):
    run = tmp_path_factory.mktemp("faults") / "run"
    train(load_config("tiny", overrides=OVERRIDES), run, dataset, progress=False)
    return run


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """A copy of the trained run this test may damage."""
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


@pytest.fixture(scope="session")
def reseal():
    """`reseal(root)`: record a changed dataset's new checksums, as a buggy writer would have
    (so a test meets the content checks behind the checksums)."""
    return _edits.reseal
