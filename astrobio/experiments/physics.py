"""Physics validation: the habitable-zone code against the paper, and a trained model on real
planets from the curated catalogue against their literature habitable-zone status."""

from __future__ import annotations

from pathlib import Path

from astrobio.physics import habitable_zone
from astrobio.predict import agreement, bundled_catalogue, predict_catalogue

# Kopparapu et al. 2014 (ApJL 787, L29), the Sun: Teff 5780 K, 1 Lsun, 1 Earth mass, in AU.
KOPPARAPU_2014_SUN_AU = {"recent_venus": 0.750, "runaway_greenhouse": 0.950,
                         "maximum_greenhouse": 1.676, "early_mars": 1.768}


def kopparapu_check() -> list[dict]:
    """Each solar limit computed here beside the paper's value; `match` when they agree to the
    paper's three decimals."""
    computed = habitable_zone(5780.0, 1.0, model="kopparapu2014")
    return [{"limit": limit, "paper_au": paper, "computed_au": float(computed[limit]),
             "match": round(float(computed[limit]), 3) == paper}
            for limit, paper in KOPPARAPU_2014_SUN_AU.items()]


def catalogue_check(run_dir: str | Path, catalog: str | Path | None = None) -> dict:
    """The trained run's predictions on the catalogue and their agreement with the literature."""
    records = predict_catalogue(catalog or bundled_catalogue(), run_dir, device="cpu")
    return {"catalog": str(catalog or bundled_catalogue()), "run": str(run_dir),
            "planets": records, "agreement": agreement(records)}
