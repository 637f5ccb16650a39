"""An example bundle of real-format files, the kind a researcher brings, written by the project
itself: `python -m astrobio.data example --out DIR`, then `python -m astrobio.data build
--catalog DIR/pscomppars.csv ...` (README, "Your own data").

    pscomppars.csv  ten real planets, rows of the shipped catalogue (astrobio/resources)
    climate/TRAPPIST-1_e.nc   a climate-model run in ExoCAM (CAM) layout: T, Q, CLOUD on
                    hybrid levels (hyam, hybm, P0, PS), TS, OCNFRAC, on a 24 x 48 x 10 grid
                    other than the model's
    spectra/jw01234-o001_t001_nirspec_clear-prism_x1dints.fits   a JWST x1d file of transit
                    depths (ppm) over 0.6-5.3 um, named as the pipeline names it; its
                    TARGNAME "LHS 1140" ties it to LHS 1140 b
    metabolism/Earth.xml   E. coli core, the real SBML model cobra ships
    labels.csv      partial labels: the solar-system planets' known values, and TRAPPIST-1 e's
                    surface temperature from its climate file

The climate fields and the spectrum are the synthetic generator's (a generated planet on a
finer grid), stand-ins for a user's model output and observation; nothing here is a
measurement of those planets.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from astrobio.config import DataConfig
from astrobio.data.readers.exoplanet_archive import bundled_catalogue
from astrobio.data.synthetic import generate_sample
from astrobio.data.synthetic.climate import SIGMA_TOP
from astrobio.errors import DataError
from astrobio.schema import CLIMATE_VARIABLES, wavelength_grid

PLANETS = ("Venus", "Earth", "Mars", "TRAPPIST-1 d", "TRAPPIST-1 e", "TRAPPIST-1 f",
           "Proxima Cen b", "Kepler-442 b", "LHS 1140 b", "TOI-700 d")
SOURCE_GRID = DataConfig(climate_levels=10, lat=24, lon=48, spectrum_bins=512,
                         missing_modality_rate=0.0)
SURFACE_PRESSURE_PA = 1.0e5
X1D_NAME = "jw01234-o001_t001_nirspec_clear-prism_x1dints.fits"
PRISM_RANGE_UM = (0.6, 5.3)
# Known values for the solar system (NASA planetary fact sheets: mean surface temperatures);
# Mars's biosignature is left unknown.
SOLAR_SYSTEM_LABELS = {
    "Venus": {"habitable": 0, "habitability_class": "runaway", "surface_temperature": 737,
              "biosignature": 0},
    "Earth": {"habitable": 1, "habitability_class": "temperate", "surface_temperature": 288,
              "biosignature": 1},
    "Mars": {"habitable": 0, "habitability_class": "frozen", "surface_temperature": 210},
}


def _catalogue(path: Path) -> None:
    lines = bundled_catalogue().read_text(encoding="utf-8").splitlines()
    rows = [line for line in lines if line.strip() and not line.startswith("#")]
    header, body = rows[0], rows[1:]
    chosen = [line for line in body if next(csv.reader([line]))[0] in PLANETS]
    if len(chosen) != len(PLANETS):
        raise DataError(f"the shipped catalogue lacks some of {PLANETS}",
                        file=str(bundled_catalogue()))
    path.write_text("# Example catalogue: rows of astrobio/resources/exoplanets.csv (sources "
                    "in its comments)\n" + "\n".join([header, *chosen]) + "\n",
                    encoding="utf-8")


def _climate(path: Path) -> float:
    """An ExoCAM-layout file; returns its mean surface temperature (K)."""
    import xarray as xr

    cube = generate_sample(0, SOURCE_GRID).climate.astype(np.float64)
    channels = dict(zip(CLIMATE_VARIABLES, cube, strict=True))
    sigma = np.geomspace(1.0, SIGMA_TOP, SOURCE_GRID.climate_levels)[::-1]  # CAM: top first
    lat = -90.0 + (np.arange(SOURCE_GRID.lat) + 0.5) * 180.0 / SOURCE_GRID.lat
    lon = np.arange(SOURCE_GRID.lon) * 360.0 / SOURCE_GRID.lon
    dims, surface = ("time", "lev", "lat", "lon"), ("time", "lat", "lon")
    times = 2  # monthly means, averaged by the reader

    def levels(values):
        return np.repeat(values[::-1][None], times, axis=0)

    def plane(values):
        return np.repeat(values[None], times, axis=0)

    ds = xr.Dataset(
        {
            "T": (dims, levels(channels["temperature"]), {"units": "K"}),
            "Q": (dims, levels(channels["specific_humidity"]), {"units": "kg/kg"}),
            "CLOUD": (dims, levels(channels["cloud_fraction"]), {"units": "fraction"}),
            "TS": (surface, plane(channels["temperature"][0]), {"units": "K"}),
            "PS": (surface, np.full((times, len(lat), len(lon)), SURFACE_PRESSURE_PA),
                   {"units": "Pa"}),
            "OCNFRAC": (surface, plane(channels["surface_liquid_water"][0]),
                        {"units": "fraction"}),
            "hyam": (("lev",), np.zeros_like(sigma)),
            "hybm": (("lev",), sigma),
            "P0": ((), SURFACE_PRESSURE_PA, {"units": "Pa"}),
        },
        coords={"time": ("time", 15.0 + 30.0 * np.arange(times),
                         {"units": "days since 0001-01-01 00:00:00", "calendar": "noleap"}),
                "lev": ("lev", 1000.0 * sigma, {"units": "hPa"}), "lat": lat, "lon": lon},
        attrs={"source": "AstroBio example bundle: synthetic fields in ExoCAM layout"},
    )
    ds.to_netcdf(path)
    return float(channels["temperature"][0].mean())


def _spectrum(path: Path) -> None:
    from astropy.io import fits

    sample = generate_sample(1, SOURCE_GRID)
    wavelength = wavelength_grid(SOURCE_GRID.spectrum_bins)
    keep = (sample.spectrum_mask & (wavelength >= PRISM_RANGE_UM[0])
            & (wavelength <= PRISM_RANGE_UM[1]))
    columns = [
        fits.Column(name="WAVELENGTH", format="D", unit="um", array=wavelength[keep]),
        fits.Column(name="FLUX", format="D", unit="ppm", array=sample.spectrum[keep]),
        fits.Column(name="FLUX_ERROR", format="D", unit="ppm", array=sample.spectrum_err[keep]),
        fits.Column(name="DQ", format="J", array=np.zeros(int(keep.sum()), np.int32)),
    ]
    primary = fits.PrimaryHDU()
    primary.header["TARGNAME"] = "LHS 1140"
    fits.HDUList([primary, fits.BinTableHDU.from_columns(columns, name="EXTRACT1D")]
                 ).writeto(path)


def _metabolism(path: Path) -> None:
    import cobra

    from astrobio.data.metabolism import bundled_model

    cobra.io.write_sbml_model(bundled_model("textbook"), str(path))


def _labels(path: Path, trappist_1e_temperature: float) -> None:
    columns = ("pl_name", "habitable", "habitability_class", "surface_temperature",
               "biosignature")
    rows = {**SOLAR_SYSTEM_LABELS,
            "TRAPPIST-1 e": {"surface_temperature": round(trappist_1e_temperature)}}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for planet, values in rows.items():
        writer.writerow([planet, *(values.get(c, "") for c in columns[1:])])
    path.write_text(buffer.getvalue(), encoding="utf-8")


def write_example_bundle(out: str | Path) -> dict[str, Path]:
    """Write the bundle (module docstring) into `out`; returns its paths by role."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError("not empty; the example bundle goes into a new folder", file=str(out))
    paths = {"catalog": out / "pscomppars.csv", "climate": out / "climate",
             "spectra": out / "spectra", "metabolism": out / "metabolism",
             "labels": out / "labels.csv"}
    for folder in ("climate", "spectra", "metabolism"):
        paths[folder].mkdir(parents=True)
    _catalogue(paths["catalog"])
    temperature = _climate(paths["climate"] / "TRAPPIST-1_e.nc")
    _spectrum(paths["spectra"] / X1D_NAME)
    _metabolism(paths["metabolism"] / "Earth.xml")
    _labels(paths["labels"], temperature)
    return paths
