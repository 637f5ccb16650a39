"""Synthetic descriptions: catalogue facts with gaps, and what the spectrum decided."""

import numpy as np

from astrobio.data.description import describe
from astrobio.data.synthetic import retrieval, text

CAT = {"st_teff": 3100.0, "st_rad": 0.2, "st_mass": 0.18, "pl_orbper": 12.3,
       "pl_orbsmax": 0.05, "pl_rade": 1.07, "pl_bmasse": 1.3, "pl_insol": 0.71,
       "pl_orbeccen": 0.02, "j_mag": 9.8, "st_lum": 0.003}


def result(probability, log_evidence, mean=5.0, sd=0.2, prior_sd=1.5):
    shape = (2, len(retrieval.RETRIEVED))
    return {"probability": np.array(probability), "log_evidence": np.array(log_evidence),
            "mean": np.full(shape, mean), "sd": np.full(shape, sd),
            "prior_sd": np.full(shape, prior_sd)}


def test_detections_need_data_and_significance():
    strong = result([0.0, 1.0, 0.0], [-20.0, 0.0, -30.0], mean=7.0, sd=0.3)
    found = dict(text.detections(strong))
    assert found["CO2"] == "detected"  # 1e-2 against a 1e-4 threshold, well measured
    prior_only = result([0.0, 1.0, 0.0], [0.0, 0.0, 0.0], mean=7.0, sd=1.4)
    assert text.detections(prior_only) == []  # the prior alone detects nothing
    flat = result([0.95, 0.05, 0.0], [0.0, -5.0, -9.0], mean=7.0, sd=0.3)
    assert text.detections(flat) == []


def test_facts_state_the_catalogue_and_the_verdict(rng):
    decided = result([0.0, 0.99, 0.01], [-10.0, 0.0, -4.0])
    shares = []
    for _ in range(300):
        f = text.facts(CAT, decided, True, 288.0, 0.1, rng)
        shares.append([k in f for k in ("period", "radius", "mass", "insolation")])
        assert f["spectrum"] == "secondary" and f["thermal"] == 288.0
        for key, column in (("radius", "pl_rade"), ("mass", "pl_bmasse")):
            assert f.get(key, CAT[column]) == CAT[column]
    np.testing.assert_allclose(np.mean(shares, axis=0), [0.7, 0.8, 0.5, 0.6], atol=0.09)
    undecided = result([0.3, 0.6, 0.1], [0.0, -0.2, -2.0])
    f = text.facts(CAT, undecided, False, 288.0, 0.9, rng)
    assert "spectrum" not in f and "thermal" not in f and not f["active"]
    assert "spectrum" not in text.facts(CAT, None, False, 288.0, 0.9, rng)
    assert "250 K" in describe(text.facts(CAT, None, False, 250.0, 0.1, rng), rng)
