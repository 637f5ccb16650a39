"""The observer's planet: the atmosphere it infers, run through a climate model.

From each retrieval draw (`retrieval`): a flat spectrum means an airless rock; an envelope an
H2/He planet (1-bar reference level); a secondary atmosphere a rocky planet with the drawn
trace gases (each 1 ppb x 10^a_g, capped at 90 %, N2 the rest) at the drawn surface pressure.
The observer then runs clero (UM emulation, a draw seeded from the planet's own stream) where
that inferred planet lies in the emulator's domain (`emulator.in_domain`, tidally locked by the
catalogue's orbit, an ocean assumed), the energy-balance model elsewhere. What the observer
cannot measure takes the population's typical value (`ASSUMED`): Bond albedo, water supply,
humidity, ocean fraction, an envelope's opacity; the runaway greenhouse is switched on beyond
the Kopparapu et al. (2014) limit at the catalogue's flux, Teff and mass.

The datacube is that climate on the configured grid, and `summary` reads from the cube what
the metabolic graph needs: its area-mean surface temperature, liquid-water area
(`water.liquid_area`) and cloud cover.
"""

from __future__ import annotations

import numpy as np

from astrobio import physics
from astrobio.data.synthetic import atmosphere, climate, emulator, planets, retrieval
from astrobio.data.synthetic.spectrum import ABUNDANCE_FLOOR
from astrobio.data.synthetic.water import liquid_area, uniform_latitude_weights

ASSUMED = {"albedo": (0.3, 0.35, 0.12),  # secondary, envelope, airless
           "water": 1.0, "humidity": 0.7, "ocean": 0.7, "envelope_opacity": 0.5}
MAX_TRACE = 0.9
OBSERVER_GCM = "um"


def inferred(cat: dict[str, np.ndarray], draws: list[dict]) -> dict[str, np.ndarray]:
    """The inferred atmospheres [B] of a block from its catalogue and retrieval draws."""
    hypothesis = np.array([d["hypothesis"] for d in draws])
    theta = np.stack([d["theta"] for d in draws])
    z_pressure = np.array([d["z_pressure"] for d in draws])
    gaseous = hypothesis == retrieval.ENVELOPE
    airless = hypothesis == retrieval.FLAT
    pressure = np.clip(10.0 ** (0.6 * np.log10(cat["pl_bmasse"])
                                + planets.PRESSURE_DEX * z_pressure),
                       planets.AIRLESS_BAR, planets.MAX_PRESSURE_BAR)
    x = np.zeros((len(hypothesis), len(atmosphere.GASES)))
    for k, gas in enumerate(retrieval.RETRIEVED):
        x[:, atmosphere.COLUMN[gas]] = np.minimum(ABUNDANCE_FLOOR * 10.0 ** theta[:, k],
                                                  MAX_TRACE)
    x[gaseous, atmosphere.COLUMN["N2"]] = 1e-4
    return {"hypothesis": hypothesis, "gaseous": gaseous, "airless": airless,
            "rocky_air": ~gaseous & ~airless,
            "pressure": np.select([gaseous, airless], [1.0, 0.0], pressure),
            "x": atmosphere.normalise(x, gaseous, airless)}


def climates(cat: dict[str, np.ndarray], inf: dict[str, np.ndarray],
             rngs: list[np.random.Generator], shape: tuple[int, int, int, int],
             use_clero: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The observer's datacubes [B, 4, Z, H, W] and where clero made them (module docstring)."""
    weather = np.empty((len(rngs), climate.N_WEATHER_MODES))
    seeds = np.empty(len(rngs), np.int64)
    for b, rng in enumerate(rngs):  # a fixed number of draws per planet, clero or not
        weather[b] = rng.standard_normal(climate.N_WEATHER_MODES)
        seeds[b] = rng.integers(2**62)
    gaseous, airless, rocky_air = inf["gaseous"], inf["airless"], inf["rocky_air"]
    x_co2 = inf["x"][:, atmosphere.COLUMN["CO2"]]
    locked = planets.is_locked(cat["pl_orbsmax"], cat["st_mass"])
    clero_inputs = emulator.inputs(cat["st_teff"], cat["pl_insol"], cat["pl_rade"],
                                   cat["pl_bmasse"], cat["pl_orbper"], inf["pressure"], x_co2,
                                   inf["x"][:, atmosphere.COLUMN["CH4"]])
    clero = (emulator.in_domain(clero_inputs, rocky_air & locked) if use_clero
             else np.zeros_like(rocky_air))
    runaway_flux = physics.habitable_zone_flux(
        cat["st_teff"], planet_mass=np.clip(cat["pl_bmasse"], 0.1, 5.0),
        out_of_range="clamp")["runaway_greenhouse"]
    runaway = rocky_air & (cat["pl_insol"] >= runaway_flux) & ~clero
    albedo = np.select([gaseous, airless], list(ASSUMED["albedo"][1:]), ASSUMED["albedo"][0])
    rocky_pressure = np.where(rocky_air, inf["pressure"], 0.0)
    ts, teq = climate.surface_temperature(cat["pl_insol"], albedo, rocky_pressure,
                                          x_co2 * rocky_pressure,
                                          np.where(rocky_air, ASSUMED["water"], 0.0), runaway)
    envelope_tau = 1.0 + 5.0 * ASSUMED["envelope_opacity"]
    ts = np.where(gaseous, teq * (1.0 + climate.EDDINGTON * envelope_tau) ** 0.25, ts)
    humidity = np.select([rocky_air, gaseous], [ASSUMED["humidity"], 0.3], 0.0)
    ocean = np.where(rocky_air & ~runaway, ASSUMED["ocean"], 0.0)
    cubes, _ = climate.datacube(ts, teq, inf["pressure"], airless, gaseous, locked, humidity,
                                ocean, weather, shape)
    for b in np.flatnonzero(clero):
        planet = {name: float(clero_inputs[name][b]) for name in emulator.INPUTS}
        fields = emulator.draw(planet, OBSERVER_GCM, int(seeds[b]))
        cubes[b] = emulator.to_cube(fields, planet["P0"], ASSUMED["ocean"], shape)
    return cubes, {"clero": clero, "ebm_ts": ts}


def summary(cubes: np.ndarray, inf: dict[str, np.ndarray], ebm_ts) -> dict[str, np.ndarray]:
    """Area-mean surface temperature (the 1-bar temperature for an envelope), liquid-water
    area and cloud cover [B] read from the observer's cubes."""
    weights = uniform_latitude_weights(cubes.shape[3])
    surface = cubes[:, 0, 0].astype(np.float64)
    area_mean = lambda field: (field.mean(axis=2) * weights).sum(axis=1)
    return {"ts": np.where(inf["gaseous"], ebm_ts, area_mean(surface)),
            "liquid_area": np.where(inf["gaseous"], 0.0,
                                    liquid_area(surface, inf["pressure"], weights)),
            "cloud_cover": area_mean(cubes[:, 2].max(axis=1).astype(np.float64))}
