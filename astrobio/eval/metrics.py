"""Classification and regression metrics on numpy arrays (no torch, no sklearn at run time)."""

from __future__ import annotations

import numpy as np


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (the Mann–Whitney U statistic, ties counted half).

    NaN when only one class is present, since the area is then undefined.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Σ_n (R_n − R_{n−1}) P_n over the distinct score thresholds, from the highest down: the
    area under the precision-recall steps, not interpolated. NaN without a positive."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int(labels.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1]
    true_pos = np.cumsum(sorted_labels)[last_of_each]
    precision = true_pos / (last_of_each + 1)
    recall_step = np.diff(np.r_[0, true_pos]) / n_pos
    return float((recall_step * precision).sum())


def log_loss(labels: np.ndarray, probabilities: np.ndarray, eps: float = 1e-7) -> float:
    """Mean negative log-likelihood of the labels, probabilities clipped to [eps, 1 - eps] (a
    confidently wrong prediction costs about 16 nats, not infinity)."""
    labels = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probabilities, dtype=np.float64), eps, 1.0 - eps)
    return float(-(labels * np.log(p) + (1.0 - labels) * np.log1p(-p)).mean())


def paired_difference(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray,
                      metric=auroc, n_resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """metric(a) - metric(b) on the same samples, with the 2.5 and 97.5 percentiles of a paired
    bootstrap (samples resampled with both scores kept together), so a difference whose
    interval excludes 0 is not the luck of one test set."""
    labels = np.asarray(labels)
    scores_a, scores_b = np.asarray(scores_a), np.asarray(scores_b)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        pick = rng.integers(0, len(labels), len(labels))
        draws.append(metric(labels[pick], scores_a[pick]) - metric(labels[pick], scores_b[pick]))
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return {"difference": metric(labels, scores_a) - metric(labels, scores_b),
            "low": float(low), "high": float(high)}


def auroc_drop(labels: np.ndarray, scores: np.ndarray, ablated_scores: np.ndarray,
               n_resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """AUROC(scores) - AUROC(ablated_scores) with its paired-bootstrap interval
    (`paired_difference`)."""
    result = paired_difference(labels, scores, ablated_scores, auroc, n_resamples, seed)
    return {"drop": result["difference"], "low": result["low"], "high": result["high"]}


def f1_score(labels: np.ndarray, predictions: np.ndarray) -> float:
    labels, predictions = np.asarray(labels).astype(bool), np.asarray(predictions).astype(bool)
    true_pos = int((labels & predictions).sum())
    denominator = int(labels.sum() + predictions.sum())
    return 2.0 * true_pos / denominator if denominator else 0.0


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray,
                               n_bins: int = 10) -> float:
    """Σ_bins (n_bin / n) · |accuracy_bin − confidence_bin| for a binary classifier, with
    confidence the probability of the positive class in equal-width bins over [0, 1]."""
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    bins = np.clip((probabilities * n_bins).astype(int), 0, n_bins - 1)
    error = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            error += in_bin.mean() * abs(labels[in_bin].mean() - probabilities[in_bin].mean())
    return float(error)


def reliability_curve(labels: np.ndarray, probabilities: np.ndarray, n_bins: int = 10):
    """(bin centres, mean predicted probability, observed frequency, count) per bin."""
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    bins = np.clip((probabilities * n_bins).astype(int), 0, n_bins - 1)
    centres = (np.arange(n_bins) + 0.5) / n_bins
    counts = np.bincount(bins, minlength=n_bins)
    confidence = np.bincount(bins, probabilities, minlength=n_bins) / np.maximum(counts, 1)
    frequency = np.bincount(bins, labels, minlength=n_bins) / np.maximum(counts, 1)
    return centres, confidence, frequency, counts


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    labels = np.asarray(labels).astype(int)
    predictions = np.asarray(probabilities) >= 0.5
    return {
        "accuracy": float((predictions == labels.astype(bool)).mean()),
        "auroc": auroc(labels, probabilities),
        "average_precision": average_precision(labels, probabilities),
        "log_loss": log_loss(labels, probabilities),
        "f1": f1_score(labels, predictions),
        "ece": expected_calibration_error(labels, probabilities),
    }


def per_class_report(labels: np.ndarray, predictions: np.ndarray,
                     class_names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class."""
    report = {}
    for index, name in enumerate(class_names):
        true_pos = int(((predictions == index) & (labels == index)).sum())
        predicted, support = int((predictions == index).sum()), int((labels == index).sum())
        precision = true_pos / predicted if predicted else 0.0
        recall = true_pos / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    return report
