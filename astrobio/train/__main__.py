"""`python -m astrobio.train`: train the unified system (default: `tiny` preset on built-in data).

With no arguments it builds and caches the default synthetic dataset if absent, trains on the
CPU (or the GPU when there is one) with a progress bar, checkpoints, evaluates on the test split
and prints a table. `--set section.key=value` overrides any config field.

`--data DIR` trains on a built dataset with its own data settings (its card's; a `data.*` key
set on top must agree with them). `--init RUN` starts from a trained run's weights and model
config (pre-train on the synthetic data, fine-tune on yours: `--config configs/finetune.toml`)
and lists every tensor it could not load, and why; the dataset must be encoded with that run's
tokenizer (`python -m astrobio.data build ... --run RUN`).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import time
from pathlib import Path

from astrobio.config import (
    Config,
    add_config_arguments,
    apply_overrides,
    config_from_dict,
    load_config,
)
from astrobio.errors import ConfigError, RunError, cli
from astrobio.eval.evaluate import flat_metrics
from astrobio.parallel.mesh import is_distributed_launch, is_main_rank
from astrobio.run import RunFiles, resolve_device
from astrobio.train.trainer import TrainingInterrupted, train


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m astrobio.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.set_defaults(preset=None)  # tiny; on --resume, the run's own
    parser.add_argument("--data", help="dataset directory (built there if absent; default: "
                        "a cache under $ASTROBIO_DATA_DIR or ~/.cache/astrobio)")
    parser.add_argument("--out", help="run directory (default runs/<preset>-<time>)")
    parser.add_argument("--steps", type=int, help="optimizer steps")
    parser.add_argument("--epochs", type=float, help="train for this many passes over the "
                        "train split instead of --steps")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out as "
                        "its config.json says; flags, --config and --set change it")
    parser.add_argument("--force", action="store_true", help="with --resume: apply changes "
                        "that train something else than the saved run (lr, batch size, model, "
                        "data, ...)")
    parser.add_argument("--init", metavar="RUN", help="start from this trained run's weights "
                        "and model config (fine-tuning)")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--backend", help="kernel backend: auto, reference, triton, cuda")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--loader", choices=["torch", "dali"],
                        help="training data loader (dali: pip install 'astrobio[dali]')")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    # Distributed training (astrobio.parallel), used when torchrun starts several ranks.
    parser.add_argument("--tp", type=int, help="tensor-parallel degree of the LLM")
    parser.add_argument("--dp", type=int, help="data-parallel (FSDP) degree (default: rest)")
    parser.add_argument("--lora-rank", type=int, help="LoRA adapters on a frozen LLM base")
    parser.add_argument("--activation-checkpointing", choices=("none", "full", "selective"))
    parser.add_argument("--llm-path", help="local HF directory with the LLM's weights")
    return parser.parse_args(argv)


def _overrides(args) -> list[str]:
    flags = {"train.steps": args.steps, "train.batch_size": args.batch_size,
             "train.lr": args.lr, "train.device": args.device, "train.backend": args.backend,
             "train.seed": args.seed, "train.loader": args.loader,
             "parallel.tp": args.tp, "parallel.dp": args.dp, "parallel.lora_rank": args.lora_rank,
             "parallel.activation_checkpointing": args.activation_checkpointing,
             "model.llm.path": args.llm_path}
    return list(args.set) + [f"{key}={value}" for key, value in flags.items()
                             if value is not None]


def print_table(results: dict) -> None:
    rows = flat_metrics(results)
    width = max(len(k) for k in rows)
    print(f"\ntest split ({results['n']} planets)")
    for key, value in rows.items():
        print(f"  {key:<{width}}  {value:.4f}")


def _config(args, init) -> Config:
    """The preset, the data section of the dataset's card (`--data`) and the model section of
    the run `init` (`--init`), then the file and flags; on --resume the run's config.json with
    the file and flags (and the run's dataset unless --data names one)."""
    from astrobio.data.format import CARD_FILE, card_config, read_card

    if not args.resume:
        base = {}
        if args.data and (Path(args.data) / CARD_FILE).exists():
            base["data"] = dataclasses.asdict(card_config(read_card(args.data), args.data))
        if init is not None:
            base["model"] = dataclasses.asdict(init.config.model)
        return load_config(args.preset or "tiny", args.config, _overrides(args), base=base)
    saved = RunFiles(args.out).read_config()
    if args.preset is not None and args.preset != saved.get("preset"):
        raise ConfigError(f"--preset {args.preset}: the run in {args.out} was trained with "
                          f"preset {saved.get('preset')!r}, and --resume continues it as its "
                          "config.json says; leave --preset out")
    saved_data = saved.pop("data_dir", None)
    args.data = args.data or saved_data
    return apply_overrides(config_from_dict(saved), args.config, _overrides(args))


def load_matching(model, source: dict, origin: str) -> list[str]:
    """Copy every tensor of `source` whose name and shape `model` has; returns a line per
    tensor left as initialised (and per unused one of `source`), saying why."""
    target = model.state_dict()
    loaded, notes = {}, []
    for name, tensor in target.items():
        if name not in source:
            notes.append(f"not loaded: {name}: {origin} has no such tensor")
        elif tuple(source[name].shape) != tuple(tensor.shape):
            notes.append(f"not loaded: {name}: shape {list(source[name].shape)} in {origin}, "
                         f"{list(tensor.shape)} here")
        else:
            loaded[name] = source[name]
    notes += [f"unused: {name} of {origin}: this model has no such tensor"
              for name in source if name not in target]
    model.load_state_dict(loaded, strict=False)
    notes.insert(0, f"--init {origin}: loaded {len(loaded)} of {len(target)} tensors")
    return notes


def _check_tokenizer(init, data_root: Path) -> None:
    from astrobio.data.format import read_card, read_recorded
    from astrobio.data.tokenizer import TOKENIZER_FILE, load_tokenizer

    read_recorded(data_root, TOKENIZER_FILE, read_card(data_root))  # unchanged since the build
    ours = load_tokenizer(data_root).backend_tokenizer.to_str()
    if ours != init.tokenizer.backend_tokenizer.to_str():
        raise RunError(f"{data_root} was encoded with another tokenizer than {init.files.root}'s"
                       ", so the run's text weights would read other tokens; build it with "
                       f"`python -m astrobio.data build ... --run {init.files.root}`")


@cli
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.resume and not args.out:
        raise RunError("--resume needs --out, the run directory to continue")
    if args.force and not args.resume:
        raise ConfigError("--force only applies to --resume")
    if is_distributed_launch() and args.out is None:
        raise RunError("under torchrun give --out (every rank writes to one run directory)")
    if args.init and (args.resume or is_distributed_launch()):
        raise ConfigError("--init starts a new single-process run; it goes with neither "
                          "--resume nor torchrun")
    init = None
    if args.init:
        from astrobio.run import load_run

        init = load_run(args.init, device="cpu")
    config = _config(args, init)
    resolve_device(config.train.device)  # a missing GPU is named before any data is built
    prepare_model = None
    if init is not None:
        from astrobio.data.cache import ensure_default_dataset

        args.data = str(ensure_default_dataset(config.data, args.data, progress=not args.quiet))
        _check_tokenizer(init, Path(args.data))
        source = dict(init.model.state_dict())

        def prepare_model(model):
            for line in load_matching(model, source, str(init.files.root)):
                print(line if line.startswith("--init") else f"  {line}")
            return []
    if args.epochs is not None:
        if not (math.isfinite(args.epochs) and args.epochs > 0):
            raise ConfigError(f"--epochs {args.epochs}: give a positive number of passes over "
                              "the train split")
        from astrobio.data.cache import ensure_default_dataset
        from astrobio.data.reader import AstroBioDataset

        root = ensure_default_dataset(config.data, args.data, progress=not args.quiet)
        train_size = len(AstroBioDataset(root, "train"))
        config.train.steps = max(1, round(args.epochs * train_size / config.train.batch_size))
        args.data = str(root)
    if not is_distributed_launch():
        _check_single_process(config)
    out = Path(args.out or f"runs/{config.preset}-{time.strftime('%Y%m%d-%H%M%S')}")
    run = functools.partial(train, prepare_model=prepare_model)
    if is_distributed_launch():
        from astrobio.train.distributed import train_distributed as run
    try:
        results = run(config, out, args.data, resume=args.resume, progress=not args.quiet,
                      force=args.force)
    except TrainingInterrupted as stop:
        print(stop, file=sys.stderr)
        return 130
    if not is_main_rank():
        return 0
    print_table(results)
    print(f"\nrun directory: {out}  (evaluate: python -m astrobio.evaluate --run {out})")
    return 0


def _check_single_process(config) -> None:
    """A single process trains the whole model in full; the `parallel` settings only the mesh
    layout applies are refused rather than silently dropped."""
    parallel = config.parallel
    wanted = [f"parallel.{key}={value}" for key, value, default in (
        ("tp", parallel.tp, 1), ("lora_rank", parallel.lora_rank, 0),
        ("freeze_llm", parallel.freeze_llm, False),
        ("quantize_base", parallel.quantize_base, "none")) if value != default]
    if wanted:
        raise ConfigError(f"{', '.join(wanted)} apply in the distributed layout: launch with "
                          "torchrun (one GPU: torchrun --nproc_per_node 1 -m astrobio.train "
                          "...), or set them back for a single process")


if __name__ == "__main__":
    sys.exit(main())
