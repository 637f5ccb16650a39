"""The reference-ceiling script on a small sample: every subset, a sane estimate and error."""

import json

import numpy as np
import pytest

from astrobio.experiments import references
from astrobio.schema import MODALITIES

pytest.importorskip("sklearn")


def test_subsets():
    names = references.subsets()
    assert len(names) == 2 * len(MODALITIES) + 1
    assert names["all"] == MODALITIES and "params" not in names["all but params"]


def test_auroc_matches_scikit_learn(rng):
    from sklearn.metrics import roc_auc_score

    truth = (rng.random(501) < 0.3).astype(int)
    score = np.round(rng.standard_normal(501) + truth, 1)  # with ties
    assert references.auroc(truth, score) == pytest.approx(roc_auc_score(truth, score))


def test_ceiling_of_a_known_signal(rng):
    """A label that is a noisy threshold of one feature: the estimate reaches the AUROC of the
    Bayes-optimal score (that feature), measured on a large independent sample."""
    n = 6000
    x = rng.standard_normal((n, 3))
    y = (x[:, 0] + 0.5 * rng.standard_normal(n) > 0).astype(int)
    out = references.ceiling(x, y, seed=1)
    big = rng.standard_normal(200_000)
    optimal = references.auroc((big + 0.5 * rng.standard_normal(200_000) > 0).astype(int), big)
    assert abs(out["auroc"] - optimal) < 3 * out["se"] + 0.005
    assert 0.0 < out["se"] < 0.02 and out["n_test"] == 1800


def test_cli_on_a_small_sample(tmp_path, capsys):
    out = tmp_path / "ref.json"
    assert references.main(["--n", "300", "--workers", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["table"]) == set(references.subsets())
    for row in result["table"].values():
        for target in references.TARGETS:
            assert 0.0 <= row[target]["auroc"] <= 1.0 and row[target]["se"] >= 0
    assert "| all |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        references.main(["--n", "5"])
