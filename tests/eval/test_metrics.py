"""Metrics against scikit-learn and hand-computed cases."""

import numpy as np
import pytest
from sklearn import metrics as skm

from astrobio.eval.metrics import (
    auroc,
    auroc_drop,
    average_precision,
    binary_metrics,
    expected_calibration_error,
    f1_score,
    log_loss,
    paired_difference,
    per_class_report,
)


def test_auroc_and_f1_match_sklearn(rng):
    labels = rng.integers(0, 2, 301)
    scores = np.round(rng.random(301) + 0.3 * labels, 2)  # rounding makes ties
    assert auroc(labels, scores) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)
    predictions = scores > 0.6
    assert f1_score(labels, predictions) == pytest.approx(skm.f1_score(labels, predictions))
    assert np.isnan(auroc(np.ones(5), rng.random(5)))


def test_auroc_drop_and_its_bootstrap_interval(rng):
    labels = rng.integers(0, 2, 400)
    informative = rng.random(400) + labels  # AUROC about 0.875
    weaker = informative + 2.0 * rng.random(400)  # the same signal, diluted
    same = auroc_drop(labels, informative, informative, n_resamples=200)
    assert same == {"drop": 0.0, "low": 0.0, "high": 0.0}
    drop = auroc_drop(labels, informative, weaker, n_resamples=500, seed=1)
    expected = skm.roc_auc_score(labels, informative) - skm.roc_auc_score(labels, weaker)
    assert drop["drop"] == pytest.approx(expected, abs=1e-12)
    assert 0.0 < drop["low"] < drop["drop"] < drop["high"]
    # paired: the interval of a real drop is far narrower than the spread of either AUROC
    assert drop["high"] - drop["low"] < 0.15


def test_ece_hand_computed():
    # bin [0.1,0.2): probabilities 0.15, 0.15, labels 0, 1 -> |0.5 - 0.15| * 2/4
    # bin [0.9,1.0]: probabilities 0.95, 1.0, labels 1, 1  -> |1 - 0.975| * 2/4
    labels = np.array([0, 1, 1, 1])
    probs = np.array([0.15, 0.15, 0.95, 1.0])
    assert expected_calibration_error(labels, probs) == pytest.approx(0.35 / 2 + 0.025 / 2)
    metrics = binary_metrics(labels, probs)
    assert metrics["accuracy"] == 0.75


def test_per_class_report_matches_sklearn(rng):
    labels = rng.integers(0, 4, 200)
    predictions = np.where(rng.random(200) < 0.7, labels, rng.integers(0, 4, 200))
    report = per_class_report(labels, predictions, ("a", "b", "c", "d"))
    precision, recall, f1, support = skm.precision_recall_fscore_support(labels, predictions)
    for i, name in enumerate("abcd"):
        assert report[name]["precision"] == pytest.approx(precision[i])
        assert report[name]["recall"] == pytest.approx(recall[i])
        assert report[name]["f1"] == pytest.approx(f1[i])
        assert report[name]["support"] == support[i]


def test_average_precision_and_log_loss_match_sklearn(rng):
    labels = rng.integers(0, 2, 503)
    scores = np.round(rng.random(503) * 0.8 + 0.2 * labels, 2)  # ties across classes
    assert average_precision(labels, scores) == pytest.approx(
        skm.average_precision_score(labels, scores), abs=1e-12)
    probabilities = np.clip(scores, 0.0, 1.0)
    probabilities[:3] = [0.0, 1.0, 0.5]  # the clipping keeps log(0) finite
    assert log_loss(labels, probabilities) == pytest.approx(
        skm.log_loss(labels, np.clip(probabilities, 1e-7, 1 - 1e-7)), rel=1e-9)
    assert np.isnan(average_precision(np.zeros(4), rng.random(4)))
    # a perfect ranking: every threshold has precision 1
    assert average_precision([0, 1, 1, 0], [0.1, 0.9, 0.8, 0.2]) == 1.0


def test_paired_difference_of_any_metric(rng):
    labels = rng.integers(0, 2, 400)
    better = rng.random(400) + labels
    worse = better + 3.0 * rng.random(400)
    result = paired_difference(labels, better, worse, average_precision, n_resamples=300)
    assert result["difference"] == pytest.approx(
        average_precision(labels, better) - average_precision(labels, worse))
    assert 0 < result["low"] < result["difference"] < result["high"]
