"""The metabolic graph: the metabolism the observer's inferred environment could support."""

import inspect

import numpy as np

from astrobio.data.synthetic import biosphere
from astrobio.data.synthetic.atmosphere import GASES


def env(**changes):
    base = {"liquid": True, "airless": False, "gaseous": False, "volcanic": True,
            "temperature": 290.0, "pressure": 1.0, "cloud_cover": 0.3,
            "x": dict.fromkeys(GASES, 1e-9) | {"N2": 0.78, "CO2": 1e-3, "H2O": 1e-2}}
    if "x" in changes:
        base["x"] = base["x"] | changes.pop("x")
    return base | changes


def running(environment, rng):
    network = biosphere.planet_network()
    activity = biosphere.reaction_activity(environment, rng)
    assert ((activity >= 0) & (activity <= 1)).all()
    return {rid for rid, a in zip(network.reaction_ids, activity, strict=True) if a > 0}


def test_the_graph_never_reads_life():
    # the environment is all the graph sees: no hidden-truth key is read
    source = inspect.getsource(biosphere.reaction_activity)
    for hidden in ("life", "oxygenic", "expressed", "biosignature"):
        assert f'"{hidden}"' not in source


def test_pathways_follow_the_inferred_environment(rng):
    oxic = env(x={"O2": 0.2, "CH4": 1e-5})
    anoxic = env(x={"O2": 1e-8, "CH4": 1e-3})
    core = {r.id for r in biosphere.bundled_model("textbook").reactions}
    for _ in range(5):
        on = running(oxic, rng)
        assert {"CYTBD", "NADH16", "PSII_LUMP", "RBC", "WEATH", "SERP"} <= on
        off = running(anoxic, rng)
        assert "CYTBD" not in off and {"MCR", "FMD", "H2t", "PSII_LUMP"} <= off
        assert len(off & set(biosphere.FERMENTATION)) >= 5
        assert len(on & core) > 40
    frozen = running(env(liquid=False), rng)
    assert not frozen & core and not {"WEATH", "SERP", "FTT", "MCR"} & frozen
    no_carbon = running(env(x={"CO2": 1e-7}), rng)
    assert not {"PSII_LUMP", "RBC", "MCR"} & no_carbon and no_carbon & core
    airless = running(env(airless=True, volcanic=False, liquid=False,
                          x=dict.fromkeys(GASES, 0.0)), rng)
    assert airless == set()
    giant = running(env(gaseous=True, liquid=False, x={"CH4": 1e-3}), rng)
    assert {"COMETH", "NH3SYN"} <= giant and "WEATH" not in giant and not giant & core


def test_habitable_environments_carry_hubs_and_biosignature_edges(rng):
    network = biosphere.planet_network()
    x, edge_index, edge_attr = biosphere.planet_graph(env(x={"O2": 0.2}), rng)
    used = sorted({int(i) for i in edge_index.ravel()})
    assert x.shape[0] >= len(used) > 60
    degree = np.bincount(edge_index.ravel(), minlength=x.shape[0])
    assert x[np.argmax(degree), 14] == 1  # the best-connected metabolite is a hub
    assert edge_attr[:, 3].sum() >= 2  # O2 from photosynthesis (and more)
    dry = biosphere.planet_graph(env(liquid=False), rng)
    assert dry[0].shape[0] < 30 and dry[0].shape[0] < x.shape[0] / 2
    assert len(network.reaction_ids) > 100


def test_temperature_scales_biological_activity(rng):
    warm = biosphere.reaction_activity(env(temperature=300.0), rng)
    cold = biosphere.reaction_activity(env(temperature=275.0), rng)
    core = biosphere._groups()["always"]
    assert cold[core].mean() < 0.5 * warm[core].mean()


def test_graphs_differ_between_planets(rng):
    sizes = {biosphere.planet_graph(env(), rng)[1].shape[1] for _ in range(8)}
    assert len(sizes) > 1
    # without liquid water only the hydrothermal NH3 synthesis is left to chance
    sets = {frozenset(running(env(liquid=False), rng) - {"NH3SYN"}) for _ in range(8)}
    assert len(sets) == 1
