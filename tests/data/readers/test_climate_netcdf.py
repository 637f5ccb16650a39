import numpy as np
import pytest
import xarray as xr

from astrobio.config import DataConfig
from astrobio.data.readers import climate_grid, read_climate_netcdf
from astrobio.errors import DataError
from astrobio.schema import CLIMATE_VARIABLES, MODALITIES

CONFIG = DataConfig(climate_levels=5, lat=6, lon=8)
LEVELS_HPA = np.array([1000.0, 700.0, 400.0, 200.0, 100.0, 50.0, 20.0, 10.0])
LAT = np.linspace(-89.0, 89.0, 21)
LON = np.arange(0.0, 360.0, 30.0)


def _dataset(levels=LEVELS_HPA, lat=LAT, lon=LON, n_time=2, **surface) -> xr.Dataset:
    """T linear in ln p and lat; q 1 and 2 g/kg at the two times; cloud 50 %."""
    p_pa = levels * 100.0
    shape = (n_time, len(levels), len(lat), len(lon))
    temperature = (200.0 + 10.0 * np.log(p_pa)[:, None, None] + 0.5 * lat[:, None]
                   + 0.0 * lon)
    dims = ("time", "lev", "lat", "lon")
    ds = xr.Dataset(
        {
            "T": (dims, np.broadcast_to(temperature, shape), {"units": "K"}),
            "Q": (dims, np.ones(shape) * np.arange(1, n_time + 1)[:, None, None, None],
                  {"units": "g/kg"}),
            "CLOUD": (dims, np.full(shape, 50.0), {"units": "%"}),
        },
        coords={"time": np.arange(n_time, dtype=float),
                "lev": ("lev", levels, {"units": "hPa"}), "lat": lat, "lon": lon},
    )
    for name, values in surface.items():
        ds[name] = (("time", "lat", "lon"), np.broadcast_to(values, (n_time, len(lat), len(lon))),
                    {"units": "K" if name == "TS" else "1"})
    return ds


def _write(ds: xr.Dataset, tmp_path, name="planet.nc"):
    path = tmp_path / name
    ds.to_netcdf(path)
    return path


def _liquid_share(temperature):
    """The generator's liquid share of cloud: 0 at 253.15 K, 1 at 273.15 K, linear between."""
    return np.clip((temperature - 253.15) / 20.0, 0.0, 1.0)


def test_linear_field_regrids_exactly(tmp_path):
    sample = read_climate_netcdf(_write(_dataset(ICEFRAC=0.25), tmp_path), CONFIG)
    sample.validate(CONFIG.climate_shape, CONFIG.spectrum_bins)
    assert sample.planet_id == "planet"
    assert sample.present.tolist() == [m == "climate" for m in MODALITIES]
    sigma, lat, lon = climate_grid(CONFIG)
    pressure = sigma * 1.0e5  # no PS: the surface is the largest level, 1000 hPa
    expected_t = 200.0 + 10.0 * np.log(pressure)[:, None, None] + 0.5 * lat[:, None] + 0 * lon
    channels = dict(zip(CLIMATE_VARIABLES, sample.climate))
    np.testing.assert_allclose(channels["temperature"], expected_t, rtol=1e-6)
    np.testing.assert_allclose(channels["specific_humidity"], 1.5e-3, rtol=1e-6)
    np.testing.assert_allclose(channels["cloud_fraction"], 0.5, rtol=1e-6)
    liquid = channels["surface_liquid_water"]
    np.testing.assert_allclose(liquid[0], 0.75, rtol=1e-6)  # 1 - ICEFRAC
    np.testing.assert_allclose(liquid[1:], 0.5 * _liquid_share(expected_t[1:]), atol=1e-6)


def test_grid_matches_generator_convention():
    sigma, lat, lon = climate_grid(CONFIG)
    assert sigma[0] == 1.0 and sigma[-1] == pytest.approx(0.01)
    np.testing.assert_allclose(np.diff(np.log(sigma)), np.log(0.01) / 4)
    np.testing.assert_allclose(lat, [-75, -45, -15, 15, 45, 75])
    np.testing.assert_allclose(lon, 22.5 + np.arange(8) * 45.0)


def test_periodic_longitude_and_negative_convention(tmp_path):
    # Source longitudes -170, -80, 10, 100 = 190, 280, 10, 100 deg east.
    lon = np.array([-170.0, -80.0, 10.0, 100.0])
    ds = _dataset(lon=lon, OCNFRAC=0.6)
    cloud = np.array([0.3, 0.4, 0.1, 0.2])  # at 190, 280, 10, 100
    ds["CLOUD"] = (ds["CLOUD"].dims, np.broadcast_to(cloud, ds["CLOUD"].shape), {"units": "1"})
    sample = read_climate_netcdf(_write(ds, tmp_path), CONFIG)
    got = sample.climate[CLIMATE_VARIABLES.index("cloud_fraction"), 0, 0]
    # Hand-computed: sorted source 10 (0.1), 100 (0.2), 190 (0.3), 280 (0.4), then 370 (0.1)
    # around the wrap; targets 22.5, 67.5, ... lie 12.5 or 57.5 deg past a source point.
    near, far = 12.5 / 90, 57.5 / 90
    expected = [0.1 + 0.1 * near, 0.1 + 0.1 * far, 0.2 + 0.1 * near, 0.2 + 0.1 * far,
                0.3 + 0.1 * near, 0.3 + 0.1 * far, 0.4 - 0.3 * near, 0.4 - 0.3 * far]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(sample.climate[3, 0], 0.6, rtol=1e-6)  # OCNFRAC


def test_descending_latitude_clamps_beyond_source(tmp_path):
    lat = np.array([60.0, 0.0, -60.0])
    sample = read_climate_netcdf(_write(_dataset(lat=lat, ICEFRAC=0.0), tmp_path), CONFIG)
    sigma, target_lat, _ = climate_grid(CONFIG)
    clamped = np.clip(target_lat, -60, 60)
    expected = 200.0 + 10.0 * np.log(sigma * 1.0e5)[:, None] + 0.5 * clamped
    np.testing.assert_allclose(sample.climate[0, :, :, 3], expected, rtol=1e-6)


def test_surface_pressure_sets_sigma_and_levels_clamp(tmp_path):
    levels = np.array([800.0, 300.0, 100.0])  # hPa; targets run from PS down to PS / 100
    ds = _dataset(levels=levels, ICEFRAC=0.0)
    ds["PS"] = (("time", "lat", "lon"), np.full((2, len(LAT), len(LON)), 900.0),
                {"units": "hPa"})
    sample = read_climate_netcdf(_write(ds, tmp_path), CONFIG)
    sigma, lat, _ = climate_grid(CONFIG)
    log_p = np.clip(np.log(sigma * 900e2), np.log(100e2), np.log(800e2))
    expected = 200.0 + 10.0 * log_p[:, None] + 0.5 * lat
    np.testing.assert_allclose(sample.climate[0, :, :, 0], expected, rtol=1e-6)


def test_cam_hybrid_levels(tmp_path):
    a = np.array([0.0, 0.05, 0.1, 0.1, 0.05, 0.02, 0.005])
    b = np.array([0.99, 0.8, 0.5, 0.2, 0.05, 0.0, 0.0])
    ps = 2.0e5  # a 2-bar planet
    p = a * 1.0e5 + b * ps  # 1.98e5 ... 500 Pa
    ds = _dataset(levels=1000.0 * (a + b), ICEFRAC=0.0)
    shape = ds["T"].shape
    ds["T"] = (ds["T"].dims, np.broadcast_to((200.0 + 10.0 * np.log(p))[:, None, None],
                                             shape), {"units": "K"})
    ds["hyam"], ds["hybm"], ds["P0"] = ("lev", a), ("lev", b), ((), 1.0e5, {"units": "Pa"})
    ds["PS"] = (("time", "lat", "lon"), np.full((2, len(LAT), len(LON)), ps), {"units": "Pa"})
    sample = read_climate_netcdf(_write(ds, tmp_path), CONFIG)
    sigma, _, _ = climate_grid(CONFIG)
    expected = 200.0 + 10.0 * np.log(np.clip(sigma * ps, p.min(), p.max()))
    np.testing.assert_allclose(sample.climate[0, :, 2, 5], expected, rtol=1e-6)


def test_surface_temperature_gives_level_zero_and_liquid_water(tmp_path):
    ds = _dataset()
    ts = np.where(ds.lat.values[None, :, None] > 0, 300.0, 250.0) * np.ones((2, 1, len(LON)))
    ts[1] = 280.0  # second time step: everywhere above freezing
    ds["TS"] = (("time", "lat", "lon"), ts, {"units": "K"})
    sample = read_climate_netcdf(_write(ds, tmp_path), CONFIG)
    _, lat, _ = climate_grid(CONFIG)
    # Far from the equator: mean TS 290 K north, 265 K south; above freezing all of the time
    # in the north, half of it in the south.
    np.testing.assert_allclose(sample.climate[0, 0, :, 0], np.where(lat > 0, 290.0, 265.0),
                               rtol=1e-6)
    np.testing.assert_allclose(sample.climate[3, 0, :, 0], np.where(lat > 0, 1.0, 0.5),
                               rtol=1e-6)


def test_surface_water_falls_back_to_lowest_level(tmp_path):
    ds = _dataset()
    ds["T"] = ds["T"] - 50.0  # lowest level 265 K + 0.5 lat: freezing south of 16 deg N
    sample = read_climate_netcdf(_write(ds, tmp_path), CONFIG)
    _, lat, _ = climate_grid(CONFIG)
    bottom = 150.0 + 10.0 * np.log(1.0e5) + 0.5 * LAT
    expected = np.interp(lat, LAT, (bottom > 273.15).astype(float))
    np.testing.assert_allclose(sample.climate[3, 0, :, 0], expected, atol=1e-6)
    assert 0 < sample.climate[3, 0].mean() < 1


@pytest.mark.parametrize("mutate,field", [
    (lambda ds: ds.drop_vars("T"), "temperature"),
    (lambda ds: ds.assign(Q=ds.Q.where(ds.lat < 80)), "specific_humidity"),
    (lambda ds: ds.assign(T=ds.T.assign_attrs(units="degF")), "temperature"),
    (lambda ds: ds.assign(T=(ds.T - 273.15).assign_attrs(units="K")), "temperature"),
    (lambda ds: ds.assign(CLOUD=ds.CLOUD.assign_attrs(units="1")), "cloud_fraction"),
    (lambda ds: ds.assign_coords(lev=ds.lev.assign_attrs(units="level")), "lev"),
    (lambda ds: ds.assign(T=ds.T.expand_dims(member=2)), "T"),
])
def test_bad_content_names_file_sample_field(tmp_path, mutate, field):
    path = _write(mutate(_dataset(ICEFRAC=0.1)), tmp_path)
    with pytest.raises(DataError) as info:
        read_climate_netcdf(path, CONFIG, planet_id="gcm-7")
    assert (info.value.file, info.value.sample, info.value.field) == (str(path), "gcm-7", field)


def test_truncated_and_foreign_files(tmp_path):
    path = _write(_dataset(ICEFRAC=0.1), tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as info:
        read_climate_netcdf(path, CONFIG)
    assert info.value.file == str(path)
    text = tmp_path / "notes.nc"
    text.write_text("this is not NetCDF\n")
    with pytest.raises(DataError, match="notes.nc"):
        read_climate_netcdf(text, CONFIG)
