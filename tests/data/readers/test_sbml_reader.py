import gzip
from pathlib import Path

import cobra
import numpy as np
import pytest

from astrobio.config import DataConfig
from astrobio.data.readers import read_sbml
from astrobio.errors import DataError
from astrobio.schema import MODALITIES

CONFIG = DataConfig()
TEXTBOOK = Path(cobra.__file__).parent / "data" / "textbook.xml.gz"


def _tiny_model() -> cobra.Model:
    """A -> B (irreversible), B <=> C (reversible), A exchange: 3 metabolites, 3 directed
    links (the exchange has no product, so no edge)."""
    model = cobra.Model("tiny")
    a, b, c = (cobra.Metabolite(f"{n}_c", formula=f, compartment="c")
               for n, f in (("a", "C6H12O6"), ("b", "C3H4O3"), ("c", "C3H6O3")))
    forward = cobra.Reaction("R_AB", lower_bound=0.0, upper_bound=1000.0)
    forward.add_metabolites({a: -1.0, b: 2.0})
    both = cobra.Reaction("R_BC", lower_bound=-1000.0, upper_bound=1000.0)
    both.add_metabolites({b: -1.0, c: 1.0})
    exchange = cobra.Reaction("EX_a", lower_bound=-10.0, upper_bound=1000.0)
    exchange.add_metabolites({a: -1.0})
    model.add_reactions([forward, both, exchange])
    return model


def test_tiny_written_model(tmp_path):
    path = tmp_path / "tiny.xml"
    cobra.io.write_sbml_model(_tiny_model(), str(path))
    sample = read_sbml(path, CONFIG)
    sample.validate(CONFIG.climate_shape, CONFIG.spectrum_bins)
    assert sample.planet_id == "tiny"
    assert sample.present.tolist() == [m == "graph" for m in MODALITIES]
    assert sample.node_features.shape == (3, 16)
    assert sample.edge_index.shape == (2, 3)
    # Edges as index pairs: one A->B, and B->C plus C->B for the reversible reaction.
    edges = sorted(map(tuple, sample.edge_index.T.tolist()))
    assert len(set(edges)) == 3 and len({i for e in edges for i in e}) == 3
    reversible = sample.edge_attr[:, 0]
    assert sorted(reversible.tolist()) == [0.0, 1.0, 1.0]


def test_textbook_e_coli_core():
    sample = read_sbml(TEXTBOOK, CONFIG)
    sample.validate(CONFIG.climate_shape, CONFIG.spectrum_bins)
    assert sample.planet_id == "textbook"
    assert sample.node_features.shape == (72, 16)  # E. coli core: 72 metabolites
    assert sample.edge_index.shape[1] > 95 and np.isfinite(sample.edge_attr).all()


def test_reaction_activity_drops_reactions(tmp_path):
    path = tmp_path / "tiny.xml"
    cobra.io.write_sbml_model(_tiny_model(), str(path))
    sample = read_sbml(path, CONFIG, reaction_activity={"R_BC": 0.0})
    assert sample.edge_index.shape == (2, 1)  # only A -> B is left
    with pytest.raises(DataError) as info:
        read_sbml(path, CONFIG, planet_id="p1", reaction_activity={"R_XY": 0.5})
    assert (info.value.file, info.value.sample) == (str(path), "p1")
    assert "R_XY" in info.value.field


def test_bad_files(tmp_path):
    truncated = tmp_path / "cut.xml.gz"
    truncated.write_bytes(TEXTBOOK.read_bytes()[:4000])
    not_sbml = tmp_path / "notes.xml"
    not_sbml.write_text("<notes><p>no model here</p></notes>\n")
    empty = tmp_path / "empty.xml.gz"
    with gzip.open(empty, "wt") as handle:
        handle.write("")
    for path in (truncated, not_sbml, empty, tmp_path / "missing.xml"):
        with pytest.raises(DataError) as info:
            read_sbml(path, CONFIG)
        assert info.value.file == str(path), path
