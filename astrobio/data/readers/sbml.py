"""SBML metabolic model (.xml, .xml.gz) -> a graph-only `PlanetSample`.

Read with `cobra.io.read_sbml_model` (local files only; nothing is downloaded) and featurised
by `astrobio.data.metabolism.metabolic_graph`, the same function the synthetic generator uses.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from astrobio.config import DataConfig
from astrobio.data.metabolism import metabolic_graph
from astrobio.data.sample import PlanetSample
from astrobio.errors import DataError


def _model_name(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    for suffix in (".xml", ".sbml"):
        name = name.removesuffix(suffix)
    return name


def read_sbml(path: str | Path, data_config: DataConfig | None = None,
              planet_id: str | None = None,
              reaction_activity: dict[str, float] | None = None) -> PlanetSample:
    """A sample whose graph is the metabolic network in `path`.

    `reaction_activity` maps reaction ids to activities in [0, 1] (see `metabolic_graph`);
    `planet_id` defaults to the file name without .xml/.sbml/.gz. Raises `DataError` naming
    the file and sample for an unreadable or empty model, or a bad activity.
    """
    data_config = data_config or DataConfig()
    path = Path(path)
    file, sample = str(path), planet_id or _model_name(path)
    if not path.is_file():
        raise DataError("no such file", file=file, sample=sample)
    import cobra  # optional: imported where used, so the package imports without it

    try:
        model = cobra.io.read_sbml_model(file)
    except Exception as err:  # libsbml and cobra raise assorted types for malformed files
        raise DataError(f"cannot read as SBML: {err}", file=file, sample=sample) from None
    if not model.reactions:
        raise DataError("the model has no reactions", file=file, sample=sample,
                        field="reactions")
    try:
        node_features, edge_index, edge_attr = metabolic_graph(model, reaction_activity)
    except DataError as err:
        # The same error with the file and sample added: its message without the old prefix.
        prefix = str(DataError("", file=err.file, sample=err.sample, field=err.field))
        raise DataError(str(err).removeprefix(prefix), file=file, sample=sample,
                        field=err.field) from None
    blank = PlanetSample.blank(sample, data_config.climate_shape, data_config.spectrum_bins)
    graph = dataclasses.replace(blank, node_features=node_features, edge_index=edge_index,
                                edge_attr=edge_attr).with_present("graph")
    graph.validate(data_config.climate_shape, data_config.spectrum_bins, source=file)
    return graph
