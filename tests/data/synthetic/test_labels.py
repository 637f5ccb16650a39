"""Class rules by hand, and life only where habitable."""

import numpy as np

from astrobio.data.synthetic import labels


def test_class_precedence():
    f = np.array
    klass = labels.habitability_class(
        gaseous=f([1, 0, 0, 0, 0, 0, 0], bool), airless=f([1, 1, 0, 0, 0, 0, 0], bool),
        runaway=f([0, 0, 1, 0, 0, 0, 0], bool),
        liquid_area=f([0.5, 0.5, 0.5, 0.2, 0.05, 0.05, 0.0]),
        ts=f([300, 300, 300, 260, 250, 300, 200.0]))
    assert klass.tolist() == [labels.GASEOUS, labels.AIRLESS, labels.RUNAWAY, labels.TEMPERATE,
                              labels.FROZEN, labels.RUNAWAY, labels.FROZEN]


def test_life_only_where_habitable(rng):
    n = 20000
    habitable = rng.random(n) < 0.4
    life = labels.biosphere(habitable, *rng.random((3, n)))
    assert not life["life"][~habitable].any()
    share = life["life"][habitable].mean()
    assert abs(share - labels.LIFE_PROBABILITY) < 0.02
    assert (life["expressed"] <= life["life"]).all()
    assert abs(life["expressed"][life["life"]].mean() - labels.EXPRESSED_PROBABILITY) < 0.03
