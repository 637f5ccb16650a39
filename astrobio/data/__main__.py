"""`python -m astrobio.data build|validate|example`.

    python -m astrobio.data build --out DIR [--n N] [--preset tiny] [--seed S]
                                  [--config FILE] [--set data.key=value ...] [--overwrite]
                                  [--workers K] [--quiet]
    python -m astrobio.data build --catalog pscomppars.csv [--climate DIR] [--spectra DIR]
                                  [--metabolism DIR] [--labels labels.csv] [--mapping CSV]
                                  [--run RUN | --tokenizer PATH] [--strict] --out DIR
    python -m astrobio.data validate DIR [--quiet]
    python -m astrobio.data example --out DIR

`build` without `--catalog` generates the synthetic planets; with it, it builds from your files
(`astrobio.data.from_files`, matching rules in `astrobio.data.matching`). `--run RUN` builds
for a trained run: its data settings (grid, wavelength bins, text length) and its tokenizer,
so that `python -m astrobio.train --init RUN` can fine-tune it on the result. `example` writes
a small bundle of such files (a stand-in for yours).

Exit status: 0 success (a build from files that reported problems included), 1 `validate`
found problems, 2 bad arguments, config or data (and any problem under `--strict`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from astrobio.config import add_config_arguments, load_config
from astrobio.errors import ConfigError, cli


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m astrobio.data",
                                     description="Build or check an AstroBio dataset.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="generate the synthetic dataset, or build one "
                                "from your files (--catalog), into a directory")
    build.add_argument("--out", required=True, help="dataset directory (created)")
    build.add_argument("--n", type=int, help="number of synthetic planets (default: the "
                       "preset's)")
    build.add_argument("--seed", type=int, help="generator and split seed")
    add_config_arguments(build)
    build.add_argument("--overwrite", action="store_true",
                       help="replace a complete dataset already at --out")
    build.add_argument("--workers", type=int, default=1, help="generator processes")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    files = build.add_argument_group("from your files")
    files.add_argument("--catalog", help="NASA Exoplanet Archive pscomppars CSV: the planets")
    files.add_argument("--climate", help="folder of climate-model NetCDF files")
    files.add_argument("--spectra", help="folder of JWST x1d FITS files or spectrum tables")
    files.add_argument("--metabolism", help="folder of SBML metabolic models")
    files.add_argument("--labels", help="CSV of known targets per planet (any subset)")
    files.add_argument("--mapping", help="CSV of file,planet[,modality] rows, for files whose "
                       "names do not say their planet")
    files.add_argument("--spectrum-units", default="ppm", choices=("ppm", "percent",
                                                                   "fraction"),
                       help="depth unit of spectrum tables (FITS files say theirs)")
    files.add_argument("--run", help="a trained run whose data settings and tokenizer the "
                       "dataset takes (to fine-tune that run on it)")
    files.add_argument("--tokenizer", help="tokenizer.json, dataset or Hugging Face folder "
                       "whose tokenizer encodes the texts (default: one trained on them)")
    files.add_argument("--strict", action="store_true", help="stop at the first unreadable "
                       "or unmatched file or bad row")
    validate = commands.add_parser("validate", help="check a dataset, report every problem")
    validate.add_argument("root", help="dataset directory")
    validate.add_argument("--quiet", action="store_true", help="no progress bar")
    example = commands.add_parser("example", help="write an example bundle of real-format "
                                  "files to build a dataset from")
    example.add_argument("--out", required=True, help="folder for the bundle (created)")
    return parser


def _build(args) -> int:
    from astrobio.data.build import build_dataset

    overrides = list(args.set)
    if args.n is not None:
        overrides.append(f"data.n_samples={args.n}")
    if args.seed is not None:
        overrides.append(f"data.seed={args.seed}")
    config = load_config(args.preset, args.config, overrides)
    start = time.perf_counter()
    out = build_dataset(config.data, args.out, preset=config.preset, overwrite=args.overwrite,
                        progress=not args.quiet, workers=args.workers)
    print(f"built {config.data.n_samples} samples into {out} in "
          f"{time.perf_counter() - start:.1f} s")
    return 0


def _build_from_files(args) -> int:
    from astrobio.data.from_files import build_from_files, summary_table

    if args.n is not None or args.workers != 1:
        raise ConfigError("--n and --workers are for the synthetic build; a build from files "
                          "takes every good row of --catalog")
    if args.run and args.tokenizer:
        raise ConfigError("give --run (its data settings and tokenizer) or --tokenizer, not both")
    overrides = list(args.set) + ([f"data.seed={args.seed}"] if args.seed is not None else [])
    base, tokenizer = None, args.tokenizer
    if args.run:
        from astrobio.run import load_run

        run = load_run(args.run, device="cpu")
        base, tokenizer = {"data": dataclasses.asdict(run.config.data)}, run.tokenizer
    config = load_config(args.preset, args.config, overrides, base=base)
    start = time.perf_counter()
    result = build_from_files(
        args.catalog, args.out, config.data, climate=args.climate, spectra=args.spectra,
        metabolism=args.metabolism, labels=args.labels, mapping=args.mapping,
        tokenizer=tokenizer, strict=args.strict, overwrite=args.overwrite,
        progress=not args.quiet, spectrum_units=args.spectrum_units, preset=config.preset)
    for problem in result.problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(summary_table(result.card))
    if result.problems:
        print(f"{len(result.problems)} file(s) or row(s) reported above were left out; the "
              "rest was built", file=sys.stderr)
    print(f"built {result.card['n_samples']} planets into {result.out} in "
          f"{time.perf_counter() - start:.1f} s")
    return 0


def _validate(args) -> int:
    from astrobio.data.validate import validate_dataset

    problems = validate_dataset(args.root, progress=not args.quiet)
    for problem in problems:
        print(problem)
    if problems:
        samples = {p.sample for p in problems if p.sample is not None}
        print(f"{len(problems)} problem(s) in {args.root}, {len(samples)} sample(s) affected",
              file=sys.stderr)
        return 1
    print(f"ok: {args.root}")
    return 0


def _example(args) -> int:
    from astrobio.data.example import write_example_bundle

    paths = write_example_bundle(args.out)
    for name, path in paths.items():
        print(f"{name:<12} {path}")
    return 0


@cli
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        return _validate(args)
    if args.command == "example":
        return _example(args)
    if args.catalog is not None:
        return _build_from_files(args)
    given = [f"--{name}" for name in ("climate", "spectra", "metabolism", "labels", "mapping",
                                      "run", "tokenizer")
             if getattr(args, name) is not None] + (["--strict"] if args.strict else [])
    if given:
        raise ConfigError(f"{', '.join(given)} build from your files and need --catalog")
    return _build(args)


if __name__ == "__main__":
    sys.exit(main())
