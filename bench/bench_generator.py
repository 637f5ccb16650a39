"""Synthetic-planet generator throughput on one CPU core (tiny preset, `DataConfig()`).

Cases: `generate_samples` over blocks of 256 planets (the dataset builder's path), single
`generate_sample` calls (a random-access path), and a per-stage breakdown of one block
(vectorised physics, climate datacubes, spectra, graphs, text). The first call of a process
reads cobra's E. coli model and builds the shared network; the rates exclude it (warm-up).

    pytest bench/bench_generator.py --benchmark-only   # pytest-benchmark statistics
    python bench/bench_generator.py                    # a printed table

Both rates are printed: per wall-clock second and per second of this process's CPU time (the
two agree on an idle core; on a shared machine the CPU-time rate is the one-core figure).
BLAS/OpenMP threads are pinned to 1 so that the figure is for one core.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from astrobio.config import DataConfig  # noqa: E402
from astrobio.data.synthetic import (  # noqa: E402
    GENERATOR_VERSION,
    biosphere,
    climate,
    generate_sample,
    generate_samples,
    generator,
    spectrum,
    text,
)

BLOCK = 256


def _cases(config: DataConfig) -> dict:
    """name -> (function generating `units` planets per call, units)."""
    counter = iter(range(10**12))
    return {
        f"generate_samples, blocks of {BLOCK}": (
            lambda: generate_samples((k := next(counter) * BLOCK), k + BLOCK, config), BLOCK),
        "generate_sample, one at a time": (lambda: generate_sample(next(counter), config), 1),
    }


def _stages(config: DataConfig, start: int = 10**6) -> dict[str, float]:
    """Seconds (process CPU time) per stage for one block of planets."""
    clock = time.process_time
    seconds: dict[str, float] = {}
    t = clock()
    rngs = [np.random.default_rng([config.seed, i]) for i in range(start, start + BLOCK)]
    v = generator._variates(rngs)
    p, m = generator._physics(v)  # the planet, and the climate model's planet
    seconds["draws + vectorised physics (both worlds)"] = clock() - t
    t = clock()
    weather = np.stack([r.standard_normal(climate.N_WEATHER_MODES) for r in rngs])
    for world in (m, p):  # the model's cube, then the planet's own (for its clouds)
        _, cover = climate.datacube(world["ts"], world["teq"], world["pressure"],
                                    world["airless"], world["gaseous"], p["locked"],
                                    world["humidity"], world["ocean"], weather,
                                    config.climate_shape)
    seconds["climate datacubes (both worlds)"] = clock() - t
    t = clock()
    depth = spectrum.model_depth(p["x"], p["scale_height"], p["planet_radius"],
                                 p["star_radius"], p["pressure"], cover, p["cloud_deck"],
                                 config.spectrum_bins)
    for b, r in enumerate(rngs):
        spectrum.observe(depth[b], p["j_mag"][b], p["transits"][b], 0.3, 0.3, r)
    seconds["spectra"] = clock() - t
    t = clock()
    for b, r in enumerate(rngs):
        mixing = dict(zip(generator.planets.GASES, p["x"][b].tolist(), strict=True))
        biosphere.planet_graph({"life": bool(p["life"][b]), "oxygenic": True, "liquid": True,
                                "subsurface_ocean": False, "airless": bool(p["airless"][b]),
                                "gaseous": False, "volcanic": True, "temperature": 290.0,
                                "pressure": 1.0, "cloud_cover": 0.3, "x": mixing}, r)
    seconds["graphs"] = clock() - t
    t = clock()
    for b, r in enumerate(rngs):
        text.describe({"teff": float(p["star_teff"][b]), "period": 10.0, "a": 0.1,
                       "radius": 1.0, "mass": 1.0, "insolation": 1.0, "teq_assumed": 255.0,
                       "e": 0.01, "locked": True, "j_mag": 8.0, "pressure": 1.0,
                       "x": dict.fromkeys(generator.planets.GASES, 1e-2),
                       "retrieved_ts": 280.0}, r)
    seconds["text"] = clock() - t
    return seconds


@pytest.fixture(scope="module")
def cases():
    config = DataConfig()
    generate_samples(0, 8, config)  # warm-up: cobra model, network, grids
    return _cases(config)


@pytest.mark.parametrize("name", [f"generate_samples, blocks of {BLOCK}",
                                  "generate_sample, one at a time"])
def test_generator(benchmark, cases, name):
    fn, units = cases[name]
    benchmark.extra_info.update(units_per_call=units, unit="samples")
    benchmark(fn)


def _rates(fn, units: int, seconds: float = 3.0) -> tuple[float, float]:
    fn()
    calls, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        fn()
        calls += 1
    return (calls * units / (time.perf_counter() - wall),
            calls * units / (time.process_time() - cpu))


def main() -> None:
    config = DataConfig()
    generate_samples(0, 8, config)
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
          f"(1 used), numpy {np.__version__}, generator {GENERATOR_VERSION}, tiny preset "
          f"(climate {config.climate_shape}, {config.spectrum_bins} spectral bins)")
    print("| case | samples/s (wall) | samples/s (process CPU) |\n|---|---|---|")
    for name, (fn, units) in _cases(config).items():
        wall, cpu = _rates(fn, units)
        print(f"| {name} | {wall:,.0f} | {cpu:,.0f} |")
    stages = _stages(config)
    total = sum(stages.values())
    print(f"\n| stage (one block of {BLOCK}) | CPU ms | share |\n|---|---|---|")
    for name, value in stages.items():
        print(f"| {name} | {1e3 * value:.1f} | {value / total:.0%} |")


if __name__ == "__main__":
    main()


def test_stage_breakdown_runs_the_pipeline():
    """The breakdown `python bench/bench_generator.py` prints follows the generator's stages."""
    stages = _stages(DataConfig(), start=7)
    assert len(stages) == 5 and all(seconds >= 0.0 for seconds in stages.values())
