"""One template family for synthetic and catalogue planets: only observations appear."""

import numpy as np

from astrobio.data.description import describe, name_rng

FACTS = {"name": "TOI-1 b", "host": "TOI-1", "teff": 3300.0, "period": 10.0, "radius": 1.23,
         "mass": 2.0, "insolation": 0.8, "e": 0.2, "j_mag": 9.0, "active": True,
         "spectrum": "flat", "detections": [("CO2", "tentative"), ("H2O", "detected")],
         "thermal": 280.0}


def test_every_fact_is_written():
    text = describe(FACTS, np.random.default_rng(0))
    for piece in ("TOI-1 b", "TOI-1,", "10", "0.2", "J = 9.0", "flares", "carbon dioxide",
                  "water vapour", "280 K", "between the freezing and boiling points"):
        assert piece in text, piece
    assert any(p in text for p in ("1.23 Earth radii", "super-Earth-sized"))


def test_only_given_facts_appear(rng):
    text = describe({"name": "X b", "radius": 1.0}, rng)
    assert text.startswith(("X b", "The planet X b")) and "its star" in text
    for absent in ("mass", "period", "an orbit", "The orbit", "flux", "S_earth", "K."):
        assert absent not in text  # "orbits" is the opening's verb, not an orbital fact


def test_catalogue_planets_read_the_same_every_time():
    facts = {"name": "Kepler-442 b", "teff": 4402.0, "radius": 1.34}
    assert describe(facts, name_rng("Kepler-442 b")) == describe(facts, name_rng("Kepler-442 b"))
    texts = {describe(facts | {"name": f"P{k} b"}, name_rng(f"P{k} b")) for k in range(30)}
    assert len(texts) > 5  # phrasings vary between planets


def test_never_a_verdict(rng):
    for _ in range(50):
        text = describe(FACTS | {"spectrum": rng.choice(["flat", "envelope", "secondary"])},
                        rng).lower()
        for word in ("habitab", "life", "density", "equilibrium", "temperate"):
            assert word not in text
