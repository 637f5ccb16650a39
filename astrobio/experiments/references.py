"""Reference ceilings: the best `habitable` and `biosignature` AUROC reachable from each single
modality, from all five and from all but one, estimated from the generator's latent
observables (`astrobio.data.synthetic.latent`) on a large sample.

    python -m astrobio.experiments.references [--n 100000] [--seed 0] [--workers K]
                                              [--out references.json]

Estimator: scikit-learn's HistGradientBoostingClassifier (max 500 iterations, early stopping on
a tenth of its training data, otherwise defaults) on the concatenated latent features of the
subset's modalities, fitted on 70 % of the planets and scored on the other 30 %. Its error: the
standard deviation of the held-out AUROC over 200 bootstrap resamples of the held-out planets
(the fit's own variance is smaller at this size). What the number means: the features are what
each modality is computed from, so no model of that modality can know more (an upper bound on
its information); the learner is finite, so the estimate sits a little below the Bayes-optimal
AUROC of those features. A model trained on the dataset's modalities should land at or under
it; the study reports every model's gap to these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from astrobio.config import DataConfig
from astrobio.errors import AstroBioError
from astrobio.schema import MODALITIES

TARGETS = ("habitable", "biosignature")
TRAIN_FRACTION = 0.7
BOOTSTRAP = 200
CHUNK = 2048


def subsets() -> dict[str, tuple[str, ...]]:
    """name -> modalities: each alone, all five, and all but each one."""
    out = {m: (m,) for m in MODALITIES}
    out["all"] = MODALITIES
    out |= {f"all but {m}": tuple(o for o in MODALITIES if o != m) for m in MODALITIES}
    return out


def _latent_chunk(args: tuple[int, int, DataConfig]) -> dict:
    from astrobio.data.synthetic.latent import latent

    return latent(*args)


def sample_latent(n: int, config: DataConfig, workers: int) -> dict:
    """Latent observables of planets 0 .. n-1, generated in `workers` processes."""
    chunks = [(start, min(start + CHUNK, n), config) for start in range(0, n, CHUNK)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_latent_chunk, chunks))
    else:
        parts = [_latent_chunk(c) for c in chunks]
    return {part: {key: np.concatenate([p[part][key] for p in parts]) for key in parts[0][part]}
            for part in ("labels", "metadata", "features")}


def auroc(truth: np.ndarray, score: np.ndarray) -> float:
    """The Mann-Whitney form of the AUROC (ties count half), fast enough to bootstrap."""
    ranks = rankdata(score)
    positives = int(truth.sum())
    negatives = len(truth) - positives
    return float((ranks[truth == 1].sum() - positives * (positives + 1) / 2)
                 / (positives * negatives))


def ceiling(features: np.ndarray, labels: np.ndarray, seed: int) -> dict:
    """Held-out AUROC of the estimator (module docstring) and its bootstrap error."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    cut = int(TRAIN_FRACTION * len(labels))
    train, test = order[:cut], order[cut:]
    model = HistGradientBoostingClassifier(max_iter=500, early_stopping=True,
                                           random_state=seed)
    with threadpool_limits(1):  # OpenMP's spinning threads stall on a busy machine
        model.fit(features[train], labels[train])
        score = model.predict_proba(features[test])[:, 1]
    truth = labels[test]
    boot = []
    for _ in range(BOOTSTRAP):
        pick = rng.integers(0, len(test), len(test))
        if truth[pick].min() != truth[pick].max():
            boot.append(auroc(truth[pick], score[pick]))
    return {"auroc": auroc(truth, score), "se": float(np.std(boot, ddof=1)),
            "n_test": int(len(test)), "positives": int(truth.sum()),
            "iterations": int(model.n_iter_)}


def references(n: int, seed: int, workers: int) -> dict:
    config = DataConfig(seed=seed, missing_modality_rate=0.0)
    started = time.perf_counter()
    data = sample_latent(n, config, workers)
    generated = time.perf_counter() - started
    table = {}
    for name, modalities in subsets().items():
        features = np.concatenate([data["features"][m] for m in modalities], axis=1)
        table[name] = {t: ceiling(features, data["labels"][t], seed) for t in TARGETS}
    from astrobio.data.synthetic import GENERATOR_VERSION

    return {"n": n, "seed": seed, "generator_version": GENERATOR_VERSION,
            "prevalence": {t: float(data["labels"][t].mean()) for t in TARGETS},
            "features": {m: int(data["features"][m].shape[1]) for m in MODALITIES},
            "seconds": {"generate": generated, "total": time.perf_counter() - started},
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {workers} workers, "
                       f"Python {platform.python_version()}, numpy {np.__version__}",
            "table": table}


def markdown(result: dict) -> str:
    lines = ["| modalities | habitable AUROC | biosignature AUROC |", "|---|---|---|"]
    for name, row in result["table"].items():
        cells = [f"{row[t]['auroc']:.3f} ± {row[t]['se']:.3f}" for t in TARGETS]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m astrobio.experiments.references",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="planets (default 100,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default="references.json")
    args = parser.parse_args(argv)
    if args.n < 100 or args.workers < 1:
        parser.error("--n must be at least 100 and --workers at least 1")
    try:
        result = references(args.n, args.seed, args.workers)
    except AstroBioError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\n{result['n']:,} planets, generator {result['generator_version']}, "
          f"{result['seconds']['total']:.0f} s on {result['machine']}; written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
