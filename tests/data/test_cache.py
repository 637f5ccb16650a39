"""The default dataset cache: built once per config, reused, refused when it differs."""

import json

import pytest

from astrobio.config import DataConfig
from astrobio.data.cache import ensure_default_dataset
from astrobio.data.format import CARD_FILE
from astrobio.errors import DataError


@pytest.fixture
def data_seed(test_seed):
    return test_seed % 2**31


def test_ensure_default_dataset_builds_once(tmp_path, monkeypatch, data_seed):
    monkeypatch.setenv("ASTROBIO_DATA_DIR", str(tmp_path / "cache"))
    config = DataConfig(n_samples=12, shard_size=8, seed=data_seed)
    root = ensure_default_dataset(config, progress=False)
    assert root.parent == tmp_path / "cache" and root.name.startswith("synthetic-")
    stamp = (root / CARD_FILE).stat().st_mtime_ns
    assert ensure_default_dataset(config, progress=False) == root
    assert (root / CARD_FILE).stat().st_mtime_ns == stamp
    assert not list((tmp_path / "cache").glob(".*building*"))
    other = DataConfig(n_samples=12, shard_size=8, seed=data_seed + 1)
    assert ensure_default_dataset(other, progress=False) != root  # its own directory
    with pytest.raises(DataError, match="different config") as err:
        ensure_default_dataset(other, root, progress=False)
    assert "seed" in str(err.value)
    card = json.loads((root / CARD_FILE).read_text())
    assert card["config"]["n_samples"] == 12
