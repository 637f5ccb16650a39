"""The habitable-zone check against Kopparapu et al. 2014 and the status classification."""

import math

import pytest

from astrobio.experiments.physics import KOPPARAPU_2014_SUN_AU, kopparapu_check
from astrobio.predict import physics_hz_status


def test_solar_habitable_zone_matches_the_paper():
    rows = kopparapu_check()
    assert [r["limit"] for r in rows] == list(KOPPARAPU_2014_SUN_AU)
    for row in rows:
        assert row["match"], row
        # d = 1 / sqrt(S0) for the Sun, an independent evaluation of the same fit
        s0 = {"recent_venus": 1.776, "runaway_greenhouse": 1.107, "maximum_greenhouse": 0.356,
              "early_mars": 0.320}[row["limit"]]
        assert row["computed_au"] == pytest.approx(1 / math.sqrt(s0), abs=2e-4)


@pytest.mark.parametrize(("insolation", "status"), [
    (1.91, "outside"),  # Venus
    (1.0, "conservative"),  # Earth
    (0.43, "conservative"),  # Mars
    (1.5, "optimistic"),  # between the runaway greenhouse (1.107) and recent Venus (1.776)
    (0.33, "optimistic"),  # between maximum greenhouse (0.356) and early Mars (0.320)
    (0.1, "outside"),
])
def test_physics_status_for_a_sunlike_star(insolation, status):
    assert physics_hz_status(5780.0, insolation, 1.0) == (status, False)


def test_cool_star_is_clamped_to_the_fit_range():
    assert physics_hz_status(2566.0, 0.65, 0.7) == ("conservative", True)
