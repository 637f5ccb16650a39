import math

import numpy as np
import pytest

from astrobio.config import DataConfig
from astrobio.data.readers import describe_planet, read_exoplanet_archive
from astrobio.errors import DataError
from astrobio.schema import MODALITIES, PARAM_NAMES

CONFIG = DataConfig()
HEADER = ("pl_name,hostname,st_teff,st_lum,st_rad,st_mass,st_logg,pl_rade,pl_bmasse,"
          "pl_orbsmax,pl_orbper,pl_orbeccen,pl_insol,pl_eqt")
PREAMBLE = ["# This file was produced by the NASA Exoplanet Archive",
            "# COLUMN st_lum:        Stellar Luminosity [log(Solar)]", "#"]


def _write(tmp_path, rows, header=HEADER, name="pscomppars.csv"):
    path = tmp_path / name
    path.write_text("\n".join([*PREAMBLE, header, *rows]) + "\n")
    return path


def _params(sample):
    return dict(zip(PARAM_NAMES, sample.params.astype(np.float64)))


def test_complete_row_converts_log_luminosity(tmp_path):
    path = _write(tmp_path, ['Kepler-442 b,Kepler-442,4402,-0.934,0.6,0.61,4.67,1.34,2.36,'
                             '0.409,112.3053,0.04,0.7,233'])
    (sample,) = read_exoplanet_archive(path, CONFIG)
    sample.validate(CONFIG.climate_shape, CONFIG.spectrum_bins)
    p = _params(sample)
    assert p["st_lum"] == pytest.approx(10**-0.934, rel=1e-6)
    for key, value in (("st_teff", 4402), ("st_rad", 0.6), ("st_mass", 0.61), ("pl_rade", 1.34),
                       ("pl_bmasse", 2.36), ("pl_orbsmax", 0.409), ("pl_orbeccen", 0.04),
                       ("pl_insol", 0.7)):
        assert p[key] == pytest.approx(value, rel=1e-6), key
    assert sample.planet_id == "Kepler-442 b" and not sample.has_targets
    assert sample.present.tolist() == [m in ("params", "text") for m in MODALITIES]
    assert "Kepler-442 b" in sample.text and "Kepler-442," in sample.text
    # the measured mass is stated; nothing derived (habitable zone, density, Teq) is
    assert "2.4 Earth masses" in sample.text or "2.4 M_earth" in sample.text
    for derived in ("habitable zone", "density", "equilibrium", "233 K"):
        assert derived not in sample.text


def test_blank_values_are_derived(tmp_path):
    path = _write(tmp_path, [
        # no st_lum, no pl_insol, no eccentricity
        "Hot one,Star A,6000,,1.2,1.1,,2.0,5.0,0.05,,,,",
        # no st_rad, no st_mass (logg 4.438 with R = 1 -> 1 Msun), no a (one year), no mass
        "Earth twin,Sun,5772,0.0,,,4.438,1.0034574,,,365.256,,,",
        # no st_teff, no planet radius
        "Heavy,Star C,,0.3,0.8,0.8,,,1.0,0.6,,0.2,,",
    ])
    hot, twin, heavy = read_exoplanet_archive(path, CONFIG)
    p = _params(hot)
    lum = 1.2**2 * (6000 / 5772) ** 4
    assert p["st_lum"] == pytest.approx(lum, rel=1e-6)
    assert p["pl_orbeccen"] == 0.0
    assert p["pl_insol"] == pytest.approx(lum / 0.05**2, rel=1e-6)
    p = _params(twin)
    assert p["st_rad"] == pytest.approx(1.0, rel=1e-6)
    assert p["st_mass"] == pytest.approx(1.0, rel=1e-6)
    assert p["pl_orbsmax"] == pytest.approx(1.0, rel=1e-4)
    # Chen & Kipping: R = 10^0.00346 M^0.279 -> M = (1.0034574 / 10^0.00346)^(1/0.279)
    assert p["pl_bmasse"] == pytest.approx((1.0034574 / 10**0.00346) ** (1 / 0.279), rel=1e-5)
    # the text states what the row measured, never what was derived from it
    assert "1.00 Earth radii" in twin.text or "Earth-sized" in twin.text
    for derived in ("Earth masses", "M_earth", "AU", "S_earth", "habitable zone"):
        assert derived not in twin.text, derived
    p = _params(heavy)
    # st_lum 0.3 is log10: L = 10^0.3 Lsun, so Teff = 5772 (L / R^2)^(1/4).
    assert p["st_teff"] == pytest.approx(5772 * (10**0.3 / 0.8**2) ** 0.25, rel=1e-6)
    assert p["pl_rade"] == pytest.approx(10**0.00346, rel=1e-6)
    assert p["pl_insol"] == pytest.approx(10**0.3 / (0.36 * math.sqrt(1 - 0.04)), rel=1e-6)


def test_missing_columns_named(tmp_path):
    path = _write(tmp_path, ["b,Star,0.0,1.0,1.0,1.0,1.0"],
                  header="pl_name,hostname,st_lum,st_mass,pl_rade,pl_orbsmax,pl_insol")
    with pytest.raises(DataError, match="two of st_teff, st_rad, st_lum") as info:
        read_exoplanet_archive(path, CONFIG)
    assert (info.value.file, info.value.sample, info.value.field) == (str(path), None,
                                                                     "st_teff")


BAD_ROWS = [
    "Good b,Star,5000,-0.5,0.8,0.8,,1.1,1.5,0.5,,,,",
    "Text b,Star,abc,-0.5,0.8,0.8,,1.1,1.5,0.5,,,,",
    "NaN b,Star,5000,-0.5,0.8,0.8,,1.1,1.5,NaN,,,,",
    "Ecc b,Star,5000,-0.5,0.8,0.8,,1.1,1.5,0.5,,1.5,,",
    "Linear b,Star,5772,1.0,1.0,1.0,,1.1,1.5,1.0,,,,",
    "Kilo b,Star,5.772,-0.5,0.8,0.8,,1.1,1.5,0.5,,,,",
    "Giant b,Star,5000,-0.5,0.8,0.8,,20.0,,0.5,,,,",
    "Huge b,Star,5000,500,0.8,0.8,,1.1,1.5,0.5,,,,",
]
EXPECTED = [("Text b", "st_teff"), ("NaN b", "pl_orbsmax"), ("Ecc b", "pl_orbeccen"),
            ("Linear b", "st_lum"), ("Kilo b", "st_teff"), ("Giant b", "pl_bmasse"),
            ("Huge b", "st_lum")]


def test_every_bad_row_reported_at_once(tmp_path):
    path = _write(tmp_path, BAD_ROWS)
    with pytest.raises(DataError) as info:
        read_exoplanet_archive(path, CONFIG)
    err = info.value
    assert (err.file, err.sample, err.field) == (str(path), "Text b", "st_teff")
    message = str(err)
    assert "7 bad row(s) of 8" in message
    for line, (name, field) in enumerate(EXPECTED, len(PREAMBLE) + 3):
        assert f"{name!r}, {field!r}: line {line}" in message, (name, field)
    assert "linear" in message and "wrong units" in message


def test_skip_mode_warns_and_keeps_good_rows(tmp_path):
    path = _write(tmp_path, BAD_ROWS)
    with pytest.warns(UserWarning, match="7 bad row"):
        samples = read_exoplanet_archive(path, CONFIG, on_error="skip")
    assert [s.planet_id for s in samples] == ["Good b"]


def test_truncated_duplicate_and_unreadable(tmp_path):
    rows = ["One b,Star,5000,-0.5,0.8,0.8,,1.1,1.5,0.5,,,,",
            "One b,Star,5000,-0.5,0.8,0.8,,1.1,1.5,0.5,,,,",
            "Two b,Star,5000,-0.5,0.8"]
    path = _write(tmp_path, rows)
    with pytest.raises(DataError) as info:
        read_exoplanet_archive(path, CONFIG)
    assert "repeats the planet of line" in str(info.value) and "truncated" in str(info.value)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(DataError) as info:
        read_exoplanet_archive(binary, CONFIG)
    assert info.value.file == str(binary)
    with pytest.raises(DataError, match="no header"):
        read_exoplanet_archive(_write(tmp_path, [], header="# only comments",
                                      name="empty.csv"), CONFIG)


def test_describe_planet_uses_the_shared_templates():
    measured = dict(zip(PARAM_NAMES, (9000.0, 20.0, 1.8, 2.1, 11.0, 300.0, 0.05, 0.0, 8000.0)))
    text = describe_planet("Hot Jupiter b", measured, host="HD 1")
    assert "Hot Jupiter b" in text and "HD 1, " in text
    assert "A-type" in text or "A dwarf" in text or "A star" in text
    assert "habitable zone" not in text
    assert text == describe_planet("Hot Jupiter b", measured, host="HD 1")  # fixed phrasing
    assert "8,000" in text or "8e+03" in text
