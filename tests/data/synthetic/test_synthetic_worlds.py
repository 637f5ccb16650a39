"""What the climate model gets wrong and what only the text knows (generator docstring).

The datacube is a terrestrial climate model's planet: its mean surface temperature is the
truth give or take 15 K where the model's physics applies, and it knows neither H2/He
envelopes nor the runaway greenhouse. Half the descriptions quote a thermal-emission surface
temperature, the truth give or take 20 K.
"""

import re

import numpy as np

from astrobio.data.synthetic.generator import GCM_BIAS_K, THERMAL_EMISSION_ERROR_K
from astrobio.schema import HABITABILITY_CLASSES

CLASS = {name: i for i, name in enumerate(HABITABILITY_CLASSES)}
RETRIEVED = re.compile(r"(?:near|about) (\d+) K, (below|between|above)")


def area_mean_surface_temperature(climate: np.ndarray) -> float:
    """The cube's surface temperature averaged over the sphere (cells weighted by cos(lat)),
    which cancels the equator-pole and day-night patterns the model adds to its mean."""
    lat = climate.shape[2]
    phi = np.deg2rad(-90.0 + 180.0 * (np.arange(lat) + 0.5) / lat)
    weights = np.cos(phi)[:, None] * np.ones(climate.shape[3])
    return float((climate[0, 0] * weights).sum() / weights.sum())


def test_cube_temperature_is_the_truth_within_the_models_error(shared_samples):
    rocky = [s for s in shared_samples
             if s.habitability_class in (CLASS["frozen"], CLASS["temperate"])]
    error = np.array([area_mean_surface_temperature(s.climate) - s.surface_temperature
                      for s in rocky])
    assert len(rocky) > 100
    assert abs(error.mean()) < 4.0
    assert 0.7 * GCM_BIAS_K < error.std() < 1.3 * GCM_BIAS_K


def test_climate_model_is_blind_to_envelopes_and_the_runaway(shared_samples):
    gaseous = [s for s in shared_samples if s.habitability_class == CLASS["gaseous"]]
    # modelled as rocky worlds: some show liquid surface water, which no envelope has
    assert any(s.climate[3, 0].max() > 0 for s in gaseous)
    steam = [s for s in shared_samples
             if s.habitability_class == CLASS["runaway"] and s.surface_temperature > 500.0]
    assert steam
    # the steam atmosphere's warming (`climate.STEAM_WARMING_K`) is missing from the cube
    for s in steam:
        assert area_mean_surface_temperature(s.climate) < s.surface_temperature - 150.0


def test_text_quotes_a_retrieved_temperature_in_half_the_descriptions(shared_samples):
    quoted = [(s, RETRIEVED.search(s.text)) for s in shared_samples]
    quoted = [(s, m) for s, m in quoted if m]
    assert 0.4 < len(quoted) / len(shared_samples) < 0.6
    error = np.array([float(m.group(1)) - s.surface_temperature for s, m in quoted])
    assert abs(error.mean()) < 5.0
    assert 0.8 * THERMAL_EMISSION_ERROR_K < error.std() < 1.2 * THERMAL_EMISSION_ERROR_K
    for _, m in quoted:  # the verdict follows the quoted number
        kelvin, verdict = float(m.group(1)), m.group(2)
        expected = "below" if kelvin < 273.15 else "between" if kelvin < 373.15 else "above"
        assert verdict == expected or abs(kelvin - 273.15) < 1 or abs(kelvin - 373.15) < 1
