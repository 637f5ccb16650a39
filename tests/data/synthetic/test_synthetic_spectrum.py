"""Transmission spectra: band positions, amplitudes, clouds, noise and masks."""

import numpy as np
import pytest

from astrobio.data.synthetic import planets, spectrum
from astrobio.schema import PARAM_NAMES, wavelength_grid

# DESIGN.md band centres (um) inside the 0.6-12 um grid
DESIGN_BANDS = {
    "H2O": (0.94, 1.14, 1.38, 1.87, 2.7, 6.3), "CO2": (1.6, 2.0, 2.7, 4.3),
    "CH4": (1.7, 2.3, 3.3, 7.7), "O2": (0.69, 0.76, 1.27, 6.4), "O3": (0.6, 4.7, 9.6),
    "CO": (2.35, 4.6), "NH3": (1.5, 2.0, 3.0, 6.1, 10.5), "N2O": (2.9, 4.5, 7.8),
}
EARTH_R_M, SUN_R_M = 6.3781e6, 6.957e8


def depth_of(gas_levels: dict, n_bins=256, pressure=1.0, cloud_cover=0.0, deck=1.0,
             star_radius=0.2):
    x = np.zeros((1, len(planets.GASES)))
    for gas, value in gas_levels.items():
        x[0, planets.GASES.index(gas)] = value
    return spectrum.model_depth(x, np.array([8.0e3]), np.array([1.0]), np.array([star_radius]),
                                np.array([pressure]), np.array([cloud_cover]), np.array([deck]),
                                n_bins)[0]


@pytest.mark.parametrize("n_bins", [256, 301])
def test_bands_peak_at_the_design_centres(n_bins):
    grid = wavelength_grid(n_bins)
    profiles = spectrum.band_profiles(n_bins)
    for gas, centres in DESIGN_BANDS.items():
        profile = profiles[planets.GASES.index(gas)]
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
    x = np.zeros((1, len(planets.GASES)))
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
        observed, error, mask = spectrum.observe(depth, rng.uniform(6.5, 12.5),
                                                 int(rng.integers(1, 12)), rng.random(),
                                                 rng.random(), rng)
        assert mask.any() and (error[mask] > 0).all()
        assert not observed[~mask].any() and not error[~mask].any()
        pulls.append(((observed - depth) / np.where(mask, error, 1.0))[mask])
    pulls = np.concatenate(pulls)
    assert abs(pulls.mean()) < 0.05 and pulls.std() == pytest.approx(1.0, abs=0.05)


def test_instrument_choice_masks_ranges(rng):
    grid = wavelength_grid(256)
    depth = depth_of({})
    _, _, nirspec_only = spectrum.observe(depth, 10.0, 3, 0.6, 0.9, rng)
    assert not nirspec_only[grid > 5.3].any() and nirspec_only[grid < 5.0].mean() > 0.9
    _, _, miri_only = spectrum.observe(depth, 10.0, 3, 0.9, 0.9, rng)
    assert not miri_only[grid < 5.0].any() and miri_only[grid > 5.0].mean() > 0.9
    _, _, bright = spectrum.observe(depth, 7.0, 3, 0.1, 0.9, rng)
    assert not bright[(grid > 0.95) & (grid < 1.85)].any()  # PRISM saturates on bright hosts


def test_biosignature_planets_show_o2_o3_or_ch4(shared_samples):
    """The noise-free spectra of inhabited planets carry their gases' bands: removing O2/O3
    or CH4 from the atmosphere lowers the depth at those bands."""
    grid = wavelength_grid(256)
    from astrobio.data.synthetic import generator

    life = [s for s in shared_samples if s.biosignature][:30]
    assert life
    index = np.array([int(s.planet_id.rsplit("-", 1)[1]) for s in life])
    seed = int(life[0].planet_id.split("-")[1])
    rngs = [np.random.default_rng([seed, int(i)]) for i in index]
    p, _ = generator._physics(generator._variates(rngs))  # the planet as it is
    assert p["life"].all()
    bands = {"CH4": np.argmin(abs(grid - 3.3)), "O3": np.argmin(abs(grid - 9.6))}
    for k in range(len(life)):
        x = p["x"][k : k + 1].copy()
        radius = life[k].params[PARAM_NAMES.index("pl_rade")]
        star = life[k].params[PARAM_NAMES.index("st_rad")]
        args = (p["scale_height"][k : k + 1], np.array([radius]), np.array([star]),
                p["pressure"][k : k + 1], np.zeros(1), np.ones(1), 256)
        full = spectrum.model_depth(x, *args)[0]
        for gas in ("CH4", "O3"):
            if gas == "O3" and x[0, planets.GASES.index("O2")] < 1e-3:
                continue  # anoxic biospheres show methane only
            stripped = x.copy()
            stripped[0, planets.GASES.index(gas)] = 0.0
            assert full[bands[gas]] > spectrum.model_depth(stripped, *args)[0][bands[gas]]
