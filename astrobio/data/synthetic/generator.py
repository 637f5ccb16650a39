"""The pipeline: per-planet random draws, vectorised physics, then each modality.

Determinism: planet `index` under `config.seed` uses only `np.random.default_rng([seed,
index])`. It first draws one uniform per name in `VARIATES` (a fixed vector), from which the
star, orbit, planet, atmosphere and labels follow by vectorised physics over a block of
planets; then, in a fixed order, its weather pattern, spectrum noise and mask, graph choices
and text choices. So a planet is the same whichever block, order or process generates it.

Choices that live here rather than in the physics modules:
- the carbonate-silicate thermostat: where volcanism and at least 0.02 oceans of water run it,
  CO2 settles at the level that brings the surface to a hidden set point N(283 K, 12 K)
  (`climate.weathering_co2`);
- two worlds per planet. The labels, spectrum, parameters and text come from the planet as
  it is. The datacube and the metabolic graph come from the planet as a terrestrial climate
  model represents it: it simulates every planet as a rocky world with the atmosphere its mass
  would hold (it cannot know whether a planet in the 1.5-2 Earth-radius valley kept an H2/He
  envelope), it has no steam-atmosphere physics (past the runaway limit it returns the moist
  climate the planet would have without the runaway feedback), and its mean surface
  temperature errs by N(0, 15 K), of the order of the spread between GCMs for one planet in
  the THAI intercomparison (Turbet et al. 2022). The graph's environment (liquid water,
  temperature, composition) is that model climate; whether life is there is the truth.
- half the descriptions quote a surface temperature retrieved from thermal emission, the
  truth with a 1-sigma error of 20 K (JWST's TRAPPIST-1 b and c eclipses: 26 and 31 K,
  Greene et al. 2023, Zieba et al. 2023).
So each modality holds evidence the others lack: the cube the model climate, the graph life,
the parameters the runaway limit and the envelope's likelihood, the spectrum the envelope,
the text an independent temperature.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri

from astrobio import physics
from astrobio.data.sample import PlanetSample
from astrobio.data.synthetic import biosphere, climate, labels, planets, spectrum, stars, text
from astrobio.errors import DataError
from astrobio.schema import MODALITIES

GENERATOR_VERSION = "2.0.1"
BLOCK = 64

VARIATES = (
    "star_class", "star_mass", "star_luminosity", "star_radius", "planet_mass", "planet_radius",
    "transition", "orbit", "orbit_span", "eccentricity", "escape", "pressure", "co2", "water",
    "albedo", "humidity", "life", "oxygenic", "ch4", "o2", "o2_loss", "co", "nh3", "n2o", "h2o_gas",
    "envelope_opacity", "j_mag", "transits", "instrument", "gap", "cloud_deck", "subsurface",
    "volcanic", "weathering", "gcm_bias", "thermal_error", *(f"missing_{m}" for m in MODALITIES),
)
NORMAL = {"star_luminosity", "star_radius", "planet_radius", "escape", "pressure", "albedo",
          "humidity", "weathering", "gcm_bias", "thermal_error"}
WEATHERING_TARGET_K = (283.0, 12.0)  # mean and spread of the thermostat's set point
GCM_BIAS_K = 15.0  # 1-sigma error of the climate model's mean surface temperature
THERMAL_EMISSION_ERROR_K = 20.0  # 1-sigma error of the retrieved surface temperature
J_MAG_RANGE = (6.5, 12.5)
MAX_TRANSITS = 12


def _variates(rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
    u = np.stack([rng.random(len(VARIATES)) for rng in rngs])
    u = np.clip(u, 1e-12, 1.0 - 1e-12)
    return {name: (ndtri(u[:, k]) if name in NORMAL else u[:, k])
            for k, name in enumerate(VARIATES)}


def _world(v, star, body, orbit, gaseous, runaway_feedback) -> dict[str, np.ndarray]:
    """Atmosphere and climate of every planet of the block, given which planets have an
    envelope and whether the runaway greenhouse acts (module docstring)."""
    pressure = planets.surface_pressure(gaseous, body, orbit, star, v["escape"], v["pressure"])
    airless = ~gaseous & (pressure <= 0.0)
    rocky_air = ~gaseous & ~airless

    water = planets.log_uniform(v["water"], -2.0, math.log10(3.0))
    available = np.where(rocky_air, 1.1 * water / (water + 0.1), 0.0)
    ocean = np.where(rocky_air, np.minimum(0.71 * water**0.4, 0.97), 0.0)
    albedo = np.select([gaseous, airless],
                       [np.clip(0.35 + 0.08 * v["albedo"], 0.1, 0.7),
                        np.clip(0.12 + 0.04 * v["albedo"], 0.03, 0.3)],
                       np.clip(0.3 + 0.08 * v["albedo"], 0.05, 0.7))
    # CO2: the carbonate-silicate thermostat where volcanism and water run it, else random
    teq_guess = physics.equilibrium_temperature_from_insolation(orbit["insolation"], albedo)
    volcanic = v["volcanic"] < 0.85
    thermostat = rocky_air & volcanic & (water > 0.02)
    regulated = climate.weathering_co2(teq_guess, WEATHERING_TARGET_K[0] + WEATHERING_TARGET_K[1]
                                       * v["weathering"], pressure, available)
    random_co2 = planets.log_uniform(v["co2"], -4.5, math.log10(0.95)) * pressure
    pco2 = np.where(thermostat, regulated, random_co2)
    pressure = np.where(thermostat, pressure + regulated, pressure)
    x_co2 = np.where(rocky_air, pco2 / np.maximum(pressure, 1e-30), 0.0)
    rocky_pressure = np.where(rocky_air, pressure, 0.0)
    runaway_flux = physics.habitable_zone_flux(
        star["teff"], planet_mass=body["mass"], out_of_range="clamp")["runaway_greenhouse"]
    beyond = rocky_air & (orbit["insolation"] >= runaway_flux)
    runaway = beyond & runaway_feedback
    ts, teq = climate.surface_temperature(orbit["insolation"], albedo, rocky_pressure,
                                          x_co2 * rocky_pressure, available, runaway)
    envelope_tau = 1.0 + 5.0 * v["envelope_opacity"]
    ts = np.where(gaseous, teq * (1.0 + climate.EDDINGTON * envelope_tau) ** 0.25, ts)

    ocean = np.where(runaway, 0.0, ocean)  # a runaway planet's water is steam (or lost)
    m_dwarf = star["teff"] < planets.M_DWARF_TEFF_K
    water_lost = runaway & m_dwarf & (v["o2_loss"] < 0.5)
    humidity = np.where(rocky_air, np.clip(0.2 + 0.6 * available + 0.08 * v["humidity"],
                                           0.02, 0.95), np.where(gaseous, 0.3, 0.0))
    humidity = np.where(water_lost, 0.02, humidity)
    vapour = np.minimum(humidity * climate.saturation_vapour_pressure(ts)
                        / np.maximum(rocky_pressure * 1e5, 1.0), 0.9)
    vapour = np.where(runaway & ~water_lost, 0.3 + 0.6 * v["h2o_gas"], vapour)
    return {"gaseous": gaseous, "pressure": pressure, "airless": airless, "albedo": albedo,
            "water": water, "ocean": ocean, "ts": ts, "teq": teq, "beyond": beyond,
            "humidity": humidity, "vapour": vapour, "x_co2": x_co2, "water_lost": water_lost,
            "volcanic": volcanic}


def _physics(v: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every per-planet scalar, vectorised over the block (module docstrings of the parts):
    the planet as it is, and as the climate model represents it."""
    star = stars.draw_stars(v["star_class"], v["star_mass"], v["star_luminosity"],
                            v["star_radius"])
    body = planets.draw_bodies(v["planet_mass"], v["planet_radius"], v["transition"])
    orbit = planets.draw_orbits(star, v["orbit"], v["orbit_span"], v["eccentricity"])
    true = _world(v, star, body, orbit, body["gaseous"], runaway_feedback=True)
    modelled = _world(v, star, body, orbit, np.zeros_like(body["gaseous"]),
                      runaway_feedback=False)
    klass = labels.habitability_class(true["gaseous"], true["airless"], true["beyond"],
                                      true["ts"], true["pressure"])
    habitable = klass == labels.TEMPERATE
    life = habitable & (v["life"] < labels.LIFE_PROBABILITY)
    oxygenic = v["oxygenic"] < 0.6
    for world in (true, modelled):
        world["x"] = planets.composition(v, world["gaseous"], world["airless"], world["x_co2"],
                                         world["water_lost"], world["vapour"], life, oxygenic,
                                         world["teq"])
    mu = planets.mean_molecular_mass(true["x"], true["gaseous"])
    shared = {
        **{f"star_{k}": val for k, val in star.items()},
        **{f"planet_{k}": val for k, val in body.items()},
        **orbit, "klass": klass, "habitable": habitable, "life": life, "oxygenic": oxygenic,
        "subsurface": v["subsurface"] < 0.5,
        "j_mag": J_MAG_RANGE[0] + (J_MAG_RANGE[1] - J_MAG_RANGE[0]) * v["j_mag"],
        "transits": 1 + np.floor(v["transits"] * MAX_TRANSITS).astype(np.int64),
        "cloud_deck": 10.0 ** (-2.0 * v["cloud_deck"]),
        "scale_height": spectrum.scale_height_m(true["teq"], mu, body["mass"], body["radius"]),
    }
    return shared | true, shared | modelled


def _present(v: dict[str, np.ndarray], b: int, rate: float) -> np.ndarray:
    draws = np.stack([v[f"missing_{m}"][b] for m in MODALITIES])
    present = draws >= rate
    if not present.any():
        present[int(np.argmax(draws))] = True
    return present


def _block(start: int, stop: int, config) -> list[PlanetSample]:
    seed = config.seed
    rngs = [np.random.default_rng([seed, i]) for i in range(start, stop)]
    v = _variates(rngs)
    p, m = _physics(v)  # the planet, and the climate model's planet
    weather = np.stack([rng.standard_normal(climate.N_WEATHER_MODES) for rng in rngs])
    modelled_ts = np.maximum(m["ts"] + GCM_BIAS_K * v["gcm_bias"], 0.5 * m["ts"])
    cubes, modelled_clouds = climate.datacube(
        modelled_ts, m["teq"], m["pressure"], m["airless"], m["gaseous"], p["locked"],
        m["humidity"], m["ocean"], weather, config.climate_shape)
    # the planet's own climate, for its clouds: the spectrum sees these, not the model's
    _, cloud_cover = climate.datacube(
        p["ts"], p["teq"], p["pressure"], p["airless"], p["gaseous"], p["locked"],
        p["humidity"], p["ocean"], weather, config.climate_shape)
    depth = spectrum.model_depth(p["x"], p["scale_height"], p["planet_radius"],
                                 p["star_radius"], np.where(p["airless"], 0.0, p["pressure"]),
                                 cloud_cover, p["cloud_deck"], config.spectrum_bins)
    params = np.stack([p["star_teff"], p["star_luminosity"], p["star_radius"], p["star_mass"],
                       p["planet_radius"], p["planet_mass"], p["semi_major_axis"],
                       p["eccentricity"], p["insolation"]], axis=1).astype(np.float32)
    period = 365.256 * np.sqrt(p["semi_major_axis"] ** 3 / p["star_mass"])
    teq_assumed = physics.equilibrium_temperature_from_insolation(p["insolation"], 0.3)
    retrieved_ts = p["ts"] + THERMAL_EMISSION_ERROR_K * v["thermal_error"]
    modelled_liquid = ((m["ocean"] > 0)
                       & (modelled_ts < climate.boiling_temperature(m["pressure"]))
                       & (climate.warmest_surface(modelled_ts, m["pressure"], p["locked"])
                          > climate.KELVIN_FREEZE))
    modelled_ice = ~m["airless"] & (modelled_ts < climate.KELVIN_FREEZE)
    samples = []
    for b, rng in enumerate(rngs):
        index = start + b
        observed, error, mask = spectrum.observe(depth[b], p["j_mag"][b], p["transits"][b],
                                                 v["instrument"][b], v["gap"][b], rng)
        mixing = dict(zip(planets.GASES, p["x"][b].tolist(), strict=True))
        env = {"life": bool(p["life"][b]), "oxygenic": bool(p["oxygenic"][b]),
               "liquid": bool(modelled_liquid[b]),
               "subsurface_ocean": bool(p["subsurface"][b] and modelled_ice[b]),
               "airless": bool(m["airless"][b]), "gaseous": False,
               "volcanic": bool(m["volcanic"][b]), "temperature": float(modelled_ts[b]),
               "pressure": float(m["pressure"][b]), "cloud_cover": float(modelled_clouds[b]),
               "x": dict(zip(planets.GASES, m["x"][b].tolist(), strict=True))}
        nodes, edge_index, edge_attr = biosphere.planet_graph(env, rng)
        facts = {"teff": float(p["star_teff"][b]), "period": float(period[b]),
                 "a": float(p["semi_major_axis"][b]), "radius": float(p["planet_radius"][b]),
                 "mass": float(p["planet_mass"][b]), "insolation": float(p["insolation"][b]),
                 "teq_assumed": float(teq_assumed[b]), "e": float(p["eccentricity"][b]),
                 "locked": bool(p["locked"][b]), "j_mag": float(p["j_mag"][b]),
                 "pressure": float(p["pressure"][b]) * (not p["airless"][b]),
                 "x": mixing, "retrieved_ts": float(retrieved_ts[b])}
        description = text.describe(facts, rng)
        sample = PlanetSample(
            planet_id=f"synth-{seed}-{index:07d}", climate=cubes[b],
            node_features=nodes, edge_index=edge_index, edge_attr=edge_attr,
            spectrum=observed, spectrum_err=error, spectrum_mask=mask, params=params[b],
            text=description, present=np.ones(len(MODALITIES), bool),
            habitable=int(p["habitable"][b]), habitability_class=int(p["klass"][b]),
            surface_temperature=float(p["ts"][b]), biosignature=int(p["life"][b]),
            has_targets=True)
        samples.append(_drop_missing(sample, _present(v, b, config.missing_modality_rate),
                                     config))
    return samples


def _drop_missing(sample: PlanetSample, present: np.ndarray, config) -> PlanetSample:
    if present.all():
        return sample
    blank = PlanetSample.blank(sample.planet_id, config.climate_shape, config.spectrum_bins)
    fields = {"climate": ("climate",),
              "graph": ("node_features", "edge_index", "edge_attr"),
              "spectrum": ("spectrum", "spectrum_err", "spectrum_mask"),
              "params": ("params",), "text": ("text",)}
    for modality, keep in zip(MODALITIES, present, strict=True):
        if not keep:
            for name in fields[modality]:
                setattr(sample, name, getattr(blank, name))
    sample.present = present
    return sample


def _check_range(start: int, stop: int, config) -> None:
    for name, value in (("start", start), ("stop", stop)):
        if not isinstance(value, int | np.integer) or value < 0:
            raise DataError(f"{name} must be a non-negative integer, got {value!r}",
                            field=name)
    if stop < start:
        raise DataError(f"stop ({stop}) is before start ({start})", field="stop")
    if not 0.0 <= config.missing_modality_rate <= 1.0:
        raise DataError(f"{config.missing_modality_rate!r} is not a probability",
                        field="data.missing_modality_rate")
    if min(config.climate_shape[1:]) < 1 or config.spectrum_bins < 1:
        raise DataError(f"climate shape {config.climate_shape} and spectrum_bins "
                        f"{config.spectrum_bins} must be positive", field="data")


def generate_samples(start: int, stop: int, config) -> list[PlanetSample]:
    """Planets `start` .. `stop - 1` under `config` (a `DataConfig`), each exactly what
    `generate_sample` gives for its index."""
    _check_range(start, stop, config)
    samples: list[PlanetSample] = []
    for begin in range(start, stop, BLOCK):
        samples.extend(_block(begin, min(begin + BLOCK, stop), config))
    return samples


def generate_sample(index: int, config) -> PlanetSample:
    """Planet `index` under `config.seed`: the same sample on every call, in any process."""
    return generate_samples(index, index + 1, config)[0]
