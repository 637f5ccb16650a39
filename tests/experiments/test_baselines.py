"""Late fusion, the seed statistics, the spread comparison and gradient shares, by hand."""

import math

import numpy as np
import pytest

from astrobio.eval.metrics import auroc
from astrobio.experiments import baselines
from astrobio.experiments.baselines import compare, gradient_shares, late_fusion, mean_std


def _predictions(p, classes, temperature):
    n = len(p)
    return {"p_habitable": np.array(p), "p_biosignature": np.array(p) / 2,
            "predicted_temperature": np.array(temperature, dtype=float),
            "predicted_class": np.array(classes), "habitable": np.array([1, 0, 1][:n]),
            "biosignature": np.zeros(n, int), "habitability_class": np.zeros(n, int),
            "surface_temperature": np.full(n, 290.0), "has_targets": np.ones(n, bool)}


def test_late_fusion_averages_probabilities_and_votes_classes():
    fused = late_fusion([_predictions([0.2, 0.9, 0.5], [3, 1, 0], [280, 300, 250]),
                         _predictions([0.4, 0.3, 0.5], [3, 2, 4], [290, 310, 260]),
                         _predictions([0.9, 0.0, 0.2], [1, 2, 4], [300, 320, 270])])
    np.testing.assert_allclose(fused["p_habitable"], [0.5, 0.4, 0.4])
    np.testing.assert_allclose(fused["predicted_temperature"], [290, 310, 260])
    np.testing.assert_array_equal(fused["predicted_class"], [3, 2, 4])
    np.testing.assert_array_equal(fused["habitable"], [1, 0, 1])


def test_late_fusion_refuses_models_scored_on_different_planets():
    a = _predictions([0.2, 0.9], [0, 0], [1, 1])
    b = dict(a, habitable=np.array([0, 0]))
    with pytest.raises(ValueError, match="different planets"):
        late_fusion([a, b])


def test_mean_std_is_the_sample_statistic_and_skips_nan(rng):
    values = list(rng.normal(size=4))
    stat = mean_std([*values, math.nan])
    assert stat["mean"] == pytest.approx(np.mean(values))
    assert stat["std"] == pytest.approx(np.std(values, ddof=1))
    assert stat["n"] == 4 and len(stat["values"]) == 5
    assert math.isnan(mean_std([0.5])["std"])


@pytest.mark.parametrize(("a", "b", "higher", "verdict"), [
    ([0.90, 0.92, 0.91], [0.70, 0.72, 0.71], True, "better"),
    ([0.90, 0.70, 0.80], [0.78, 0.80, 0.76], True, "within spread"),
    ([0.70, 0.72, 0.71], [0.90, 0.92, 0.91], True, "worse"),
    ([10.0, 11.0, 10.5], [20.0, 21.0, 20.5], False, "better"),  # an error: lower is better
    ([0.9], [0.7], True, "undetermined"),
])
def test_compare_against_the_sum_of_standard_deviations(a, b, higher, verdict):
    result = compare(mean_std(a), mean_std(b), higher)
    assert result["verdict"] == verdict
    assert result["difference"] == pytest.approx(np.mean(a) - np.mean(b))
    if len(a) > 1:
        assert result["spread"] == pytest.approx(np.std(a, ddof=1) + np.std(b, ddof=1))


def test_gradient_shares_are_squared_norm_fractions():
    records = [{"step": 0, "a": 3.0, "b": 4.0, "c": 0.0},
               {"step": 5, "a": 0.0, "b": 1.0, "c": 1.0},
               {"step": 10, "a": 0.0, "b": 0.0, "c": 0.0}]  # no gradient: left out
    shares = gradient_shares(records, ["a", "b", "c"])
    assert shares == pytest.approx({"a": (9 / 25 + 0) / 2, "b": (16 / 25 + 0.5) / 2,
                                    "c": (0 + 0.5) / 2})
    assert sum(shares.values()) == pytest.approx(1.0)


def test_paired_over_seeds_is_the_mean_of_the_seeds_differences(rng):
    labels = rng.integers(0, 2, 301)
    a = [labels + rng.normal(0, s, 301) for s in (0.6, 0.9)]
    b = [labels + rng.normal(0, s, 301) for s in (1.2, 1.5)]
    result = baselines.paired_over_seeds(labels, a, b, "auroc", n_resamples=200)
    expected = np.mean([auroc(labels, x) for x in a]) - np.mean([auroc(labels, x) for x in b])
    assert result["difference"] == pytest.approx(expected, abs=1e-12)
    assert 0 < result["low"] < result["difference"] < result["high"]
    p, q = (1 / (1 + np.exp(-2 * (x[0] - 0.5))) for x in (a, b))
    one = baselines.paired_over_seeds(labels, [p], [q], "log_loss", n_resamples=200)
    by_hand = [-np.mean(labels * np.log(r) + (1 - labels) * np.log(1 - r)) for r in (p, q)]
    assert one["difference"] == pytest.approx(by_hand[0] - by_hand[1], abs=1e-9)
    assert one["high"] < 0  # the sharper model's log-loss is lower on every resample's scale
