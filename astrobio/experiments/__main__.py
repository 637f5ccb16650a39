"""`python -m astrobio.experiments`: the whole study in one command.

Baselines (each modality alone, late fusion, isolated training, gradient-boosted trees and
logistic regression on hand features, the unified model) on the in-distribution split and the
out-of-distribution ones (`astrobio.experiments.splits`), with paired-bootstrap intervals of
the unified model against the trees and late fusion and every model's gap to the reference
ceilings; ablation (removed at evaluation and retrained without), gradient flow, physics
validation on the Kopparapu et al. 2014 values and on real planets, and fixed against learned
loss weighting.
Writes `OUT/report.md` with PNG plots beside it, `OUT/results.json` with every number, and
every run under `OUT/runs/seed<N>/` (overwritten by a new study into the same OUT).

Sizes: `--preset tiny` trains `STUDY_SIZES["tiny"]` on the default dataset (4,000 planets,
1,000 of them test planets; fits 2 CPU cores); `--quick` is a
minutes-long smoke run of the same pipeline at toy sizes (its numbers mean nothing).
`--set section.key=value` overrides any config key after those.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from astrobio.config import add_config_arguments, load_config
from astrobio.data.cache import ensure_default_dataset
from astrobio.data.reader import AstroBioDataset
from astrobio.errors import ConfigError, cli
from astrobio.experiments import physics
from astrobio.experiments.report import BASELINES, fmt, write_report
from astrobio.experiments.splits import SPLITS
from astrobio.experiments.study import OOD_CHOICES, run_study

# Study sizes per preset, applied before the user's --set overrides.
STUDY_SIZES = {
    "tiny": ["train.steps=200", "train.batch_size=16", "train.warmup_steps=10",
             "train.gradient_flow_every=10"],
}
QUICK_SIZES = [
    "data.n_samples=96", "data.shard_size=32", "data.vocab_size=300", "data.max_text_tokens=48",
    "model.d_model=16", "model.cnn_channels=4,8", "model.gnn_hidden=16", "model.gnn_latent=8",
    "model.spectral_channels=8", "model.param_hidden=16", "model.fusion_layers=1",
    "model.fusion_heads=2", "model.llm.hidden_size=32", "model.llm.num_layers=1",
    "model.llm.num_heads=2", "model.llm.num_kv_heads=2", "model.llm.intermediate_size=64",
    "model.llm.vocab_size=300", "model.llm.max_position_embeddings=64",
    "train.batch_size=8", "train.steps=3", "train.warmup_steps=1",
    "train.gradient_flow_every=2",
]
QUICK_SEEDS = 2


def study_config(preset: str, file: str | None, overrides: list[str], quick: bool):
    sizes = QUICK_SIZES if quick else STUDY_SIZES.get(preset, [])
    config = load_config(preset, file, [*sizes, *overrides])
    # Runs are scored once, on the test split, at the end; no mid-run validation.
    config.train.eval_every = config.train.checkpoint_every = config.train.steps
    return config


@cli
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m astrobio.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--out", default="study", help="output folder (default: ./study)")
    parser.add_argument("--seeds", type=int, help=f"number of seeds (default 3; --quick "
                                                  f"{QUICK_SEEDS})")
    parser.add_argument("--quick", action="store_true", help="toy sizes, a few minutes")
    parser.add_argument("--data", help="dataset folder (default: the cache, built if absent)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    ood = [s for s in SPLITS if s != "id"]
    parser.add_argument("--splits", default=",".join(ood),
                        help=f"out-of-distribution splits besides id, comma-separated, from "
                             f"{ood}; '' for none (default: all)")
    parser.add_argument("--ood-models", default=",".join(OOD_CHOICES),
                        help=f"what the out-of-distribution splits train besides the unified "
                             f"model, from {list(OOD_CHOICES)} (default: all)")
    parser.add_argument("--no-extra-runs", action="store_true",
                        help="leave out the compute-matched, retrained-without-one-modality "
                             "and uncertainty-weighting runs (a third of the study's cost)")
    args = parser.parse_args(argv)
    ood_models = tuple(m.strip() for m in args.ood_models.split(",") if m.strip())
    if set(ood_models) - set(OOD_CHOICES):
        raise ConfigError(f"--ood-models {args.ood_models}: choose from {list(OOD_CHOICES)}")
    splits = ["id", *(s.strip() for s in args.splits.split(",") if s.strip())]
    unknown = [s for s in splits[1:] if s not in ood]
    if unknown:
        raise ConfigError(f"--splits {args.splits}: unknown {unknown}; choose from {ood}")
    seeds = args.seeds if args.seeds is not None else (QUICK_SEEDS if args.quick else 3)
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: must be at least 1")
    started = time.perf_counter()
    config = study_config(args.preset, args.config, args.set, args.quick)
    root = ensure_default_dataset(config.data, args.data, progress=not args.quiet)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    study = run_study(config, out, list(range(seeds)), root, splits, progress=not args.quiet,
                      ood_models=ood_models, extra_runs=not args.no_extra_runs)
    results = {
        "setup": {"preset": args.preset, "quick": args.quick, "seeds": seeds,
                  "steps": config.train.steps, "batch_size": config.train.batch_size,
                  "lr": config.train.lr, "n_train": len(AstroBioDataset(root, "train")),
                  "n_test": len(AstroBioDataset(root, "test")), "data_dir": str(root),
                  "config": config.to_dict()},
        "study": study,
        "physics": {"kopparapu": physics.kopparapu_check(),
                    "catalogue": physics.catalogue_check(study["per_seed"][0]
                                                         ["unified_run"])},
    }
    results["setup"]["seconds"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(results, indent=2))
    report = write_report(results, out)
    _print_summary(results, report)
    return 0


def _print_summary(results: dict, report: Path) -> None:
    study = results["study"]
    print(f"{'model':<22} {'AUROC':>15} {'accuracy':>15} {'T_s MAE (K)':>15}")
    for variant in (v for v in BASELINES if v in study["table"]):
        row = study["table"][variant]
        print(f"{variant:<22} {fmt(row['auroc']):>15} {fmt(row['accuracy']):>15} "
              f"{fmt(row['surface_temperature_mae_k'], 1):>15}")
    for pair, comparison in study["comparisons"].items():
        print(f"{pair}: {comparison['verdict']} (AUROC difference "
              f"{comparison['difference']:+.3f}, spread {comparison['spread']:.3f})")
    for split, found in study["splits"].items():
        for pair, paired in found["paired"].items():
            d = paired["auroc"]
            print(f"{split}: AUROC {pair} {d['difference']:+.3f} "
                  f"[{d['low']:+.3f}, {d['high']:+.3f}] ({found['n_test']} test planets)")
    for split, why in study["skipped_splits"].items():
        print(f"{split}: skipped, {why}")
    matches = sum(r["match"] for r in results["physics"]["kopparapu"])
    print(f"Kopparapu 2014 solar limits reproduced: {matches}/4")
    print(f"report: {report} ({results['setup']['seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    sys.exit(main())
