"""Fixed (non-learned) normalisations from physical units to the model's O(1) inputs and back.

Every constant that maps a physical quantity into the network lives here, so encoders, heads and
losses agree on one definition.

Climate channels (`schema.CLIMATE_VARIABLES`), per-channel affine after an optional log10:
    temperature           (T - 250 K) / 150 K
    specific_humidity     (log10(max(q, 1e-7)) + 3.5) / 1.5     q in kg/kg (1e-7 .. 0.3)
    cloud_fraction        (c - 0.5) / 0.5
    surface_liquid_water  (w - 0.5) / 0.5

Parameters (`schema.PARAM_NAMES`): log10 of every positive quantity (eccentricity stays linear),
then `(value - centre) / scale` with the centres and scales below (about the mean and standard
deviation of the synthetic `tiny` population, which spans M to F dwarfs and rocky to
Neptune-size planets near the habitable zone; hot Jupiters land further out, and the
`ParamEncoder` clamps at +-10).

Surface temperature, predicted and regressed in `z = (ln T - ln 280 K) / 0.5`, so a prediction
is always a positive temperature.
"""

from __future__ import annotations

import math

import torch

from astrobio.schema import CLIMATE_VARIABLES, PARAM_NAMES

_LOG_FLOOR = 1e-7

CLIMATE_NORMALISATION = {  # name: (take log10, centre, scale)
    "temperature": (False, 250.0, 150.0),
    "specific_humidity": (True, -3.5, 1.5),
    "cloud_fraction": (False, 0.5, 0.5),
    "surface_liquid_water": (False, 0.5, 0.5),
}

PARAM_NORMALISATION = {  # name: (take log10, centre, scale)
    "st_teff": (True, 3.63, 0.12),  # ~4300 K
    "st_lum": (True, -1.0, 1.0),
    "st_rad": (True, -0.2, 0.25),
    "st_mass": (True, -0.25, 0.3),
    "pl_rade": (True, 0.1, 0.25),
    "pl_bmasse": (True, 0.1, 0.6),
    "pl_orbsmax": (True, -0.4, 0.5),
    "pl_orbeccen": (False, 0.05, 0.1),
    "pl_insol": (True, 0.0, 0.75),
}

TEMPERATURE_LOG_CENTRE = math.log(280.0)
TEMPERATURE_LOG_SCALE = 0.5

assert tuple(CLIMATE_NORMALISATION) == CLIMATE_VARIABLES
assert tuple(PARAM_NORMALISATION) == PARAM_NAMES


class FixedAffine(torch.nn.Module):
    """`(f(x) - centre) / scale` along dimension `dim`, `f` = log10 (floored) or identity.

    The constants are buffers, not parameters: nothing here is learned.
    """

    def __init__(self, table: dict[str, tuple[bool, float, float]], dim: int):
        super().__init__()
        self.dim = dim
        log, centre, scale = zip(*table.values(), strict=True)
        self.register_buffer("use_log", torch.tensor(log), persistent=False)
        self.register_buffer("centre", torch.tensor(centre), persistent=False)
        self.register_buffer("scale", torch.tensor(scale), persistent=False)

    def _view(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        shape = [1] * ndim
        shape[self.dim] = -1
        return t.view(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        use_log = self._view(self.use_log, x.dim())
        logged = torch.log10(x.clamp(min=_LOG_FLOOR))
        value = torch.where(use_log, logged, x)
        centre = self._view(self.centre, x.dim()).to(x.dtype)
        scale = self._view(self.scale, x.dim()).to(x.dtype)
        return (value - centre) / scale


def climate_normaliser() -> FixedAffine:
    """For `[B, V, Z, H, W]` datacubes."""
    return FixedAffine(CLIMATE_NORMALISATION, dim=1)


def param_normaliser() -> FixedAffine:
    """For `[B, P]` parameter vectors."""
    return FixedAffine(PARAM_NORMALISATION, dim=1)


def normalise_temperature(kelvin: torch.Tensor) -> torch.Tensor:
    return (torch.log(kelvin.clamp(min=1.0)) - TEMPERATURE_LOG_CENTRE) / TEMPERATURE_LOG_SCALE


def denormalise_temperature(z: torch.Tensor) -> torch.Tensor:
    return torch.exp(z * TEMPERATURE_LOG_SCALE + TEMPERATURE_LOG_CENTRE)
