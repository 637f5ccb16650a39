"""Each planet's random numbers: its own streams, one per stage, from (seed, index) alone.

Planet `index` under `seed` draws stage `s` from `np.random.default_rng([seed, index, s])`.
The physics stage first draws one uniform per name in `VARIATES` (a fixed vector; the `NORMAL`
ones become standard normals), from which the star, orbit, planet, atmosphere, observation
programme and catalogue errors follow by vectorised physics over a block of planets. Every
later stage (the true climate's weather and clero seed, the spectrum's noise, the retrieval's
posterior draw, the observer's climate, the graph's choices, the text's choices) reads its own
stream and draws the same number of values whatever the planet turns out to be. So a planet is
the same whichever block, order or process generates it, and a pass that runs only some stages
(`latent`) sees the same values as the full generator.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from astrobio.schema import MODALITIES

STAGES = ("physics", "truth_climate", "spectrum", "retrieval", "observer_climate", "graph",
          "text")
VARIATES = (
    # star
    "star_class", "star_mass", "star_luminosity", "star_radius", "distance", "spots",
    "faculae",
    # orbit and body
    "orbit", "orbit_span", "eccentricity", "core_mass", "core_fraction", "envelope", "valley",
    # atmosphere and climate
    "escape", "pressure", "co2", "water", "albedo", "humidity", "volcanic", "weathering",
    "envelope_opacity", "cloud_deck", "o2_loss",
    # chemistry and life
    "ch4", "o2", "co", "nh3", "n2o", "h2o_gas", "serpentinization", "reduced", "life",
    "expressed", "oxygenic", "bio_o2", "bio_ch4", "bio_n2o",
    # observation
    "transit_phase", "impact", "instrument", "gap", "teff_error", "star_radius_error",
    "star_mass_error", "radius_ratio_error", "mass_error", "eccentricity_error",
    "thermal_observed", "thermal_error",
    *(f"missing_{m}" for m in MODALITIES),
)
NORMAL = {"star_luminosity", "star_radius", "core_fraction", "valley", "escape", "pressure",
          "albedo", "humidity", "weathering", "teff_error", "star_radius_error",
          "star_mass_error", "radius_ratio_error", "mass_error", "eccentricity_error",
          "thermal_error"}


def stream(seed: int, index: int, stage: str) -> np.random.Generator:
    """Planet `index`'s random stream for `stage` (one of `STAGES`)."""
    return np.random.default_rng([seed, index, STAGES.index(stage)])


def streams(seed: int, indices, stage: str) -> list[np.random.Generator]:
    return [stream(seed, int(i), stage) for i in indices]


def variates(seed: int, indices) -> dict[str, np.ndarray]:
    """name -> [B] values for planets `indices` (module docstring)."""
    u = np.stack([rng.random(len(VARIATES)) for rng in streams(seed, indices, "physics")])
    u = np.clip(u, 1e-12, 1.0 - 1e-12)
    return {name: (ndtri(u[:, k]) if name in NORMAL else u[:, k])
            for k, name in enumerate(VARIATES)}
