"""Atmospheric composition: volume mixing ratios of `GASES`, abiotic sources first, then what
a biosphere adds. Every function is vectorised over planets.

Rocky planets have an N2 background, CO2 and water vapour from the climate (`truth`), and
trace gases from abiotic sources, including the false positives a biosignature search meets:
- CH4: photochemical steady state of volcanic outgassing, 1e-9-1e-7; on 30 % of planets with
  liquid water, serpentinization and Fischer-Tropsch synthesis, 1e-6-1e-5 (Guzman-Marmolejo
  et al. 2013: at most ~10 ppm); on 15 % of volcanic planets, reduced outgassing, 1e-6-1e-4
  CH4 with 1e-4-1e-2 CO (Krissansen-Totton et al. 2018: abiotic CH4 comes with CO), except
  in the oxidising air of desiccated planets;
- O2: photochemical, 1e-9-1e-6; on runaway planets of M dwarfs that lost their water to
  escape, 1e-3-0.2 (Luger & Barnes 2015; no CH4 beside it); on dry (< 0.05 oceans), CO2-rich
  (> 10 %) planets of M dwarfs, CO2 photolysis builds 1e-4-1e-2 O2 with 1e-3-0.05 CO (Gao et
  al. 2015, Harman et al. 2015);
- O3 from O2, 10^-6.3 sqrt(O2 / 0.21) (Segura et al. 2003); CO 1e-7-1e-4 from outgassing;
  NH3 1e-10-1e-7; N2O 1e-10-10^-8.5.
Gas giants' envelopes: equilibrium chemistry, H2/He background, CH4 below ~800 K, CO above.

A biosphere (`with_biosphere`) changes only O2, O3, CH4, N2O and CO, so the climate, which is
computed from the abiotic air, does not depend on it. Where its products build up
(`expressed`): oxygenic photosynthesis, O2 10^-2.7-10^-0.68 with CH4 1e-6-3e-5 (Earth: 1.8
ppm) and N2O 1e-7-1e-6, CO a tenth; anoxic methanogenic biospheres, CH4 1e-4-3e-3 (the
Archean, Kharecha et al. 2005) with CO a hundredth (consumed by acetogens). The disequilibrium
pairs that reveal them: O2/O3 with CH4, and CH4 with CO2 but without CO.
"""

from __future__ import annotations

import numpy as np

from astrobio.data.synthetic.planets import log_uniform
from astrobio.data.synthetic.rows import row_matmul

GASES = ("N2", "CO2", "H2O", "CH4", "O2", "O3", "NH3", "CO", "N2O")
MOLAR_MASS = np.array([28.014, 44.01, 18.015, 16.043, 31.999, 47.998, 17.031, 28.010, 44.013])
H2_HE_MOLAR_MASS = 2.3
COLUMN = {g: i for i, g in enumerate(GASES)}
SERPENTINIZING, REDUCED_VOLCANISM = 0.3, 0.15
GIANT_COOL_K = 800.0


def _ozone(oxygen):
    return 10.0**-6.3 * np.sqrt(oxygen / 0.21)


def abiotic(v: dict, gaseous, airless, x_co2, vapour, liquid, volcanic, water_lost, dry,
            m_dwarf, teq) -> np.ndarray:
    """Mixing ratios [B, len(GASES)] without life (module docstring); `v` holds the uniform
    variates ch4, serpentinization, reduced, o2, co, nh3, n2o, h2o_gas."""
    x = np.zeros((len(gaseous), len(GASES)))
    c = COLUMN
    x[:, c["CO2"]] = x_co2
    x[:, c["H2O"]] = vapour
    serpentine = liquid & (v["serpentinization"] < SERPENTINIZING)
    # oxidising (desiccated) air destroys CH4: no reduced outgassing builds up beside it
    reduced = volcanic & (v["reduced"] < REDUCED_VOLCANISM) & ~water_lost
    x[:, c["CH4"]] = np.select([reduced, serpentine],
                               [log_uniform(v["ch4"], 1e-6, 1e-4), log_uniform(v["ch4"], 1e-6,
                                                                               1e-5)],
                               log_uniform(v["ch4"], 1e-9, 1e-7))
    photolysis = dry & m_dwarf & (x_co2 > 0.1)
    oxygen = np.select([water_lost, photolysis],
                       [log_uniform(v["o2"], 1e-3, 0.2), log_uniform(v["o2"], 1e-4, 1e-2)],
                       log_uniform(v["o2"], 1e-9, 1e-6))
    x[:, c["O2"]] = oxygen
    x[:, c["O3"]] = _ozone(oxygen)
    x[:, c["CO"]] = np.select([photolysis, reduced],
                              [log_uniform(v["co"], 1e-3, 0.05), log_uniform(v["co"], 1e-4,
                                                                             1e-2)],
                              log_uniform(v["co"], 1e-7, 1e-4))
    x[:, c["NH3"]] = log_uniform(v["nh3"], 1e-10, 1e-7)
    x[:, c["N2O"]] = log_uniform(v["n2o"], 1e-10, 10**-8.5)
    x = np.where(gaseous[:, None], _giant(v, teq), x)
    return normalise(x, gaseous, airless)


def _giant(v: dict, teq) -> np.ndarray:
    c = COLUMN
    cool = teq < GIANT_COOL_K
    giant = np.zeros((len(teq), len(GASES)))
    giant[:, c["N2"]] = 1e-4
    giant[:, c["H2O"]] = log_uniform(v["h2o_gas"], 1e-4, 1e-2)
    giant[:, c["CH4"]] = np.where(cool, log_uniform(v["ch4"], 1e-4, 10**-2.5),
                                  log_uniform(v["ch4"], 1e-6, 1e-4))
    giant[:, c["CO"]] = np.where(cool, log_uniform(v["co"], 1e-6, 1e-4),
                                 log_uniform(v["co"], 1e-4, 10**-2.5))
    giant[:, c["NH3"]] = log_uniform(v["nh3"], 1e-6, 10**-4.5)
    giant[:, c["CO2"]] = log_uniform(v["co2"], 1e-6, 1e-4)
    return giant


def normalise(x, gaseous, airless) -> np.ndarray:
    """Trace gases of rocky planets capped at 99 % of the air, N2 the rest; zero for airless
    bodies; gas giants keep their H2/He background implicit."""
    n2 = COLUMN["N2"]
    trace = x.sum(axis=1) - x[:, n2]
    scale = np.where(gaseous | (trace <= 0.99), 1.0, 0.99 / np.maximum(trace, 1e-30))
    x = x * scale[:, None]
    rocky = ~gaseous
    x[rocky, n2] = 1.0 - (x[rocky].sum(axis=1) - x[rocky, n2])
    return np.where(airless[:, None], 0.0, x)


def with_biosphere(x, expressed, oxygenic, v: dict, gaseous, airless) -> np.ndarray:
    """`x` with the products of biospheres where `expressed` (module docstring); `v` holds
    the uniform variates bio_o2, bio_ch4, bio_n2o."""
    c = COLUMN
    out = x.copy()
    oxic = expressed & oxygenic
    anoxic = expressed & ~oxygenic
    o2 = log_uniform(v["bio_o2"], 10**-2.7, 10**-0.68)
    out[:, c["O2"]] = np.where(oxic, np.maximum(o2, x[:, c["O2"]]), x[:, c["O2"]])
    out[:, c["O3"]] = _ozone(out[:, c["O2"]])
    out[:, c["CH4"]] = np.select([oxic, anoxic], [log_uniform(v["bio_ch4"], 1e-6, 3e-5),
                                                  log_uniform(v["bio_ch4"], 1e-4, 3e-3)],
                                 x[:, c["CH4"]])
    out[:, c["N2O"]] = np.where(oxic, log_uniform(v["bio_n2o"], 1e-7, 1e-6), x[:, c["N2O"]])
    out[:, c["CO"]] = x[:, c["CO"]] * np.select([oxic, anoxic], [0.1, 0.01], 1.0)
    return np.where(expressed[:, None], normalise(out, gaseous, airless), x)


def mean_molecular_mass(x: np.ndarray, gaseous) -> np.ndarray:
    """mu in g/mol: the mixing-ratio weighted mass, with the H2/He background of gas planets."""
    traced = row_matmul(x, MOLAR_MASS)
    background = np.clip(1.0 - x.sum(axis=1), 0.0, 1.0) * H2_HE_MOLAR_MASS
    return np.where(gaseous, traced + background, np.maximum(traced, 1.0))
