"""The built-in synthetic planets: physically consistent, deterministic, every modality.

    generate_sample(index, config) -> PlanetSample      # from (config.seed, index) only
    generate_samples(start, stop, config) -> list[PlanetSample]
    GENERATOR_VERSION

Physics, in the order the generator follows (each module's docstring has the details and the
sources):
- `stars`: main-sequence hosts, 0.09–1.4 Msun weighted to M dwarfs, then K and G/F; L, R and
  Teff (2600–7200 K) from the relations in `astrobio.physics`.
- `planets`: orbits log-uniform around the Kopparapu et al. (2014) habitable zone, small
  Rayleigh eccentricities, orbit-averaged insolation, tidal locking close in; mass
  log-uniform 0.1–12 Me, radius from Chen & Kipping (2017) with scatter, gaseous above a
  transition drawn across the 1.5–2.0 Re radius valley; atmospheres kept inside the cosmic
  shoreline (Zahnle & Catling 2017), surface pressure growing with mass; CO2 set by a
  carbonate-silicate thermostat (with a hidden set point) where volcanism and water run one,
  else random; hidden water inventory, albedo, humidity; mixing
  ratios of N2, CO2, H2O, CH4, O2, O3, NH3, CO, N2O (life adds O2/O3, CH4 and N2O, abiotic
  O2 builds up on desiccated runaway planets of M dwarfs).
- `climate`: mean surface temperature from a grey energy balance with pressure, CO2 and
  water-vapour greenhouse terms (Earth: Teq 255 K, Ts 288 K; monotone in insolation), and the
  [4, Z, H, W] datacube: latitudinal or day-night structure, adiabat and isothermal
  stratosphere, Clausius–Clapeyron humidity, Sundqvist clouds, liquid surface water.
- `labels`: gaseous / airless / runaway / frozen / temperate; habitable = temperate;
  biosignature = life, present on 55 % of habitable planets.
- `spectrum`: transmission depth (Rp/R*)^2 plus gas bands 2 n H Rp / R*^2 at the DESIGN.md
  band centres, clouds flattening them, JWST-like noise and instrument masks.
- `biosphere` (on `astrobio.data.metabolism`): the real E. coli core model plus
  photosynthesis, methanogenesis and N2O pathways when life is present, on top of a
  geochemical network every planet has; the environment decides which reactions run.
- `text`: catalogue-style descriptions with omissions, never naming the label.

What each modality reveals (no single one decides `habitable`; together they do, and each
holds evidence the other four lack). The datacube and the graph come from a terrestrial
climate model's version of the planet (`generator` docstring): rocky, without runaway physics,
its mean surface temperature off by N(0, 15 K); the other three see the planet as it is.
- params: the star, orbit, insolation, size and mass, hence the habitable-zone position, the
  only exact witness of the runaway-greenhouse limit, and whether the planet is gaseous except
  in the radius valley; NOT its surface pressure, CO2, water or albedo, which move the surface
  temperature by tens of kelvin.
- climate: the model's temperature, humidity, cloud and liquid-water fields, hence the surface
  temperature to about 15 K and the pressure; blind to envelopes and to the runaway.
- spectrum: composition and, through the band amplitudes, scale height (an H2/He envelope
  shows huge features: the spectrum settles the radius valley where the star is small enough)
  and pressure; biosignature gases; noisy (JWST-like, rocky planets' bands are mostly below
  the noise), partly masked, cloud-flattened.
- graph: whether biology runs (life, which implies habitability, exactly) and which water-rock
  and photochemical reactions run in the model climate.
- text: partial, rounded or vague facts, plus noisy hints the parameters lack (tidal locking,
  flares, tentative gas detections, a rough atmosphere-thickness retrieval) and, in half the
  descriptions, a surface temperature from thermal emission (error 20 K), a second
  thermometer independent of the climate model's.
"""

from astrobio.data.synthetic.draws import VARIATES
from astrobio.data.synthetic.generator import GENERATOR_VERSION, generate_sample, generate_samples

__all__ = ["GENERATOR_VERSION", "VARIATES", "generate_sample", "generate_samples"]
