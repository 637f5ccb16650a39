"""Each synthetic planet's metabolic graph: which reactions of one shared network its inferred
environment could run.

The network (built once per process) joins three parts through shared environmental species
(co2_e, h2o_e, o2_e, h2_e, ch4_e, ...):
- the real E. coli core model that cobra ships (`metabolism.bundled_model("textbook")`), the
  stand-in for a biosphere's central metabolism;
- biosignature pathways added to it: oxygenic photosynthesis (the water-splitting light
  reactions lumped, PRK and RuBisCO: makes O2), hydrogenotrophic methanogenesis (the Wolfe
  cycle condensed to FMD, a lumped FTR-MCH-MTD-MER step, MTR, MCR and HDR: makes CH4) and
  nitric-oxide reduction (NOR: makes N2O);
- a small geochemical network every planet with rock or air has: outgassing and weathering
  (carbonate-silicate cycle), serpentinization and Fischer–Tropsch-type synthesis (abiotic H2
  and CH4), photolysis of H2O and CO2 (abiotic O2), lightning, HCN photochemistry, sulfur
  chemistry and, in H2 envelopes, NH3 and CH4 equilibrium chemistry.

The environment decides what runs, and it is the environment the observer infers
(`observer`: the retrieved air, the climate model's surface), never the planet's hidden truth:
the graph is the metabolism that environment could support, whether or not life is there.
Where the inferred surface holds liquid water (`water.has_liquid_water`) under a secondary
atmosphere, a biosphere could run: the core metabolism (every core
reaction kept with probability 0.92), aerobic respiration where the retrieved O2 exceeds 1e-3,
fermentation without it (and sometimes with), oxygenic photosynthesis and
hydrogenotrophic methanogenesis where CO2 exceeds 1e-5 (methanogens only in anoxic air, or
sometimes beside O2), NO reduction where the air is oxic; biological activity scales with
temperature (Q10 = 2 below 298 K). Water-rock reactions need liquid water, photolysis needs
the gas, lightning a convective cloudy atmosphere, volcanism is assumed on planets of at least
0.3 Earth masses. Reactions that do not run are dropped, so graphs differ in size and shape;
the metabolic hubs (ATP, H2O, NADH, H+) keep their high degree whenever the biosphere runs.
"""

from __future__ import annotations

import functools

import numpy as np

from astrobio.data.metabolism import ReactionNetwork, bundled_model

# E. coli core reaction groups (BiGG ids of cobra's textbook model).
AEROBIC = ("CYTBD", "NADH16", "O2t", "EX_o2_e")
OXYGEN_EXPORT = ("O2t", "EX_o2_e")
FERMENTATION = ("PFL", "ALCD2x", "ACALD", "ACALDt", "LDH_D", "D_LACt2", "ACKr", "PTAr", "ACt2r",
                "ETOHt2r", "FORt2", "FORti", "FRD7", "EX_ac_e", "EX_etoh_e", "EX_for_e",
                "EX_lac__D_e", "EX_acald_e")
ALWAYS = ("Biomass_Ecoli_core", "ATPM", "ATPS4r", "H2Ot", "CO2t", "EX_co2_e", "EX_h2o_e",
          "EX_h_e", "PGK", "GAPD", "PYK")

# New species: id -> (formula or None where the cofactor's formula is not needed, charge)
SPECIES = {
    "h2_e": ("H2", 0), "h2_c": ("H2", 0), "ch4_e": ("CH4", 0), "ch4_c": ("CH4", 0),
    "co_e": ("CO", 0), "no_e": ("NO", 0), "no_c": ("NO", 0), "n2o_c": ("N2O", 0),
    "n2o_e": ("N2O", 0), "n2_e": ("N2", 0), "nh3_e": ("H3N", 0), "hcn_e": ("CHN", 0),
    "so2_e": ("O2S", 0), "h2s_e": ("H2S", 0), "fa_e": ("Fe2O4Si", 0), "mag_e": ("Fe3O4", 0),
    "sio2_e": ("O2Si", 0), "wol_e": ("CaO3Si", 0), "calc_e": ("CCaO3", 0),
    "rb15bp_c": ("C5H8O11P2", -4), "com_c": ("C2H5O3S2", -1), "ch3com_c": ("C3H7O3S2", -1),
    "mfr_c": (None, None), "formmfr_c": (None, None), "h4mpt_c": (None, None),
    "ch3h4mpt_c": (None, None), "cob_c": (None, None), "comcob_c": (None, None),
}

# id -> (stoichiometry, reversible)
PHOTOSYNTHESIS = {
    "PSII_LUMP": ({"h2o_c": -2, "nadp_c": -2, "o2_c": 1, "nadph_c": 2, "h_c": 2}, False),
    "PRK": ({"ru5p__D_c": -1, "atp_c": -1, "rb15bp_c": 1, "adp_c": 1, "h_c": 1}, False),
    "RBC": ({"rb15bp_c": -1, "co2_c": -1, "h2o_c": -1, "3pg_c": 2, "h_c": 2}, False),
}
METHANOGENESIS = {
    "H2t": ({"h2_e": -1, "h2_c": 1}, True),
    "FMD": ({"co2_c": -1, "mfr_c": -1, "h2_c": -1, "formmfr_c": 1, "h2o_c": 1}, False),
    "MER_LUMP": ({"formmfr_c": -1, "h4mpt_c": -1, "h2_c": -2, "mfr_c": 1, "ch3h4mpt_c": 1,
                  "h2o_c": 1}, False),
    "MTR": ({"ch3h4mpt_c": -1, "com_c": -1, "h4mpt_c": 1, "ch3com_c": 1}, False),
    "MCR": ({"ch3com_c": -1, "cob_c": -1, "ch4_c": 1, "comcob_c": 1}, False),
    "HDR": ({"comcob_c": -1, "h2_c": -1, "com_c": 1, "cob_c": 1}, False),
    "CH4t": ({"ch4_c": -1, "ch4_e": 1}, False),
}
DENITRIFICATION = {
    "NOt": ({"no_e": -1, "no_c": 1}, True),
    "NOR": ({"no_c": -2, "q8h2_c": -1, "n2o_c": 1, "h2o_c": 1, "q8_c": 1}, False),
    "N2Ot": ({"n2o_c": -1, "n2o_e": 1}, False),
}
GEOCHEMISTRY = {
    "METAM": ({"calc_e": -1, "sio2_e": -1, "wol_e": 1, "co2_e": 1}, False),
    "WEATH": ({"wol_e": -1, "co2_e": -1, "calc_e": 1, "sio2_e": 1}, False),
    "SERP": ({"fa_e": -3, "h2o_e": -2, "mag_e": 2, "sio2_e": 3, "h2_e": 2}, False),
    "FTT": ({"co2_e": -1, "h2_e": -4, "ch4_e": 1, "h2o_e": 2}, False),
    "SULF": ({"so2_e": -1, "h2_e": -3, "h2s_e": 1, "h2o_e": 2}, False),
    "H2OPHOT": ({"h2o_e": -2, "h2_e": 2, "o2_e": 1}, False),
    "CO2PHOT": ({"co2_e": -2, "co_e": 2, "o2_e": 1}, False),
    "COOX": ({"co_e": -2, "o2_e": -1, "co2_e": 2}, False),
    "LIGHT": ({"n2_e": -1, "co2_e": -2, "no_e": 2, "co_e": 2}, False),
    "HCN": ({"ch4_e": -2, "n2_e": -1, "hcn_e": 2, "h2_e": 3}, False),
    "CH4OX": ({"ch4_e": -1, "o2_e": -2, "co2_e": 1, "h2o_e": 2}, False),
    "NH3SYN": ({"n2_e": -1, "h2_e": -3, "nh3_e": 2}, True),
    "COMETH": ({"co_e": -1, "h2_e": -3, "ch4_e": 1, "h2o_e": 1}, True),
}
CORE_KEEP = 0.92
Q10 = 2.0


@functools.cache
def planet_network() -> ReactionNetwork:
    """The shared network (module docstring), built once per process."""
    import cobra

    model = bundled_model("textbook").copy()
    for sid, (formula, charge) in SPECIES.items():
        met = cobra.Metabolite(sid, formula=formula, compartment=sid[-1], charge=charge)
        model.add_metabolites([met])
    for group in (PHOTOSYNTHESIS, METHANOGENESIS, DENITRIFICATION, GEOCHEMISTRY):
        for rid, (stoichiometry, reversible) in group.items():
            reaction = cobra.Reaction(rid, lower_bound=-1000.0 if reversible else 0.0,
                                      upper_bound=1000.0)
            model.add_reactions([reaction])
            reaction.add_metabolites({model.metabolites.get_by_id(m): float(c)
                                      for m, c in stoichiometry.items()})
    return ReactionNetwork.from_model(model)


@functools.cache
def _groups() -> dict[str, np.ndarray]:
    network = planet_network()
    position = {rid: i for i, rid in enumerate(network.reaction_ids)}
    index = lambda ids: np.array([position[r] for r in ids], np.int64)
    core_ids = [r.id for r in bundled_model("textbook").reactions]
    groups = {"core": index(core_ids), "aerobic": index(AEROBIC),
              "oxygen_export": index(OXYGEN_EXPORT),
              "fermentation": index(FERMENTATION), "always": index(ALWAYS),
              "photosynthesis": index(PHOTOSYNTHESIS), "methanogenesis": index(METHANOGENESIS),
              "denitrification": index(DENITRIFICATION)}
    groups.update({rid: index([rid]) for rid in GEOCHEMISTRY})
    return groups


def reaction_activity(env: dict, rng: np.random.Generator) -> np.ndarray:
    """Per-reaction activity [R] in [0, 1] of `planet_network()` for one planet.

    `env` holds the observer's scalars: liquid (liquid surface water), airless, gaseous,
    volcanic, temperature (K), pressure (bar), cloud_cover and x (the mixing ratios by gas
    name)."""
    g = _groups()
    n = len(planet_network().reaction_ids)
    # a fixed number of draws whatever runs, so the planet's random stream stays aligned
    draws = rng.random(n)
    jitter = rng.uniform(0.5, 1.0, n)
    facultative, methanogens, denitrifiers, ammonia = rng.random(4)
    on = np.zeros(n, bool)
    x = env["x"]
    atmosphere = not env["airless"]
    surface = not env["gaseous"]
    water = env["liquid"] and surface and atmosphere
    geochemistry = {
        "METAM": env["volcanic"] and surface,
        "WEATH": water,
        "SERP": water,
        "FTT": water,
        "SULF": env["volcanic"] and atmosphere and surface,
        "H2OPHOT": atmosphere and x["H2O"] > 1e-4,
        "CO2PHOT": atmosphere and x["CO2"] > 1e-4,
        "COOX": atmosphere and x["CO2"] > 1e-4 and x["O2"] > 1e-6,
        "LIGHT": atmosphere and surface and env["pressure"] > 0.1 and env["cloud_cover"] > 0.1,
        "HCN": atmosphere and x["CH4"] > 1e-5,
        "CH4OX": atmosphere and x["CH4"] > 1e-7 and x["O2"] > 1e-4,
        "NH3SYN": env["gaseous"] or (water and ammonia < 0.3),
        "COMETH": env["gaseous"],
    }
    for rid, runs in geochemistry.items():
        on[g[rid]] = runs
    activity = jitter.copy()
    if water:
        oxic = x["O2"] > 1e-3
        carbon = x["CO2"] > 1e-5
        core = g["core"]
        on[core] = draws[core] < CORE_KEEP
        on[g["always"]] = True
        on[g["aerobic"]] = oxic
        fermenting = (not oxic) or facultative < 0.3
        on[g["fermentation"]] = fermenting & (draws[g["fermentation"]] < CORE_KEEP)
        on[g["photosynthesis"]] = carbon
        if carbon:
            on[g["oxygen_export"]] = True  # photosynthesis exports its O2 through O2t
        on[g["methanogenesis"]] = carbon and ((not oxic) or methanogens < 0.5)
        on[g["denitrification"]] = oxic and denitrifiers < 0.7
        biological = np.zeros(n, bool)
        for name in ("core", "photosynthesis", "methanogenesis", "denitrification"):
            biological[g[name]] = True
        factor = min(1.0, Q10 ** ((env["temperature"] - 298.0) / 10.0))
        activity = np.where(biological, np.maximum(activity * factor, 0.01), activity)
    return np.where(on, activity, 0.0)


def planet_graph(env: dict, rng: np.random.Generator):
    """(node_features, edge_index, edge_attr) of one planet (module docstring)."""
    return planet_network().graph(reaction_activity(env, rng))
