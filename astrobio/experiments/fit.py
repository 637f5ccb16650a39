"""The study's variants of the unified system, trained by `astrobio.train.trainer.train`
itself: some modalities withheld, some modules frozen, nothing else different from the
end-to-end run.

A withheld modality is marked absent through `present` in every batch, training and test alike,
so its encoder never reaches the outputs (the system's own missing-modality path). A frozen
module keeps its loaded weights, takes no gradient and stays in eval mode (no VAE noise).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from astrobio.config import Config
from astrobio.data.batch import modality_mask
from astrobio.data.loader import make_loader
from astrobio.data.reader import AstroBioDataset
from astrobio.eval.evaluate import predict
from astrobio.models import UnifiedMultiModalSystem
from astrobio.run import load_run
from astrobio.schema import MODALITIES
from astrobio.train.trainer import train


def keep_only(batch, keep: Iterable[str]):
    """`batch` with every modality outside `keep` marked absent."""
    return batch.masked(modality_mask(keep))


def encoder_modules(model: UnifiedMultiModalSystem) -> dict[str, list[torch.nn.Module]]:
    """Per modality, every module that belongs to its encoder (text: the LLM and its
    projections into the fusion width)."""
    groups = {name: [module] for name, module in model.modality_modules().items()}
    groups["text"] += [model.text_token_proj, model.text_pooled_proj]
    return groups


def fit(config: Config, run_dir: str | Path, data_root: str | Path,
        keep: Iterable[str] = MODALITIES, frozen: dict[str, str | Path] | None = None,
        progress: bool = True, planets: Callable[[dict], bool] | None = None) -> dict:
    """Train one variant into `run_dir` with the trainer; returns the test-split predictions
    (`predict`'s dict), made with the same modalities withheld.

    `keep`: the modalities the variant sees. `frozen`: modality -> run directory whose encoder
    for that modality is loaded and frozen (isolated training). `planets(record)`: the planets
    of every split it trains, validates and is scored on (`astrobio.experiments.splits`).
    """
    keep = tuple(keep)
    modality_mask(keep)  # unknown names fail here, before training
    train(config, run_dir, data_root, progress=progress,
          batch_transform=lambda batch: keep_only(batch, keep),
          prepare_model=lambda model: _load_frozen(model, frozen or {}), planets=planets)
    run = load_run(run_dir, config.train.device, config)
    test = make_loader(AstroBioDataset(data_root, "test", keep=planets),
                       config.train.batch_size, shuffle=False)
    return predict_withholding(run.model, test, run.device, keep)


def predict_withholding(model, loader, device, keep: Iterable[str]) -> dict:
    """`predict` over `loader` with the modalities outside `keep` marked absent."""
    return predict(model, (keep_only(batch, keep) for batch in loader), device)


def _load_frozen(model: UnifiedMultiModalSystem,
                 frozen: dict[str, str | Path]) -> list[torch.nn.Module]:
    """Load each named modality's encoder from its run and freeze it."""
    groups = encoder_modules(model)
    modules = []
    for modality, run in frozen.items():
        if modality not in groups:
            raise ValueError(f"unknown modality {modality!r} to freeze; choose from {MODALITIES}")
        source = load_run(run, "cpu").model
        for target, trained in zip(groups[modality], encoder_modules(source)[modality]):
            target.load_state_dict(trained.state_dict())
            target.requires_grad_(False)
            modules.append(target)
    return modules
