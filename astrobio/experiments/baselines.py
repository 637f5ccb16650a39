"""The numbers the study compares: per-run metrics, late fusion, mean ± std over seeds, the
comparison against the seeds' spread, and gradient shares.

Headline metrics (test split, labelled planets): `habitable` accuracy, AUROC, average
precision, log-loss, F1 and expected calibration error, and the surface-temperature MAE in
kelvin (`astrobio.eval`).
"""

from __future__ import annotations

import math

import numpy as np

from astrobio.eval.evaluate import score
from astrobio.eval.metrics import auroc, average_precision, log_loss, paired_difference

METRICS = ("accuracy", "auroc", "average_precision", "log_loss", "f1", "ece",
           "surface_temperature_mae_k")
HIGHER_IS_BETTER = {"accuracy": True, "auroc": True, "average_precision": True,
                    "log_loss": False, "f1": True, "ece": False,
                    "surface_temperature_mae_k": False}
PAIRED_METRICS = {"auroc": auroc, "average_precision": average_precision, "log_loss": log_loss}
LABEL_COLUMNS = ("habitable", "biosignature", "habitability_class", "surface_temperature",
                 "has_targets")


def headline(predictions: dict[str, np.ndarray]) -> dict[str, float]:
    results = score(predictions)
    return {**{k: results["habitable"][k] for k in METRICS[:-1]},
            "surface_temperature_mae_k": results["surface_temperature_mae_k"]}


def late_fusion(single: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Average of the single-modality models' probabilities and temperatures; the class is
    the most common of their predictions (the lowest index on a tie)."""
    for other in single[1:]:
        if not np.array_equal(other["habitable"], single[0]["habitable"]):
            raise ValueError("late_fusion: the models were scored on different planets")
    votes = np.stack([p["predicted_class"] for p in single])
    n_classes = int(votes.max()) + 1
    counts = np.stack([(votes == c).sum(0) for c in range(n_classes)])
    return {
        **{name: single[0][name] for name in LABEL_COLUMNS},
        "p_habitable": np.mean([p["p_habitable"] for p in single], axis=0),
        "p_biosignature": np.mean([p["p_biosignature"] for p in single], axis=0),
        "predicted_temperature": np.mean([p["predicted_temperature"] for p in single], axis=0),
        "predicted_class": counts.argmax(0),
    }


def mean_std(values: list[float]) -> dict:
    """Mean and sample standard deviation (NaN for one value); NaN runs are left out."""
    finite = [v for v in values if not math.isnan(v)]
    return {"mean": float(np.mean(finite)) if finite else math.nan,
            "std": float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan,
            "n": len(finite), "values": [float(v) for v in values]}


def aggregate(per_seed: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict]]:
    """variant -> metric -> `mean_std` over the seeds' runs."""
    variants = list(per_seed[0])
    return {v: {m: mean_std([run[v][m] for run in per_seed]) for m in per_seed[0][v]}
            for v in variants}


def compare(a: dict, b: dict, higher_is_better: bool = True) -> dict:
    """Whether `a` beats `b` (each a `mean_std`) by more than the seeds' spread, the sum of
    their standard deviations. `verdict`: "better", "worse", "within spread", or "undetermined"
    with fewer than two finite runs of either."""
    difference = a["mean"] - b["mean"]
    spread = a["std"] + b["std"]
    if min(a["n"], b["n"]) < 2 or math.isnan(difference) or math.isnan(spread):
        verdict = "undetermined"
    else:
        signed = difference if higher_is_better else -difference
        verdict = ("better" if signed > spread else "worse" if signed < -spread
                   else "within spread")
    return {"difference": difference, "spread": spread, "verdict": verdict}


def gradient_shares(records: list[dict], modules: list[str]) -> dict[str, float]:
    """Per module, the mean over logged steps of its share ‖g_m‖² / Σ_k ‖g_k‖² of the squared
    gradient norm of the habitability loss (shares over `modules` sum to 1 at every step)."""
    shares = {m: [] for m in modules}
    for record in records:
        total = sum(record[m] ** 2 for m in modules)
        if total > 0:
            for m in modules:
                shares[m].append(record[m] ** 2 / total)
    return {m: float(np.mean(v)) if v else math.nan for m, v in shares.items()}


def paired_over_seeds(labels: np.ndarray, a: list[np.ndarray], b: list[np.ndarray],
                      metric: str, n_resamples: int = 2000) -> dict[str, float]:
    """mean over seeds of metric(a_s) minus mean over seeds of metric(b_s), `a_s` and `b_s`
    the two models' P(habitable) for the same test planets, with the 95 % interval of a
    paired bootstrap over the planets (`metrics.paired_difference`: each resample keeps
    every model's and seed's prediction of a planet together)."""
    function = PAIRED_METRICS[metric]

    def seed_mean(y: np.ndarray, scores: np.ndarray) -> float:
        return float(np.mean([function(y, scores[:, k]) for k in range(scores.shape[1])]))

    return paired_difference(labels, np.stack(a, axis=1), np.stack(b, axis=1), seed_mean,
                             n_resamples)
