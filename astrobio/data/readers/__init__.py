"""Real-format readers: each returns `PlanetSample`s with `present` set for what the file has."""

from astrobio.data.readers.climate_netcdf import climate_grid, read_climate_netcdf
from astrobio.data.readers.exoplanet_archive import describe_planet, read_exoplanet_archive
from astrobio.data.readers.sbml import read_sbml
from astrobio.data.readers.transit_spectrum import (
    bin_spectrum,
    read_jwst_x1d,
    read_transit_table,
)

__all__ = [
    "bin_spectrum",
    "climate_grid",
    "describe_planet",
    "read_climate_netcdf",
    "read_exoplanet_archive",
    "read_jwst_x1d",
    "read_sbml",
    "read_transit_table",
]
