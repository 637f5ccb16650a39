"""The catalogue obeys the archive's relations exactly and errs by the stated amounts."""

import numpy as np
import pytest

from astrobio.config import DataConfig
from astrobio.data.synthetic import catalogue, draws, truth
from astrobio.schema import PARAM_NAMES


def test_relations_and_error_sizes(test_seed):
    v = draws.variates(test_seed % 10_000, range(4000))
    t = truth.bodies(v, use_clero=False)
    cat = catalogue.observe(t, v)
    np.testing.assert_allclose(cat["st_lum"], cat["st_rad"] ** 2 * (cat["st_teff"] / 5772) ** 4)
    a = (cat["st_mass"] * (cat["pl_orbper"] / 365.256898) ** 2) ** (1 / 3)  # Kepler, AU
    np.testing.assert_allclose(cat["pl_orbsmax"], a, rtol=1e-6)
    np.testing.assert_allclose(cat["pl_insol"], cat["st_lum"] / (
        cat["pl_orbsmax"] ** 2 * np.sqrt(1 - cat["pl_orbeccen"] ** 2)))
    for name, true, error in (("st_teff", t["star_teff"], 0.02),
                              ("st_rad", t["star_radius"], 0.04),
                              ("st_mass", t["star_mass"], 0.05)):
        assert np.std(cat[name] / true - 1) == pytest.approx(error, rel=0.1), name
    # the planet's radius errs by the ratio's 2 % and the star's 4 % together
    assert np.std(np.log(cat["pl_rade"] / t["planet_radius"])) == pytest.approx(
        np.hypot(0.02, 0.04), rel=0.1)
    assert np.std(np.log(cat["pl_bmasse"] / t["planet_mass"])) == pytest.approx(0.15, rel=0.1)
    params = catalogue.params(cat)
    assert params.dtype == np.float32 and params.shape == (4000, len(PARAM_NAMES))
    assert DataConfig().clero  # clero is the default climate where it applies
