"""The planet as it is: star, orbit, body, air, climate, labels and life, for a block of
planets (vectorised; the clero draws one planet at a time).

Order, so that nothing downstream of a label feeds back into it: the star, orbit and body;
the atmosphere without life (surface pressure, water, albedo, CO2 set by the carbonate-
silicate thermostat where volcanism and at least 0.02 oceans run it, else random, abiotic
trace gases); the climate (clero where `emulator.in_domain`, with the UM or ExoCAM emulation
drawn per planet; the energy-balance model elsewhere, its fields on the same 32 x 64 grid,
with weather of its own); the labels from that climate (`labels`); last, life and the gases
it adds, which leave the climate as it was.

The carbonate-silicate thermostat (Walker et al. 1981; `climate.weathering_co2`) brings the
surface to a hidden set point N(283 K, 12 K) within its CO2 bounds. Where the energy-balance
model holds the truth, planets beyond the Kopparapu et al. (2014) runaway limit get the
steam atmosphere's warming and lose their oceans; around M dwarfs half of them lost the
water itself to escape, leaving abiotic O2 (`atmosphere`).
"""

from __future__ import annotations

import numpy as np

from astrobio import physics
from astrobio.data.synthetic import atmosphere, climate, emulator, labels, planets, stars
from astrobio.data.synthetic.spectrum import scale_height_m
from astrobio.data.synthetic.water import liquid_area, uniform_latitude_weights

WEATHERING_TARGET_K = (283.0, 12.0)  # mean and spread of the thermostat's set point
THERMOSTAT_MIN_OCEANS = 0.02
VOLCANIC_SHARE = 0.85
GRID = (4, 10, 32, 64)  # the true climate's grid (clero's), whatever the configured cube
DRY_OCEANS = 0.05


def bodies(v: dict[str, np.ndarray], use_clero: bool) -> dict[str, np.ndarray]:
    """Every planet's star, orbit, body, abiotic air and energy-balance mean state (module
    docstring), and where clero holds its climate."""
    star = stars.draw_stars(v["star_class"], v["star_mass"], v["star_luminosity"],
                            v["star_radius"])
    star |= stars.draw_distances(star["teff"], star["luminosity"], v["distance"])
    star |= stars.draw_activity(star["teff"], v["spots"], v["faculae"])
    orbit = planets.draw_orbits(star, v["orbit"], v["orbit_span"], v["eccentricity"])
    body = planets.draw_bodies(v["core_mass"], v["core_fraction"], v["envelope"], v["valley"],
                               orbit["insolation"])
    gaseous = body["gaseous"]
    pressure = planets.surface_pressure(gaseous, body, orbit, star, v["escape"], v["pressure"])
    airless = ~gaseous & (pressure <= 0.0)
    rocky_air = ~gaseous & ~airless
    vol = planets.volatiles(rocky_air, gaseous, airless, v["water"], v["albedo"])
    flux = orbit["insolation"]

    teq_guess = physics.equilibrium_temperature_from_insolation(flux, vol["albedo"])
    volcanic = v["volcanic"] < VOLCANIC_SHARE
    thermostat = rocky_air & volcanic & (vol["water"] > THERMOSTAT_MIN_OCEANS)
    target = WEATHERING_TARGET_K[0] + WEATHERING_TARGET_K[1] * v["weathering"]
    regulated = climate.weathering_co2(teq_guess, target, pressure, vol["available"])
    random_co2 = planets.log_uniform(v["co2"], 10**-4.5, 0.95) * pressure
    pco2 = np.where(thermostat, regulated, random_co2)
    pressure = np.where(thermostat, pressure + regulated, pressure)
    x_co2 = np.where(rocky_air, pco2 / np.maximum(pressure, 1e-30), 0.0)
    rocky_pressure = np.where(rocky_air, pressure, 0.0)

    clero_inputs = emulator.inputs(star["teff"], flux, body["radius"], body["mass"],
                                   orbit["period"], pressure, x_co2, 0.0)
    applicable = rocky_air & orbit["locked"] & (vol["water"] >= emulator.MIN_WATER_OCEANS)
    clero = emulator.in_domain(clero_inputs, applicable) if use_clero else np.zeros_like(
        applicable)
    runaway_flux = physics.habitable_zone_flux(
        star["teff"], planet_mass=body["mass"], out_of_range="clamp")["runaway_greenhouse"]
    runaway = rocky_air & (flux >= runaway_flux) & ~clero
    ts, teq = climate.surface_temperature(flux, vol["albedo"], rocky_pressure,
                                          x_co2 * rocky_pressure, vol["available"], runaway)
    envelope_tau = 1.0 + 5.0 * v["envelope_opacity"]
    ts = np.where(gaseous, teq * (1.0 + climate.EDDINGTON * envelope_tau) ** 0.25, ts)

    ocean = np.where(runaway, 0.0, vol["ocean"])  # a runaway planet's water is steam (or lost)
    m_dwarf = star["teff"] < stars.M_DWARF_TEFF_K
    water_lost = runaway & m_dwarf & (v["o2_loss"] < 0.5)
    humidity = np.where(rocky_air, np.clip(0.2 + 0.6 * vol["available"] + 0.08 * v["humidity"],
                                           0.02, 0.95), np.where(gaseous, 0.3, 0.0))
    humidity = np.where(water_lost, 0.02, humidity)
    vapour = np.minimum(humidity * climate.saturation_vapour_pressure(ts)
                        / np.maximum(rocky_pressure * 1e5, 1.0), 0.9)
    vapour = np.where(runaway & ~water_lost, 0.3 + 0.6 * v["h2o_gas"], vapour)
    x = atmosphere.abiotic(v, gaseous, airless, x_co2, vapour, rocky_air & (ocean > 0),
                           rocky_air & volcanic, water_lost,
                           rocky_air & (vol["water"] < DRY_OCEANS), m_dwarf, teq)
    clero_inputs["CH4"] = x[:, atmosphere.COLUMN["CH4"]]
    return {
        **{f"star_{k}": val for k, val in star.items()},
        **{f"planet_{k}": val for k, val in body.items()}, **orbit, **vol,
        "gaseous": gaseous, "airless": airless, "rocky_air": rocky_air, "pressure": pressure,
        "x_co2": x_co2, "volcanic": volcanic, "ebm_runaway": runaway, "ebm_ts": ts,
        "teq": teq, "ocean": ocean, "humidity": humidity, "water_lost": water_lost,
        "x_abiotic": x, "clero": clero,
        **{f"clero_{k}": val for k, val in clero_inputs.items()},
        "cloud_deck": 10.0 ** (-2.0 * v["cloud_deck"]),
    }


def climates(t: dict[str, np.ndarray], rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
    """Each planet's true climate summary: area-mean surface temperature `ts` (the 1-bar
    temperature for gaseous planets), `liquid_area`, `cloud_cover`, `runaway`."""
    weather = np.empty((len(rngs), climate.N_WEATHER_MODES))
    seeds, gcm = np.empty(len(rngs), np.int64), np.empty(len(rngs), np.int64)
    for b, rng in enumerate(rngs):  # a fixed number of draws per planet, clero or not
        weather[b] = rng.standard_normal(climate.N_WEATHER_MODES)
        seeds[b] = rng.integers(2**62)
        gcm[b] = rng.integers(len(emulator.GCMS))
    cube, cloud_cover = climate.datacube(t["ebm_ts"], t["teq"], t["pressure"], t["airless"],
                                         t["gaseous"], t["locked"], t["humidity"], t["ocean"],
                                         weather, GRID)
    field = cube[:, 0, 0]
    weights = uniform_latitude_weights(GRID[2])
    out = {"ts": np.where(t["gaseous"], t["ebm_ts"],
                          (field.mean(axis=2, dtype=np.float64) * weights).sum(axis=1)),
           "liquid_area": liquid_area(field, t["pressure"], weights),
           "cloud_cover": cloud_cover, "runaway": t["ebm_runaway"].copy(),
           "gcm": np.where(t["clero"], gcm, -1)}
    for b in np.flatnonzero(t["clero"]):
        planet = {name: float(t[f"clero_{name}"][b]) for name in emulator.INPUTS}
        summary = emulator.summary(emulator.draw(planet, emulator.GCMS[gcm[b]], int(seeds[b])),
                                   planet)
        for key, value in summary.items():
            out[key][b] = value
    return out


def labelled(t: dict[str, np.ndarray], c: dict[str, np.ndarray],
             v: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The labels, life, and the air as it is (with life's gases) and its scale height."""
    klass = labels.habitability_class(t["gaseous"], t["airless"], c["runaway"],
                                      c["liquid_area"], c["ts"])
    habitable = klass == labels.TEMPERATE
    life = labels.biosphere(habitable, v["life"], v["expressed"], v["oxygenic"])
    x = atmosphere.with_biosphere(t["x_abiotic"], life["expressed"], life["oxygenic"], v,
                                  t["gaseous"], t["airless"])
    mu = atmosphere.mean_molecular_mass(x, t["gaseous"])
    return {"klass": klass, "habitable": habitable, **life, "x": x,
            "scale_height": scale_height_m(t["teq"], mu, t["planet_mass"], t["planet_radius"]),
            "surface_temperature": c["ts"]}
