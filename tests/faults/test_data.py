"""Finite garbage and silently wrong input: every case named by file, sample and field, or read
correctly."""

import shutil
import warnings

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

from astrobio.config import DataConfig
from astrobio.data.format import read_manifest, write_npy
from astrobio.data.reader import AstroBioDataset
from astrobio.data.readers import (
    read_climate_netcdf,
    read_exoplanet_archive,
    read_jwst_x1d,
    read_transit_table,
)
from astrobio.data.sample import PlanetSample
from astrobio.data.validate import validate_dataset
from astrobio.errors import DataError
from astrobio.predict import bundled_catalogue
from astrobio.schema import (
    CLIMATE_RANGES,
    CLIMATE_VARIABLES,
    EDGE_FEATURE_RANGES,
    N_EDGE_FEATURES,
    N_NODE_FEATURES,
    NODE_FEATURE_RANGES,
    PARAM_NAMES,
    PARAM_RANGES,
)
from astrobio.train.__main__ import main as train_main


def test_every_field_has_a_range_per_channel():
    assert tuple(CLIMATE_RANGES) == CLIMATE_VARIABLES and tuple(PARAM_RANGES) == PARAM_NAMES
    assert len(NODE_FEATURE_RANGES) == N_NODE_FEATURES
    assert len(EDGE_FEATURE_RANGES) == N_EDGE_FEATURES
    for ranges in (CLIMATE_RANGES, PARAM_RANGES, NODE_FEATURE_RANGES, EDGE_FEATURE_RANGES):
        assert all(low < high for low, high in ranges.values())


@pytest.fixture
def dataset_copy(dataset, tmp_path):
    return shutil.copytree(dataset, tmp_path / "ds")


def _first_train_sample(root):
    record = next(r for r in read_manifest(root) if r["split"] == "train")
    return record["planet_id"], root / "train" / record["shard"], record["position"]


def _plant(path, change):
    array = np.load(path)
    change(array)
    write_npy(path, array)


@pytest.mark.parametrize(("field", "change", "words"), [
    ("climate", lambda a: a.__setitem__((0, 2, 3, 4), 1e30), "temperature outside"),
    ("climate", lambda a: a.__setitem__((1, 1, 0, 0), -0.5), "specific_humidity outside"),
    ("params", lambda a: a.__setitem__((0, 0), -1e30), "st_teff outside"),
])
def test_finite_garbage_is_named_by_validate_the_loader_and_training(
        dataset_copy, tmp_path, capsys, train_args, reseal, field, change, words):
    planet, shard, position = _first_train_sample(dataset_copy)
    path = (shard / field / f"{position:06d}.npy" if field == "climate"
            else shard / f"{field}.npy")
    _plant(path, change if field == "climate" else lambda a: change(a[position:]))
    reseal(dataset_copy)  # garbage written as data: the checksums match it
    found = [p for p in validate_dataset(dataset_copy) if words in p.message]
    assert [(p.file, p.sample, p.field) for p in found] == [(str(path), planet, field)]
    with pytest.raises(DataError, match=words) as error:
        AstroBioDataset(dataset_copy, "train")[0]
    assert (error.value.file, error.value.sample, error.value.field) == (str(path), planet, field)
    args = train_args(tmp_path / "run")
    args[args.index("--data") + 1] = str(dataset_copy)
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert f"sample '{planet}', field '{field}'" in err and "Traceback" not in err


def _catalogue_text():
    return bundled_catalogue().read_text(encoding="utf-8")


def test_csv_with_a_byte_order_mark_reads_like_without(tmp_path):
    plain = read_exoplanet_archive(bundled_catalogue())
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _catalogue_text().encode())
    with_bom = read_exoplanet_archive(path)
    assert [s.planet_id for s in with_bom] == [s.planet_id for s in plain]
    assert all(np.array_equal(a.params, b.params) for a, b in zip(with_bom, plain))


def test_a_row_starting_with_hash_is_reported_not_dropped(tmp_path):
    lines = _catalogue_text().splitlines()
    earth = next(i for i, line in enumerate(lines) if line.startswith("Earth,"))
    lines[earth] = "#" + lines[earth]
    path = tmp_path / "hash.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=f"line {earth + 1} starts with '#' after the header"):
        read_exoplanet_archive(path)
    with pytest.warns(UserWarning, match="starts with '#'"):
        kept = read_exoplanet_archive(path, on_error="skip")
    assert "Earth" not in {s.planet_id for s in kept} and "Mars" in {s.planet_id for s in kept}


def test_duplicate_columns_are_an_error(tmp_path):
    lines = _catalogue_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("pl_name,"))
    lines[header] = lines[header].replace("st_rad", "st_teff")
    path = tmp_path / "dup.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"\['st_teff'\] appear more than once") as error:
        read_exoplanet_archive(path)
    assert error.value.field == "st_teff"


def test_catalogue_planets_share_one_read_only_empty_cube():
    samples = read_exoplanet_archive(bundled_catalogue())
    assert len({id(s.climate) for s in samples}) == 1
    assert not samples[0].climate.flags.writeable
    assert not samples[0].climate.any()
    other = PlanetSample.blank("x", (4, 2, 3, 5), 8)
    assert other.climate.shape == (4, 2, 3, 5)  # one shared cube per shape


CONFIG = DataConfig(climate_levels=5, lat=6, lon=8)
LEVELS_HPA = np.array([1000.0, 700.0, 400.0, 200.0, 100.0, 50.0])
LAT = np.linspace(-87.0, 87.0, 13)
LON = np.arange(0.0, 360.0, 30.0)


def _gcm(levels=LEVELS_HPA, lat=LAT, lon=LON, lat_units=None, level_units="hPa"):
    """A small GCM file: T linear in ln p and latitude, 1 g/kg humidity, 40 % cloud."""
    shape = (2, len(levels), len(lat), len(lon))
    temperature = 180.0 + 12.0 * np.log(levels * 100.0)[:, None, None] \
        + 0.3 * np.abs(LAT if len(lat) == len(LAT) else lat)[:, None] + 0.0 * lon
    dims = ("time", "lev", "lat", "lon")
    return xr.Dataset(
        {"T": (dims, np.broadcast_to(temperature, shape), {"units": "K"}),
         "Q": (dims, np.ones(shape), {"units": "g/kg"}),
         "CLOUD": (dims, np.full(shape, 0.4), {"units": "1"})},
        coords={"time": np.arange(2.0), "lev": ("lev", levels, {"units": level_units}),
                "lat": ("lat", lat, {} if lat_units is None else {"units": lat_units}),
                "lon": lon})


def _read(ds, tmp_path, name="gcm.nc"):
    ds.to_netcdf(tmp_path / name)
    return read_climate_netcdf(tmp_path / name, CONFIG)


def test_netcdf_latitude_in_radians_is_converted_when_labelled(tmp_path):
    in_degrees = _read(_gcm(), tmp_path, "deg.nc")
    with pytest.warns(UserWarning, match="'lat' is in radians; converted"):
        in_radians = _read(_gcm(lat=np.radians(LAT), lat_units="radians"), tmp_path, "rad.nc")
    np.testing.assert_allclose(in_radians.climate, in_degrees.climate, rtol=1e-6)


def test_netcdf_latitude_that_looks_like_radians_is_refused(tmp_path):
    with pytest.raises(DataError, match="looks like radians") as error:
        _read(_gcm(lat=np.radians(LAT), lat_units="degrees_north"), tmp_path)
    assert error.value.field == "lat" and error.value.sample == "gcm"


def test_netcdf_levels_in_hpa_labelled_pa_are_refused_against_the_surface_pressure(tmp_path):
    ds = _gcm(level_units="Pa")  # 1000 "Pa" at the bottom
    ds["PS"] = (("time", "lat", "lon"), np.full((2, len(LAT), len(LON)), 1.0e5), {"units": "Pa"})
    with pytest.raises(DataError, match="hPa labelled Pa") as error:
        _read(ds, tmp_path)
    assert error.value.field == "PS"
    ds["lev"].attrs["units"] = "hPa"  # labelled right, the same file reads
    assert _read(ds, tmp_path, "right.nc").climate.shape == CONFIG.climate_shape


def test_netcdf_hybrid_surface_pressure_in_the_wrong_unit_is_refused(tmp_path):
    ds = _gcm()
    b = np.array([0.99, 0.69, 0.38, 0.15, 0.0, 0.0])
    a = LEVELS_HPA * 100.0 / 1.0e5 - b  # CAM-like: 0.01 ... 0.1, with PS 1e5 Pa the levels
    ds["hyam"], ds["hybm"] = ("lev", a), ("lev", b)
    ds["P0"] = ((), 1.0e5, {"units": "Pa"})
    ds["PS"] = (("time", "lat", "lon"), np.full((2, len(LAT), len(LON)), 1000.0),
                {"units": "Pa"})  # hPa values
    with pytest.raises(DataError, match="do not increase monotonically"):
        _read(ds, tmp_path)
    ds["PS"] = ds["PS"] * 100.0
    ds["PS"].attrs["units"] = "Pa"
    assert _read(ds, tmp_path, "right.nc").climate.shape == CONFIG.climate_shape


@pytest.mark.parametrize(("coordinate", "values", "words"), [
    ("lat", np.where(np.arange(13) == 4, np.nan, LAT), "NaN/inf"),
    ("lat", np.where(np.arange(13) == 4, LAT[3], LAT), "repeats"),
    ("lev", np.array([1000.0, 700.0, 700.0, 200.0, 100.0, 50.0]), "repeats"),
    ("lon", np.where(np.arange(12) == 2, np.inf, LON), "NaN/inf"),
])
def test_netcdf_bad_coordinates_are_named_not_pandas_tracebacks(tmp_path, coordinate, values,
                                                                 words):
    ds = _gcm().assign_coords({coordinate: (coordinate, values, _gcm()[coordinate].attrs)})
    with pytest.raises(DataError, match=words) as error:
        _read(ds, tmp_path)
    assert error.value.field == coordinate


def test_fits_errors_of_1e_170_are_refused_not_a_nan_spectrum(tmp_path, rng):
    wavelength = np.linspace(1.0, 5.0, 50)
    depth, error = rng.normal(5000.0, 50.0, 50), np.full(50, 40.0)
    error[7] = 1e-170
    columns = [fits.Column(name="WAVELENGTH", format="D", unit="um", array=wavelength),
               fits.Column(name="FLUX", format="D", unit="ppm", array=depth),
               fits.Column(name="FLUX_ERROR", format="D", unit="ppm", array=error)]
    path = tmp_path / "x1d.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        columns, name="EXTRACT1D")]).writeto(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way to the error
        with pytest.raises(DataError, match="1 uncertainty value.*1e-170") as failure:
            read_jwst_x1d(path, DataConfig(spectrum_bins=33))
    assert failure.value.field == "FLUX_ERROR"
    table = tmp_path / "spectrum.csv"
    table.write_text("wavelength,depth,error\n" + "".join(
        f"{w},{d},{e}\n" for w, d, e in zip(wavelength, depth, error)))
    with pytest.raises(DataError, match="uncertainty value"):
        read_transit_table(table, DataConfig(spectrum_bins=33))
