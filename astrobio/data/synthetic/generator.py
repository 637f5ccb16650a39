"""The pipeline: the planet as it is, what is observed of it, what the observer infers, and
each modality from those observations alone.

For a block of planets (each planet's numbers from its own streams, `draws`):
1. `truth`: star, orbit, body, air, climate (clero or energy balance), labels, life.
2. observation: the catalogue entry (`catalogue`: the params modality), the transmission
   spectrum the programme records (`observing`, `contamination`, `spectrum`; none for a planet
   with no transit in the programme's windows), and the retrieval's posterior and draw
   (`retrieval`).
3. the observer's planet (`observer`): the inferred air through clero or the energy-balance
   model, giving the datacube.
4. the metabolic graph from the observer's environment (`biosphere`), the text from the
   catalogue and observations (`text`, `astrobio.data.description`).
The hidden truth (albedo, water, true air, life) reaches a modality only through what is
observed; the labels come from the truth.

Each sample carries `provenance`: the host class (M, K, GF), the catalogue's insolation and
radius-valley offset log10(Rp / R_valley(S)) (`planets.valley_radius`), which climate model
held the truth (clero-um, clero-exocam or energy_balance) and which made the datacube (clero
or energy_balance), and the transits observed: what the dataset card counts and what
out-of-distribution splits select on.
"""

from __future__ import annotations

import numpy as np

from astrobio.data.description import describe
from astrobio.data.sample import PlanetSample
from astrobio.data.synthetic import (
    biosphere,
    catalogue,
    contamination,
    draws,
    emulator,
    observer,
    observing,
    planets,
    retrieval,
    spectrum,
    stars,
    text,
    truth,
)
from astrobio.data.synthetic.atmosphere import GASES
from astrobio.data.synthetic.spectrum import EARTH_RADIUS_M, SOLAR_RADIUS_M
from astrobio.data.synthetic.water import has_liquid_water
from astrobio.errors import DataError
from astrobio.schema import MODALITIES

GENERATOR_VERSION = "3.0.0"
BLOCK = 64
VOLCANIC_MASS_EARTH = 0.3  # the observer assumes volcanism above it


def observed(start: int, stop: int, config) -> dict:
    """Stages 1 and 2 for planets `start` .. `stop - 1` (module docstring): the variates `v`,
    truth `t`, true climate `c`, labels `lab`, catalogue `cat`, spectra and retrievals."""
    indices = range(start, stop)
    v = draws.variates(config.seed, indices)
    t = truth.bodies(v, config.clero)
    c = truth.climates(t, draws.streams(config.seed, indices, "truth_climate"))
    return observe(v, t, c, truth.labelled(t, c, v), indices, config)


def observe(v: dict, t: dict, c: dict, lab: dict, indices, config) -> dict:
    """Stage 2 for the planets `indices` whose truth is `v`, `t`, `c`, `lab` (`observed`)."""
    seed, n_bins = config.seed, config.spectrum_bins
    cat = catalogue.observe(t, v) | {"j_mag": t["star_j_mag"]}
    n_transits = observing.transits(t["period"], v["transit_phase"])
    ratio = t["planet_radius"] * EARTH_RADIUS_M / (t["star_radius"] * SOLAR_RADIUS_M)
    hours = observing.durations(t["period"], t["star_radius"], t["semi_major_axis"], ratio,
                                v["impact"])
    depth = spectrum.model_depth(lab["x"], lab["scale_height"], t["planet_radius"],
                                 t["star_radius"], np.where(t["airless"], 0.0, t["pressure"]),
                                 c["cloud_cover"], t["cloud_deck"], n_bins)
    epsilon = contamination.factor(n_bins, t["star_teff"], t["star_spot_fraction"],
                                   t["star_facula_fraction"])
    prior, co2 = retrieval.hypothesis_prior(cat), retrieval.thermostat_co2(cat)
    scales, base = retrieval.feature_scale(cat), retrieval.base_depth(cat)
    spots, spot_sd = contamination.spot_contrast(n_bins, cat["st_teff"]), retrieval.spot_prior(cat)
    spectra, results = [], []
    for b, index in enumerate(indices):
        rng = draws.stream(seed, index, "spectrum")
        mask, nirspec = observing.coverage(n_bins, cat["j_mag"][b], v["instrument"][b],
                                           v["gap"][b], rng)
        error = observing.uncertainty(n_bins, cat["j_mag"][b], n_transits[b], hours[b], nirspec)
        recorded = spectrum.observe(depth[b], epsilon[b], error, mask & (n_transits[b] > 0),
                                    rng)
        spectra.append(recorded)
        results.append(retrieval.retrieve(*recorded, scales[b], base[b], spots[b], spot_sd[b],
                                          prior[b], co2[b],
                                          draws.stream(seed, index, "retrieval")))
    active = (t["star_teff"] < stars.M_DWARF_TEFF_K) & (t["star_spot_fraction"]
                                                          > text.ACTIVE_SPOTS)
    thermal = lab["surface_temperature"] + text.THERMAL_EMISSION_ERROR_K * v["thermal_error"]
    return {"v": v, "t": t, "c": c, "lab": lab, "cat": cat, "transits": n_transits,
            "spectra": spectra, "results": results, "active": active, "thermal": thermal}


def facts(o: dict, b: int, rng: np.random.Generator) -> dict:
    """The facts planet `b` of an `observed` block's description states (`text.facts`),
    drawn from its text stream `rng`."""
    spectrum_result = o["results"][b] if o["transits"][b] > 0 else None
    return text.facts({k: float(val[b]) for k, val in o["cat"].items()}, spectrum_result,
                      bool(o["active"][b]), float(o["thermal"][b]),
                      float(o["v"]["thermal_observed"][b]), rng)


def _provenance(o: dict) -> list[dict]:
    cat, t, c = o["cat"], o["t"], o["c"]
    kind = stars.host_class(cat["st_teff"])
    offset = np.log10(cat["pl_rade"] / planets.valley_radius(cat["pl_insol"]))
    source = np.where(t["clero"], np.array([f"clero-{g}" for g in emulator.GCMS])[c["gcm"]],
                      "energy_balance")
    return [{"host_class": str(kind[b]), "insolation": float(cat["pl_insol"][b]),
             "radius_valley_offset": float(offset[b]), "truth_climate": str(source[b]),
             "transits": int(o["transits"][b])} for b in range(len(kind))]


def _block(start: int, stop: int, config) -> list[PlanetSample]:
    o = observed(start, stop, config)
    seed, indices = config.seed, range(start, stop)
    v, lab, cat = o["v"], o["lab"], o["cat"]
    inf = observer.inferred(cat, o["results"])
    cubes, made = observer.climates(cat, inf, draws.streams(seed, indices, "observer_climate"),
                                    config.climate_shape, config.clero)
    env = observer.summary(cubes, inf, made["ebm_ts"])
    params = catalogue.params(cat)
    provenance = _provenance(o)
    samples = []
    for b, index in enumerate(indices):
        nodes, edge_index, edge_attr = biosphere.planet_graph({
            "liquid": bool(has_liquid_water(env["liquid_area"][b])),
            "airless": bool(inf["airless"][b]), "gaseous": bool(inf["gaseous"][b]),
            "volcanic": bool(cat["pl_bmasse"][b] >= VOLCANIC_MASS_EARTH),
            "temperature": float(env["ts"][b]), "pressure": float(inf["pressure"][b]),
            "cloud_cover": float(env["cloud_cover"][b]),
            "x": dict(zip(GASES, inf["x"][b].tolist(), strict=True))},
            draws.stream(seed, index, "graph"))
        text_rng = draws.stream(seed, index, "text")
        description = describe(facts(o, b, text_rng), text_rng)
        recorded, error, mask = o["spectra"][b]
        sample = PlanetSample(
            planet_id=f"synth-{seed}-{index:07d}", climate=cubes[b],
            node_features=nodes, edge_index=edge_index, edge_attr=edge_attr,
            spectrum=recorded, spectrum_err=error, spectrum_mask=mask, params=params[b],
            text=description, present=np.ones(len(MODALITIES), bool),
            habitable=int(lab["habitable"][b]), habitability_class=int(lab["klass"][b]),
            surface_temperature=float(lab["surface_temperature"][b]),
            biosignature=int(lab["life"][b]), has_targets=True,
            provenance=provenance[b] | {"observer_climate": "clero" if made["clero"][b]
                                        else "energy_balance"})
        available = np.ones(len(MODALITIES), bool)
        available[MODALITIES.index("spectrum")] = o["transits"][b] > 0
        samples.append(_drop_missing(sample, _present(v, b, config.missing_modality_rate,
                                                      available), config))
    return samples


def _present(v: dict[str, np.ndarray], b: int, rate: float,
             available: np.ndarray) -> np.ndarray:
    """The modalities a sample keeps: each available one unless its draw falls below `rate`,
    and never none (then the available one with the largest draw)."""
    draws_ = np.stack([v[f"missing_{m}"][b] for m in MODALITIES])
    present = (draws_ >= rate) & available
    if not present.any():
        present[int(np.argmax(np.where(available, draws_, -1.0)))] = True
    return present


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
