"""Dataclass configs with named presets; a TOML/YAML file or `section.key=value` overrides.

`tiny` is the CPU default, `small` a single-GPU model, `13b` a LLaMA-2-13B-shaped LLM with the
same encoders. Unknown keys, values of the wrong type and values outside a field's declared
range or choices (its `check` metadata) are an error when the config loads, never ignored.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from astrobio.errors import ConfigError
from astrobio.schema import CLIMATE_VARIABLES

LOADERS = ("torch", "dali")
BACKENDS = ("auto", "reference", "triton", "cuda")
ACTIVATION_CHECKPOINTING = ("none", "full", "selective")
BASE_QUANTIZATION = ("none", "nf4")
DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"


def _checked(default, test: Callable[[object], bool], rule: str):
    """A dataclass field whose value must pass `test` (`rule` says what it must be)."""
    return field(default=default, metadata={"check": (test, rule)})


def one_of(default, choices: tuple):
    return _checked(default, lambda v: v in choices, f"one of {choices}")


def at_least(default, low):
    return _checked(default, lambda v: v >= low, f">= {low}")


def finite_at_least(default, low):
    return _checked(default, lambda v: math.isfinite(v) and v >= low, f"finite and >= {low}")


def within(default, low, high):
    return _checked(default, lambda v: low <= v <= high, f"in [{low}, {high}]")


def fraction(default, closed: bool = False):
    if closed:
        return _checked(default, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
    return _checked(default, lambda v: 0.0 <= v < 1.0, "in [0, 1)")


@dataclass
class DataConfig:
    n_samples: int = at_least(4000, 1)
    seed: int = 0
    climate_levels: int = at_least(8, 1)
    lat: int = at_least(16, 2)
    lon: int = at_least(32, 2)
    spectrum_bins: int = at_least(256, 8)
    max_text_tokens: int = at_least(96, 1)
    vocab_size: int = at_least(1024, 1)
    val_fraction: float = fraction(0.1)
    test_fraction: float = fraction(0.25)
    shard_size: int = at_least(256, 1)
    missing_modality_rate: float = fraction(0.1, closed=True)
    # Synthetic climates from the clero emulator where it applies (False: the energy-balance
    # model everywhere, for machines without clero; a different dataset, named as such).
    clero: bool = True

    @property
    def climate_shape(self) -> tuple[int, int, int, int]:
        return (len(CLIMATE_VARIABLES), self.climate_levels, self.lat, self.lon)


@dataclass
class LLMConfig:
    hidden_size: int = at_least(128, 1)
    num_layers: int = at_least(2, 1)
    num_heads: int = at_least(4, 1)
    num_kv_heads: int = at_least(4, 1)
    intermediate_size: int = at_least(256, 1)
    vocab_size: int = at_least(1024, 1)
    max_position_embeddings: int = at_least(256, 1)
    path: str | None = None  # a local HF directory (safetensors); never downloaded


@dataclass
class ModelConfig:
    d_model: int = at_least(64, 1)
    cnn_channels: tuple[int, ...] = _checked((16, 32, 64), lambda v: len(v) > 0 and min(v) >= 1,
                                             "one or more channel counts >= 1")
    gnn_hidden: int = at_least(64, 1)
    gnn_layers: int = at_least(2, 1)
    gnn_latent: int = at_least(32, 1)
    spectral_channels: int = at_least(32, 1)
    param_hidden: int = at_least(64, 1)
    numerical_prefix_tokens: int = at_least(4, 1)
    spectral_prefix_tokens: int = at_least(4, 1)
    fusion_layers: int = at_least(2, 1)
    fusion_heads: int = at_least(4, 1)
    dropout: float = fraction(0.0)
    llm: LLMConfig = field(default_factory=LLMConfig)

    @property
    def prefix_tokens(self) -> int:
        """LLM positions before the text: the numerical and spectral prefix tokens."""
        return self.numerical_prefix_tokens + self.spectral_prefix_tokens


@dataclass
class LossConfig:
    habitable: float = finite_at_least(1.0, 0.0)
    habitability_class: float = finite_at_least(0.5, 0.0)
    surface_temperature: float = finite_at_least(0.5, 0.0)
    biosignature: float = finite_at_least(0.5, 0.0)
    lm: float = finite_at_least(0.1, 0.0)
    vae_reconstruction: float = finite_at_least(0.1, 0.0)
    vae_kl_beta: float = finite_at_least(1e-3, 0.0)
    kl_warmup_steps: int = at_least(200, 0)
    physics: float = finite_at_least(0.1, 0.0)
    uncertainty_weighting: bool = False


@dataclass
class TrainConfig:
    steps: int = at_least(600, 1)
    batch_size: int = at_least(32, 1)
    grad_accum: int = at_least(1, 1)
    # Adam moves every weight by about lr per step: above 1 a step outweighs the weights.
    lr: float = within(2e-3, 0.0, 1.0)
    weight_decay: float = finite_at_least(0.01, 0.0)
    warmup_steps: int = at_least(50, 0)
    grad_clip: float = _checked(1.0, lambda v: v > 0, "> 0")
    # Each present modality of a training sample is hidden with this probability (never the
    # last one), so fusion learns to use every modality rather than lean on the strongest.
    modality_dropout: float = fraction(0.25)
    # With this probability a training sample shows only what a catalogue row gives
    # (`schema.CATALOGUE_MODALITIES`), the one subset of every real planet predicted from an
    # archive CSV; per-modality dropout alone shows it to under 1 % of samples.
    catalogue_only: float = fraction(0.25)
    checkpoint_every: int = at_least(200, 1)
    eval_every: int = at_least(200, 1)
    gradient_flow_every: int = at_least(25, 1)
    max_bad_steps: int = at_least(5, 1)
    num_workers: int = at_least(0, 0)
    # torch intra-op threads on the CPU; 0 keeps torch's default. One is fastest for the tiny
    # model (bench/bench_system_step.py: 0.23 s/step against 0.76 s with two on 2 cores).
    cpu_threads: int = at_least(1, 0)
    loader: str = one_of("torch", LOADERS)  # torch (the reference) or dali
    augment: bool = False  # DALI only: random longitude roll, spectrum noise from its errors
    seed: int = 0
    device: str = _checked("auto", lambda v: re.fullmatch(DEVICE_PATTERN, v) is not None,
                           "auto, cpu, cuda or cuda:N")
    backend: str = one_of("auto", BACKENDS)


@dataclass
class ParallelConfig:
    """How `astrobio.parallel` lays the model out over `torchrun` ranks (see that package)."""

    tp: int = at_least(1, 1)  # tensor-parallel degree of the LLM
    dp: int = at_least(0, 0)  # data-parallel (FSDP) degree; 0 = world size / tp
    lora_rank: int = at_least(0, 0)  # > 0: LoRA adapters on the LLM's projections
    lora_alpha: float = 16.0
    freeze_llm: bool = False  # the LLM base gets no gradient (implied by lora_rank > 0)
    activation_checkpointing: str = one_of("none", ACTIVATION_CHECKPOINTING)  # per decoder layer
    sequence_parallel: bool = True  # norms and residuals sharded over the sequence under TP
    loss_parallel: bool = True  # the LM cross-entropy over vocabulary-sharded logits
    # nf4: QLoRA, the frozen base of the LoRA-wrapped projections in 4-bit NormalFloat
    # (torchao; pip install 'astrobio[qlora]'); needs lora_rank > 0 and tp = 1
    quantize_base: str = one_of("none", BASE_QUANTIZATION)


@dataclass
class Config:
    preset: str = "tiny"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _tiny() -> Config:
    return Config(preset="tiny")


def _small() -> Config:
    return Config(
        preset="small",
        data=DataConfig(n_samples=20000, climate_levels=16, lat=32, lon=64, max_text_tokens=128,
                        vocab_size=4096),
        model=ModelConfig(
            d_model=256, cnn_channels=(32, 64, 128, 256), gnn_hidden=128, gnn_layers=3,
            gnn_latent=64, spectral_channels=64, param_hidden=128, fusion_layers=4,
            fusion_heads=8,
            llm=LLMConfig(hidden_size=768, num_layers=12, num_heads=12, num_kv_heads=12,
                          intermediate_size=2048, vocab_size=4096, max_position_embeddings=512),
        ),
        train=TrainConfig(steps=5000, batch_size=64, lr=5e-4),
    )


def _13b() -> Config:
    return Config(
        preset="13b",
        data=DataConfig(n_samples=20000, climate_levels=16, lat=32, lon=64, max_text_tokens=2048,
                        vocab_size=32000),
        model=ModelConfig(
            d_model=1024, cnn_channels=(64, 128, 256, 512), gnn_hidden=256, gnn_layers=3,
            gnn_latent=128, spectral_channels=128, param_hidden=256, numerical_prefix_tokens=8,
            spectral_prefix_tokens=8, fusion_layers=4, fusion_heads=16,
            llm=LLMConfig(hidden_size=5120, num_layers=40, num_heads=40, num_kv_heads=40,
                          intermediate_size=13824, vocab_size=32000,
                          max_position_embeddings=4096),
        ),
        train=TrainConfig(steps=1000, batch_size=2, lr=1e-4),
        # On 2 x 24 GB, `python -m astrobio.plan --preset 13b` measures both layouts fitting
        # (rank 0: 16.4 GiB with FSDP over 2 ranks, 15.5 GiB with TP=2) and its time model
        # estimates FSDP's 1.63 s per sample (its gathers hide behind the compute) against
        # TP's 1.87 s (each layer waits for its collectives): data parallelism, one sample
        # per rank (README, "Multi-GPU").
        parallel=ParallelConfig(tp=1, lora_rank=16, activation_checkpointing="full"),
    )


PRESETS = {"tiny": _tiny, "small": _small, "13b": _13b}


def _coerce(value, annotation, key: str):
    """`value` (from a file or the CLI) converted to the field's declared type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(value, options[0], key)
    try:
        if annotation is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if origin is tuple:
            (item_type, _) = typing.get_args(annotation)
            items = value.split(",") if isinstance(value, str) else value
            return tuple(item_type(v) for v in items)
        if annotation is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return annotation(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config key {key!r}: cannot read {value!r} as {annotation}") from None


def _apply(obj, updates: dict, prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in updates.items():
        path = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown config key {path!r}; known keys here: {sorted(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {path!r} is a section; give a table of keys")
            _apply(current, value, prefix=f"{path}.")
        else:
            setattr(obj, key, _coerce(value, hints[key], path))


def _read_file(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"config file {str(path)!r}: {err.strerror}") from None
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text) or {}
        if path.suffix == ".json":
            return json.loads(text)
    except Exception as err:  # each parser has its own error type
        raise ConfigError(f"config file {str(path)!r}: {err}") from None
    raise ConfigError(f"config file {str(path)!r}: use .toml, .yaml, .yml or .json")


def validate(obj, prefix: str = "") -> None:
    """Every field's `check` (see `_checked`), in every section."""
    for f in dataclasses.fields(obj):
        value, path = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            validate(value, prefix=f"{path}.")
        elif "check" in f.metadata:
            test, rule = f.metadata["check"]
            if not test(value):
                raise ConfigError(f"config key {path!r} = {value!r}: must be {rule}")


def load_config(preset: str = "tiny", file: str | Path | None = None,
                overrides: list[str] | None = None, base: dict | None = None) -> Config:
    """The preset, then `base` (sections taken from a dataset's card or a trained run), then
    the file's keys, then `section.key=value` overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    config = PRESETS[preset]()
    if base:
        _apply(config, base)
    return apply_overrides(config, file, overrides)


def apply_overrides(config: Config, file: str | Path | None = None,
                    overrides: list[str] | None = None) -> Config:
    """`config` (changed in place) with the file's keys, then `section.key=value` overrides,
    validated."""
    if file is not None:
        values = _read_file(Path(file))
        values.pop("preset", None)
        _apply(config, values)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        *sections, leaf = key.strip().split(".")
        nested: dict = {leaf: value.strip()}
        for section in reversed(sections):
            nested = {section: nested}
        _apply(config, nested)
    validate(config)
    return config


def add_config_arguments(parser) -> None:
    """`--preset`, `--config` and `--set`, the same in every CLI (`load_config`'s arguments)."""
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS),
                        help="named configuration: tiny (the CPU default), small, 13b")
    parser.add_argument("--config", help="a TOML/YAML/JSON file overriding preset fields")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one field, e.g. --set model.d_model=32 (repeatable)")


def config_from_dict(values: dict) -> Config:
    """The inverse of `Config.to_dict` (as saved in run directories and checkpoints)."""
    values = dict(values)
    config = PRESETS[values.pop("preset", "tiny")]()
    _apply(config, values)
    validate(config)
    return config
