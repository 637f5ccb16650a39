"""GCM output (ExoCAM / CAM, ROCKE-3D, CMIP-style NetCDF) -> a climate-only `PlanetSample`.

The datacube follows the synthetic generator's definition (`astrobio.data.synthetic.climate`):
levels sigma = p / p_surface log-spaced from 1 (level 0, the surface) to `SIGMA_TOP`, latitude
cell centres south to north, longitude cell centres from 0 deg east; `climate_grid` gives them.

Variables are found by name or CF `standard_name` (first match wins, see `VARIABLE_NAMES`):

    temperature           T, ta, temp, ... (K or degC); level 0 is the surface temperature
                          (TS, ts, tsurf, ...) when the file has one
    specific_humidity     Q, hus, q, QV, shum (kg/kg or g/kg)
    cloud_fraction        CLOUD, cl, cldfrac (fraction or %)
    surface_liquid_water  level 0: the liquid-water fraction of the surface, from the first of
                          `surface_liquid_water`; OCNFRAC (CAM's open-ocean fraction);
                          1 - ice fraction (ICEFRAC, sic, siconc) - LANDFRAC when given, NaN ice
                          (land in ocean-only fields) counting as no liquid water; the fraction
                          of time the surface temperature is above 273.15 K (an aquaplanet);
                          else whether the time-mean lowest-level temperature is.
                          Levels above: cloud fraction x the liquid share of cloud, linear in T
                          from 0 at 253.15 K to 1 at 273.15 K, as the generator defines it.

Dimensions: time (averaged), a vertical pressure coordinate (lev, plev, pressure, level, pfull,
plm, ... with units Pa, hPa, mbar or bar), lat, lon. With CAM's hybrid coefficients (hyam,
hybm, optional P0) and surface pressure PS, level pressures are hyam P0 + hybm PS; otherwise
the coordinate is the pressure. The surface pressure is PS / ps / psurf when given, else the
largest pressure level (then the levels' unit cancels: only p / p_surface is used).
Regridding: linear in latitude and (periodic) longitude, then per column linear in
log-pressure onto sigma x p_surface; targets beyond the source's latitudes or levels take the
nearest source value (no extrapolation). Time means are taken before the regridding, so hybrid
levels use the time-mean surface pressure.

Checks (a `DataError` naming file, sample and variable, or a conversion with a warning):
coordinates finite and without repeats; latitude and longitude in degrees -- a coordinate whose
units say radians is converted (warning), one that only looks like radians (every |value| within
pi/2, or 2 pi for longitude) is refused; the largest pressure level within a factor 10 of the
mean surface pressure (hPa labelled Pa, or the reverse, fails it); hybrid level pressures
increasing towards the surface; every variable within `schema.CLIMATE_RANGES` after its unit
conversion, and the cube checked by `PlanetSample.problems`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from astrobio.config import DataConfig
from astrobio.data.sample import PlanetSample
from astrobio.data.synthetic.climate import ICE_ALL_K, KELVIN_FREEZE, SIGMA_TOP
from astrobio.errors import DataError
from astrobio.schema import CLIMATE_RANGES, CLIMATE_VARIABLES

VARIABLE_NAMES = {
    "temperature": (("T", "ta", "temp", "TEMP", "temperature"), "air_temperature"),
    "specific_humidity": (("Q", "hus", "q", "QV", "shum", "specific_humidity"),
                          "specific_humidity"),
    "cloud_fraction": (("CLOUD", "cl", "cldfrac", "CLDFRAC", "cloud_fraction"),
                       "cloud_area_fraction_in_atmosphere_layer"),
    "surface_liquid_water": (("surface_liquid_water",), None),
    "ocean_fraction": (("OCNFRAC", "ocnfrac"), None),
    "ice_fraction": (("ICEFRAC", "icefrac", "sic", "siconc", "sea_ice_fraction"),
                     "sea_ice_area_fraction"),
    "land_fraction": (("LANDFRAC", "landfrac", "sftlf"), "land_area_fraction"),
    "surface_temperature": (("TS", "ts", "tsurf", "T_surf", "surface_temperature"),
                            "surface_temperature"),
    "surface_pressure": (("PS", "ps", "psurf", "surface_pressure"), "surface_air_pressure"),
}
DIM_NAMES = {
    "time": ("time", "Time", "TIME", "t"),
    "plev": ("lev", "plev", "pressure", "level", "pfull", "pres", "isobaric", "plm", "p"),
    "lat": ("lat", "latitude", "Latitude", "LAT"),
    "lon": ("lon", "longitude", "Longitude", "LON"),
}
PRESSURE_UNITS_PA = {"pa": 1.0, "hpa": 100.0, "mb": 100.0, "mbar": 100.0, "millibar": 100.0,
                     "millibars": 100.0, "bar": 1.0e5}
TEMPERATURE_OFFSETS_K = {"k": 0.0, "kelvin": 0.0, "degk": 0.0, "degc": KELVIN_FREEZE,
                         "c": KELVIN_FREEZE, "celsius": KELVIN_FREEZE,
                         "degrees_c": KELVIN_FREEZE}
FRACTION_SCALES = {"1": 1.0, "": 1.0, "fraction": 1.0, "%": 0.01, "percent": 0.01}
HUMIDITY_SCALES = {"kg/kg": 1.0, "kg kg-1": 1.0, "kg kg**-1": 1.0, "1": 1.0, "": 1.0,
                   "g/kg": 1e-3, "g kg-1": 1e-3, "g kg**-1": 1e-3}
DEFAULT_P0_PA = 1.0e5  # CAM's reference pressure for the hybrid coefficients
# Ranges after unit conversion (the sample's channels: `schema`); outside means wrong units or
# bad data.
VALID_RANGES = {**CLIMATE_RANGES, "surface_pressure": (1.0, 1.0e10)}  # Pa
RADIAN_UNITS = ("radian", "radians", "rad")
# The largest pressure level over the mean surface pressure: outside, one has the wrong unit.
LEVEL_TO_SURFACE_PRESSURE = (0.1, 10.0)


def climate_grid(data_config: DataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The datacube grid: sigma = p / p_surface [Z] (1 at index 0 down to `SIGMA_TOP`),
    latitude cell centres [H] (deg, south to north), longitude cell centres [W] (deg east)."""
    sigma = np.geomspace(1.0, SIGMA_TOP, data_config.climate_levels)
    lat = -90.0 + (np.arange(data_config.lat) + 0.5) * 180.0 / data_config.lat
    lon = (np.arange(data_config.lon) + 0.5) * 360.0 / data_config.lon
    return sigma, lat, lon


class _Source:
    """The open dataset, with the file and sample every error quotes."""

    def __init__(self, dataset: xr.Dataset, file: str, sample: str):
        self.ds, self.file, self.sample = dataset, file, sample

    def error(self, message: str, field: str | None = None) -> DataError:
        return DataError(message, file=self.file, sample=self.sample, field=field)

    def find(self, role: str) -> str | None:
        names, standard_name = VARIABLE_NAMES[role]
        for name in names:
            if name in self.ds.data_vars:
                return name
        for name, var in self.ds.data_vars.items():
            if standard_name is not None and var.attrs.get("standard_name") == standard_name:
                return str(name)
        return None

    def canonical(self, name: str, needs_level: bool) -> xr.DataArray:
        """Variable `name`, float64, dims renamed to time/plev/lat/lon, `plev` in Pa."""
        da = self.ds[name]
        renames = {}
        for dim in da.dims:
            role = next((r for r, names in DIM_NAMES.items() if dim in names), None)
            if role is None:
                raise self.error(f"dimension {dim!r} of {name!r} is none of time, a pressure "
                                 f"level, lat or lon (known names: {DIM_NAMES})", field=name)
            if role != "time" and dim not in self.ds.coords:
                raise self.error(f"dimension {dim!r} has no coordinate values", field=name)
            renames[dim] = role
        if len(set(renames.values())) != len(renames):
            raise self.error(f"dimensions {da.dims} repeat a role", field=name)
        da = da.rename(renames)
        wanted = {"lat", "lon"} | ({"plev"} if needs_level else set())
        if wanted - set(da.dims):
            raise self.error(f"dims {da.dims} lack {sorted(wanted - set(da.dims))}",
                             field=name)
        if not needs_level and "plev" in da.dims:
            raise self.error(f"expected a surface (lat, lon) field, got dims {da.dims}",
                             field=name)
        if "plev" in da.dims:
            level = next(d for d, r in renames.items() if r == "plev")
            da = da.assign_coords(plev=self._pressure_pa(level))
        return da.astype(np.float64)

    def _pressure_pa(self, level: str) -> np.ndarray:
        coord = self.ds[level]
        units = str(coord.attrs.get("units", "")).strip().lower()
        if units not in PRESSURE_UNITS_PA:
            raise self.error(f"vertical coordinate units {units or 'missing'!r}; need a "
                             f"pressure in one of {sorted(PRESSURE_UNITS_PA)}", field=level)
        pressure = coord.values.astype(np.float64) * PRESSURE_UNITS_PA[units]
        if not (np.isfinite(pressure).all() and (pressure > 0).all()):
            raise self.error("pressure levels must be finite and positive", field=level)
        return pressure

    def converted(self, da: xr.DataArray, table: dict, offset: bool, field: str):
        units = str(da.attrs.get("units", "")).strip().lower()
        if units not in table:
            raise self.error(f"units {units!r} not understood; expected one of "
                             f"{sorted(table)}", field=field)
        return da + table[units] if offset else da * table[units]

    def check(self, da: xr.DataArray, field: str, name: str) -> None:
        values = da.values
        bad = ~np.isfinite(values)
        if bad.any():
            raise self.error(f"{int(bad.sum())} NaN/inf value(s) in {name!r}", field=field)
        low, high = VALID_RANGES[field]
        if values.min() < low - 1e-6 or values.max() > high + 1e-6:
            raise self.error(f"values of {name!r} span [{values.min():.4g}, "
                             f"{values.max():.4g}], outside the plausible [{low}, {high}] "
                             f"(wrong units?)", field=field)


def _checked_coordinates(source: _Source) -> None:
    """Latitude, longitude and level coordinates finite, without repeats, angles in degrees
    (converted from radians where their units say so); replaces them in `source.ds`."""
    for role in ("lat", "lon", "plev"):
        for name in DIM_NAMES[role]:
            if name not in source.ds.coords:
                continue
            coord = source.ds[name]
            values = np.asarray(coord.values, dtype=np.float64).ravel()
            if not np.isfinite(values).all():
                raise source.error(f"coordinate {name!r} holds {int((~np.isfinite(values)).sum())}"
                                   " NaN/inf value(s)", field=name)
            if np.unique(values).size != values.size:
                raise source.error(f"coordinate {name!r} repeats values "
                                   f"{sorted({v for v in values if (values == v).sum() > 1})[:5]}",
                                   field=name)
            if role != "plev":
                degrees = _degrees(source, name, role, values,
                                   str(coord.attrs.get("units", "")).strip().lower())
                source.ds = source.ds.assign_coords({name: (coord.dims, degrees, coord.attrs)})


def _degrees(source: _Source, name: str, role: str, values: np.ndarray,
             units: str) -> np.ndarray:
    limit = math.pi / 2 if role == "lat" else 2 * math.pi
    if units in RADIAN_UNITS:
        warnings.warn(f"{source.file}: coordinate {name!r} is in radians; converted to degrees",
                      stacklevel=4)
        values = np.degrees(values)
    elif values.size > 2 and np.abs(values).max() <= limit + 1e-9:
        raise source.error(f"coordinate {name!r} spans [{values.min():.4g}, {values.max():.4g}]"
                           f", which looks like radians, with units {units or 'missing'!r}; set "
                           f"its units to 'radians' to have it converted, or give degrees",
                           field=name)
    low, high = (-90.0, 90.0) if role == "lat" else (-360.0, 720.0)
    if values.min() < low - 1e-6 or values.max() > high + 1e-6:
        raise source.error(f"coordinate {name!r} spans [{values.min():.6g}, "
                           f"{values.max():.6g}], outside [{low:g}, {high:g}] degrees",
                           field=name)
    return values


def _time_mean(da: xr.DataArray) -> xr.DataArray:
    return da.mean("time", skipna=False) if "time" in da.dims else da


def _atmosphere(source: _Source, channel: str) -> xr.DataArray:
    name = source.find(channel)
    if name is None:
        names, standard_name = VARIABLE_NAMES[channel]
        raise source.error(f"no variable for {channel}: looked for {names} and "
                           f"standard_name {standard_name!r}", field=channel)
    da = source.canonical(name, needs_level=True)
    if channel == "temperature":
        da = source.converted(da, TEMPERATURE_OFFSETS_K, True, channel)
    elif channel == "specific_humidity":
        da = source.converted(da, HUMIDITY_SCALES, False, channel)
    else:
        da = source.converted(da, FRACTION_SCALES, False, channel)
    da = _time_mean(da)
    source.check(da, channel, name)
    return da.clip(*VALID_RANGES[channel])


def _surface(source: _Source, role: str, table: dict, offset: bool,
             check_as: str | None = None) -> tuple[xr.DataArray, str] | None:
    """A 2-D surface variable converted by `table` (time kept), and its name; None if absent."""
    name = source.find(role)
    if name is None:
        return None
    da = source.converted(source.canonical(name, False), table, offset, role)
    if check_as is not None:
        source.check(_time_mean(da), check_as, name)
    return da, name


def _surface_liquid_water(source: _Source, temperature: xr.DataArray,
                          surface_temperature: xr.DataArray | None) -> xr.DataArray:
    """Liquid-water fraction of the surface, from the first source in the module docstring."""
    found = (_surface(source, "surface_liquid_water", FRACTION_SCALES, False)
             or _surface(source, "ocean_fraction", FRACTION_SCALES, False))
    if found is not None:
        da, name = found
    elif (ice := _surface(source, "ice_fraction", FRACTION_SCALES, False)) is not None:
        da, name = 1.0 - ice[0].fillna(1.0), ice[1]
        land = _surface(source, "land_fraction", FRACTION_SCALES, False)
        if land is not None:
            da = da - land[0]
        da = da.clip(0.0, 1.0)
    elif surface_temperature is not None:
        da, name = (surface_temperature > KELVIN_FREEZE).astype(np.float64), "TS"
    else:
        bottom = temperature.isel(plev=int(np.argmax(temperature.plev.values)))
        da, name = (bottom > KELVIN_FREEZE).astype(np.float64), "lowest-level temperature"
    da = _time_mean(da)
    source.check(da, "surface_liquid_water", name)
    return da


def horizontal_regrid(da: xr.DataArray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """`da` with dims (plev?, lat, lon) at the target lat/lon: linear, longitude periodic,
    latitudes beyond the source's range clamped. Returns [plev?, H, W] in `da`'s level order."""
    da = da.assign_coords(lon=da.lon % 360.0).sortby("lon").drop_duplicates("lon")
    da = da.sortby("lat")
    first, last = da.isel(lon=[0]), da.isel(lon=[-1])
    da = xr.concat([last.assign_coords(lon=last.lon - 360.0), da,
                    first.assign_coords(lon=first.lon + 360.0)], dim="lon")
    targets = {"lat": np.clip(lat, float(da.lat.min()), float(da.lat.max())), "lon": lon}
    if da.sizes["lat"] == 1:  # nothing to interpolate: that latitude applies everywhere
        da = da.isel(lat=0, drop=True).expand_dims(lat=targets.pop("lat"))
    out = da.interp(targets, method="linear")
    return out.transpose(*[d for d in ("plev", "lat", "lon") if d in out.dims]).values


def vertical_regrid(values: np.ndarray, log_p_source: np.ndarray,
                    log_p_target: np.ndarray) -> np.ndarray:
    """Per column, linear in log-pressure with the end values held beyond the source range.

    values [Zs, H, W]; log_p_source [Zs] or [Zs, H, W]; log_p_target [Z, H, W] -> [Z, H, W].
    """
    zs, z = values.shape[0], log_p_target.shape[0]
    source = np.broadcast_to(log_p_source.reshape(zs, *([1] * (values.ndim - 1)))
                             if log_p_source.ndim == 1 else log_p_source, values.shape)
    columns = values.reshape(zs, -1)
    source, target = source.reshape(zs, -1), log_p_target.reshape(z, -1)
    out = np.empty_like(target)
    for j in range(columns.shape[1]):
        order = np.argsort(source[:, j])
        out[:, j] = np.interp(target[:, j], source[order, j], columns[order, j])
    return out.reshape(log_p_target.shape)


def _level_pressure(source: _Source, reference: xr.DataArray,
                    surface_pressure: np.ndarray) -> np.ndarray:
    """log of the source levels' pressure: [Zs] from the coordinate, or [Zs, H, W] from CAM's
    hybrid coefficients and the (regridded) surface pressure."""
    ds = source.ds
    if {"hyam", "hybm"} <= set(ds.data_vars) and source.find("surface_pressure") is not None:
        p0 = float(ds["P0"].values) if "P0" in ds.data_vars else DEFAULT_P0_PA
        a, b = ds["hyam"].values.astype(np.float64), ds["hybm"].values.astype(np.float64)
        if a.shape != (reference.sizes["plev"],) or b.shape != a.shape:
            raise source.error(f"hyam/hybm have shapes {a.shape}/{b.shape}, the levels "
                               f"{reference.sizes['plev']}", field="hyam")
        pressure = a[:, None, None] * p0 + b[:, None, None] * surface_pressure
        if not (pressure > 0).all():
            raise source.error("hybrid level pressures are not all positive", field="hyam")
        steps = np.sign(np.diff(pressure, axis=0))
        if not ((steps > 0).all() or (steps < 0).all()):
            raise source.error(f"hybrid level pressures hyam P0 + hybm PS do not increase "
                               f"monotonically towards the surface (P0 {p0:g} Pa, mean PS "
                               f"{surface_pressure.mean():.4g} Pa): PS or P0 in the wrong unit?",
                               field=source.find("surface_pressure"))
        return np.log(pressure)
    levels = reference.plev.values
    if source.find("surface_pressure") is not None:
        ratio = levels.max() / surface_pressure.mean()
        low, high = LEVEL_TO_SURFACE_PRESSURE
        if not low <= ratio <= high:
            raise source.error(
                f"the largest pressure level, {levels.max():.4g} Pa after its units, is "
                f"{ratio:.3g} x the mean surface pressure {surface_pressure.mean():.4g} Pa: the "
                f"levels or the surface pressure carry the wrong unit (hPa labelled Pa?)",
                field=source.find("surface_pressure"))
    return np.log(levels)


def read_climate_netcdf(path: str | Path, data_config: DataConfig | None = None,
                        planet_id: str | None = None) -> PlanetSample:
    """A climate-only `PlanetSample` from one GCM output file (see the module docstring).

    `planet_id` defaults to the file's stem. Raises `DataError` naming the file, the sample and
    the variable for an unreadable file, a missing variable, unknown units, NaN or
    implausible values.
    """
    data_config = data_config or DataConfig()
    path = Path(path)
    sample_id = planet_id or path.stem
    try:
        dataset = xr.open_dataset(path, decode_times=False)
    except Exception as err:  # netCDF4, h5py and scipy each raise their own types
        raise DataError(f"cannot read as NetCDF: {err}", file=str(path),
                        sample=sample_id) from None
    with dataset:
        try:
            dataset.load()
        except Exception as err:
            raise DataError(f"cannot read the file's data: {err}", file=str(path),
                            sample=sample_id) from None
        source = _Source(dataset, str(path), sample_id)
        _checked_coordinates(source)
        sigma, lat, lon = climate_grid(data_config)
        fields = {channel: _atmosphere(source, channel) for channel in CLIMATE_VARIABLES[:3]}
        ts = _surface(source, "surface_temperature", TEMPERATURE_OFFSETS_K, True,
                      check_as="temperature")
        liquid_surface = _surface_liquid_water(source, fields["temperature"],
                                               None if ts is None else ts[0])
        ps = _surface(source, "surface_pressure", PRESSURE_UNITS_PA, False,
                      check_as="surface_pressure")
        if ps is not None:
            surface_pressure = horizontal_regrid(_time_mean(ps[0]), lat, lon)
        else:
            surface_pressure = np.full((len(lat), len(lon)),
                                       fields["temperature"].plev.values.max())
        log_p_source = _level_pressure(source, fields["temperature"], surface_pressure)
        log_p_target = np.log(sigma[:, None, None] * surface_pressure)
        cube = {channel: vertical_regrid(horizontal_regrid(fields[channel], lat, lon),
                                         log_p_source, log_p_target)
                for channel in CLIMATE_VARIABLES[:3]}
        if ts is not None:
            cube["temperature"][0] = horizontal_regrid(_time_mean(ts[0]), lat, lon)
        liquid_share = np.clip((cube["temperature"] - ICE_ALL_K) / (KELVIN_FREEZE - ICE_ALL_K),
                               0.0, 1.0)
        liquid = cube["cloud_fraction"] * liquid_share
        liquid[0] = horizontal_regrid(liquid_surface, lat, lon)
        cube["surface_liquid_water"] = liquid
    sample = PlanetSample.blank(sample_id, data_config.climate_shape, data_config.spectrum_bins)
    climate = np.stack([cube[c] for c in CLIMATE_VARIABLES]).astype(np.float32)
    sample = dataclasses.replace(sample, climate=climate).with_present("climate")
    sample.validate(data_config.climate_shape, data_config.spectrum_bins, source=str(path))
    return sample
