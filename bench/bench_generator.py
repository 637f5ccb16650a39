"""Synthetic-planet generator throughput per CPU core (tiny preset), with and without clero.

Cases: `generate_samples` over blocks of 256 planets (the dataset builder's path) with the
default config (clero where it applies) and with `clero = False` (the energy-balance model
everywhere), and single `generate_sample` calls (random access). Then a per-stage breakdown of
one block. The first call of a process reads cobra's E. coli model, builds the shared network
and loads clero's weights; the rates exclude it (warm-up).

    pytest bench/bench_generator.py --benchmark-only   # pytest-benchmark statistics
    python bench/bench_generator.py                    # a printed table

Rates are per second of this process's CPU time (one core: BLAS/OpenMP threads are pinned to
1), beside the wall-clock rate; on a shared machine the CPU-time rate is the one-core figure.
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
from astrobio.data.description import describe  # noqa: E402
from astrobio.data.synthetic import (  # noqa: E402
    GENERATOR_VERSION,
    biosphere,
    catalogue,
    draws,
    generate_sample,
    generate_samples,
    generator,
    observer,
    text,
    truth,
)
from astrobio.data.synthetic.atmosphere import GASES  # noqa: E402

BLOCK = 256
CONFIGS = {"with clero": DataConfig(), "without clero": DataConfig(clero=False)}


def _cases() -> dict:
    """name -> (function generating `units` planets per call, units)."""
    counter = iter(range(10**12))
    cases = {}
    for label, config in CONFIGS.items():
        cases[f"generate_samples, blocks of {BLOCK}, {label}"] = (
            lambda c=config: generate_samples((k := next(counter) * BLOCK), k + BLOCK, c), BLOCK)
    cases["generate_sample, one at a time, with clero"] = (
        lambda: generate_sample(next(counter), CONFIGS["with clero"]), 1)
    return cases


def _stages(config: DataConfig, start: int = 10**6, size: int = BLOCK) -> dict[str, float]:
    """Seconds (process CPU time) per stage for one block of planets, as `generator` runs
    them; clero's share is inside the two climate stages."""
    clock = time.process_time
    seconds: dict[str, float] = {}
    seed, indices = config.seed, range(start, start + size)
    t = clock()
    v = draws.variates(seed, indices)
    bodies = truth.bodies(v, config.clero)
    seconds["draws + vectorised truth"] = clock() - t
    t = clock()
    c = truth.climates(bodies, draws.streams(seed, indices, "truth_climate"))
    lab = truth.labelled(bodies, c, v)
    seconds["true climates (energy balance, clero draws)"] = clock() - t
    t = clock()
    o = generator.observe(v, bodies, c, lab, indices, config)
    seconds["catalogue, spectra, retrievals"] = clock() - t
    t = clock()
    cat = o["cat"]
    inf = observer.inferred(cat, o["results"])
    cubes, made = observer.climates(cat, inf, draws.streams(seed, indices, "observer_climate"),
                                    config.climate_shape, config.clero)
    env = observer.summary(cubes, inf, made["ebm_ts"])
    seconds["observer's climates (energy balance, clero draws)"] = clock() - t
    t = clock()
    for b, index in enumerate(indices):
        biosphere.planet_graph({"liquid": bool(env["liquid_area"][b] >= 0.1),
                                "airless": bool(inf["airless"][b]),
                                "gaseous": bool(inf["gaseous"][b]), "volcanic": True,
                                "temperature": float(env["ts"][b]),
                                "pressure": float(inf["pressure"][b]),
                                "cloud_cover": float(env["cloud_cover"][b]),
                                "x": dict(zip(GASES, inf["x"][b].tolist(), strict=True))},
                               draws.stream(seed, index, "graph"))
    seconds["graphs"] = clock() - t
    t = clock()
    for b, index in enumerate(indices):
        rng = draws.stream(seed, index, "text")
        facts = text.facts({k: float(val[b]) for k, val in cat.items()}, o["results"][b],
                           False, 280.0, 0.3, rng)
        describe(facts, rng)
    catalogue.params(cat)
    seconds["text"] = clock() - t
    return seconds


@pytest.fixture(scope="module")
def cases():
    for config in CONFIGS.values():
        generate_samples(0, 8, config)  # warm-up: cobra model, network, clero, grids
    return _cases()


@pytest.mark.parametrize("name", list(_cases()))
def test_generator(benchmark, cases, name):
    fn, units = cases[name]
    benchmark.extra_info.update(units_per_call=units, unit="samples")
    benchmark(fn)


def _rates(fn, units: int, seconds: float = 20.0) -> tuple[float, float]:
    fn()
    calls, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        fn()
        calls += 1
    return (calls * units / (time.perf_counter() - wall),
            calls * units / (time.process_time() - cpu))


def main() -> None:
    for config in CONFIGS.values():
        generate_samples(0, 8, config)
    config = CONFIGS["with clero"]
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
          f"(1 used), numpy {np.__version__}, generator {GENERATOR_VERSION}, tiny preset "
          f"(climate {config.climate_shape}, {config.spectrum_bins} spectral bins)")
    print("| case | samples/s (wall) | samples/s per core (process CPU) |\n|---|---|---|")
    for name, (fn, units) in _cases().items():
        wall, cpu = _rates(fn, units)
        print(f"| {name} | {wall:,.0f} | {cpu:,.0f} |")
    sample = generate_samples(0, 4096, config)
    share = np.mean([s.provenance["truth_climate"] != "energy_balance" for s in sample])
    observed = np.mean([s.provenance["observer_climate"] == "clero" for s in sample])
    print(f"\nclero made the true climate of {share:.1%} and the datacube of {observed:.1%} "
          "of 4,096 planets")
    for label, cfg in CONFIGS.items():
        stages = _stages(cfg)
        total = sum(stages.values())
        print(f"\n| stage, one block of {BLOCK}, {label} | CPU ms | share |\n|---|---|---|")
        for name, value in stages.items():
            print(f"| {name} | {1e3 * value:.1f} | {value / total:.0%} |")


if __name__ == "__main__":
    main()


def test_stage_breakdown_runs_the_pipeline():
    """The breakdown `python bench/bench_generator.py` prints follows the generator's stages."""
    stages = _stages(DataConfig(clero=False), start=7, size=16)
    assert len(stages) == 6 and all(seconds >= 0.0 for seconds in stages.values())
