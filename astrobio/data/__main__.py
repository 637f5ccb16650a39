"""`python -m astrobio.data build|validate`.

    python -m astrobio.data build --out DIR [--n N] [--preset tiny] [--seed S]
                                  [--config FILE] [--set data.key=value ...] [--overwrite]
                                  [--workers K] [--quiet]
    python -m astrobio.data validate DIR [--quiet]

Exit status: 0 success, 1 `validate` found problems, 2 bad arguments, config or data.
"""

from __future__ import annotations

import argparse
import sys
import time

from astrobio.config import add_config_arguments, load_config
from astrobio.errors import cli


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m astrobio.data",
                                     description="Build or check an AstroBio dataset.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="generate the synthetic dataset into a directory")
    build.add_argument("--out", required=True, help="dataset directory (created)")
    build.add_argument("--n", type=int, help="number of planets (default: the preset's)")
    build.add_argument("--seed", type=int, help="generator and split seed")
    add_config_arguments(build)
    build.add_argument("--overwrite", action="store_true",
                       help="replace a complete dataset already at --out")
    build.add_argument("--workers", type=int, default=1, help="generator processes")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    validate = commands.add_parser("validate", help="check a dataset, report every problem")
    validate.add_argument("root", help="dataset directory")
    validate.add_argument("--quiet", action="store_true", help="no progress bar")
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


@cli
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return _build(args) if args.command == "build" else _validate(args)


if __name__ == "__main__":
    sys.exit(main())
