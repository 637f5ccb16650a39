"""The default dataset: built once per data config into a cache directory, reused after."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

from astrobio.config import DataConfig
from astrobio.data.build import build_dataset
from astrobio.data.format import CARD_FILE, FORMAT_VERSION, read_card
from astrobio.data.synthetic import GENERATOR_VERSION
from astrobio.errors import DataError


def dataset_fingerprint(config: DataConfig) -> str:
    """Names a dataset by everything that shapes its content."""
    key = json.dumps({"config": dataclasses.asdict(config), "generator": GENERATOR_VERSION,
                      "format": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def default_data_dir() -> Path:
    """`$ASTROBIO_DATA_DIR`, else `$XDG_CACHE_HOME/astrobio/datasets` (`~/.cache/...`)."""
    if os.environ.get("ASTROBIO_DATA_DIR"):
        return Path(os.environ["ASTROBIO_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "astrobio" / "datasets"


def check_card_matches(card: dict, config: DataConfig, root: Path) -> None:
    wanted = dataclasses.asdict(config)
    built = card.get("config", {})
    differing = sorted(k for k in set(wanted) | set(built) if wanted.get(k) != built.get(k))
    if differing:
        raise DataError("built with a different config: "
                        + ", ".join(f"{k}={built.get(k)!r} (wanted {wanted.get(k)!r})"
                                    for k in differing)
                        + "; leave data.* unset to train on a dataset with its own settings, "
                        "or build it again", file=str(root / CARD_FILE), field="config")
    if card.get("source", {}).get("kind") != "synthetic":
        return  # a user's dataset: its config is all there is to compare
    if card.get("generator_version") != GENERATOR_VERSION:
        raise DataError(f"built by generator {card.get('generator_version')!r}, this code has "
                        f"{GENERATOR_VERSION!r}", file=str(root / CARD_FILE),
                        field="generator_version")


def ensure_default_dataset(config: DataConfig, root: str | Path | None = None, *,
                           progress: bool = True) -> Path:
    """The dataset for `config` at `root` (default: `default_data_dir()/synthetic-<hash>`),
    built there first if absent. Safe when several processes call it at once: each builds
    in a private directory and the first rename wins."""
    root = Path(root) if root is not None else (
        default_data_dir() / f"synthetic-{dataset_fingerprint(config)}")
    if (root / CARD_FILE).exists():
        check_card_matches(read_card(root), config, root)
        return root
    if root.exists():  # an unfinished build of ours is cleared; anything else is refused
        return build_dataset(config, root, progress=progress)
    root.parent.mkdir(parents=True, exist_ok=True)
    private = root.parent / f".{root.name}.building-{os.getpid()}"
    build_dataset(config, private, overwrite=True, progress=progress)
    try:
        os.rename(private, root)
    except OSError:
        shutil.rmtree(private, ignore_errors=True)
        if not (root / CARD_FILE).exists():
            raise
        check_card_matches(read_card(root), config, root)
    return root
