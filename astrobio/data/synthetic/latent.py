"""What each modality could at best carry, as numbers: the generator's latent observables, for
reference ceilings per modality subset and for out-of-distribution splits.

`latent(start, stop, config)` runs the generator's stages up to the observer's climate (the
same planets, bit for bit, as `generate_samples`) and returns, per planet, the labels,
metadata and one feature matrix per modality, each holding what that modality is computed
from (by the data-processing inequality no function of a modality knows more about a label
than these inputs and the modality's own noise):

    params    the catalogue entry (`schema.PARAM_NAMES`, log10 of positive values)
    spectrum  the retrieval's posterior: log hypothesis probabilities and evidences [6], the
              gases' posterior means and sds under secondary and envelope [32], the transits
              (NaN without a spectrum); a linear-Gaussian retrieval's posterior summarises its
              spectrum up to the forward model's nonlinearities (clipping, clouds)
    climate   the observer's climate run: its inputs (the inferred hypothesis, pressure and
              gases, the catalogue's flux and whether the orbit locks the planet; where clero
              made the cube also its other inputs, Teff, radius, gravity and period, else NaN)
              and the cube's area-mean surface temperature, liquid-water area and cloud cover
    graph     its environment: the inferred liquid water, temperature, pressure, cloud cover,
              hypothesis, assumed volcanism and gases (the graph adds only random pruning)
    text      the stated facts (NaN where omitted), flares, the spectrum's verdict and
              detections, the thermal-emission temperature

Metadata: `host_class` (M, K, GF), `insolation` and `radius_valley_offset` from the catalogue,
`truth_clero` and `observer_clero`, `transits`.
"""

from __future__ import annotations

import numpy as np

from astrobio.data.synthetic import draws, generator, observer, planets, retrieval, stars
from astrobio.data.synthetic.atmosphere import GASES
from astrobio.data.synthetic.water import has_liquid_water
from astrobio.schema import PARAM_NAMES

TEXT_NUMBERS = ("teff", "st_rad", "st_mass", "period", "a", "radius", "mass", "insolation", "e",
                "j_mag", "thermal")
LEVELS = {"tentative": 1.0, "detected": 2.0}


def _log_gases(x: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(x, 1e-12))


def latent(start: int, stop: int, config) -> dict:
    """Labels, metadata and per-modality features of planets `start` .. `stop - 1` (module
    docstring), as {"labels": {...}, "metadata": {...}, "features": {modality: [B, F]}}."""
    rows = []
    for begin in range(start, stop, generator.BLOCK):
        rows.append(_block(begin, min(begin + generator.BLOCK, stop), config))
    return {part: {key: np.concatenate([r[part][key] for r in rows]) for key in rows[0][part]}
            for part in ("labels", "metadata", "features")}


def _block(start: int, stop: int, config) -> dict:
    o = generator.observed(start, stop, config)
    seed, indices = config.seed, range(start, stop)
    t, lab, cat, results = o["t"], o["lab"], o["cat"], o["results"]
    has_spectrum = o["transits"] > 0
    inf = observer.inferred(cat, results)
    cubes, made = observer.climates(cat, inf, draws.streams(seed, indices, "observer_climate"),
                                    config.climate_shape, config.clero)
    env = observer.summary(cubes, inf, made["ebm_ts"])
    params = np.stack([np.log10(cat[n]) if n != "pl_orbeccen" else cat[n] for n in PARAM_NAMES],
                      axis=1)
    posterior = np.stack([np.concatenate([np.log(np.maximum(r["probability"], 1e-300)),
                                          r["log_evidence"], r["mean"].ravel(),
                                          r["sd"].ravel()]) for r in results])
    spectrum = np.where(has_spectrum[:, None],
                        np.column_stack([posterior, o["transits"]]), np.nan)
    hypothesis = np.eye(3)[inf["hypothesis"]]
    shared = np.column_stack([hypothesis, np.log10(np.maximum(inf["pressure"], 1e-3)),
                              _log_gases(inf["x"])])
    clero_only = np.column_stack([np.log10(cat[n]) for n in ("st_teff", "pl_rade", "pl_orbper")]
                                 + [np.log10(cat["pl_bmasse"] / cat["pl_rade"] ** 2)])
    climate = np.column_stack([shared, np.log10(cat["pl_insol"]),
                               planets.is_locked(cat["pl_orbsmax"], cat["st_mass"]),
                               made["clero"], np.where(made["clero"][:, None], clero_only, np.nan),
                               env["ts"], env["liquid_area"], env["cloud_cover"]])
    graph = np.column_stack([shared, has_liquid_water(env["liquid_area"]), env["ts"],
                             env["cloud_cover"], cat["pl_bmasse"] >= generator.VOLCANIC_MASS_EARTH])
    facts = [generator.facts(o, b, draws.stream(seed, index, "text"))
             for b, index in enumerate(indices)]
    return {
        "labels": {"habitable": lab["habitable"].astype(np.int64),
                   "biosignature": lab["life"].astype(np.int64),
                   "habitability_class": lab["klass"],
                   "surface_temperature": lab["surface_temperature"]},
        "metadata": {"host_class": stars.host_class(cat["st_teff"]),
                     "insolation": cat["pl_insol"],
                     "radius_valley_offset": np.log10(
                         cat["pl_rade"] / planets.valley_radius(cat["pl_insol"])),
                     "truth_clero": t["clero"], "observer_clero": made["clero"],
                     "transits": o["transits"]},
        "features": {"params": params, "spectrum": spectrum, "climate": climate,
                     "graph": graph, "text": np.stack([_text_row(f) for f in facts])},
    }


def _text_row(f: dict) -> np.ndarray:
    numbers = [f.get(key, np.nan) for key in TEXT_NUMBERS]
    verdict = [float(f.get("spectrum") == h) for h in retrieval.HYPOTHESES]
    found = dict(f.get("detections", ()))
    detected = [LEVELS.get(found.get(gas, ""), 0.0) for gas in GASES[1:]]
    return np.array([*numbers, float(f.get("active", False)), *verdict, *detected])
