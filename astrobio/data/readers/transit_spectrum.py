"""Transit spectra -> a spectrum-only `PlanetSample` on `schema.wavelength_grid(L)`, in ppm.

Two sources:

* `read_jwst_x1d`: a JWST `x1d`/`x1dints` FITS file, either layout -- one `EXTRACT1D` binary
  table per integration (one row per wavelength), or one `EXTRACT1D` table with one row per
  integration (array-valued WAVELENGTH / FLUX / FLUX_ERROR). The stored FLUX is taken as the
  transit depth only when its column unit (TUNIT) says so -- ppm, percent, or 1 / fraction /
  dimensionless -- or the caller passes `depth_unit`; no unit, or a flux density (Jy, MJy/sr,
  ...), is refused, since a depth needs a light-curve fit that this reader does not do.
  Points with a NaN, or the DQ DO_NOT_USE bit (1), are dropped, as the JWST pipeline intends.
* `read_transit_table`: a text/CSV table with columns wavelength (µm), depth and error.

Combining and binning is one inverse-variance weighted mean per bin over every point of every
integration (pooling equals averaging the integrations first with the same weights):
depth_b = sum w d / sum w, err_b = (sum w)^(-1/2), w = 1/err^2. Bin edges are the geometric
midpoints between grid centres (outer edges half a log step out); empty bins have mask False.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np

from astrobio.config import DataConfig
from astrobio.data.sample import PlanetSample
from astrobio.errors import DataError
from astrobio.schema import (
    SPECTRUM_ERR_RANGE_PPM,
    WAVELENGTH_MAX_UM,
    WAVELENGTH_MIN_UM,
    wavelength_grid,
)

DEPTH_UNITS_PPM = {"ppm": 1.0, "percent": 1e4, "%": 1e4, "fraction": 1e6, "1": 1e6,
                   "dimensionless": 1e6}
WAVELENGTH_UNITS_UM = {"um": 1.0, "micron": 1.0, "microns": 1.0, "µm": 1.0, "nm": 1e-3,
                       "angstrom": 1e-4, "a": 1e-4, "m": 1e6}
PLAUSIBLE_WAVELENGTH_UM = (0.05, 100.0)
MAX_DEPTH_PPM = 1e6
DQ_DO_NOT_USE = 1
TABLE_COLUMNS = {
    "wavelength": ("wavelength", "wavelength_um", "wave", "lambda"),
    "depth": ("depth", "transit_depth", "depth_ppm"),
    "error": ("error", "err", "depth_err", "depth_error", "uncertainty"),
}


def bin_edges(n_bins: int) -> np.ndarray:
    """[n_bins + 1] edges in µm around `wavelength_grid(n_bins)`, geometric midpoints."""
    if n_bins < 2:
        raise DataError(f"need at least 2 spectral bins, got {n_bins}", field="spectrum_bins")
    log_c = np.log(wavelength_grid(n_bins))
    half = np.diff(log_c) / 2
    return np.exp(np.concatenate([[log_c[0] - half[0]], log_c[:-1] + half,
                                  [log_c[-1] + half[-1]]]))


def bin_spectrum(wavelength_um: np.ndarray, depth_ppm: np.ndarray, error_ppm: np.ndarray,
                 n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-variance weighted mean depth per bin: (spectrum, spectrum_err, spectrum_mask),
    float32/float32/bool [n_bins]. Inputs are 1-D, finite, errors positive."""
    edges = bin_edges(n_bins)
    index = np.searchsorted(edges, wavelength_um, side="right") - 1
    inside = (index >= 0) & (index < n_bins)
    weight = 1.0 / np.square(error_ppm[inside])
    sum_w = np.bincount(index[inside], weight, minlength=n_bins)
    sum_wd = np.bincount(index[inside], weight * depth_ppm[inside], minlength=n_bins)
    mask = sum_w > 0
    spectrum = np.divide(sum_wd, sum_w, out=np.zeros(n_bins), where=mask)
    err = np.divide(1.0, np.sqrt(sum_w), out=np.zeros(n_bins), where=mask)
    return spectrum.astype(np.float32), err.astype(np.float32), mask


def _spectrum_sample(planet_id: str, wavelength: np.ndarray, depth: np.ndarray,
                     error: np.ndarray, data_config: DataConfig, file: str) -> PlanetSample:
    spectrum, err, mask = bin_spectrum(wavelength, depth, error, data_config.spectrum_bins)
    if not mask.any():
        raise DataError(f"no point lies within the model's {WAVELENGTH_MIN_UM}-"
                        f"{WAVELENGTH_MAX_UM} µm grid (wavelengths span "
                        f"{wavelength.min():.4g}-{wavelength.max():.4g} µm)", file=file,
                        sample=planet_id, field="wavelength")
    sample = PlanetSample.blank(planet_id, data_config.climate_shape, data_config.spectrum_bins)
    sample = dataclasses.replace(sample, spectrum=spectrum, spectrum_err=err,
                                 spectrum_mask=mask).with_present("spectrum")
    sample.validate(data_config.climate_shape, data_config.spectrum_bins, source=file)
    return sample


def _check_depths(depth: np.ndarray, error: np.ndarray, unit: str, error_of,
                  fields: tuple[str, str]) -> None:
    """Raise `error_of(field, message)` for depths that contradict their unit (`fields` names
    the depth and error columns)."""
    depth_field, error_field = fields
    scale = DEPTH_UNITS_PPM[unit]
    if unit == "ppm" and depth.size and np.median(np.abs(depth)) < 1.0:
        raise error_of(depth_field, f"median |depth| {np.median(np.abs(depth)):.3g} ppm looks "
                       f"like a fraction; give the unit as 'fraction'")
    if (np.abs(depth) * scale > MAX_DEPTH_PPM).any():
        raise error_of(depth_field, f"depths up to {np.abs(depth).max():.4g} {unit} exceed "
                       f"100 % (wrong unit?)")
    if (error <= 0).any():
        raise error_of(error_field, f"{int((error <= 0).sum())} non-positive uncertainty "
                       f"value(s)")
    low, high = SPECTRUM_ERR_RANGE_PPM
    outside = (error * scale < low) | (error * scale > high)
    if outside.any():  # 1/err^2 weights of errors like 1e-170 overflow to inf, then NaN
        raise error_of(error_field, f"{int(outside.sum())} uncertainty value(s) outside the "
                       f"physical [{low:g}, {high:g}] ppm (from {error[outside].min():.4g} to "
                       f"{error[outside].max():.4g} {unit}; wrong unit or a corrupt file?)")


X1D_COLUMNS = ("WAVELENGTH", "FLUX", "FLUX_ERROR")


def _read_x1d(path: Path, planet_id: str | None) -> tuple[str, list[tuple[int, dict, dict]]]:
    """The sample's name and, per EXTRACT1D extension, (index, {column: values flattened},
    {column: unit or None}). Any astropy warning (truncation, bad header) is an error."""
    # astropy is optional: imported where used, so the package imports without it.
    from astropy.io import fits
    from astropy.utils.exceptions import AstropyWarning

    file = str(path)
    sample = planet_id or path.stem
    with warnings.catch_warnings():
        warnings.simplefilter("error", AstropyWarning)
        try:
            with fits.open(path, memmap=False) as hdul:
                hdul.verify("exception")
                sample = (planet_id or str(hdul[0].header.get("TARGNAME", "")).strip()
                          or path.stem)
                extensions = []
                for ext, hdu in enumerate(hdul):
                    if hdu.name != "EXTRACT1D" or not isinstance(hdu, fits.BinTableHDU):
                        continue
                    names = [c.upper() for c in hdu.columns.names]
                    for name in X1D_COLUMNS:
                        if name not in names:
                            raise DataError(f"extension {ext} has no {name} column; columns: "
                                            f"{hdu.columns.names}", file=file, sample=sample,
                                            field=name)
                    wanted = [*X1D_COLUMNS, *(["DQ"] if "DQ" in names else [])]
                    values = {n: np.asarray(hdu.data[n]).ravel() for n in wanted}
                    units = {n: (None if hdu.columns[n].unit is None
                                 else str(hdu.columns[n].unit).strip().lower())
                             for n in X1D_COLUMNS}
                    extensions.append((ext, values, units))
                found = [h.name for h in hdul]
        except DataError:
            raise
        except Exception as err:  # astropy raises OSError, VerifyError, warnings, ...
            raise DataError(f"cannot read as FITS: {err}", file=file, sample=sample) from None
    if not extensions:
        raise DataError(f"no EXTRACT1D binary table among {found}", file=file, sample=sample,
                        field="EXTRACT1D")
    return sample, extensions


def _x1d_points(values: dict, units: dict, depth_unit: str | None, error_of):
    """(wavelength µm, depth ppm, error ppm) of one extension's usable points."""
    wavelength, flux, flux_error = (values[n].astype(np.float64) for n in X1D_COLUMNS)
    if not wavelength.size == flux.size == flux_error.size:
        raise error_of("WAVELENGTH", f"WAVELENGTH, FLUX and FLUX_ERROR hold {wavelength.size}, "
                       f"{flux.size}, {flux_error.size} values")
    wave_unit = units["WAVELENGTH"] or "um"
    if wave_unit not in WAVELENGTH_UNITS_UM:
        raise error_of("WAVELENGTH", f"unit {wave_unit!r}; expected one of "
                       f"{sorted(WAVELENGTH_UNITS_UM)}")
    unit = depth_unit if depth_unit is not None else units["FLUX"]
    if unit is None or unit not in DEPTH_UNITS_PPM:
        raise error_of("FLUX", f"FLUX unit {unit!r} is not a transit depth (ppm, percent or "
                       f"fraction); a flux density needs a light-curve fit first. Pass "
                       f"depth_unit= if FLUX does hold depths.")
    keep = np.isfinite(wavelength) & np.isfinite(flux) & np.isfinite(flux_error)
    if "DQ" in values:
        keep &= (values["DQ"].astype(np.int64) & DQ_DO_NOT_USE) == 0
    wavelength = wavelength[keep] * WAVELENGTH_UNITS_UM[wave_unit]
    flux, flux_error = flux[keep], flux_error[keep]
    _check_depths(flux, flux_error, unit, error_of, ("FLUX", "FLUX_ERROR"))
    low, high = PLAUSIBLE_WAVELENGTH_UM
    if wavelength.size and not (low <= wavelength.min() and wavelength.max() <= high):
        raise error_of("WAVELENGTH", f"wavelengths span {wavelength.min():.4g}-"
                       f"{wavelength.max():.4g} µm, outside [{low}, {high}] µm (wrong units?)")
    scale = DEPTH_UNITS_PPM[unit]
    return wavelength, flux * scale, flux_error * scale


def read_jwst_x1d(path: str | Path, data_config: DataConfig | None = None,
                  planet_id: str | None = None, depth_unit: str | None = None) -> PlanetSample:
    """A spectrum-only sample from a JWST x1d file holding transit depths in FLUX.

    `depth_unit` ("ppm", "percent", "fraction") overrides the FLUX column's unit. `planet_id`
    defaults to the primary header's TARGNAME, else the file's stem.
    """
    if depth_unit is not None and depth_unit not in ("ppm", "percent", "fraction"):
        raise DataError(f"depth_unit must be 'ppm', 'percent' or 'fraction', got "
                        f"{depth_unit!r}", field="depth_unit")
    data_config = data_config or DataConfig()
    path = Path(path)
    file = str(path)
    sample, extensions = _read_x1d(path, planet_id)
    points = []
    for ext, values, units in extensions:
        def error_of(field, message, ext=ext):
            return DataError(f"extension {ext}: {message}", file=file, sample=sample,
                             field=field)
        points.append(_x1d_points(values, units, depth_unit, error_of))
    wavelength, depth, error = (np.concatenate(column) for column in zip(*points))
    if not wavelength.size:
        raise DataError("no valid point (all NaN or flagged DO_NOT_USE)", file=file,
                        sample=sample, field="FLUX")
    return _spectrum_sample(sample, wavelength, depth, error, data_config, file)


def _table_column(table, role: str, file: str, sample: str) -> tuple[str, np.ndarray]:
    names = {name.lower(): name for name in table.colnames}
    name = next((names[a] for a in TABLE_COLUMNS[role] if a in names), None)
    if name is None:
        raise DataError(f"no {role} column: looked for {TABLE_COLUMNS[role]} among "
                        f"{table.colnames}", file=file, sample=sample, field=role)
    try:
        column = np.ma.asarray(table[name]).astype(np.float64)
    except (TypeError, ValueError):
        raise DataError(f"column {name!r} is not numeric", file=file, sample=sample,
                        field=name) from None
    values = column.filled(np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        rows = (np.flatnonzero(bad) + 1).tolist()
        raise DataError(f"missing or non-finite value(s) in data row(s) {rows[:10]}",
                        file=file, sample=sample, field=name)
    return name, values


def read_transit_table(path: str | Path, data_config: DataConfig | None = None,
                       planet_id: str | None = None, units: str = "ppm") -> PlanetSample:
    """A spectrum-only sample from a table of wavelength (µm), depth and error.

    Any format astropy.io.ascii reads (CSV, whitespace-separated, '#' comments). `units` is
    the unit of depth and error: "ppm", "percent" or "fraction". `planet_id` defaults to the
    file's stem.
    """
    if units not in ("ppm", "percent", "fraction"):
        raise DataError(f"units must be 'ppm', 'percent' or 'fraction', got {units!r}",
                        field="units")
    data_config = data_config or DataConfig()
    path = Path(path)
    file, sample = str(path), planet_id or path.stem
    from astropy.io import ascii as astropy_ascii  # optional: imported where used

    try:
        table = astropy_ascii.read(path, format="csv" if path.suffix == ".csv" else "basic",
                                   comment="#", fast_reader=False)
    except Exception as err:  # astropy raises InconsistentTableError, ValueError, OSError ...
        raise DataError(f"cannot read as a table: {err}", file=file, sample=sample) from None
    columns = {role: _table_column(table, role, file, sample) for role in TABLE_COLUMNS}
    (wave_name, wavelength), (depth_name, depth), (err_name, error) = columns.values()

    def error_of(field, message):
        return DataError(message, file=file, sample=sample, field=field)

    _check_depths(depth, error, units, error_of, (depth_name, err_name))
    low, high = PLAUSIBLE_WAVELENGTH_UM
    if not (low <= wavelength.min() and wavelength.max() <= high):
        raise DataError(f"wavelengths span {wavelength.min():.4g}-{wavelength.max():.4g}, "
                        f"outside [{low}, {high}] µm (give µm)", file=file, sample=sample,
                        field=wave_name)
    scale = DEPTH_UNITS_PPM[units]
    return _spectrum_sample(sample, wavelength, depth * scale, error * scale, data_config, file)
