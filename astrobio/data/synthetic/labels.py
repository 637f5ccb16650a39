"""Labels from the physics, in this order of precedence (`schema.HABITABILITY_CLASSES`):

    gaseous    radius above the planet's rock/gas transition (an H2/He envelope, no surface)
    airless    a rocky planet with surface pressure below 0.01 bar
    runaway    insolation at or above the Kopparapu et al. (2014) runaway-greenhouse limit for
               its Teff and mass, or a mean surface temperature above T_hot = min(boiling point
               at the surface pressure, 395 K, the upper limit of known life: Takai et al. 2008)
    frozen     mean surface temperature below 273.15 K
    temperate  otherwise: 273.15 K <= Ts <= T_hot

habitable = 1 exactly for the temperate class (a rocky planet whose atmosphere allows liquid
surface water). biosignature = 1 when life is present, which happens only on habitable planets,
with probability LIFE_PROBABILITY; its products show in the atmosphere (hence the spectrum) and
its pathways in the metabolic graph.
"""

from __future__ import annotations

import numpy as np

from astrobio.data.synthetic.climate import KELVIN_FREEZE, boiling_temperature
from astrobio.schema import HABITABILITY_CLASSES

LIFE_PROBABILITY = 0.55
LIFE_HOT_LIMIT_K = 395.0

GASEOUS, AIRLESS, FROZEN, TEMPERATE, RUNAWAY = (
    HABITABILITY_CLASSES.index(name)
    for name in ("gaseous", "airless", "frozen", "temperate", "runaway"))


def hot_limit(pressure_bar):
    """T_hot in K: the lower of the boiling point at `pressure_bar` and 395 K."""
    return np.minimum(boiling_temperature(pressure_bar), LIFE_HOT_LIMIT_K)


def habitability_class(gaseous, airless, beyond_runaway, ts, pressure_bar) -> np.ndarray:
    """Class index per planet (module docstring); every argument is an array [B]."""
    return np.select(
        [gaseous, airless, beyond_runaway | (ts > hot_limit(pressure_bar)), ts < KELVIN_FREEZE],
        [GASEOUS, AIRLESS, RUNAWAY, FROZEN],
        TEMPERATE,
    ).astype(np.int64)
