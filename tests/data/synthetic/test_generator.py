"""The generator's contract: determinism (clero draws included), observables only (life reaches
no modality except through what an observer sees), shapes, missing modalities, labels, balance
and provenance."""

import dataclasses
import hashlib
import subprocess
import sys

import numpy as np
import pytest

from astrobio.config import DataConfig
from astrobio.data.synthetic import GENERATOR_VERSION, draws, generate_sample, generate_samples
from astrobio.data.synthetic import generator as generator_module
from astrobio.data.synthetic.labels import EXPRESSED_PROBABILITY
from astrobio.errors import DataError
from astrobio.schema import HABITABILITY_CLASSES, MODALITIES, PARAM_NAMES

ARRAYS = ("climate", "node_features", "edge_index", "edge_attr", "spectrum", "spectrum_err",
          "spectrum_mask", "params", "present")
LABELS = ("habitable", "habitability_class", "surface_temperature", "biosignature")


def assert_same(a, b, labels=LABELS):
    assert a.planet_id == b.planet_id and a.text == b.text
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in labels:
        assert getattr(a, name) == getattr(b, name), name
    assert a.provenance == b.provenance


def digest(sample) -> str:
    h = hashlib.sha256(sample.text.encode())
    for name in ARRAYS:
        h.update(np.ascontiguousarray(getattr(sample, name)).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def block(shared_config):
    """Planets 7 .. 206 of the session's seed, and the indices where clero made a climate."""
    config = DataConfig(seed=shared_config.seed)
    samples = generate_samples(7, 207, config)
    clero = [s for s in samples if s.provenance["truth_climate"] != "energy_balance"
             or s.provenance["observer_climate"] == "clero"]
    return config, samples, [int(s.planet_id.rsplit("-", 1)[1]) for s in clero]


def test_same_sample_in_any_block_and_order(block):
    config, samples, clero = block
    assert clero, "no clero planet among 200: the domain check or the population changed"
    for index in [*clero[:4], 7, 77, 206]:
        assert_same(generate_sample(index, config), samples[index - 7])
    for start in (clero[0] - 3, clero[0] - 70):  # other blocks around a clero planet
        start = max(start, 0)
        other = generate_samples(start, clero[0] + 5, config)
        assert_same(other[clero[0] - start], samples[clero[0] - 7])


def test_same_sample_in_another_process(block):
    config, samples, clero = block
    index = clero[0]
    code = (
        "import hashlib, numpy as np\n"
        "from astrobio.config import DataConfig\n"
        "from astrobio.data.synthetic import generate_sample\n"
        f"s = generate_sample({index}, DataConfig(seed={config.seed}))\n"
        "h = hashlib.sha256(s.text.encode())\n"
        f"for name in {ARRAYS!r}:\n"
        "    h.update(np.ascontiguousarray(getattr(s, name)).tobytes())\n"
        "print(h.hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == digest(samples[index - 7])


def _with(monkeypatch, **fixed):
    original = draws.variates

    def variates(seed, indices):
        v = original(seed, indices)
        for name, value in fixed.items():
            v[name] = np.full_like(v[name], value)
        return v

    monkeypatch.setattr(generator_module.draws, "variates", variates)


def test_hidden_life_reaches_no_modality(monkeypatch, test_seed):
    """Planets that differ only in `life` (a biosphere whose gases do not build up) are the
    same in every modality; only the biosignature label differs."""
    config = DataConfig(seed=test_seed % 10_000, missing_modality_rate=0.0)
    _with(monkeypatch, life=0.0, expressed=EXPRESSED_PROBABILITY + 0.01)
    alive = generate_samples(0, 150, config)
    _with(monkeypatch, life=0.99, expressed=EXPRESSED_PROBABILITY + 0.01)
    barren = generate_samples(0, 150, config)
    inhabited = [a.biosignature for a in alive]
    assert sum(inhabited) >= 20 and not any(b.biosignature for b in barren)
    for a, b in zip(alive, barren, strict=True):
        assert_same(a, b, labels=("habitable", "habitability_class", "surface_temperature"))


def test_expressed_life_shows_in_the_spectrum_only_through_its_gases(monkeypatch, test_seed):
    config = DataConfig(seed=test_seed % 10_000, missing_modality_rate=0.0)
    _with(monkeypatch, life=0.0, expressed=0.0)
    alive = generate_samples(0, 150, config)
    _with(monkeypatch, life=0.99, expressed=0.0)
    barren = generate_samples(0, 150, config)
    changed = 0
    for a, b in zip(alive, barren, strict=True):
        np.testing.assert_array_equal(a.params, b.params)  # the catalogue never knows
        if a.biosignature and a.present[MODALITIES.index("spectrum")]:
            changed += not np.array_equal(a.spectrum, b.spectrum)
        elif not a.biosignature:
            assert_same(a, b)
    assert changed >= 10


def test_different_indices_and_seeds_differ(test_seed):
    config = DataConfig(seed=test_seed % 10_000, missing_modality_rate=0.0)
    a, b = generate_samples(0, 2, config)
    c = generate_sample(0, dataclasses.replace(config, seed=config.seed + 1))
    for other in (b, c):
        assert not np.array_equal(a.params, other.params)
        assert not np.array_equal(a.climate, other.climate)
        assert a.text != other.text


def test_every_sample_validates_with_its_fields(shared_samples, shared_config):
    assert GENERATOR_VERSION == "3.0.0"
    for sample in shared_samples:
        sample.validate(shared_config.climate_shape, shared_config.spectrum_bins)
        assert sample.planet_id.startswith(f"synth-{shared_config.seed}-")
        assert sample.has_targets and sample.input_ids is None
        assert sample.text and sample.node_features.dtype == np.float32
        # the only modality the shared config drops is a spectrum never recorded
        spectrum = sample.present[MODALITIES.index("spectrum")]
        assert sample.present.sum() >= 4 and spectrum == (sample.provenance["transits"] > 0)


def test_odd_shapes_validate(test_seed):
    config = DataConfig(seed=test_seed % 10_000, climate_levels=3, lat=5, lon=7,
                        spectrum_bins=17, missing_modality_rate=0.3)
    for sample in generate_samples(0, 40, config):
        sample.validate(config.climate_shape, config.spectrum_bins)
        assert sample.climate.shape == (4, 3, 5, 7)


def test_params_are_a_catalogue(shared_samples):
    p = np.stack([s.params for s in shared_samples]).astype(np.float64)
    col = {name: p[:, i] for i, name in enumerate(PARAM_NAMES)}
    assert ((col["st_teff"] >= 2400) & (col["st_teff"] <= 7700)).all()
    np.testing.assert_allclose(col["st_lum"], col["st_rad"] ** 2 * (col["st_teff"] / 5772) ** 4,
                               rtol=1e-4)
    expected = col["st_lum"] / (col["pl_orbsmax"] ** 2 * np.sqrt(1 - col["pl_orbeccen"] ** 2))
    np.testing.assert_allclose(col["pl_insol"], expected, rtol=1e-4)
    assert ((col["pl_bmasse"] >= 0.05) & (col["pl_bmasse"] <= 25)).all()
    assert (col["st_mass"] < 0.6).mean() > 0.3  # M dwarfs are the most common hosts


def test_labels_follow_the_class_rules(shared_samples):
    classes = {name: i for i, name in enumerate(HABITABILITY_CLASSES)}
    for s in shared_samples:
        assert s.habitable == int(s.habitability_class == classes["temperate"])
        assert s.biosignature <= s.habitable  # life only where habitable
        if s.habitability_class == classes["frozen"]:
            assert s.surface_temperature < 273.15
    hot = [s for s in shared_samples if s.habitability_class == classes["runaway"]]
    assert hot and all(s.surface_temperature > 250.0 for s in hot)


def test_label_balance(shared_samples):
    habitable = np.mean([s.habitable for s in shared_samples])
    assert 0.22 <= habitable <= 0.5
    classes = np.bincount([s.habitability_class for s in shared_samples],
                          minlength=len(HABITABILITY_CLASSES))
    assert (classes >= 0.03 * len(shared_samples)).all(), classes
    life = np.mean([s.biosignature for s in shared_samples])
    assert 0.3 * habitable <= life <= 0.8 * habitable


def test_provenance(shared_samples):
    kinds = {s.provenance["host_class"] for s in shared_samples}
    assert kinds == {"M", "K", "GF"}
    truth = {s.provenance["truth_climate"] for s in shared_samples}
    assert "energy_balance" in truth and truth <= {"energy_balance", "clero-um", "clero-exocam"}
    for s in shared_samples:
        assert s.provenance["insolation"] == pytest.approx(
            float(s.params[PARAM_NAMES.index("pl_insol")]), rel=1e-6)


def test_without_clero_every_climate_is_the_energy_balance(test_seed):
    config = DataConfig(seed=test_seed % 10_000, clero=False)
    for s in generate_samples(0, 120, config):
        assert s.provenance["truth_climate"] == s.provenance["observer_climate"] == \
            "energy_balance"


def test_text_states_only_observations(shared_samples):
    forbidden = ("habitab", "temperate", "frozen", "runaway", "airless", "gaseous", "life",
                 "biosignature", "inhabited", "ocean", "density", "equilibrium")
    texts = [s.text for s in shared_samples]
    for t in texts:
        assert not any(word in t.lower() for word in forbidden), t
    assert len(set(texts)) == len(texts)
    for phrase in ("radius", "orbit", "mass", "S_earth", "Teff"):
        assert np.mean([phrase in t for t in texts]) < 0.95, phrase
    numbers = [s for s in shared_samples if "Earth radii." in s.text]
    assert numbers
    for s in numbers[:50]:  # a stated radius is the catalogue's, rounded
        stated = float(s.text.split(" Earth radii.")[0].rsplit(" ", 1)[1])
        assert stated == pytest.approx(s.params[PARAM_NAMES.index("pl_rade")], abs=0.006)


@pytest.mark.parametrize("rate", [0.0, 0.5, 1.0])
def test_missing_modalities_are_zeros_with_present_false(test_seed, rate):
    config = DataConfig(seed=test_seed % 10_000, missing_modality_rate=rate)
    samples = generate_samples(0, 60, config)
    absent = np.stack([~s.present for s in samples])
    assert not absent.all(axis=1).any()  # never all five
    others = np.delete(absent, MODALITIES.index("spectrum"), axis=1)
    if rate == 0.0:
        assert not others.any()
    elif rate == 1.0:
        assert (absent.sum(axis=1) == len(MODALITIES) - 1).all()
    else:
        assert 0.3 < others.mean() < 0.7
    for s in samples:
        s.validate(config.climate_shape, config.spectrum_bins)
        if not s.is_present("climate"):
            assert not s.climate.any() and s.climate.shape == config.climate_shape
        if not s.is_present("graph"):
            assert s.node_features.shape == (0, 16) and s.edge_index.shape == (2, 0)
            assert s.edge_attr.shape == (0, 4)
        if not s.is_present("spectrum"):
            assert not (s.spectrum.any() or s.spectrum_err.any() or s.spectrum_mask.any())
        if not s.is_present("params"):
            assert not s.params.any()
        if not s.is_present("text"):
            assert s.text == ""
        assert s.has_targets  # labels stay whatever is missing


def test_bad_ranges_raise_data_error():
    config = DataConfig()
    with pytest.raises(DataError, match="stop"):
        generate_samples(5, 3, config)
    with pytest.raises(DataError, match="start"):
        generate_samples(-1, 3, config)
    with pytest.raises(DataError, match="missing_modality_rate"):
        generate_samples(0, 1, DataConfig(missing_modality_rate=1.5))
    assert generate_samples(4, 4, config) == []


def test_datacube_error_budget(shared_samples, shared_config):
    """The observer's cube misses the true mean surface temperature by the budget the package
    docstring measures (frozen and temperate planets, energy balance for truth and observer:
    bias -6 K, sd 59 K, median |error| 25 K on 4,000 planets)."""
    from astrobio.data.synthetic.water import uniform_latitude_weights

    weights = uniform_latitude_weights(shared_config.lat)
    rocky = [s for s in shared_samples
             if s.habitability_class in (HABITABILITY_CLASSES.index("frozen"),
                                         HABITABILITY_CLASSES.index("temperate"))
             and s.provenance["truth_climate"] == s.provenance["observer_climate"]
             == "energy_balance"]
    assert len(rocky) > 100
    error = np.array([(s.climate[0, 0].mean(axis=1) * weights).sum() - s.surface_temperature
                      for s in rocky])
    assert abs(error.mean()) < 15.0
    assert 35.0 < error.std() < 90.0 and 12.0 < np.median(abs(error)) < 40.0
