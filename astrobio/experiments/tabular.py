"""Gradient-boosted trees and logistic regression on documented hand features: the strongest
simple alternative every claim of the unified model is measured against.

Hand features of one planet, each block NaN where its modality is absent:

    params    log10 of every parameter but the eccentricity, which is kept as is   [P]
    climate   per variable and pressure level: mean and standard deviation over the
              latitude-longitude grid                                             [2 V Z]
    spectrum  the wavelength grid cut into 24 equal chunks; per chunk the inverse-variance
              weighted mean of the observed depths minus the planet's median observed depth
              (ppm; NaN where a chunk has no observed bin), and the median itself     [25]
    graph     node and edge counts, mean node features, mean edge features    [2 + F + Fe]
    text      whether the text states a surface temperature from thermal emission, and
              that temperature (K; NaN where not stated), then word unigrams and bigrams
              hashed into 2^8 counts (scikit-learn's HashingVectorizer, l2-normalised)
                                                                                      [258]
    present   1 where the modality is present                                        [M]

Models (scikit-learn): `gbt` is HistGradientBoostingClassifier/-Regressor with early stopping
on a tenth of the training planets (none where too few planets of a class leave no
stratified tenth: then 500 iterations; it splits on missing values natively); `logistic` is
logistic regression (ridge for the temperature) on standardised features with missing ones
set to 0 (their `present` flags are features), the L2 strength chosen on the validation split
from 10^-3 ... 10^2. Each predicts every target the networks do, so both are scored alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import numpy as np
from threadpoolctl import threadpool_limits

from astrobio.data.sample import PlanetSample
from astrobio.schema import MODALITIES, PARAM_NAMES

SPECTRUM_CHUNKS = 24
TEXT_FEATURES = 2**8
ECCENTRICITY = PARAM_NAMES.index("pl_orbeccen")
REGULARISATION_GRID = 10.0 ** np.arange(-3, 3)
VALIDATION_FRACTION = 0.1
# the two phrasings of `astrobio.data.description`'s thermal-emission sentence
THERMAL = re.compile(r"thermal emission (?:puts the surface near|is about) (\d+) K", re.I)


def _params(sample: PlanetSample) -> np.ndarray:
    values = sample.params.astype(np.float64)
    logs = np.log10(np.maximum(values, 1e-30))
    logs[ECCENTRICITY] = values[ECCENTRICITY]
    return logs


def _climate(sample: PlanetSample) -> np.ndarray:
    cube = sample.climate.astype(np.float64)
    return np.concatenate([cube.mean(axis=(2, 3)).ravel(), cube.std(axis=(2, 3)).ravel()])


def _spectrum(sample: PlanetSample) -> np.ndarray:
    mask = sample.spectrum_mask.astype(bool)
    chunks = np.array_split(np.arange(len(mask)), SPECTRUM_CHUNKS)
    if not mask.any():
        return np.full(SPECTRUM_CHUNKS + 1, np.nan)
    median = float(np.median(sample.spectrum[mask]))
    weights = np.where(mask, 1.0 / np.maximum(sample.spectrum_err, 1e-6) ** 2, 0.0)
    features = []
    for chunk in chunks:
        w = weights[chunk]
        features.append((w * sample.spectrum[chunk]).sum() / w.sum() - median
                        if w.sum() > 0 else np.nan)
    return np.array([*features, median])


def _graph(sample: PlanetSample) -> np.ndarray:
    nodes, edges = sample.node_features, sample.edge_attr
    node_mean = nodes.mean(axis=0) if len(nodes) else np.zeros(nodes.shape[1])
    edge_mean = edges.mean(axis=0) if len(edges) else np.zeros(edges.shape[1])
    return np.concatenate([[len(nodes), len(edges)], node_mean, edge_mean])


def _thermal(text: str) -> np.ndarray:
    found = THERMAL.search(text)
    return np.array([1.0, float(found.group(1))]) if found else np.array([0.0, np.nan])


BLOCKS = {"params": _params, "climate": _climate, "spectrum": _spectrum, "graph": _graph}


def hand_features(samples: Iterable[PlanetSample]) -> np.ndarray:
    """[n, features]: the blocks of the module docstring, side by side."""
    from sklearn.feature_extraction.text import HashingVectorizer

    samples = list(samples)
    text = HashingVectorizer(n_features=TEXT_FEATURES, ngram_range=(1, 2),
                             alternate_sign=False).transform([s.text for s in samples])
    rows = []
    for sample, words in zip(samples, text, strict=True):
        present = dict(zip(MODALITIES, sample.present.astype(bool), strict=True))
        blocks = []
        for name, block in BLOCKS.items():
            values = block(sample)
            blocks.append(values if present[name] else np.full(len(values), np.nan))
        text = np.concatenate([_thermal(sample.text), words.toarray().ravel()])
        if not present["text"]:
            text = np.full(len(text), np.nan)
        rows.append(np.concatenate([*blocks, text, sample.present.astype(np.float64)]))
    return np.asarray(rows)


def targets(samples: Iterable[PlanetSample]) -> dict[str, np.ndarray]:
    """The label columns `astrobio.eval.evaluate.predict` returns, for the same scoring."""
    samples = list(samples)
    return {
        "habitable": np.array([s.habitable for s in samples]),
        "biosignature": np.array([s.biosignature for s in samples]),
        "habitability_class": np.array([s.habitability_class for s in samples]),
        "surface_temperature": np.array([s.surface_temperature for s in samples],
                                        dtype=np.float32),
        "has_targets": np.array([s.has_targets for s in samples]),
    }


def _gbt(kind: str, seed: int, early_stopping: bool = True):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor if kind == "regression" else \
        HistGradientBoostingClassifier
    return model(max_iter=500, early_stopping=early_stopping,
                 validation_fraction=VALIDATION_FRACTION,
                 n_iter_no_change=20, random_state=seed)


def _linear(kind: str, strength: float):
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = Ridge(alpha=strength) if kind == "regression" else \
        LogisticRegression(C=1.0 / strength, max_iter=2000)
    return make_pipeline(StandardScaler(), model)


def _stratifiable(kind: str, y: np.ndarray) -> bool:
    """Whether the GBT's stratified early-stopping split can be drawn: two planets of every
    class, and a tenth of them at least one per class."""
    if kind == "regression":
        return True
    counts = np.unique(y, return_counts=True)[1]
    held = math.ceil(VALIDATION_FRACTION * len(y))
    return counts.min() >= 2 and min(held, len(y) - held) >= len(counts)


def _fit(model_name: str, kind: str, train: tuple, val: tuple, seed: int):
    """A fitted estimator; for `logistic` the regularisation with the best validation score."""
    x, y = train
    if model_name == "gbt":
        return _gbt(kind, seed, early_stopping=_stratifiable(kind, y)).fit(x, y)
    x, x_val = np.nan_to_num(x), np.nan_to_num(val[0])
    best = None
    for strength in REGULARISATION_GRID:
        model = _linear(kind, strength).fit(x, y)
        score = model.score(x_val, val[1])  # accuracy or R^2: higher is better
        if best is None or score > best[0]:
            best = (score, model)
    return best[1]


def fit_predict(model_name: str, train: list[PlanetSample], val: list[PlanetSample],
                test: list[PlanetSample], seed: int = 0) -> dict[str, np.ndarray]:
    """`model_name` ("gbt" or "logistic") trained on the labelled `train` planets, its
    predictions for `test` as `astrobio.eval.evaluate.predict` returns them."""
    if model_name not in ("gbt", "logistic"):
        raise ValueError(f"unknown tabular model {model_name!r}; choose gbt or logistic")
    train = [s for s in train if s.has_targets]
    val = [s for s in val if s.has_targets]
    x, x_val, x_test = (hand_features(samples) for samples in (train, val, test))
    y, y_val = targets(train), targets(val)
    if model_name == "logistic":
        x_test = np.nan_to_num(x_test)
    with threadpool_limits(1):
        predictions = _predict_every_target(model_name, (x, y), (x_val, y_val), x_test, seed)
    return {**predictions, **targets(test)}


def _predict_every_target(model_name: str, train: tuple, val: tuple, x_test: np.ndarray,
                          seed: int) -> dict[str, np.ndarray]:
    (x, y), (x_val, y_val) = train, val
    n_test, predictions = len(x_test), {}
    for name, kind in (("habitable", "binary"), ("biosignature", "binary"),
                       ("habitability_class", "multiclass"),
                       ("surface_temperature", "regression")):
        if kind != "regression" and len(np.unique(y[name])) < 2:  # nothing to learn apart
            only = y[name][0]
            predictions.update({f"p_{name}": np.full(n_test, float(only))} if
                               kind == "binary" else
                               {"predicted_class": np.full(n_test, only)})
            continue
        model = _fit(model_name, kind, (x, y[name]), (x_val, y_val[name]), seed)
        if kind == "binary":
            predictions[f"p_{name}"] = model.predict_proba(x_test)[:, 1]
        elif kind == "multiclass":
            predictions["predicted_class"] = model.predict(x_test)
        else:
            predictions["predicted_temperature"] = model.predict(x_test)
    return predictions
