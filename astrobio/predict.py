"""`python -m astrobio.predict --catalog FILE.csv --run DIR`: a trained system's habitability
predictions for real planets from a NASA Exoplanet Archive `pscomppars` CSV.

Real planets carry two of the five modalities, their parameters and a text description written
from them (`astrobio.data.readers.exoplanet_archive`); climate, metabolic network and spectrum
are marked absent, so the model answers from what the catalogue knows. Each planet also gets its
habitable-zone status from the physics (Kopparapu et al. 2014 at the planet's insolation, Teff
clamped into the fits' 2600-7200 K), and, where the CSV has a `lit_hz` column (with `lit_hz_ref`),
its literature status beside it. Prints a table and writes `<stem>_predictions.csv` and `.json`
into `--out` (default: the run directory's `predictions/`).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from astrobio.data.batch import multimodal_collate_fn
from astrobio.data.readers.exoplanet_archive import read_exoplanet_archive
from astrobio.data.tokenizer import encode_text
from astrobio.errors import DataError, cli
from astrobio.physics import habitable_zone_flux
from astrobio.run import Run, load_run
from astrobio.schema import HABITABILITY_CLASSES, PARAM_NAMES

HZ_STATUSES = ("conservative", "optimistic", "outside")
EXTRA_COLUMNS = ("lit_hz", "lit_hz_ref", "ref")


def bundled_catalogue() -> Path:
    """The curated catalogue shipped with the package (sources in its comment lines)."""
    return Path(str(resources.files("astrobio") / "resources" / "exoplanets.csv"))


def physics_hz_status(teff: float, insolation: float, planet_mass: float) -> tuple[str, bool]:
    """(status, Teff clamped) of a planet by Kopparapu et al. (2014) at its insolation."""
    flux = habitable_zone_flux(teff, planet_mass=planet_mass, out_of_range="clamp")
    if float(flux["maximum_greenhouse"]) <= insolation <= float(flux["runaway_greenhouse"]):
        status = "conservative"
    elif float(flux["early_mars"]) <= insolation <= float(flux["recent_venus"]):
        status = "optimistic"
    else:
        status = "outside"
    return status, bool(flux["teff_clamped"])


def _extra_columns(path: Path) -> dict[str, dict[str, str]]:
    """planet -> the CSV's non-archive columns (literature status and sources), if any."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    extras = {}
    for row in csv.DictReader(lines):
        name = (row.get("pl_name") or "").strip()
        extras[name] = {k: (row.get(k) or "").strip() for k in EXTRA_COLUMNS if k in row}
        status = extras[name].get("lit_hz", "")
        if status and status not in HZ_STATUSES:
            raise DataError(f"lit_hz {status!r} is not one of {HZ_STATUSES}", file=str(path),
                            sample=name, field="lit_hz")
    return extras


@torch.no_grad()
def predict_catalogue(catalog: str | Path, run: str | Path | Run, device: str = "auto",
                      on_error: str = "raise") -> list[dict]:
    """One record per planet of `catalog`: parameters, physics and literature habitable-zone
    status, and the model's P(habitable), class and surface temperature. `run` is a run
    directory or a loaded `Run`; the text is encoded with the run's tokenizer."""
    if not isinstance(run, Run):
        run = load_run(run, device)
    config, model = run.config, run.model.eval()
    catalog = Path(catalog)
    samples = read_exoplanet_archive(catalog, config.data, on_error=on_error)
    if not samples:
        raise DataError("no planet to predict", file=str(catalog))
    samples = [dataclasses.replace(s, input_ids=encode_text(run.tokenizer, s.text,
                                                            config.data.max_text_tokens))
               for s in samples]
    output = model(multimodal_collate_fn(samples).to(run.device))
    p_habitable = torch.sigmoid(output.habitable_logit.float()).cpu().numpy()
    classes = output.habitability_class_logits.argmax(-1).cpu().numpy()
    temperature = output.surface_temperature.float().cpu().numpy()
    extras = _extra_columns(catalog)
    records = []
    for i, sample in enumerate(samples):
        params = dict(zip(PARAM_NAMES, (float(v) for v in sample.params)))
        status, clamped = physics_hz_status(params["st_teff"], params["pl_insol"],
                                            params["pl_bmasse"])
        extra = extras.get(sample.planet_id, {})
        records.append({
            "planet": sample.planet_id,
            **params,
            "physics_hz": status,
            "physics_hz_teff_clamped": clamped,
            "lit_hz": extra.get("lit_hz") or None,
            "lit_hz_ref": extra.get("lit_hz_ref") or None,
            "ref": extra.get("ref") or None,
            "p_habitable": float(p_habitable[i]),
            "predicted_class": HABITABILITY_CLASSES[int(classes[i])],
            "predicted_surface_temperature_k": float(temperature[i]),
            "modalities": "params,text",
        })
    return records


def format_table(records: list[dict]) -> str:
    head = (f"{'planet':<15} {'S/S_E':>9} {'Teff':>6} {'physics HZ':<13} {'literature':<13} "
            f"{'P(hab)':>6} {'class':<10} {'T_s (K)':>7}")
    lines = [head, "-" * len(head)]
    for r in records:
        physics = r["physics_hz"] + ("*" if r["physics_hz_teff_clamped"] else "")
        lines.append(f"{r['planet']:<15} {r['pl_insol']:>9.3g} {r['st_teff']:>6.0f} "
                     f"{physics:<13} {r['lit_hz'] or '-':<13} {r['p_habitable']:>6.3f} "
                     f"{r['predicted_class']:<10} {r['predicted_surface_temperature_k']:>7.0f}")
    if any(r["physics_hz_teff_clamped"] for r in records):
        lines.append("* Teff outside 2600-7200 K: the Kopparapu fit is evaluated at the edge")
    return "\n".join(lines)


def write_predictions(records: list[dict], out: Path, stem: str) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / f"{stem}_predictions.csv", out / f"{stem}_predictions.json"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    json_path.write_text(json.dumps(records, indent=2))
    return csv_path, json_path


def agreement(records: list[dict]) -> dict[str, float | int]:
    """How the physics status and the model's call (P >= 0.5) match the literature's
    in-zone/outside verdict, over the planets that have one."""
    rated = [r for r in records if r["lit_hz"]]
    in_zone = np.array([r["lit_hz"] != "outside" for r in rated])
    physics = np.array([r["physics_hz"] != "outside" for r in rated])
    model = np.array([r["p_habitable"] >= 0.5 for r in rated])
    exact = np.array([r["physics_hz"] == r["lit_hz"] for r in rated])
    n = len(rated)
    return {"n": n,
            "physics_in_zone_agreement": float((physics == in_zone).mean()) if n else float("nan"),
            "physics_exact_status_agreement": float(exact.mean()) if n else float("nan"),
            "model_in_zone_agreement": float((model == in_zone).mean()) if n else float("nan")}


@cli
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m astrobio.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", default=None,
                        help="pscomppars CSV (default: the curated catalogue shipped with "
                             "astrobio)")
    parser.add_argument("--run", required=True, help="run directory of a trained system")
    parser.add_argument("--out", help="output folder (default: RUN/predictions)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-bad-rows", action="store_true",
                        help="warn about and skip bad rows instead of stopping")
    args = parser.parse_args(argv)
    catalog = Path(args.catalog) if args.catalog else bundled_catalogue()
    records = predict_catalogue(catalog, args.run, args.device,
                                on_error="skip" if args.skip_bad_rows else "raise")
    print(format_table(records))
    scores = agreement(records)
    if scores["n"]:
        print(f"against the literature's habitable-zone status ({scores['n']} planets): physics "
              f"in/out agreement {scores['physics_in_zone_agreement']:.2f}, model (P >= 0.5) "
              f"{scores['model_in_zone_agreement']:.2f}")
    out = Path(args.out) if args.out else Path(args.run) / "predictions"
    paths = write_predictions(records, out, catalog.stem)
    print(f"wrote {paths[0]} and {paths[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
