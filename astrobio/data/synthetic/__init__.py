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
  1.6–1.8 Re transition; atmospheres kept inside the cosmic shoreline (Zahnle & Catling 2017),
  surface pressure growing with mass; CO2 set by a carbonate-silicate thermostat (with a
  hidden set point) where volcanism and water run one, else random; hidden water inventory,
  albedo, humidity; mixing
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

What each modality reveals (no single one decides `habitable`; together they do):
- params: the star, orbit, insolation, size and mass, hence the habitable-zone position and
  whether the planet is gaseous; NOT its surface pressure, CO2, water or albedo, which move
  the surface temperature by tens of kelvin (a planet inside the zone can be frozen or airless,
  one outside it can be temperate under a thick CO2 atmosphere).
- climate: the temperature, humidity, cloud and liquid-water fields, hence surface temperature
  and liquid water nearly directly, but as a climate-model run with a retrieved atmosphere:
  its mean surface temperature errs by N(0, 12 K), which blurs the frozen / temperate and
  temperate / hot edges; NOT the planet's size or pressure (levels are relative).
- spectrum: composition and, through the band amplitudes, scale height and pressure (gaseous
  envelopes show huge features, airless bodies none); biosignature gases (O2/O3 with CH4);
  noisy (JWST-like, faint hosts give nothing), partly masked, cloud-flattened.
- graph: whether biology runs (hence life, which implies habitability) and which
  water-rock and photochemical reactions run (liquid water, water vapour, O2, CH4); a lifeless
  habitable planet looks like a lifeless frozen one with a subsurface ocean.
- text: partial, rounded or vague facts, plus noisy hints the parameters lack (tidal locking,
  flares, tentative gas detections, a rough atmosphere-thickness retrieval).
"""

from astrobio.data.synthetic.generator import (
    GENERATOR_VERSION,
    VARIATES,
    generate_sample,
    generate_samples,
)

__all__ = ["GENERATOR_VERSION", "VARIATES", "generate_sample", "generate_samples"]
