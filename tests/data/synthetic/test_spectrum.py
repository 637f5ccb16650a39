"""Transmission spectra: band positions, amplitudes, clouds, noise and masks."""

import numpy as np
import pytest

from astrobio.data.synthetic import atmosphere, spectrum
from astrobio.schema import wavelength_grid

# DESIGN.md band centres (um) inside the 0.6-12 um grid
DESIGN_BANDS = {
    "H2O": (0.94, 1.14, 1.38, 1.87, 2.7, 6.3), "CO2": (1.6, 2.0, 2.7, 4.3),
    "CH4": (1.7, 2.3, 3.3, 7.7), "O2": (0.69, 0.76, 1.27, 6.4), "O3": (0.6, 4.7, 9.6),
    "CO": (2.35, 4.6), "NH3": (1.5, 2.0, 3.0, 6.1, 10.5), "N2O": (2.9, 4.5, 7.8),
}
EARTH_R_M, SUN_R_M = 6.3781e6, 6.957e8


def depth_of(gas_levels: dict, n_bins=256, pressure=1.0, cloud_cover=0.0, deck=1.0,
             star_radius=0.2):
    x = np.zeros((1, len(atmosphere.GASES)))
    for gas, value in gas_levels.items():
        x[0, atmosphere.GASES.index(gas)] = value
    return spectrum.model_depth(x, np.array([8.0e3]), np.array([1.0]), np.array([star_radius]),
                                np.array([pressure]), np.array([cloud_cover]), np.array([deck]),
                                n_bins)[0]


@pytest.mark.parametrize("n_bins", [256, 301])
def test_bands_peak_at_the_design_centres(n_bins):
    grid = wavelength_grid(n_bins)
    profiles = spectrum.band_profiles(n_bins)
    for gas, centres in DESIGN_BANDS.items():
        profile = profiles[atmosphere.GASES.index(gas)]
        for centre in centres:
            window = (grid > centre * 0.97) & (grid < centre * 1.03)
            peak = grid[window][np.argmax(profile[window])]
            step = centre * np.log(grid[1] / grid[0])
            assert abs(peak - centre) <= max(1.01 * step, 0.012 * centre), (gas, centre, peak)
            # a real peak: above the profile 6 % away on at least one side
            near = profile[window].max()
            sides = [profile[np.argmin(abs(grid - centre * f))] for f in (0.94, 1.06)]
            assert near > min(sides), (gas, centre)


def test_earth_sun_baseline_is_84_ppm():
    x = np.zeros((1, len(atmosphere.GASES)))
    flat = spectrum.model_depth(x, np.array([8e3]), np.array([1.0]), np.array([1.0]),
                                np.array([0.0]), np.array([0.0]), np.array([1.0]), 64)[0]
    np.testing.assert_allclose(flat, 1e6 * (EARTH_R_M / SUN_R_M) ** 2, rtol=1e-9)
    assert flat[0] == pytest.approx(84.0, abs=1.0)


def test_earth_scale_height():
    h = spectrum.scale_height_m(np.array([255.0]), np.array([28.97]), np.array([1.0]),
                                np.array([1.0]))
    assert h[0] == pytest.approx(7.46e3, rel=0.02)  # k 255 K / (28.97 u 9.81 m/s^2)


def test_feature_amplitude_is_2_n_h_rp_over_rstar2():
    depth = depth_of({"CO2": 1e-3}, star_radius=0.2)
    grid = wavelength_grid(256)
    band = np.argmin(abs(grid - 4.3))
    base = 1e6 * (EARTH_R_M / (0.2 * SUN_R_M)) ** 2
    n = (depth[band] - base) / (2e6 * EARTH_R_M * 8e3 / (0.2 * SUN_R_M) ** 2)
    assert 1.0 <= n <= 5.0  # DESIGN.md: n ~ 1-5 scale heights
    assert depth_of({"CO2": 1e-1})[band] > depth[band]  # grows with (log) abundance


def test_clouds_flatten_features_and_airless_is_flat():
    clear = depth_of({"H2O": 1e-2, "CH4": 1e-3})
    cloudy = depth_of({"H2O": 1e-2, "CH4": 1e-3}, cloud_cover=1.0, deck=1e-3)
    assert np.ptp(cloudy) < 0.6 * np.ptp(clear)
    airless = depth_of({"H2O": 1e-2}, pressure=0.0)
    assert np.ptp(airless) == 0.0


def test_noise_matches_its_uncertainty_and_mask(rng):
    depth = depth_of({"H2O": 1e-2})
    pulls = []
    for _ in range(40):
        error = rng.uniform(5.0, 200.0, 256)
        mask = rng.random(256) < 0.8
        contamination = 1.0 + 0.05 * rng.random(256)
        observed, err, kept = spectrum.observe(depth, contamination, error, mask, rng)
        assert not observed[~mask].any() and not err[~mask].any() and (kept == mask).all()
        np.testing.assert_allclose(err[mask], error[mask], rtol=1e-6)
        pulls.append((observed - depth * contamination)[mask] / error[mask])
    pulls = np.concatenate(pulls)
    assert abs(pulls.mean()) < 0.05 and pulls.std() == pytest.approx(1.0, abs=0.05)


def test_inhabited_planets_show_their_gases(test_seed):
    """The noise-free spectra of planets whose biosphere's gases build up carry their bands:
    removing CH4 (or O3 where O2 is high) lowers the depth at its band."""
    from astrobio.data.synthetic import draws, truth

    v = draws.variates(test_seed % 10_000, range(3000))
    t = truth.bodies(v, use_clero=False)
    c = truth.climates(t, draws.streams(test_seed % 10_000, range(3000), "truth_climate"))
    lab = truth.labelled(t, c, v)
    grid = wavelength_grid(256)
    bands = {"CH4": np.argmin(abs(grid - 3.3)), "O3": np.argmin(abs(grid - 9.6))}
    expressed = np.flatnonzero(lab["expressed"])[:30]
    assert len(expressed) >= 10
    for k in expressed:
        x = lab["x"][k : k + 1]
        args = (lab["scale_height"][k : k + 1], t["planet_radius"][k : k + 1],
                t["star_radius"][k : k + 1], t["pressure"][k : k + 1], np.zeros(1), np.ones(1),
                256)
        full = spectrum.model_depth(x, *args)[0]
        for gas in ("CH4", "O3"):
            if gas == "O3" and x[0, atmosphere.GASES.index("O2")] < 1e-3:
                continue  # anoxic biospheres show methane only
            stripped = x.copy()
            stripped[0, atmosphere.GASES.index(gas)] = 0.0
            assert full[bands[gas]] > spectrum.model_depth(stripped, *args)[0][bands[gas]]
