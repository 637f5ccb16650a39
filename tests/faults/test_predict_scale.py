"""`predict` on a large catalogue: batches, so peak memory grows only by the table it returns
(issue 16: 6,000 rows took 7.2 GB in one batch, 100,000 rows ran out of memory). Each size runs
in a fresh process, whose peak resident memory (ru_maxrss) is compared."""

import json
import subprocess
import sys

import numpy as np
import pytest

from astrobio.config import load_config
from astrobio.data.cache import ensure_default_dataset
from astrobio.experiments.__main__ import QUICK_SIZES
from astrobio.train.trainer import train

MEASURE = """
import json, resource, sys, time, warnings
from astrobio.predict import predict_catalogue
warnings.simplefilter("ignore")
start = time.perf_counter()
records = predict_catalogue(sys.argv[1], sys.argv[2], device="cpu", batch_size=64)
print(json.dumps({"rows": len(records), "seconds": time.perf_counter() - start,
                  "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def write_catalogue(path, n: int, seed: int = 0) -> None:
    """`n` plausible planets of M to F dwarfs (a stand-in for the archive's 6,000)."""
    rng = np.random.default_rng(seed)
    teff = rng.uniform(2700.0, 6800.0, n)
    st_rad = np.clip(0.1 + (teff - 2700.0) / 4100.0 * 1.2 + rng.normal(0.0, 0.05, n), 0.1, 2.0)
    st_mass = np.clip(st_rad * rng.uniform(0.8, 1.1, n), 0.08, 1.6)
    pl_rade = rng.uniform(0.6, 3.5, n)
    pl_bmasse = pl_rade**2.5 * rng.uniform(0.7, 1.3, n)
    a = 10.0 ** rng.uniform(-2.0, 0.5, n)
    ecc = rng.uniform(0.0, 0.3, n)
    rows = [f"Planet-{i} b,{teff[i]:.0f},{st_rad[i]:.4f},{st_mass[i]:.4f},{pl_rade[i]:.3f},"
            f"{pl_bmasse[i]:.3f},{a[i]:.5f},{ecc[i]:.3f}" for i in range(n)]
    path.write_text("pl_name,st_teff,st_rad,st_mass,pl_rade,pl_bmasse,pl_orbsmax,pl_orbeccen\n"
                    + "\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = load_config("tiny", overrides=[*QUICK_SIZES, "train.steps=1", "train.device=cpu"])
    root = tmp_path_factory.mktemp("scale")
    data = ensure_default_dataset(config.data, root / "data", progress=False)
    train(config, root / "run", data, progress=False)
    return root / "run"


def measure(run, catalogue) -> dict:
    done = subprocess.run([sys.executable, "-c", MEASURE, str(catalogue), str(run)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_peak_memory_is_flat_in_the_catalogue_size(run, tmp_path):
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    write_catalogue(small, 300)
    write_catalogue(large, 3300)
    few, many = measure(run, small), measure(run, large)
    assert (few["rows"], many["rows"]) == (300, 3300)
    per_row = (many["peak_bytes"] - few["peak_bytes"]) / 3000
    # one batch of the whole catalogue held ~1.2 MB per row; the records and samples it
    # must hold take a few kB (100,000 rows: under 1 GB on top of the process)
    assert per_row < 10_000, (few, many)
