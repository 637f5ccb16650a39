import numpy as np
import pytest
from astropy.io import ascii as astropy_ascii
from astropy.io import fits
from astropy.table import Table

from astrobio.config import DataConfig
from astrobio.data.readers import bin_spectrum, read_jwst_x1d, read_transit_table
from astrobio.errors import DataError
from astrobio.schema import MODALITIES, wavelength_grid

CONFIG = DataConfig(spectrum_bins=33)


def _expected_binning(wavelength, depth, error, n_bins):
    """Independent truth: each point to the grid centre nearest in log-wavelength (points
    beyond half a log step outside the grid dropped), then a weighted mean by loops."""
    log_c = np.log(wavelength_grid(n_bins))
    step = log_c[1] - log_c[0]
    spectrum, err, mask = np.zeros(n_bins), np.zeros(n_bins), np.zeros(n_bins, bool)
    for b in range(n_bins):
        chosen = [i for i, w in enumerate(wavelength)
                  if np.argmin(np.abs(np.log(w) - log_c)) == b
                  and abs(np.log(w) - log_c[b]) < step / 2]
        if chosen:
            weights = [1 / error[i] ** 2 for i in chosen]
            spectrum[b] = sum(wt * depth[i] for wt, i in zip(weights, chosen)) / sum(weights)
            err[b] = sum(weights) ** -0.5
            mask[b] = True
    return spectrum, err, mask


def _integrations(rng, n_int=3, n_pix=41):
    wavelength = np.sort(rng.uniform(0.45, 14.0, n_pix))  # some beyond the 0.6-12 µm grid
    depth = rng.normal(5000.0, 80.0, (n_int, n_pix))
    error = rng.uniform(20.0, 90.0, (n_int, n_pix))
    return np.broadcast_to(wavelength, (n_int, n_pix)).copy(), depth, error


def _columns(wavelength, depth, error, fmt="D", flux_unit="ppm", wave_unit="um", dq=None):
    cols = [fits.Column(name="WAVELENGTH", format=fmt, unit=wave_unit, array=wavelength),
            fits.Column(name="FLUX", format=fmt, unit=flux_unit, array=depth),
            fits.Column(name="FLUX_ERROR", format=fmt, unit=flux_unit, array=error)]
    if dq is not None:
        cols.append(fits.Column(name="DQ", format=fmt.replace("D", "J"), array=dq))
    return cols


def _write_per_integration(path, wavelength, depth, error, dq=None, **kwargs):
    """Layout (a): one EXTRACT1D table per integration, one row per wavelength."""
    primary = fits.PrimaryHDU()
    primary.header["TARGNAME"] = "WASP-39"
    dq = [None] * len(wavelength) if dq is None else dq
    tables = [fits.BinTableHDU.from_columns(_columns(w, d, e, dq=q, **kwargs), name="EXTRACT1D")
              for w, d, e, q in zip(wavelength, depth, error, dq)]
    fits.HDUList([primary, *tables]).writeto(path)


def _write_rows_per_integration(path, wavelength, depth, error, **kwargs):
    """Layout (b): one EXTRACT1D table, one row per integration, array-valued columns."""
    fmt = f"{wavelength.shape[1]}D"
    table = fits.BinTableHDU.from_columns(_columns(wavelength, depth, error, fmt=fmt, **kwargs),
                                          name="EXTRACT1D")
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)


def test_two_points_one_bin_by_hand():
    centre = wavelength_grid(8)[3]
    spectrum, err, mask = bin_spectrum(np.array([centre, centre * 1.01]),
                                       np.array([100.0, 200.0]), np.array([10.0, 20.0]), 8)
    # weights 0.01 and 0.0025: (1 + 0.5) / 0.0125 = 120, error 0.0125^-1/2
    assert mask.tolist() == [False, False, False, True, False, False, False, False]
    assert spectrum[3] == pytest.approx(120.0) and err[3] == pytest.approx(0.0125**-0.5)
    assert spectrum[~mask].tolist() == [0.0] * 7 and err[~mask].tolist() == [0.0] * 7


@pytest.mark.parametrize("writer", [_write_per_integration, _write_rows_per_integration])
def test_x1d_layouts_bin_to_weighted_means(tmp_path, rng, writer):
    wavelength, depth, error = _integrations(rng)
    path = tmp_path / "jw01366-o001_x1dints.fits"
    writer(path, wavelength, depth, error)
    sample = read_jwst_x1d(path, CONFIG)
    sample.validate(CONFIG.climate_shape, CONFIG.spectrum_bins)
    expected = _expected_binning(wavelength.ravel(), depth.ravel(), error.ravel(), 33)
    np.testing.assert_allclose(sample.spectrum, expected[0], rtol=1e-6)
    np.testing.assert_allclose(sample.spectrum_err, expected[1], rtol=1e-6)
    np.testing.assert_array_equal(sample.spectrum_mask, expected[2])
    assert sample.present.tolist() == [m == "spectrum" for m in MODALITIES]
    assert sample.planet_id == ("WASP-39" if writer is _write_per_integration
                                else "jw01366-o001_x1dints")


def test_nan_and_flagged_points_are_dropped_and_units_scale(tmp_path, rng):
    wavelength, depth, error = _integrations(rng, n_int=2)
    dq = np.zeros(depth.shape, np.int32)
    dq[0, 5] = 1  # DO_NOT_USE
    dq[1, 6] = 4  # another flag: kept
    depth[1, 7] = np.nan
    path = tmp_path / "x1d.fits"
    _write_per_integration(path, wavelength * 1000, depth / 1e6, error / 1e6,
                           flux_unit="", wave_unit="nm", dq=dq)
    with pytest.raises(DataError, match="unit None"):  # no TUNIT: depth or flux is unknown
        read_jwst_x1d(path, CONFIG)
    sample = read_jwst_x1d(path, CONFIG, depth_unit="fraction")
    keep = (dq & 1 == 0) & np.isfinite(depth)
    expected = _expected_binning(wavelength[keep], depth[keep], error[keep], 33)
    np.testing.assert_allclose(sample.spectrum, expected[0], rtol=1e-6)
    np.testing.assert_array_equal(sample.spectrum_mask, expected[2])


def test_flux_density_refused_unless_told(tmp_path, rng):
    wavelength, depth, error = _integrations(rng, n_int=1)
    path = tmp_path / "x1d.fits"
    _write_per_integration(path, wavelength, depth, error, flux_unit="Jy")
    with pytest.raises(DataError, match="not a transit depth") as info:
        read_jwst_x1d(path, CONFIG)
    assert (info.value.file, info.value.sample, info.value.field) == (str(path), "WASP-39",
                                                                     "FLUX")
    sample = read_jwst_x1d(path, CONFIG, depth_unit="ppm")
    assert sample.spectrum_mask.any()


@pytest.mark.parametrize("damage,field", [
    (lambda cols: cols[:2], "FLUX_ERROR"),
    (lambda cols: [cols[0], cols[1], fits.Column(name="FLUX_ERROR", format="D", unit="ppm",
                                                 array=np.zeros(5))], "FLUX_ERROR"),
    (lambda cols: [cols[0], fits.Column(name="FLUX", format="D", unit="ppm",
                                        array=np.full(5, 0.01)), cols[2]], "FLUX"),
    (lambda cols: [fits.Column(name="WAVELENGTH", format="D", unit="m",
                               array=np.linspace(1, 5, 5)), *cols[1:]], "WAVELENGTH"),
])
def test_bad_x1d_content(tmp_path, damage, field):
    cols = _columns(np.linspace(1, 5, 5), np.full(5, 300.0), np.full(5, 10.0))
    path = tmp_path / "bad.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(damage(cols),
                                                                   name="EXTRACT1D")]
                 ).writeto(path)
    with pytest.raises(DataError) as info:
        read_jwst_x1d(path, CONFIG)
    assert (info.value.file, info.value.sample, info.value.field) == (str(path), "bad", field)


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_truncated_fits(tmp_path, rng, fraction):
    path = tmp_path / "cut.fits"
    _write_per_integration(path, *_integrations(rng, n_int=2, n_pix=301))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(DataError) as info:
        read_jwst_x1d(path, CONFIG)
    assert info.value.file == str(path) and info.value.sample == "cut"


def test_no_extract1d(tmp_path):
    path = tmp_path / "image.fits"
    fits.HDUList([fits.PrimaryHDU(np.zeros((3, 3)))]).writeto(path)
    with pytest.raises(DataError) as info:
        read_jwst_x1d(path, CONFIG)
    assert info.value.field == "EXTRACT1D"


def test_transit_table_csv_and_whitespace(tmp_path, rng):
    wavelength = rng.uniform(0.5, 12.5, 57)
    depth = rng.normal(2000.0, 50.0, 57)
    error = rng.uniform(10.0, 60.0, 57)
    expected = _expected_binning(wavelength, depth, error, 33)
    csv_path = tmp_path / "k2-18b.csv"
    astropy_ascii.write(Table({"wavelength": wavelength, "depth": depth, "error": error}),
                        csv_path, format="csv")
    sample = read_transit_table(csv_path, CONFIG)
    assert sample.planet_id == "k2-18b"
    np.testing.assert_allclose(sample.spectrum, expected[0], rtol=1e-6)
    np.testing.assert_allclose(sample.spectrum_err, expected[1], rtol=1e-6)
    np.testing.assert_array_equal(sample.spectrum_mask, expected[2])
    txt_path = tmp_path / "k2-18b.txt"
    lines = ["# NIRSpec G395H, depth as a fraction", "Wavelength_um Depth Err"]
    lines += [f"{w:.17g} {d / 1e6:.17g} {e / 1e6:.17g}"
              for w, d, e in zip(wavelength, depth, error)]
    txt_path.write_text("\n".join(lines) + "\n")
    sample = read_transit_table(txt_path, CONFIG, planet_id="K2-18 b", units="fraction")
    assert sample.planet_id == "K2-18 b"
    np.testing.assert_allclose(sample.spectrum, expected[0], rtol=1e-6)


@pytest.mark.parametrize("rows,units,field,text", [
    (["wavelength,depth,error", "1.0,100,5", "2.0,,5"], "ppm", "depth", r"row\(s\) \[2\]"),
    (["wavelength,depth,error", "1.0,100,5", "2.0,nan,5"], "ppm", "depth", r"\[2\]"),
    (["wavelength,depth", "1.0,100"], "ppm", "error", "no error column"),
    (["wavelength,depth,error", "1.0,0.01,0.001", "2.0,0.011,0.001"], "ppm", "depth",
     "fraction"),
    (["wavelength,depth,error", "1.0,100,5", "2.0,110,5"], "fraction", "depth", "100 %"),
    (["wavelength,depth,error", "1000.0,100,5", "2000.0,110,5"], "ppm", "wavelength", "µm"),
    (["wavelength,depth,error", "1.0,100,5", "2.0,110,0"], "ppm", "error", "non-positive"),
])
def test_bad_transit_tables(tmp_path, rows, units, field, text):
    path = tmp_path / "table.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=text) as info:
        read_transit_table(path, CONFIG, units=units)
    assert (info.value.file, info.value.sample, info.value.field) == (str(path), "table", field)


def test_unreadable_table(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text("wavelength,depth,error\n1.0,100,5\n2.0,110\n")
    with pytest.raises(DataError) as info:
        read_transit_table(path, CONFIG)
    assert info.value.file == str(path)
