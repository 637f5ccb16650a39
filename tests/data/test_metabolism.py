"""metabolic_graph on cobra's real E. coli core model and on hand-made edge-case models."""

import math

import cobra
import numpy as np
import pytest

from astrobio.data.metabolism import bundled_model, metabolic_graph
from astrobio.errors import DataError


@pytest.fixture(scope="module")
def ecoli():
    return bundled_model("textbook")


def expected_edges(model):
    """(source id, destination id) of every link, counted straight from cobra's objects."""
    edges = []
    for reaction in model.reactions:
        subs = [m.id for m, c in reaction.metabolites.items() if c < 0]
        prods = [m.id for m, c in reaction.metabolites.items() if c > 0]
        if reaction.upper_bound > 0:
            edges += [(s, p) for s in subs for p in prods]
        if reaction.lower_bound < 0:
            edges += [(p, s) for s in subs for p in prods]
    return edges


def node_ids(model, reaction_activity=None):
    active = {r.id for r in model.reactions
              if (reaction_activity or {}).get(r.id, 1.0) > 0}
    return [m.id for m in model.metabolites if any(r.id in active for r in m.reactions)]


def test_ecoli_core_structure(ecoli):
    x, edge_index, edge_attr = metabolic_graph(ecoli)
    assert x.dtype == np.float32 and edge_index.dtype == np.int64 and edge_attr.dtype == np.float32
    assert x.shape == (72, 16) and len(ecoli.metabolites) == 72  # E. coli core: 72, 95
    ids = node_ids(ecoli)
    found = sorted((ids[s], ids[d]) for s, d in edge_index.T)
    assert found == sorted(expected_edges(ecoli))
    assert np.isfinite(x).all() and np.isfinite(edge_attr).all()


def test_hubs_keep_the_highest_degree(ecoli):
    x, edge_index, _ = metabolic_graph(ecoli)
    ids = node_ids(ecoli)
    degree = np.bincount(edge_index.ravel(), minlength=len(ids))
    top = {ids[i] for i in np.argsort(-degree)[:10]}
    assert {"h_c", "h2o_c", "atp_c", "nadh_c"} <= top
    hubs = {ids[i] for i in np.flatnonzero(x[:, 14])}
    assert {"h_c", "h2o_c", "atp_c", "nadh_c", "adp_c"} <= hubs
    assert len(hubs) < 0.3 * len(ids)
    np.testing.assert_allclose(x[:, 12], np.log1p(np.bincount(edge_index[1], minlength=72)))
    np.testing.assert_allclose(x[:, 13], np.log1p(np.bincount(edge_index[0], minlength=72)))


def test_node_features_from_formula_charge_and_compartment(ecoli):
    x, _, _ = metabolic_graph(ecoli)
    ids = node_ids(ecoli)
    glucose = x[ids.index("glc__D_e")]  # C6H12O6, extracellular, charge 0
    np.testing.assert_allclose(glucose[:3], [0, 1, 0])
    np.testing.assert_allclose(glucose[3:10], np.log1p([6, 12, 6, 0, 0, 0, 0]), rtol=1e-6)
    assert glucose[10] == 0 and glucose[11] == 1
    atp = x[ids.index("atp_c")]  # C10H12N5O13P3, charge -4
    np.testing.assert_allclose(atp[3:9], np.log1p([10, 12, 13, 5, 3, 0]), rtol=1e-6)
    assert atp[0] == 1 and atp[10] == pytest.approx(-1.0)
    np.testing.assert_allclose(x[:, 15], 1.0)  # every reaction fully active


def test_edge_features_reversibility_stoichiometry(ecoli):
    _, edge_index, edge_attr = metabolic_graph(ecoli)
    ids = node_ids(ecoli)
    pairs = {(ids[s], ids[d]): edge_attr[k] for k, (s, d) in enumerate(edge_index.T)}
    assert pairs[("cit_c", "acon_C_c")][0] == 1 and ("acon_C_c", "cit_c") in pairs  # ACONTa
    assert pairs[("f6p_c", "fdp_c")][0] == 0  # PFK is irreversible
    assert ("pyr_c", "pep_c") in pairs and pairs[("pep_c", "pyr_c")][0] == 0  # PPS, PYK
    assert pairs[("amp_c", "adp_c")][1] == pytest.approx(math.log1p(2.0))  # ADK1: 2 adp
    assert not edge_attr[:, 3].any()  # E. coli core makes no O2, CH4 or N2O


def test_activity_drops_reactions_and_their_lonely_metabolites(ecoli):
    activity = {"PFK": 0.0, "FBP": 0.0, "FBA": 0.0, "PGI": 0.25}
    x, edge_index, edge_attr = metabolic_graph(ecoli, activity)
    ids = node_ids(ecoli, activity)
    assert "fdp_c" not in ids and len(ids) == 71 and x.shape[0] == 71
    pgi = [k for k, (s, d) in enumerate(edge_index.T) if {ids[s], ids[d]} == {"g6p_c", "f6p_c"}]
    assert pgi and np.allclose(edge_attr[pgi, 2], 0.25)
    assert edge_index.max() < x.shape[0]
    g6p = ids.index("g6p_c")
    assert 0.25 < x[g6p, 15] < 1.0  # mean activity of its edges
    everything_off = {r.id: 0.0 for r in ecoli.reactions}
    x, edge_index, edge_attr = metabolic_graph(ecoli, everything_off)
    assert x.shape == (0, 16) and edge_index.shape == (2, 0) and edge_attr.shape == (0, 4)


def test_bad_activity_names_the_reaction(ecoli):
    with pytest.raises(DataError, match="NOPE"):
        metabolic_graph(ecoli, {"NOPE": 1.0})
    with pytest.raises(DataError, match="PFK"):
        metabolic_graph(ecoli, {"PFK": 1.5})
    with pytest.raises(DataError, match="PFK"):
        metabolic_graph(ecoli, {"PFK": float("nan")})
    with pytest.raises(DataError, match="bundled"):
        bundled_model("e_coli_core")


def test_arbitrary_model_with_missing_data():
    model = cobra.Model("odd")
    water = cobra.Metabolite("w", formula="H2O", compartment="c")
    oxygen = cobra.Metabolite("o", formula="O2", compartment="c")
    oxygen_out = cobra.Metabolite("o_x", formula="O2", compartment="x")
    proton = cobra.Metabolite("p")  # no formula, compartment or charge
    weird = cobra.Metabolite("r", formula="C2H4R")  # an R group
    split = cobra.Reaction("SPLIT", lower_bound=0, upper_bound=10)
    export = cobra.Reaction("EXPORT", lower_bound=-10, upper_bound=10)
    back = cobra.Reaction("BACK", lower_bound=-10, upper_bound=0)  # runs backward only
    model.add_reactions([split, export, back])
    split.add_metabolites({water: -2, oxygen: 1, proton: 4})
    export.add_metabolites({oxygen: -1, oxygen_out: 1})
    back.add_metabolites({weird: -1, proton: 1})
    x, edge_index, edge_attr = metabolic_graph(model)
    ids = [m.id for m in model.metabolites]
    assert x.shape == (5, 16) and np.isfinite(x).all()
    links = {(ids[s], ids[d]): edge_attr[k] for k, (s, d) in enumerate(edge_index.T)}
    assert links[("w", "o")][3] == 1  # makes O2 from water: biosignature flag
    assert links[("o", "o_x")][3] == 0 and links[("o_x", "o")][3] == 0  # transport
    assert ("p", "r") in links and ("r", "p") not in links  # backward-only reaction
    p = x[ids.index("p")]
    assert not p[:12].any()  # nothing known about it
    r = x[ids.index("r")]
    assert r[11] == 1 and r[9] == pytest.approx(math.log1p(1))  # R counts as "other"
    assert x[ids.index("o_x"), 2] == 1  # other compartment
    empty = metabolic_graph(cobra.Model("empty"))
    assert [a.shape for a in empty] == [(0, 16), (2, 0), (0, 4)]
