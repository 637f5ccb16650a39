"""The built-in synthetic planets: every modality is what an observer could have.

    generate_sample(index, config) -> PlanetSample      # from (config.seed, index) only
    generate_samples(start, stop, config) -> list[PlanetSample]
    GENERATOR_VERSION
    latent.latent(start, stop, config)                  # each modality's latent observables

The pipeline (`generator`; each module's docstring has the details and the sources):
- the truth (`truth`): host stars (`stars`: M, K, G/F mixture, magnitude-limited distances,
  spots and faculae), orbits and bodies (`planets`: Kopparapu habitable-zone orbits, rocky
  cores by Zeng et al. 2016, envelopes surviving above a photoevaporation threshold, so the
  radius valley is a gap that moves with insolation), air (`atmosphere`: the carbonate-silicate
  thermostat, abiotic false positives), the climate (`emulator`: clero's 3D GCM emulation for
  tidally locked ocean planets in its domain, UM or ExoCAM drawn per planet; `climate`: the
  energy-balance model elsewhere), the labels (`labels`, by `water`'s one liquid-water
  definition) and life, whose gases build up on three quarters of inhabited planets;
- observation: the catalogue entry with its errors (`catalogue`: the params modality), the
  transmission spectrum JWST records (`observing`: transits from the period within a fixed
  programme, noise from J and the transit's duration; `contamination`: unocculted spots and
  faculae, Rackham et al. 2018; `spectrum`);
- inference: a Bayesian retrieval of the spectrum over flat / heavy / H2-envelope hypotheses
  (`retrieval`), whose posterior draw is the observer's planet (`observer`): clero or the
  energy-balance model run on it gives the datacube; the metabolism that inferred environment
  could support gives the graph (`biosphere`); the catalogue and observations give the text
  (`text`, written by `astrobio.data.description`, the template family real planets use).
Every planet draws from its own streams (`draws`), so it is bit-identical in any block, order or
process, clero draws included; `DataConfig.clero = False` uses the energy-balance model for
every climate (machines without clero). Each sample's `provenance` says which model made its
true climate and its datacube; the dataset card counts them per split.

What each modality holds (the hidden truth reaches none of them except through what an
observer sees; tests guard the graph and the datacube against the `life` draw):
- params: the catalogue (star, orbit, insolation, radius, mass with 2-15 % errors), hence the
  habitable-zone position, the radius valley (gas or rock, blurred in the gap) and the cosmic
  shoreline; nothing of the albedo, water or air that move the surface by tens of kelvin.
- spectrum: present only where the programme caught a transit; an H2 envelope's large features
  and water where the star is small and the host bright; a rocky planet's CO2 or CH4 only for
  late M dwarfs over many transits; O2/O3 essentially never; stellar contamination imprints
  false water on spotted M dwarfs. Life's disequilibrium pairs (O2/O3 with CH4; CH4 with CO2
  without CO) are there only where JWST would see them.
- climate: the observer's climate model on the retrieved air (or the prior by size and
  insolation where the spectrum says nothing): a surface temperature and liquid-water map whose
  error against the truth is the budget below.
- graph: the metabolic network that environment could run (liquid water, redox couples from
  the retrieved gases), a summary of the datacube and the retrieval, never of life itself.
- text: part of the catalogue, the spectrum's verdict and detections, flares of active M
  dwarfs and, for half the planets, a thermal-emission surface temperature (error 20 K): an
  independent thermometer.

Error budget of the datacube's area-mean surface temperature against the truth (rocky planets):
the albedo the observer assumes (0.3 against the truth's N(0.3, 0.08): about 15 K), the water
supply and humidity it assumes, the surface pressure drawn from the population's law (0.45
dex), the CO2 retrieved or taken from the thermostat's prior (1.5 dex), the structural
difference between the UM and ExoCAM emulations and the energy-balance model, clero's own
predictive spread, and weather. Measured on the default dataset's planets (seed 0, 4,000
planets, generator 3.0.0; clero held 92 true climates, made 180 datacubes), cube minus truth:

    frozen or temperate, energy balance for both        1,678   bias  -6 K   sd 59 K   |e|~25 K
    clero for both                                         51   bias  -3 K   sd 27 K   |e|~17 K
    clero truth, energy-balance observer                   41   bias +72 K   sd 114 K  |e|~41 K
    energy-balance truth, clero observer (rocky)          121   bias -48 K   sd 32 K   |e|~48 K

(|e|~ the median absolute error). The mixed rows are the structural gap between a 3D GCM of a
locked planet and a grey energy balance, and the runaway limit, which the observer applies at
the 1D Kopparapu flux where clero's locked planets often stay temperate.
"""

import importlib

__all__ = ["GENERATOR_VERSION", "VARIATES", "generate_sample", "generate_samples"]
_HOME = {"GENERATOR_VERSION": "generator", "generate_sample": "generator",
         "generate_samples": "generator", "VARIATES": "draws"}


def __getattr__(name: str):
    # loaded on first use, so that a module of this package (water, stars) imports without
    # the whole pipeline (the shared text templates need them and the pipeline needs those)
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
