"""A run directory, and `load_run`: a trained run for users' own scripts and notebooks.

    from astrobio import load_run
    run = load_run("runs/a")            # run.model (eval mode), run.tokenizer, run.config

`python -m astrobio.evaluate`, `python -m astrobio.predict` and the study load runs through
`load_run`, so a run loads the same way everywhere.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from astrobio.config import Config, config_from_dict
from astrobio.errors import ConfigError, RunError

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class RunFiles:
    """Where a run keeps its outputs."""

    root: Path

    def __post_init__(self):
        self.root = Path(self.root)

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def checkpoint(self) -> Path:
        return self.root / CHECKPOINT_NAME

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def gradient_flow(self) -> Path:
        return self.root / "gradient_flow.jsonl"

    @property
    def test_metrics(self) -> Path:
        return self.root / "test_metrics.json"


def resolve_device(name: str | torch.device) -> torch.device:
    """`auto` is the GPU when there is one, else the CPU; a CUDA device must exist."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {str(name)!r}: write auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(name)!r} was asked for, but CUDA is not available here")
    return device


@dataclass
class Run:
    """A trained run: its files, config and model (eval mode, on `device`), the step it was
    saved at, the dataset it was trained on, and the checkpoint's other state."""

    files: RunFiles
    config: Config
    model: torch.nn.Module
    step: int
    data_dir: Path
    state: dict  # the checkpoint without model and optimizer (e.g. learned loss weights)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @functools.cached_property
    def tokenizer(self):
        """The tokenizer the run's text was encoded with (the training dataset's)."""
        from astrobio.data.tokenizer import TOKENIZER_FILE, load_tokenizer

        path = self.data_dir / TOKENIZER_FILE
        if not path.exists():
            raise RunError(f"{path}: the tokenizer of the run's dataset is gone; rebuild the "
                           "dataset with python -m astrobio.data")
        return load_tokenizer(path)


def load_run(path: str | Path, device: str | torch.device = "auto",
             config: Config | None = None) -> Run:
    """The run saved in the directory `path` (by `python -m astrobio.train` or the study).
    `config` replaces the saved one (a study variant built from its own config)."""
    from astrobio.models import UnifiedMultiModalSystem
    from astrobio.train import checkpoint

    files = RunFiles(path)
    if not files.checkpoint.exists():
        raise RunError(f"{files.root}: no {files.checkpoint.name}; is it a run directory "
                       "written by python -m astrobio.train?")
    state = checkpoint.load(files.checkpoint)
    config = config if config is not None else config_from_dict(state["config"])
    model = UnifiedMultiModalSystem(config)
    model.load_state_dict(state.pop("model"))
    state.pop("optimizer", None)
    model = model.to(resolve_device(device)).eval()
    return Run(files=files, config=config, model=model, step=state["step"],
               data_dir=Path(state["data_dir"]), state=state)
