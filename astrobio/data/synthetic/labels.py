"""Labels from the planet's true climate, in this order of precedence
(`schema.HABITABILITY_CLASSES`):

    gaseous    the planet kept an H2/He envelope (no surface)
    airless    a rocky planet with surface pressure below 0.01 bar
    runaway    the runaway greenhouse: beyond the Kopparapu et al. (2014) runaway limit for its
               Teff and mass where the energy-balance model holds the truth, clero's
               "runaway_greenhouse" state where the emulator does
    temperate  liquid surface water by the one definition (`water`): at least a tenth of the
               surface between 273.15 K and T_hot = min(boiling point, 395 K)
    frozen     otherwise, with a mean surface temperature below 273.15 K (above it the planet
               is too hot for liquid water and counts as runaway)

habitable = 1 exactly for the temperate class. biosignature = 1 when life is present, which
happens only on habitable planets, with probability LIFE_PROBABILITY; on EXPRESSED_PROBABILITY
of them its products build up in the air (`atmosphere.with_biosphere`), the rest leave no trace
an observer could see (a false negative by construction).
"""

from __future__ import annotations

import numpy as np

from astrobio.data.synthetic.water import KELVIN_FREEZE, has_liquid_water
from astrobio.schema import HABITABILITY_CLASSES

LIFE_PROBABILITY = 0.55
EXPRESSED_PROBABILITY = 0.75
OXYGENIC_PROBABILITY = 0.6

GASEOUS, AIRLESS, FROZEN, TEMPERATE, RUNAWAY = (
    HABITABILITY_CLASSES.index(name)
    for name in ("gaseous", "airless", "frozen", "temperate", "runaway"))


def habitability_class(gaseous, airless, runaway, liquid_area, ts) -> np.ndarray:
    """Class index per planet (module docstring); every argument is an array [B]."""
    return np.select(
        [gaseous, airless, runaway, has_liquid_water(liquid_area), ts < KELVIN_FREEZE],
        [GASEOUS, AIRLESS, RUNAWAY, TEMPERATE, FROZEN],
        RUNAWAY,
    ).astype(np.int64)


def biosphere(habitable, u_life, u_expressed, u_oxygenic) -> dict[str, np.ndarray]:
    """Where life is (the `biosignature` label), where its gases build up, and which kind."""
    life = habitable & (u_life < LIFE_PROBABILITY)
    return {"life": life, "expressed": life & (u_expressed < EXPRESSED_PROBABILITY),
            "oxygenic": u_oxygenic < OXYGENIC_PROBABILITY}
