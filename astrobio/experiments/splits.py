"""The study's splits: the dataset's own (in distribution) and three out of distribution.

Each is a predicate over a planet's manifest record, which holds its split (`train`, `val`,
`test`) and its catalogue parameters: the training and validation planets it keeps come from
one population and the test planets from another, so a model is scored on planets of a kind
it never saw. Every planet keeps its split of the built dataset; an out-of-distribution split
only leaves planets out (and a planet without catalogue parameters is in none of them).

    id             every planet (the dataset's random split)
    m_dwarfs       train on FGK hosts (Teff >= 3900 K), test on M dwarfs (Teff < 3900 K)
    radius_valley  train outside the radius valley, test inside it: within 0.08 dex (20 %) of
                   the valley radius at the planet's catalogue insolation, which moves
                   outward with insolation (`planets.valley_radius`, after Fulton et al. 2017
                   and Van Eylen et al. 2018; 1.6 Earth radii at Earth's insolation), where
                   radius and mass leave the envelope undecided
    insolation     train outside 0.6-1.2 times the Earth's insolation, test inside: the
                   middle of the habitable zone, never seen, between its two edges
"""

from __future__ import annotations

import math
from collections.abc import Callable

from astrobio.data.synthetic.planets import valley_radius

M_DWARF_TEFF_K = 3900.0
RADIUS_VALLEY_HALF_WIDTH_DEX = 0.08
HELD_OUT_INSOLATION = (0.6, 1.2)


def _held_out(inside: Callable[[dict], bool]) -> Callable[[dict], bool]:
    """Keep the planets outside the population for training and validation, inside it for
    the test. A planet without its catalogue parameters (`present`) belongs to neither: its
    params are zeros, not a place in the population."""
    return lambda record: record["present"]["params"] and (
        inside(record["params"]) == (record["split"] == "test"))


SPLITS: dict[str, Callable[[dict], bool] | None] = {
    "id": None,
    "m_dwarfs": _held_out(lambda p: p["st_teff"] < M_DWARF_TEFF_K),
    "radius_valley": _held_out(lambda p: abs(math.log10(
        p["pl_rade"] / float(valley_radius(p["pl_insol"])))) < RADIUS_VALLEY_HALF_WIDTH_DEX),
    "insolation": _held_out(
        lambda p: HELD_OUT_INSOLATION[0] <= p["pl_insol"] < HELD_OUT_INSOLATION[1]),
}
