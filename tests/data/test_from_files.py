"""A dataset from a user's files: the example bundle builds, and every kind of bad input is
reported by file (and row) while the rest is built."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from astrobio.config import DataConfig
from astrobio.data import AstroBioDataset
from astrobio.data.__main__ import main
from astrobio.data.example import write_example_bundle
from astrobio.data.format import SPLITS, read_manifest
from astrobio.data.from_files import build_from_files, pool_spectra
from astrobio.data.matching import file_key, name_key
from astrobio.data.readers import bin_spectrum, read_climate_netcdf
from astrobio.data.validate import validate_dataset
from astrobio.errors import DataError
from astrobio.schema import CLIMATE_VARIABLES, MODALITIES

CONFIG = DataConfig(vocab_size=300, max_text_tokens=64)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return write_example_bundle(tmp_path_factory.mktemp("bundle") / "my_planets")


def _build(paths, out, **kwargs):
    options = {k: paths[k] for k in ("climate", "spectra", "metabolism", "labels")}
    return build_from_files(paths["catalog"], out, CONFIG, progress=False,
                            **{**options, **kwargs})


def _samples(root):
    return {s.planet_id: s for split in SPLITS for d in [AstroBioDataset(root, split)]
            for s in (d[i] for i in range(len(d)))}


def test_names_compare_without_case_and_punctuation():
    assert name_key("TRAPPIST-1 e") == name_key("trappist-1_e") == name_key("TRAPPIST1e")
    assert name_key("TRAPPIST-1 e") != name_key("TRAPPIST-1 f")
    assert file_key(Path("TRAPPIST-1_e_x1dints.fits")) == "trappist1e"
    assert file_key(Path("K2-18_b.xml.gz")) == "k218b"
    assert file_key(Path("LHS 1140 b.nc")) == "lhs1140b"


def test_the_example_bundle_builds_every_modality(bundle, tmp_path):
    result = _build(bundle, tmp_path / "data")
    assert result.problems == []
    assert validate_dataset(result.out) == []
    samples = _samples(result.out)
    assert len(samples) == 10 and result.card["n_samples"] == 10
    present = {p: {m for m, here in zip(MODALITIES, s.present, strict=True) if here}
               for p, s in samples.items()}
    assert present["TRAPPIST-1 e"] == {"climate", "params", "text"}
    assert present["LHS 1140 b"] == {"spectrum", "params", "text"}  # by its TARGNAME's host
    assert present["Earth"] == {"graph", "params", "text"}
    assert all(present[p] == {"params", "text"} for p in ("Mars", "Kepler-442 b"))
    # the datacube is the reader's regridding of the file onto the configured grid
    cube = read_climate_netcdf(bundle["climate"] / "TRAPPIST-1_e.nc", CONFIG,
                               planet_id="TRAPPIST-1 e").climate
    np.testing.assert_array_equal(samples["TRAPPIST-1 e"].climate, cube)
    assert cube.shape == CONFIG.climate_shape
    with xr.open_dataset(bundle["climate"] / "TRAPPIST-1_e.nc", decode_times=False) as ds:
        source_ts = float(ds["TS"].mean())
    assert abs(cube[CLIMATE_VARIABLES.index("temperature"), 0].mean() - source_ts) < 3.0
    # partial labels as the CSV gives them, the rest unknown
    earth, mars, t1e = samples["Earth"], samples["Mars"], samples["TRAPPIST-1 e"]
    assert (earth.habitable, earth.habitability_class, earth.surface_temperature,
            earth.biosignature) == (1, 3, 288.0, 1)
    assert (mars.habitable, mars.biosignature, mars.has_targets) == (0, -1, True)
    assert (t1e.habitable, t1e.surface_temperature > 0, t1e.has_targets) == (-1, True, True)
    assert not samples["Kepler-442 b"].has_targets
    record = next(r for r in read_manifest(result.out) if r["planet_id"] == "LHS 1140 b")
    assert record["sources"]["spectrum"][0].endswith("_x1dints.fits")


def _write_regional(path):
    lat, lon, lev = np.linspace(0.0, 30.0, 7), np.linspace(0.0, 90.0, 10), [1000.0, 500.0]
    shape = (1, 2, len(lat), len(lon))
    dims = ("time", "lev", "lat", "lon")
    xr.Dataset({"T": (dims, np.full(shape, 280.0), {"units": "K"}),
                "Q": (dims, np.full(shape, 1e-3), {"units": "kg/kg"}),
                "CLOUD": (dims, np.full(shape, 0.5), {"units": "1"})},
               coords={"time": [0.0], "lev": ("lev", lev, {"units": "hPa"}), "lat": lat,
                       "lon": lon}).to_netcdf(path)


@pytest.fixture
def messy(bundle, tmp_path):
    """The bundle plus one of each kind of bad input."""
    root = tmp_path / "messy"
    shutil.copytree(bundle["catalog"].parent, root)
    climate, spectra = root / "climate", root / "spectra"
    shutil.copy(climate / "TRAPPIST-1_e.nc", climate / "Planet_Nine.nc")  # matches no planet
    shutil.copy(climate / "TRAPPIST-1_e.nc", climate / "trappist1e.nc")  # a second file
    _write_regional(climate / "TOI-700_d.nc")  # another (regional) grid
    (spectra / "Proxima_Cen_b.csv").write_text(  # beyond 12 um
        "wavelength,depth,error\n14.0,5000,50\n16.0,5010,50\n18.0,4990,60\n")
    (spectra / "notes.txt.bak").write_text("not a spectrum")
    (root / "metabolism" / "Mars.xml").write_text("<sbml><model>cut off")  # unreadable
    labels = root / "labels.csv"
    labels.write_text(labels.read_text() + "Kepler-999 b,1,,,\n" + "Kepler-442 b,maybe,,,\n"
                      "TOI-700 d,,temperate,-20,\n")
    return {"catalog": root / "pscomppars.csv", "climate": climate, "spectra": spectra,
            "metabolism": root / "metabolism", "labels": labels}


def test_bad_inputs_are_named_and_nothing_else_is_lost(messy, tmp_path):
    result = _build(messy, tmp_path / "data")
    text = [str(p) for p in result.problems]

    def reported(*words):
        return [t for t in text if all(w in t for w in words)]

    assert reported("Planet_Nine.nc", "matches no planet")
    assert reported("trappist1e.nc", "two or more climate files")
    assert reported("TRAPPIST-1_e.nc", "two or more climate files")
    assert reported("TOI-700_d.nc", "latitudes span 0 to 30")
    assert reported("TOI-700_d.nc", "hole")
    assert reported("Proxima_Cen_b.csv", "no point lies within")
    assert reported("notes.txt.bak", "not a spectrum file")
    assert reported("Mars.xml", "planet Mars", "cannot read as SBML")
    labels = str(messy["labels"])
    assert reported(f"{labels}:6", "Kepler-999 b", "catalogue does not have")
    assert reported(f"{labels}:7", "Kepler-442 b", "field habitable", "maybe")
    assert reported(f"{labels}:8", "TOI-700 d", "field surface_temperature", "Celsius")
    assert len(text) == 11, text
    samples = _samples(result.out)
    assert len(samples) == 10 and validate_dataset(result.out) == []
    t1e, toi, proxima = samples["TRAPPIST-1 e"], samples["TOI-700 d"], samples["Proxima Cen b"]
    assert not t1e.is_present("climate")  # neither of its two files
    assert toi.is_present("climate") and toi.habitability_class == 3  # the rest of its row
    assert toi.surface_temperature == 0.0
    assert not proxima.is_present("spectrum") and proxima.is_present("params")
    assert samples["Earth"].is_present("graph") and samples["LHS 1140 b"].is_present("spectrum")
    assert not samples["Kepler-442 b"].has_targets
    assert len(result.card["source"]["problems"]) == 11
    assert not samples["Mars"].is_present("graph") and samples["Mars"].habitable == 0


def test_strict_stops_at_the_first_problem(messy, tmp_path):
    with pytest.raises(DataError, match="--strict"):
        _build(messy, tmp_path / "data", strict=True)


def test_cli_prints_each_problem_and_the_summary(messy, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["build", "--catalog", str(messy["catalog"]), "--climate",
                 str(messy["climate"]), "--spectra", str(messy["spectra"]), "--labels",
                 str(messy["labels"]), "--set", "data.vocab_size=300", "--out", str(out),
                 "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("warning: ") == 10  # without --metabolism: no Mars.xml
    assert "Planet_Nine.nc" in captured.err and "left out" in captured.err
    lines = {line.split()[0]: line.split()[1:] for line in captured.out.splitlines()
             if line.strip() and not line.startswith(("built", " "))}
    assert lines["planets"][0] == "10" and lines["spectrum"][0] == "1"
    assert lines["climate"][0] == "1"  # TOI-700 d; TRAPPIST-1 e's two files are not used
    assert main(["build", "--catalog", str(messy["catalog"]), "--climate",
                 str(messy["climate"]), "--strict", "--out", str(tmp_path / "strict"),
                 "--quiet"]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["build", "--climate", str(messy["climate"]), "--out",
                 str(tmp_path / "x")]) == 2
    assert "need --catalog" in capsys.readouterr().err


def test_mapping_assigns_and_pools_spectra(bundle, tmp_path, rng):
    spectra = tmp_path / "obs"
    spectra.mkdir()
    points = []
    for name, low, high in (("prism.csv", 0.6, 5.0), ("miri.csv", 4.0, 11.0)):
        wavelength = np.sort(rng.uniform(low, high, 60))
        depth, error = rng.normal(3000.0, 40.0, 60), rng.uniform(20.0, 60.0, 60)
        points.append((wavelength, depth, error))
        rows = "\n".join(f"{w:.17g},{d:.17g},{e:.17g}" for w, d, e in zip(wavelength, depth, error))
        (spectra / name).write_text("wavelength,depth,error\n" + rows + "\n")
    mapping = tmp_path / "files.csv"
    mapping.write_text("file,planet\nobs/prism.csv,Kepler-442 b\nobs/miri.csv,Kepler-442 b\n")
    result = build_from_files(bundle["catalog"], tmp_path / "data", CONFIG, mapping=mapping,
                              progress=False)
    assert result.problems == []
    sample = _samples(result.out)["Kepler-442 b"]
    # pooled = binning every point of both files at once
    expected = bin_spectrum(*(np.concatenate(c) for c in zip(*points)), CONFIG.spectrum_bins)
    np.testing.assert_array_equal(sample.spectrum_mask, expected[2])
    np.testing.assert_allclose(sample.spectrum, expected[0], rtol=1e-5)
    np.testing.assert_allclose(sample.spectrum_err, expected[1], rtol=1e-5)


def test_pool_spectra_by_hand():
    from astrobio.data.sample import PlanetSample

    a, b = (PlanetSample.blank(n, CONFIG.climate_shape, 8) for n in "ab")
    a = a.__class__(**{**a.__dict__, "spectrum": np.array([100, 0, 0, 0, 0, 0, 0, 5], "f4"),
                       "spectrum_err": np.array([10, 0, 0, 0, 0, 0, 0, 1], "f4"),
                       "spectrum_mask": np.array([1, 0, 0, 0, 0, 0, 0, 1], bool)})
    b = b.__class__(**{**b.__dict__, "spectrum": np.array([200, 0, 0, 0, 0, 0, 7, 0], "f4"),
                       "spectrum_err": np.array([20, 0, 0, 0, 0, 0, 2, 0], "f4"),
                       "spectrum_mask": np.array([1, 0, 0, 0, 0, 0, 1, 0], bool)})
    spectrum, error, mask = pool_spectra([a, b])
    # bin 0: weights 0.01 and 0.0025 -> (1 + 0.5) / 0.0125 = 120, error 0.0125^-1/2
    assert spectrum[0] == pytest.approx(120.0) and error[0] == pytest.approx(0.0125**-0.5)
    assert mask.tolist() == [True, False, False, False, False, False, True, True]
    assert (spectrum[6], error[6], spectrum[7], error[7]) == (7.0, 2.0, 5.0, 1.0)
