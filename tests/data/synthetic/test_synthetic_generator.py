"""The generator's contract: determinism, shapes, missing modalities, labels and balance."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from astrobio.config import DataConfig
from astrobio.data.synthetic import GENERATOR_VERSION, generate_sample, generate_samples
from astrobio.data.synthetic.labels import hot_limit
from astrobio.errors import DataError
from astrobio.schema import HABITABILITY_CLASSES, MODALITIES, PARAM_NAMES

ARRAYS = ("climate", "node_features", "edge_index", "edge_attr", "spectrum", "spectrum_err",
          "spectrum_mask", "params", "present")


def assert_same(a, b):
    assert a.planet_id == b.planet_id and a.text == b.text
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("habitable", "habitability_class", "surface_temperature", "biosignature"):
        assert getattr(a, name) == getattr(b, name), name


def test_same_sample_on_every_call_and_in_any_order(test_seed):
    config = DataConfig(seed=test_seed % 10_000)
    block = generate_samples(7, 77, config)  # crosses no block boundary in the middle
    for index in (76, 7, 40):
        assert_same(generate_sample(index, config), block[index - 7])
        assert_same(generate_sample(index, config), generate_sample(index, config))
    long = generate_samples(0, 140, config)  # spans two internal blocks
    assert_same(long[70], block[63])


def test_same_sample_in_another_process(test_seed):
    config = DataConfig(seed=test_seed % 10_000)
    index = test_seed % 5000
    code = (
        "import hashlib, numpy as np\n"
        "from astrobio.config import DataConfig\n"
        "from astrobio.data.synthetic import generate_sample\n"
        f"s = generate_sample({index}, DataConfig(seed={config.seed}))\n"
        "h = hashlib.sha256(s.text.encode())\n"
        "for a in (s.climate, s.node_features, s.edge_index, s.spectrum, s.params):\n"
        "    h.update(np.ascontiguousarray(a).tobytes())\n"
        "print(h.hexdigest())\n"
    )
    import hashlib

    s = generate_sample(index, config)
    digest = hashlib.sha256(s.text.encode())
    for a in (s.climate, s.node_features, s.edge_index, s.spectrum, s.params):
        digest.update(np.ascontiguousarray(a).tobytes())
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == digest.hexdigest()


def test_different_indices_and_seeds_differ(test_seed):
    # every modality present: two blank cubes of missing climates would be equal
    config = DataConfig(seed=test_seed % 10_000, missing_modality_rate=0.0)
    a, b = generate_samples(0, 2, config)
    c = generate_sample(0, dataclasses.replace(config, seed=config.seed + 1))
    for other in (b, c):
        assert not np.array_equal(a.params, other.params)
        assert not np.array_equal(a.climate, other.climate)
        assert a.text != other.text


def test_every_sample_validates_with_its_fields(shared_samples, shared_config):
    for sample in shared_samples:
        sample.validate(shared_config.climate_shape, shared_config.spectrum_bins)
        assert sample.planet_id.startswith(f"synth-{shared_config.seed}-")
        assert sample.has_targets and sample.input_ids is None
        assert sample.present.all()  # the shared config has no missing modalities
        assert sample.text and sample.node_features.dtype == np.float32
    assert GENERATOR_VERSION


def test_odd_shapes_validate(test_seed):
    config = DataConfig(seed=test_seed % 10_000, climate_levels=3, lat=5, lon=7,
                        spectrum_bins=17, missing_modality_rate=0.3)
    for sample in generate_samples(0, 40, config):
        sample.validate(config.climate_shape, config.spectrum_bins)
        assert sample.climate.shape == (4, 3, 5, 7)


def test_params_are_linear_and_physical(shared_samples):
    p = np.stack([s.params for s in shared_samples]).astype(np.float64)
    col = {name: p[:, i] for i, name in enumerate(PARAM_NAMES)}
    assert ((col["st_teff"] >= 2600) & (col["st_teff"] <= 7200)).all()
    # L = R^2 (Teff/5772)^4 in solar units, and S = L / (a^2 sqrt(1 - e^2)) by hand
    np.testing.assert_allclose(col["st_lum"], col["st_rad"] ** 2 * (col["st_teff"] / 5772) ** 4,
                               rtol=1e-4)
    expected = col["st_lum"] / (col["pl_orbsmax"] ** 2 * np.sqrt(1 - col["pl_orbeccen"] ** 2))
    np.testing.assert_allclose(col["pl_insol"], expected, rtol=1e-4)
    assert ((col["pl_bmasse"] >= 0.1) & (col["pl_bmasse"] <= 20)).all()
    assert ((col["pl_orbeccen"] >= 0) & (col["pl_orbeccen"] < 0.7)).all()
    assert (col["st_mass"] < 0.6).mean() > 0.3  # M dwarfs are the most common hosts


def test_labels_follow_the_class_rules(shared_samples):
    classes = {name: i for i, name in enumerate(HABITABILITY_CLASSES)}
    for s in shared_samples:
        radius = s.params[PARAM_NAMES.index("pl_rade")]
        assert s.habitable == int(s.habitability_class == classes["temperate"])
        assert s.biosignature <= s.habitable  # life only where habitable
        if radius > 2.0:
            assert s.habitability_class == classes["gaseous"]
        if radius < 1.5:
            assert s.habitability_class != classes["gaseous"]
        if s.habitability_class == classes["temperate"]:
            assert 273.15 <= s.surface_temperature <= 395.0
        if s.habitability_class == classes["frozen"]:
            assert s.surface_temperature < 273.15
    hot = [s for s in shared_samples if s.habitability_class == classes["runaway"]]
    assert all(s.surface_temperature > 273.15 for s in hot)
    assert float(hot_limit(1.0)) == pytest.approx(367.6, abs=1.0)  # CC boiling point at 1 bar


def test_label_balance(shared_samples):
    habitable = np.mean([s.habitable for s in shared_samples])
    assert 0.22 <= habitable <= 0.5
    classes = np.bincount([s.habitability_class for s in shared_samples],
                          minlength=len(HABITABILITY_CLASSES))
    assert (classes >= 0.03 * len(shared_samples)).all(), classes
    life = np.mean([s.biosignature for s in shared_samples])
    assert 0.3 * habitable <= life <= 0.8 * habitable


def test_text_describes_without_naming_the_label(shared_samples):
    forbidden = ("habitab", "temperate", "frozen", "runaway", "airless", "gaseous", "life",
                 "biosignature", "inhabited", "ocean")
    texts = [s.text for s in shared_samples]
    for t in texts:
        assert not any(word in t.lower() for word in forbidden), t
    assert len(set(texts)) == len(texts)
    # omissions: no single fact phrase appears in every description
    for phrase in ("radius", "orbit", "mass", "flux", "Teff"):
        share = np.mean([phrase in t for t in texts])
        assert share < 0.95, phrase
    numbers = [s for s in shared_samples if "Earth radii." in s.text]
    for s in numbers[:50]:  # a stated radius is the planet's, rounded
        stated = float(s.text.split(" Earth radii.")[0].rsplit(" ", 1)[1])
        assert stated == pytest.approx(s.params[PARAM_NAMES.index("pl_rade")], abs=0.006)


@pytest.mark.parametrize("rate", [0.0, 0.5, 1.0])
def test_missing_modalities_are_zeros_with_present_false(test_seed, rate):
    config = DataConfig(seed=test_seed % 10_000, missing_modality_rate=rate)
    samples = generate_samples(0, 60, config)
    absent = np.stack([~s.present for s in samples])
    assert not absent.all(axis=1).any()  # never all five
    if rate == 0.0:
        assert not absent.any()
    elif rate == 1.0:
        assert (absent.sum(axis=1) == len(MODALITIES) - 1).all()
    else:
        assert 0.3 < absent.mean() < 0.7
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
