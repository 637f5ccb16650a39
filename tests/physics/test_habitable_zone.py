import math

import numpy as np
import pytest
import torch

from astrobio.errors import DataError
from astrobio.physics import habitable_zone, habitable_zone_flux

LIMITS_2014 = ("recent_venus", "runaway_greenhouse", "maximum_greenhouse", "early_mars")


def test_sun_2014_matches_paper():
    hz = habitable_zone(5780.0, 1.0)
    assert tuple(hz) == LIMITS_2014
    # Kopparapu et al. 2014, solar values quoted to three decimals.
    for limit, published in zip(LIMITS_2014, (0.750, 0.950, 1.676, 1.768)):
        assert abs(hz[limit] - published) < 5e-4, limit


def test_sun_2013_matches_paper():
    hz = habitable_zone(5780.0, 1.0, model="kopparapu2013")
    assert tuple(hz) == ("recent_venus", "runaway_greenhouse", "moist_greenhouse",
                         "maximum_greenhouse", "early_mars")
    # At Teff = 5780 K the fit is S0, so d = 1/sqrt(S0) exactly (Kopparapu 2013, Table 3).
    for limit, s0 in zip(hz, (1.7753, 1.0512, 1.0140, 0.3438, 0.3179)):
        assert hz[limit] == pytest.approx(1.0 / math.sqrt(s0), rel=1e-12)
    # The paper's text quotes these truncated to two decimals.
    for limit, quoted in zip(hz, (0.75, 0.97, 0.99, 1.70, 1.77)):
        assert 0.0 <= hz[limit] - quoted < 0.01, limit


def test_cool_star_hand_computed():
    # Recent Venus 2014 at Teff = 3780 K (T = -2000), by hand:
    # 1.776 - 0.4272 + 0.10132 + 0.10656 - 0.049552 = 1.507128
    hz = habitable_zone(3780.0, 0.04)
    assert hz["recent_venus"] == pytest.approx(math.sqrt(0.04 / 1.507128), rel=1e-12)


def test_luminosity_scaling_and_broadcast(rng):
    teff = rng.uniform(2700, 7100, size=7)
    lum = rng.uniform(0.01, 5.0, size=7)
    hz = habitable_zone(teff, lum)
    flux = habitable_zone_flux(teff)
    for limit in LIMITS_2014:
        assert hz[limit].shape == (7,)
        np.testing.assert_allclose(hz[limit], np.sqrt(lum / flux[limit]), rtol=1e-14)
    assert np.all(hz["recent_venus"] < hz["runaway_greenhouse"])
    assert np.all(hz["maximum_greenhouse"] < hz["early_mars"])


def test_mass_dependence_of_runaway_limit():
    masses = np.array([0.1, 0.3, 1.0, 2.0, 5.0])
    hz = habitable_zone(5780.0, 1.0, planet_mass=masses)
    runaway = hz["runaway_greenhouse"]
    # Published fits at the three masses (Sun: Seff = S0).
    assert runaway[0] == pytest.approx(1 / math.sqrt(0.99), rel=1e-12)
    assert runaway[2] == pytest.approx(1 / math.sqrt(1.107), rel=1e-12)
    assert runaway[4] == pytest.approx(1 / math.sqrt(1.188), rel=1e-12)
    assert np.all(np.diff(runaway) < 0), "heavier planets have a closer runaway limit"
    # Seff linear in log10(mass): at sqrt(0.1 * 1) Me it is the mean of the two fits.
    mid = habitable_zone_flux(5780.0, planet_mass=math.sqrt(0.1))["runaway_greenhouse"]
    assert mid == pytest.approx((0.99 + 1.107) / 2, rel=1e-12)
    for limit in ("recent_venus", "maximum_greenhouse", "early_mars"):
        np.testing.assert_allclose(hz[limit], hz[limit][2])


def test_teff_out_of_range_raises_with_values():
    with pytest.raises(DataError, match=r"teff.*2 value\(s\).*2000, 9000"):
        habitable_zone(np.array([2000.0, 5000.0, 9000.0]), 1.0)


def test_teff_out_of_range_clamp_flags():
    hz = habitable_zone(np.array([2000.0, 5000.0, 9000.0]), 1.0, out_of_range="clamp")
    np.testing.assert_array_equal(hz["teff_clamped"], [True, False, True])
    np.testing.assert_array_equal(hz["mass_clamped"], [False, False, False])
    edges = habitable_zone(np.array([2600.0, 5000.0, 7200.0]), 1.0)
    for limit in LIMITS_2014:
        np.testing.assert_allclose(hz[limit], edges[limit], rtol=1e-15)


def test_mass_out_of_range():
    with pytest.raises(DataError, match="planet_mass"):
        habitable_zone(5780.0, 1.0, planet_mass=10.0)
    hz = habitable_zone(5780.0, 1.0, planet_mass=np.array([0.01, 10.0]), out_of_range="clamp")
    np.testing.assert_array_equal(hz["mass_clamped"], [True, True])
    assert hz["runaway_greenhouse"][1] == pytest.approx(1 / math.sqrt(1.188))


@pytest.mark.parametrize("kwargs,field", [
    ({"teff": np.nan, "luminosity": 1.0}, "teff"),
    ({"teff": 5000.0, "luminosity": -1.0}, "luminosity"),
    ({"teff": 5000.0, "luminosity": 1.0, "model": "kasting1993"}, "model"),
    ({"teff": 5000.0, "luminosity": 1.0, "out_of_range": "ignore"}, "out_of_range"),
    ({"teff": 5000.0, "luminosity": 1.0, "model": "kopparapu2013", "planet_mass": 5.0},
     "planet_mass"),
])
def test_bad_arguments(kwargs, field):
    with pytest.raises(DataError) as info:
        habitable_zone(**kwargs, **({"out_of_range": "clamp"} if field == "teff" else {}))
    assert info.value.field == field


def test_torch_matches_numpy_and_keeps_dtype(rng):
    teff = rng.uniform(2600, 7200, size=5)
    lum = rng.uniform(0.01, 3.0, size=5)
    mass = rng.uniform(0.1, 5.0, size=5)
    ref = habitable_zone(teff, lum, planet_mass=mass)
    for dtype in (torch.float64, torch.float32):
        out = habitable_zone(torch.tensor(teff, dtype=dtype), torch.tensor(lum, dtype=dtype),
                             planet_mass=torch.tensor(mass, dtype=dtype))
        for limit in LIMITS_2014:
            assert out[limit].dtype == dtype
            tol = 1e-12 if dtype == torch.float64 else 1e-5
            np.testing.assert_allclose(out[limit].numpy(), ref[limit], rtol=tol)


def test_torch_gradients():
    teff = torch.tensor([3300.0, 5100.0, 6900.0], dtype=torch.float64, requires_grad=True)
    lum = torch.tensor([0.02, 0.5, 2.5], dtype=torch.float64, requires_grad=True)
    # Away from 1 Me, where the log-mass interpolation of the runaway limit has its kink.
    mass = torch.tensor([0.2, 0.9, 3.0], dtype=torch.float64, requires_grad=True)

    def distances(t, luminosity, m):
        return torch.stack(list(habitable_zone(t, luminosity, planet_mass=m).values()))

    assert torch.autograd.gradcheck(distances, (teff, lum, mass))


def test_traces_without_graph_breaks():
    # Validation is skipped while dynamo traces, so a compiled physics loss has one graph.
    hz = torch.compile(lambda t, lum: habitable_zone(t, lum, out_of_range="clamp"),
                       backend="eager", fullgraph=True)
    out = hz(torch.tensor([2000.0, 5780.0]), torch.tensor([0.01, 1.0]))
    assert out["teff_clamped"].tolist() == [True, False]
    assert out["early_mars"][1].item() == pytest.approx(1 / math.sqrt(0.320), rel=1e-6)
