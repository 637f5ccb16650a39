"""A synthetic planet's description: its catalogue entry and observations, with the gaps a
real archive has, written by the shared template family (`astrobio.data.description`).

Each catalogue fact is stated with its own probability (`SHARE`), the radius and mass as the
catalogue lists them. Observations: the spectrum's verdict where the data decide it (a
hypothesis with posterior probability above 0.9 whose evidence beats each other's tenfold,
"strong" on Jeffreys' scale) and the gases it finds (`detections`);
stellar flares for M dwarfs with spots on more than 5 % of the disk, on 60 % of them (the
photometric monitoring that reveals activity); and, for half the planets, a surface
temperature from a thermal-emission measurement, the truth with a 1-sigma error of 20 K
(JWST's TRAPPIST-1 b and c eclipses: 26 and 31 K, Greene et al. 2023, Zieba et al. 2023).
The synthetic name is drawn from real catalogues' prefixes.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from astrobio.data.synthetic import retrieval
from astrobio.data.synthetic.spectrum import ABUNDANCE_FLOOR

CATALOGUES = ("TOI-", "Kepler-", "K2-", "LHS ", "GJ ", "HD ", "LP ", "Wolf ", "KOI-", "TIC ")
SHARE = {"teff": 0.6, "star": 0.25, "period": 0.7, "a": 0.2, "radius": 0.8, "mass": 0.5,
         "insolation": 0.6, "e": 0.3, "j_mag": 0.3}
THERMAL_EMISSION_SHARE = 0.5
THERMAL_EMISSION_ERROR_K = 20.0
ACTIVE_SPOTS, ACTIVE_SHARE = 0.05, 0.6
DECISIVE = 0.9
STRONG_EVIDENCE = np.log(10.0)
# A gas is detected when the spectrum at least halves its prior's spread and its posterior puts
# 97.7 % (tentatively 84 %) above this mixing ratio.
DETECTION_LEVEL = {"H2O": 1e-4, "CO2": 1e-4, "CH4": 1e-5, "O2": 1e-3, "O3": 1e-8,
                   "NH3": 1e-6, "CO": 1e-4, "N2O": 1e-7}


def detections(result: dict) -> list[tuple[str, str]]:
    """The gases a retrieval finds under its more probable atmosphere (module docstring)."""
    probability = result["probability"]
    if probability[retrieval.FLAT] >= DECISIVE:
        return []
    row = 0 if probability[retrieval.SECONDARY] >= probability[retrieval.ENVELOPE] else 1
    found = []
    for k, gas in enumerate(retrieval.RETRIEVED):
        if result["sd"][row, k] > 0.5 * result["prior_sd"][row, k]:
            continue
        level = np.log10(DETECTION_LEVEL[gas] / ABUNDANCE_FLOOR)
        above = ndtr((result["mean"][row, k] - level) / result["sd"][row, k])
        if above > 0.977:
            found.append((gas, "detected"))
        elif above > 0.84:
            found.append((gas, "tentative"))
    return found


def facts(cat: dict[str, float], result: dict | None, active: bool, thermal: float,
          u_thermal: float, rng: np.random.Generator) -> dict:
    """The facts one description states (`description.describe` writes them): `cat` the
    catalogue scalars, `result` the retrieval (None without a spectrum), `thermal` the
    thermal-emission temperature, quoted where `u_thermal` < THERMAL_EMISSION_SHARE."""
    name = f"{CATALOGUES[int(rng.integers(len(CATALOGUES)))]}{int(rng.integers(10, 9999))} " \
           f"{'bcdef'[int(rng.integers(5))]}"
    keep = dict(zip(SHARE, rng.random(len(SHARE)) < np.array(list(SHARE.values())),
                    strict=True))
    f = {"name": name}
    for key, column in (("teff", "st_teff"), ("period", "pl_orbper"), ("a", "pl_orbsmax"),
                        ("radius", "pl_rade"), ("mass", "pl_bmasse"),
                        ("insolation", "pl_insol"), ("e", "pl_orbeccen"), ("j_mag", "j_mag")):
        if keep[key]:
            f[key] = cat[column]
    if keep["star"]:
        f |= {"st_rad": cat["st_rad"], "st_mass": cat["st_mass"]}
    flares = rng.random() < ACTIVE_SHARE  # drawn whatever the star, to keep the stream aligned
    f["active"] = bool(active and flares)
    if result is not None:
        best = int(np.argmax(result["probability"]))
        runner_up = np.sort(result["log_evidence"])[-2]  # log_evidence is 0 at its best
        if (result["probability"][best] >= DECISIVE and result["log_evidence"][best] == 0.0
                and -runner_up >= STRONG_EVIDENCE):
            f["spectrum"] = retrieval.HYPOTHESES[best]
        f["detections"] = detections(result)
    if u_thermal < THERMAL_EMISSION_SHARE:
        f["thermal"] = thermal
    return f
