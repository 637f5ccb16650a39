"""Metabolic reaction networks as graphs: nodes are metabolites, edges are reaction links.

`metabolic_graph(model, reaction_activity)` turns any cobra model into the sample's graph
arrays. For every reaction, each substrate links to each product in the direction the
reaction's bounds allow (forward when upper_bound > 0, backward when lower_bound < 0, so a
reversible reaction links both ways). A reaction with activity 0 is dropped, and the nodes are
the metabolites that take part in at least one remaining reaction (an exchange reaction, which
has no products, keeps its metabolite as a node but adds no edge).

Node features, float32 [N, 16]:
    0  compartment "c" (cytosol)          1  compartment "e" (extracellular / environment)
    2  any other compartment (all three 0 when the model gives none)
    3-8  log1p of the atom counts of C, H, O, N, P, S in the formula
    9  log1p of all other atoms (metals, R groups, ...)
    10 charge / 4 (0 when unknown)       11 1 when the formula could be read, else 0
    12 log1p(in-degree)                  13 log1p(out-degree)
    14 hub flag: total degree >= HUB_DEGREE_FACTOR x the graph's mean degree (ATP, H2O, H+)
    15 mean activity of the edges touching the node (0 for an isolated node)
Edge features, float32 [E, 4]:
    0  1 when the reaction is reversible (links both ways), else 0
    1  log1p(|stoichiometric coefficient of the edge's product|)
    2  reaction activity (0, 1]
    3  biosignature flag: the reaction, in the edge's direction, makes one of the
       BIOSIGNATURE_GASES (O2, CH4, N2O) without consuming it (so transport is not flagged)

Formulas that are missing or unreadable give zero element counts and feature 11 = 0, never an
error; the compartment and charge may be missing too. `bundled_model(name)` reads the real SBML
models cobra ships as package data (`textbook` = E. coli core), once per process; nothing here
touches the network (never `cobra.io.load_model`, which downloads).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astrobio.errors import DataError
from astrobio.schema import N_EDGE_FEATURES, N_NODE_FEATURES

ELEMENTS = ("C", "H", "O", "N", "P", "S")
BIOSIGNATURE_GASES = ({"O": 2}, {"C": 1, "H": 4}, {"N": 2, "O": 1})
HUB_DEGREE_FACTOR = 2.5
BUNDLED_MODELS = ("textbook", "iJO1366", "salmonella")

# Node feature columns filled per graph (the rest depend on the metabolite alone).
IN_DEGREE, OUT_DEGREE, HUB, MEAN_ACTIVITY = 12, 13, 14, 15
ACTIVITY = 2  # edge feature column


def bundled_model(name: str = "textbook"):
    """A cobra model shipped inside the cobra package (`textbook` = E. coli core), read from
    its SBML file once per process. Treat it as read-only: it is shared."""
    if name not in BUNDLED_MODELS:
        raise DataError(f"unknown bundled model {name!r}; choose one of {BUNDLED_MODELS}",
                        field="model")
    return _read_bundled(name)


@functools.cache
def _read_bundled(name: str):
    import cobra

    path = Path(cobra.__file__).parent / "data" / f"{name}.xml.gz"
    if not path.is_file():
        raise DataError("cobra's package data lacks this model (a cobra install without "
                        "data files?)", file=str(path))
    return cobra.io.read_sbml_model(str(path))


def _elements(metabolite) -> dict[str, float] | None:
    """Atom counts of the formula, or None when it is missing or unreadable."""
    if not metabolite.formula:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cobra warns on formulas it cannot parse
        try:
            counts = metabolite.elements
        except Exception:  # cobra raises assorted errors on malformed formulas
            return None
    if not counts or any(not math.isfinite(v) for v in counts.values()):
        return None
    return {k: float(v) for k, v in counts.items()}


def _static_node_features(metabolite) -> np.ndarray:
    row = np.zeros(N_NODE_FEATURES, np.float32)
    compartment = metabolite.compartment
    if compartment == "c":
        row[0] = 1.0
    elif compartment == "e":
        row[1] = 1.0
    elif compartment:
        row[2] = 1.0
    counts = _elements(metabolite)
    if counts is not None:
        for column, element in enumerate(ELEMENTS, start=3):
            row[column] = math.log1p(max(counts.get(element, 0.0), 0.0))
        others = sum(max(v, 0.0) for k, v in counts.items() if k not in ELEMENTS)
        row[9] = math.log1p(others)
        row[11] = 1.0
    charge = metabolite.charge
    if isinstance(charge, int | float) and math.isfinite(charge):
        row[10] = charge / 4.0
    return row


def _is_biosignature_gas(counts: dict[str, float] | None) -> bool:
    return counts is not None and any(counts == gas for gas in BIOSIGNATURE_GASES)


@dataclass(frozen=True)
class ReactionNetwork:
    """A cobra model's full link structure, precomputed so that `graph(activity)` is a few
    numpy gathers (the synthetic generator calls it once per planet)."""

    reaction_ids: tuple[str, ...]
    metabolite_ids: tuple[str, ...]
    node_static: np.ndarray  # float32 [M, 16], per-graph columns zero
    edge_src: np.ndarray  # int64 [E_all] metabolite index
    edge_dst: np.ndarray  # int64 [E_all]
    edge_reaction: np.ndarray  # int64 [E_all]
    edge_static: np.ndarray  # float32 [E_all, 4], activity column zero
    member_reaction: np.ndarray  # int64 [K] (reaction, metabolite) incidence pairs
    member_metabolite: np.ndarray  # int64 [K]

    @classmethod
    def from_model(cls, model) -> ReactionNetwork:
        metabolites = list(model.metabolites)
        index = {m.id: i for i, m in enumerate(metabolites)}
        gas = [_is_biosignature_gas(_elements(m)) for m in metabolites]
        src, dst, rxn, static, members = [], [], [], [], []
        reactions = list(model.reactions)
        for r, reaction in enumerate(reactions):
            coefficients = {index[m.id]: float(c) for m, c in reaction.metabolites.items()}
            members.extend((r, m) for m in coefficients)
            substrates = [m for m, c in coefficients.items() if c < 0]
            products = [m for m, c in coefficients.items() if c > 0]
            forward = reaction.upper_bound > 0
            backward = reaction.lower_bound < 0
            reversible = float(forward and backward)
            directions = []
            if forward:
                directions.append((substrates, products))
            if backward:
                directions.append((products, substrates))
            for inputs, outputs in directions:
                consumed = any(gas[m] for m in inputs)
                for out in outputs:
                    flag = float(gas[out] and not consumed)
                    weight = math.log1p(abs(coefficients[out]))
                    for source in inputs:
                        src.append(source)
                        dst.append(out)
                        rxn.append(r)
                        static.append((reversible, weight, 0.0, flag))
        node_static = (np.stack([_static_node_features(m) for m in metabolites])
                       if metabolites else np.zeros((0, N_NODE_FEATURES), np.float32))
        pairs = np.asarray(members, np.int64).reshape(-1, 2)
        return cls(
            reaction_ids=tuple(r.id for r in reactions),
            metabolite_ids=tuple(m.id for m in metabolites),
            node_static=node_static.astype(np.float32),
            edge_src=np.asarray(src, np.int64),
            edge_dst=np.asarray(dst, np.int64),
            edge_reaction=np.asarray(rxn, np.int64),
            edge_static=np.asarray(static, np.float32).reshape(-1, N_EDGE_FEATURES),
            member_reaction=pairs[:, 0].copy(),
            member_metabolite=pairs[:, 1].copy(),
        )

    def activity_vector(self, reaction_activity: dict[str, float] | None) -> np.ndarray:
        """Per-reaction activity from a {reaction id: activity} dict; unnamed reactions get 1."""
        activity = np.ones(len(self.reaction_ids), np.float64)
        if not reaction_activity:
            return activity
        position = {rid: i for i, rid in enumerate(self.reaction_ids)}
        for rid, value in reaction_activity.items():
            if rid not in position:
                raise DataError("no such reaction in the model",
                                field=f"reaction_activity[{rid!r}]")
            value = float(value)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise DataError(f"activity {value!r} is not within [0, 1]",
                                field=f"reaction_activity[{rid!r}]")
            activity[position[rid]] = value
        return activity

    def graph(self, activity: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(node_features [N, 16], edge_index [2, E], edge_attr [E, 4]) for per-reaction
        `activity` [R] in [0, 1]; reactions at 0 are dropped."""
        active = activity > 0
        n_metabolites = len(self.metabolite_ids)
        used = np.zeros(n_metabolites, bool)
        used[self.member_metabolite[active[self.member_reaction]]] = True
        new_index = np.cumsum(used) - 1
        keep = active[self.edge_reaction]
        src = new_index[self.edge_src[keep]]
        dst = new_index[self.edge_dst[keep]]
        edge_attr = self.edge_static[keep].copy()
        edge_attr[:, ACTIVITY] = activity[self.edge_reaction[keep]]
        n = int(used.sum())
        x = self.node_static[used].copy()
        in_degree = np.bincount(dst, minlength=n).astype(np.float32)
        out_degree = np.bincount(src, minlength=n).astype(np.float32)
        degree = in_degree + out_degree
        x[:, IN_DEGREE] = np.log1p(in_degree)
        x[:, OUT_DEGREE] = np.log1p(out_degree)
        if n:
            x[:, HUB] = degree >= HUB_DEGREE_FACTOR * max(degree.mean(), 1.0)
        touching = (np.bincount(src, edge_attr[:, ACTIVITY], minlength=n)
                    + np.bincount(dst, edge_attr[:, ACTIVITY], minlength=n))
        x[:, MEAN_ACTIVITY] = touching / np.maximum(degree, 1.0)
        return x, np.stack([src, dst]).astype(np.int64), edge_attr


def metabolic_graph(model, reaction_activity: dict[str, float] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The graph arrays of any cobra model (module docstring for the features).

    `reaction_activity` maps reaction ids to an activity in [0, 1]; reactions not named are
    fully active (1.0) and reactions at 0 are dropped. Returns (node_features float32 [N, 16],
    edge_index int64 [2, E], edge_attr float32 [E, 4]).
    """
    network = ReactionNetwork.from_model(model)
    return network.graph(network.activity_vector(reaction_activity))
