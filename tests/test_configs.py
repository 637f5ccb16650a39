"""`configs/`: each preset's file states every field with the preset's value, and the
fine-tuning file loads on any preset and changes only training settings."""

import dataclasses
import tomllib
from pathlib import Path

import pytest

from astrobio.config import PRESETS, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _leaves(values: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_every_file_is_a_preset_or_finetune():
    assert sorted(p.stem for p in CONFIGS.glob("*.toml")) == sorted([*PRESETS, "finetune"])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_preset_file_is_the_preset_field_by_field(preset):
    path = CONFIGS / f"{preset}.toml"
    assert load_config(preset, path) == load_config(preset)
    # the file alone determines the config, whichever preset lies underneath
    assert dataclasses.replace(load_config("tiny", path), preset=preset) == load_config(preset)
    written = _leaves(tomllib.loads(path.read_text()))
    fields = {k: v for k, v in _leaves(dataclasses.asdict(PRESETS[preset]())).items()
              if k != "preset"}
    # every field but the unset optional LLM path is written out, with the preset's value
    assert set(fields) - set(written) == {k for k, v in fields.items() if v is None}
    for key, value in written.items():
        assert value == (list(fields[key]) if isinstance(fields[key], tuple) else fields[key]), key
    assert "#" in path.read_text().split("[data]")[1].splitlines()[2]  # commented


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_finetune_changes_only_training(preset):
    path = CONFIGS / "finetune.toml"
    assert set(tomllib.loads(path.read_text())) == {"train"}
    tuned, plain = load_config(preset, path), load_config(preset)
    for section in ("data", "model", "loss", "parallel"):
        assert getattr(tuned, section) == getattr(plain, section)
    assert tuned.train.lr < load_config("tiny").train.lr and tuned.train.batch_size <= 4
    assert tuned.train.steps < plain.train.steps
