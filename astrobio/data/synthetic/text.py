"""Catalogue-style descriptions of a planet, with realistic omissions and vagueness.

Each fact appears with its own probability, in one of several phrasings, sometimes as a
rounded number and sometimes only as a word ("a cool red dwarf", "super-Earth-sized"). The
text carries the star, orbit and size (partly, as the parameters do), plus noisy hints the
parameters lack: tidal locking, stellar activity, tentative gas detections, a guess at the
atmosphere's thickness (blind to an H2/He envelope, whose 1-bar level reads as "about a bar")
and, in half the descriptions, a surface temperature retrieved from thermal emission (the
`retrieved_ts` fact, measured with an error), each of which can be missing or wrong. It never
names the habitability class, habitability or life.
"""

from __future__ import annotations

import numpy as np

from astrobio.data.synthetic.climate import KELVIN_FREEZE
from astrobio.data.synthetic.stars import spectral_type

CATALOGUES = ("TOI-", "Kepler-", "K2-", "LHS ", "GJ ", "HD ", "LP ", "Wolf ", "KOI-", "TIC ")
GAS_NAMES = {"H2O": "water vapour", "CO2": "carbon dioxide", "CH4": "methane",
             "O2": "molecular oxygen", "O3": "ozone", "NH3": "ammonia", "CO": "carbon monoxide"}
THERMAL_EMISSION_SHARE = 0.5  # of descriptions quoting a retrieved surface temperature
BOILING_1_BAR_K = 373.15
# A gas is "seen" in the text only above this mixing ratio, and then only sometimes.
DETECTION_LEVEL = {"H2O": 1e-3, "CO2": 1e-3, "CH4": 1e-4, "O2": 1e-2, "O3": 1e-7,
                   "NH3": 1e-5, "CO": 1e-4}


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


def _size_word(radius: float) -> str:
    if radius < 0.8:
        return "smaller than Earth"
    if radius < 1.25:
        return "roughly Earth-sized"
    if radius < 2.0:
        return "super-Earth-sized"
    return "sub-Neptune-sized"


def _star_phrase(teff: float, rng) -> str:
    letter = spectral_type(teff)
    word = {"M": "a cool red dwarf", "K": "an orange K dwarf", "G": "a Sun-like G star",
            "F": "a hot F-type star"}[letter]
    if rng.random() < 0.5:
        return word
    article = "an" if letter in "FM" else "a"
    return _pick(rng, (f"{article} {letter}-type star with Teff = {teff:,.0f} K",
                       f"{article} {letter} dwarf (effective temperature about "
                       f"{round(teff, -1):,.0f} K)",
                       f"a {teff:,.0f} K {letter} star"))


def _thermal_emission(kelvin: float, rng) -> str:
    if kelvin < KELVIN_FREEZE:
        verdict = "below the freezing point of water"
    elif kelvin < BOILING_1_BAR_K:
        verdict = "between the freezing and boiling points of water"
    else:
        verdict = "above the boiling point of water at one bar"
    return _pick(rng, (f"Thermal emission puts the surface near {kelvin:.0f} K, {verdict}.",
                       f"The surface temperature retrieved from its thermal emission is about "
                       f"{kelvin:.0f} K, {verdict}."))


def describe(f: dict, rng: np.random.Generator) -> str:
    """A description of one planet from the facts `f` (scalars and the mixing ratios `x`)."""
    name = f"{_pick(rng, CATALOGUES)}{int(rng.integers(10, 9999))} {_pick(rng, 'bcdef')}"
    opening = _pick(rng, (f"{name} orbits {_star_phrase(f['teff'], rng)}.",
                          f"The planet {name} circles {_star_phrase(f['teff'], rng)}.",
                          f"{name}: host is {_star_phrase(f['teff'], rng)}."))
    facts: list[str] = []
    r = rng.random(16)  # one draw per optional fact, used or not, so the stream stays aligned
    if r[0] < 0.7:
        facts.append(_pick(rng, (f"Its orbital period is {f['period']:.1f} days.",
                                 f"It completes an orbit every {f['period']:.3g} days.",
                                 f"The semi-major axis is {f['a']:.3f} AU.")))
    if r[1] < 0.75:
        if r[2] < 0.5:
            facts.append(f"The radius is {f['radius']:.2f} Earth radii.")
        else:
            facts.append(f"The planet is {_size_word(f['radius'])}.")
    if r[3] < 0.5:
        facts.append(_pick(rng, (f"A radial-velocity mass of {f['mass']:.1f} Earth masses "
                                 "has been reported.",
                                 f"Its mass is about {f['mass']:.2g} M_earth.")))
    elif r[3] < 0.7:
        facts.append("Its mass is not yet constrained.")
    if r[4] < 0.6:
        facts.append(_pick(rng, (f"It receives {f['insolation']:.2f} times the flux Earth gets "
                                 "from the Sun.",
                                 f"Instellation: {f['insolation']:.3g} S_earth.")))
    elif r[4] < 0.8:
        facts.append(f"Assuming an Earth-like albedo its equilibrium temperature would be "
                     f"{f['teq_assumed']:.0f} K.")
    if r[5] < 0.3:
        facts.append("The orbit is nearly circular." if f["e"] < 0.1 else
                     f"The orbit is eccentric (e = {f['e']:.2f}).")
    if f["locked"] and r[6] < 0.5:
        facts.append(_pick(rng, ("It is probably tidally locked.",
                                 "Tidal forces have likely synchronised its rotation.")))
    if f["teff"] < 3900 and r[7] < 0.4:
        facts.append("The host star shows frequent flares.")
    if f["j_mag"] < 9.0 and r[8] < 0.5:
        facts.append(f"The host is bright (J = {f['j_mag']:.1f}), a good target for JWST.")
    if r[9] < 0.35:  # blind to an envelope, whose 1-bar level reads as "about a bar"
        pressure = f["pressure"] * 10.0 ** (0.4 * (r[10] - 0.5))  # a rough retrieval
        if pressure <= 0.0:
            facts.append("The transmission spectrum shows muted features.")
        elif pressure < 0.3:
            facts.append("Retrievals favour a thin atmosphere.")
        elif pressure < 3.0:
            facts.append("Retrievals allow an atmosphere of about a bar.")
        else:
            facts.append("Retrievals point to a thick atmosphere.")
    detected = [gas for gas, level in DETECTION_LEVEL.items()
                if f["x"][gas] > level and rng.random() < 0.35]
    if detected and r[11] < 0.8:
        names = ", ".join(GAS_NAMES[g] for g in detected)
        facts.append(_pick(rng, (f"Tentative detection of {names}.",
                                 f"Absorption attributed to {names} is reported at low "
                                 "significance.")))
    if r[13] < THERMAL_EMISSION_SHARE:
        facts.append(_thermal_emission(f["retrieved_ts"], rng))
    if r[12] < 0.15:
        facts.append(_pick(rng, ("No further observations are scheduled.",
                                 "Follow-up observations are planned.",
                                 "It was found in a multi-planet system.")))
    order = rng.permutation(len(facts))
    return " ".join([opening, *(facts[i] for i in order)])
