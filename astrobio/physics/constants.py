"""Physical constants and reference values used by `astrobio.physics` (SI unless named).

Solar and planetary values are the IAU 2015 nominal ones (Resolution B3), so L = 1 Lsun with
R = 1 Rsun gives Teff = 5772 K. The Kopparapu habitable-zone fits use their own 5780 K origin,
kept in `habitable_zone`.
"""

SIGMA_SB = 5.670374419e-8  # W m^-2 K^-4

AU_M = 1.495978707e11
SOLAR_RADIUS_M = 6.957e8
SOLAR_TEFF_K = 5772.0
SOLAR_CONSTANT_W_M2 = 1361.0  # total solar irradiance at 1 AU
SOLAR_GM_M3_S2 = 1.3271244e20

EARTH_RADIUS_M = 6.3781e6
EARTH_SURFACE_TEMPERATURE_K = 288.0  # the ESI reference (Schulze-Makuch et al. 2011)

EARTH_MASSES_PER_JUPITER_MASS = 317.83
EARTH_MASSES_PER_SOLAR_MASS = 332946.0
SECONDS_PER_DAY = 86400.0
PARSEC_M = 3.0856775814913673e16
PLANCK_J_S = 6.62607015e-34
BOLTZMANN_J_K = 1.380649e-23
SPEED_OF_LIGHT_M_S = 299792458.0
# The Sun's absolute magnitude in the 2MASS J band (Vega system), Willmer (2018, ApJS 236, 47).
SOLAR_ABSOLUTE_J_MAG = 3.67
