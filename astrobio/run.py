"""A run directory, and `load_run`: a trained run for users' own scripts and notebooks.

    from astrobio import load_run
    run = load_run("runs/a")            # run.model (eval mode), run.tokenizer, run.config
    table = run.predict(samples)        # a pandas DataFrame of predictions per planet

`python -m astrobio.evaluate`, `python -m astrobio.predict` and the study load runs through
`load_run`, so a run loads the same way everywhere. A run keeps a copy of the tokenizer its
dataset's text was encoded with (and its sha256), so a dataset's tokenizer changed later does
not change what the run's model reads.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from astrobio.checksum import checksum_path, checksum_problem, read_checksum
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

    @property
    def tokenizer(self) -> Path:
        """The run's copy of its dataset's tokenizer, `tokenizer.json.sha256` beside it."""
        return self.root / "tokenizer.json"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation"

    def read_config(self) -> dict:
        """config.json as saved (the run's settings, and `data_dir`)."""
        try:
            saved = json.loads(self.config.read_text())
        except FileNotFoundError:
            raise RunError(f"{self.config}: missing; is {self.root} a run directory written "
                           "by python -m astrobio.train?") from None
        except (OSError, ValueError) as err:
            raise RunError(f"{self.config}: unreadable or truncated ({err}); the settings of "
                           f"the run are also in its checkpoint") from None
        if not isinstance(saved, dict) or not isinstance(saved.get("train"), dict):
            raise RunError(f"{self.config}: not a run's config (no train section)")
        return saved


def read_log(path: Path) -> list[dict]:
    """The records of a JSON-lines log; lines a crash left half written (or that are not a
    record) are dropped with a warning rather than failing the reader."""
    if not path.exists():
        return []
    records, damaged = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
        else:
            damaged += 1
    if damaged:
        warnings.warn(f"{path}: dropped {damaged} damaged line(s) (a write cut short?)",
                      RuntimeWarning, stacklevel=2)
    return records


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

    @property
    def tokenizer_sha256(self) -> str | None:
        """The sha256 of the tokenizer the run was trained with (None for a run from before
        runs kept their tokenizer)."""
        return read_checksum(checksum_path(self.files.tokenizer))

    @functools.cached_property
    def tokenizer(self):
        """The tokenizer the run's text was encoded with: the run's own copy, checked against
        its sha256."""
        from astrobio.data.tokenizer import TOKENIZER_FILE, load_tokenizer

        path = self.files.tokenizer
        if path.exists():
            problem = checksum_problem(path)
            if problem is not None:
                raise RunError(f"{path}: {problem}")
            return load_tokenizer(path)
        path = self.data_dir / TOKENIZER_FILE
        if not path.exists():
            raise RunError(f"{self.files.root} keeps no tokenizer, and its dataset's {path} is "
                           "gone; rebuild the dataset with python -m astrobio.data")
        warnings.warn(f"{self.files.root} keeps no copy of its tokenizer (a run from before "
                      f"runs did); using the dataset's {path}, which may have changed since",
                      RuntimeWarning, stacklevel=2)
        return load_tokenizer(path)

    def predict(self, samples, batch_size: int = 64, progress: bool = False):
        """A pandas DataFrame, one row per `PlanetSample` of `samples` (any iterable, e.g. from
        `astrobio.data.readers` or an `AstroBioDataset`): the predictions and the columns
        `python -m astrobio.predict` writes, computed by the same batched code
        (`astrobio.predict.predict_samples`)."""
        import pandas as pd

        from astrobio.predict import predict_samples

        total = len(samples) if hasattr(samples, "__len__") else None
        return pd.DataFrame.from_records(list(predict_samples(
            self, samples, batch_size, progress, total=total, labels=True)))


    def dataset(self, split: str):
        """A split of the run's dataset as the run reads it: the stored token ids while the
        dataset's tokenizer is the run's, else its texts encoded again with the run's (and a
        warning)."""
        from astrobio.checksum import sha256_file
        from astrobio.data.reader import AstroBioDataset
        from astrobio.data.tokenizer import TOKENIZER_FILE

        source = self.data_dir / TOKENIZER_FILE
        kept = self.tokenizer_sha256
        if kept is None or (source.is_file() and sha256_file(source) == kept):
            return AstroBioDataset(self.data_dir, split)
        warnings.warn(f"{source} is not the tokenizer {self.files.root} was trained with; "
                      f"the {split} texts are encoded again with the run's own "
                      f"({self.files.tokenizer})", RuntimeWarning, stacklevel=2)
        return AstroBioDataset(self.data_dir, split, tokenizer=self.tokenizer)


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
    device = resolve_device(device)
    state = checkpoint.load(files.checkpoint)
    config = config if config is not None else config_from_dict(state["config"])
    model = UnifiedMultiModalSystem(config)
    try:
        model.load_state_dict(state.pop("model"))
    except RuntimeError as err:
        raise RunError(f"{files.checkpoint}: does not fit the model its config describes "
                       f"({str(err).splitlines()[0]})") from None
    state.pop("optimizer", None)
    model = model.to(device).eval()
    return Run(files=files, config=config, model=model, step=state["step"],
               data_dir=Path(state["data_dir"]), state=state)
