"""`python -m astrobio.predict --run DIR [--catalog FILE.csv | --data DATASET]`: a trained
system's habitability predictions for planets.

`--catalog` (default: the curated catalogue shipped with astrobio) reads a NASA Exoplanet
Archive `pscomppars` CSV: its planets carry two of the five modalities, parameters and a text
written from them (`astrobio.data.readers.exoplanet_archive`). `--data` predicts every planet of
a built dataset (`python -m astrobio.data build --catalog ...`) with every modality it has, and
puts its known targets beside the predictions. Planets go through the model in batches with a
progress bar, so memory stays flat in the number of planets; `Run.predict(samples)` (for
notebooks) runs the same code and returns a pandas DataFrame.

Columns: `planet`; `modalities` (those present); the parameters under the archive's names and
in the archive's units (`st_lum` is log10(L/Lsun), as in the archive); `physics_hz`, the
habitable-zone status by Kopparapu et al. (2014) at the planet's insolation (Teff clamped into
the fits' 2600-7200 K, flagged); `p_habitable`, `p_biosignature`, `predicted_class`,
`predicted_surface_temperature_k`; `out_of_distribution`, each parameter that lies outside the
range of the run's training planets (beyond `OOD_TOLERANCE`) and how far (dex for positive
quantities, absolute for eccentricity), from the training dataset's card; with `--catalog`, the
CSV's literature columns (`lit_hz`, `lit_hz_ref`, `ref`) where it has them. Planets outside
the training distribution are also warned about. Prints a table and writes
`<stem>_predictions.csv` and `.json` into `--out` (default: the run directory's
`predictions/`).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import sys
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from astrobio.data.batch import multimodal_collate_fn
from astrobio.data.format import CARD_FILE, read_card
from astrobio.data.readers.exoplanet_archive import bundled_catalogue, read_exoplanet_archive
from astrobio.data.sample import PlanetSample, target_known
from astrobio.data.tokenizer import encode_texts
from astrobio.errors import ConfigError, DataError, cli
from astrobio.models.normalisation import PARAM_NORMALISATION
from astrobio.ops import use_backend
from astrobio.physics import habitable_zone_flux
from astrobio.run import Run, load_run
from astrobio.schema import HABITABILITY_CLASSES, MODALITIES, PARAM_NAMES, TARGETS

__all__ = ["bundled_catalogue", "predict_catalogue", "predict_dataset", "predict_samples"]

HZ_STATUSES = ("conservative", "optimistic", "outside")
EXTRA_COLUMNS = ("lit_hz", "lit_hz_ref", "ref")
BATCH_SIZE = 64
WARNED_PLANETS = 20  # per-planet warnings before a summary; the column has every planet
# How far beyond the training range a parameter may lie before it is reported, in units of the
# model's normalisation scale of that parameter (about the training population's spread).
OOD_TOLERANCE = 0.1
_PARAMS = MODALITIES.index("params")


class OutOfDistributionWarning(UserWarning):
    """A planet's inputs lie outside the range of the planets the run was trained on."""


def physics_hz_statuses(teff, insolation, planet_mass) -> tuple[np.ndarray, np.ndarray]:
    """(status, Teff clamped) per planet by Kopparapu et al. (2014) at its insolation,
    vectorised over arrays."""
    flux = habitable_zone_flux(np.asarray(teff, np.float64), planet_mass=np.asarray(
        planet_mass, np.float64), out_of_range="clamp")
    s = np.asarray(insolation, np.float64)
    conservative = (flux["maximum_greenhouse"] <= s) & (s <= flux["runaway_greenhouse"])
    optimistic = (flux["early_mars"] <= s) & (s <= flux["recent_venus"])
    status = np.where(conservative, "conservative", np.where(optimistic, "optimistic",
                                                            "outside"))
    return status, np.asarray(flux["teff_clamped"], bool)


def physics_hz_status(teff: float, insolation: float, planet_mass: float) -> tuple[str, bool]:
    """`physics_hz_statuses` of one planet."""
    status, clamped = physics_hz_statuses([teff], [insolation], [planet_mass])
    return str(status[0]), bool(clamped[0])


def archive_units(params: np.ndarray) -> dict[str, float]:
    """The sample's parameters as the archive gives them (st_lum as log10(L/Lsun)), to float32's
    precision (7 significant digits)."""
    values = {name: float(f"{float(v):.7g}") for name, v in zip(PARAM_NAMES, params,
                                                                strict=True)}
    lum = float(params[PARAM_NAMES.index("st_lum")])
    values["st_lum"] = float(f"{math.log10(lum):.7g}") if lum > 0 else math.nan
    return values


def training_distribution(run: Run) -> dict | None:
    """The per-parameter quantiles of the run's training planets (its dataset's card), or None
    with a warning saying why they are unavailable."""
    try:
        card = read_card(run.data_dir)
    except DataError as err:
        warnings.warn(f"cannot compare with the training distribution: {err}",
                      OutOfDistributionWarning, stacklevel=3)
        return None
    distribution = card.get("param_distribution") or {}
    if not distribution.get("params"):
        warnings.warn(f"cannot compare with the training distribution: "
                      f"{run.data_dir / CARD_FILE} records none", OutOfDistributionWarning,
                      stacklevel=3)
        return None
    return distribution


def outside_distribution(params: np.ndarray, distribution: dict) -> list[str]:
    """For each parameter (`params` in the sample's units) outside the training planets'
    [min, max] by more than `OOD_TOLERANCE`: which, its value, and how far (dex for the
    positive quantities, which the model reads in log10; absolute for eccentricity). st_lum is
    quoted as log10(L/Lsun), the archive's unit."""
    quantiles = distribution["quantiles"]
    low_q, high_q = quantiles.index(0.0), quantiles.index(1.0)
    found = []
    for name, value in zip(PARAM_NAMES, (float(v) for v in params), strict=True):
        if name not in distribution["params"]:
            continue
        low, high = distribution["params"][name][low_q], distribution["params"][name][high_q]
        logarithmic, _, scale = PARAM_NORMALISATION[name]
        if logarithmic and min(value, low) <= 0:
            continue  # not a physical value of a positive quantity; the readers reject those
        model_space = math.log10 if logarithmic else float
        below = model_space(low) - model_space(value)
        above = model_space(value) - model_space(high)
        if max(below, above) <= OOD_TOLERANCE * scale:
            continue
        side, distance = ("above", above) if above > 0 else ("below", below)
        if name == "st_lum":
            value, low, high = math.log10(value), math.log10(low), math.log10(high)
        unit = " dex" if logarithmic else ""
        found.append(f"{name} {value:.4g} is {distance:.3g}{unit} {side} the training range "
                     f"[{low:.4g}, {high:.4g}]")
    return found


def _batches(samples: Iterable[PlanetSample], size: int) -> Iterator[list[PlanetSample]]:
    batch = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict_samples(run: Run, samples: Iterable[PlanetSample], batch_size: int = BATCH_SIZE,
                    progress: bool = False, total: int | None = None,
                    labels: bool = False) -> Iterator[dict]:
    """One record per sample (module docstring), `batch_size` planets per forward pass. Texts
    are encoded with the run's tokenizer; every sample must have the run's data shapes.
    `labels` adds each known target beside the predictions (`true_<target>`)."""
    if batch_size < 1:
        raise ConfigError(f"batch size {batch_size} must be >= 1")
    data = run.config.data
    run.model.eval()
    distribution = training_distribution(run)
    warned = 0
    with tqdm(total=total, unit="planet", desc="predict", disable=not progress) as bar:
        for batch in _batches(samples, batch_size):
            for sample in batch:
                sample.validate(data.climate_shape, data.spectrum_bins)
            ids = encode_texts(run.tokenizer, [s.text for s in batch], data.max_text_tokens)
            batch = [dataclasses.replace(s, input_ids=tokens)
                     for s, tokens in zip(batch, ids, strict=True)]
            heads = _heads(run, batch)
            params = np.stack([s.params for s in batch]).astype(np.float64)
            has_params = np.array([bool(s.present[_PARAMS]) for s in batch])
            safe = np.where(has_params[:, None], params, 1.0)
            status, clamped = physics_hz_statuses(safe[:, 0], safe[:, PARAM_NAMES.index(
                "pl_insol")], safe[:, PARAM_NAMES.index("pl_bmasse")])
            for i, sample in enumerate(batch):
                record = _record(sample, has_params[i], status[i], clamped[i],
                                 {k: v[i] for k, v in heads.items()}, distribution, labels)
                if record["out_of_distribution"]:
                    warned += 1
                    if warned <= WARNED_PLANETS:
                        warnings.warn(f"{sample.planet_id}: {record['out_of_distribution']}",
                                      OutOfDistributionWarning, stacklevel=2)
                yield record
            bar.update(len(batch))
    if warned > WARNED_PLANETS:
        warnings.warn(f"{warned - WARNED_PLANETS} more planets have inputs outside the training "
                      "distribution (the out_of_distribution column names them all)",
                      OutOfDistributionWarning, stacklevel=2)


@torch.no_grad()
def _heads(run: Run, batch: list[PlanetSample]) -> dict[str, np.ndarray]:
    """The model's outputs for one batch, as numpy arrays."""
    device = run.device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    with use_backend(run.config.train.backend), autocast:
        output = run.model(multimodal_collate_fn(batch).to(device))
    return {"p_habitable": torch.sigmoid(output.habitable_logit.float()).cpu().numpy(),
            "p_biosignature": torch.sigmoid(output.biosignature_logit.float()).cpu().numpy(),
            "class": output.habitability_class_logits.argmax(-1).cpu().numpy(),
            "temperature": output.surface_temperature.float().cpu().numpy()}


def _record(sample: PlanetSample, has_params: bool, status: str, clamped: bool, heads: dict,
            distribution: dict | None, labels: bool) -> dict:
    params = archive_units(sample.params) if has_params else dict.fromkeys(PARAM_NAMES)
    outside = (outside_distribution(sample.params, distribution)
               if has_params and distribution is not None else [])
    record = {
        "planet": sample.planet_id,
        "modalities": ",".join(m for m, here in zip(MODALITIES, sample.present, strict=True)
                               if here),
        **params,
        "physics_hz": str(status) if has_params else None,
        "physics_hz_teff_clamped": bool(clamped) if has_params else None,
        "p_habitable": float(heads["p_habitable"]),
        "p_biosignature": float(heads["p_biosignature"]),
        "predicted_class": HABITABILITY_CLASSES[int(heads["class"])],
        "predicted_surface_temperature_k": float(heads["temperature"]),
        "out_of_distribution": "; ".join(outside),
    }
    if labels:
        for target in TARGETS:
            value = getattr(sample, target)
            known = bool(sample.has_targets and target_known(target, value))
            if target == "habitability_class" and known:
                value = HABITABILITY_CLASSES[int(value)]
            name = "true_surface_temperature_k" if target == "surface_temperature" \
                else f"true_{target}"
            record[name] = value if known else None
    return record


def _extra_columns(path: Path) -> dict[str, dict[str, str]]:
    """planet -> the CSV's non-archive columns (literature status and sources), if any."""
    lines = [line for line in path.read_text(encoding="utf-8-sig").splitlines()
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


def _run(run: str | Path | Run, device: str) -> Run:
    return run if isinstance(run, Run) else load_run(run, device)


def predict_catalogue(catalog: str | Path, run: str | Path | Run, device: str = "auto",
                      on_error: str = "raise", batch_size: int = BATCH_SIZE,
                      progress: bool = False) -> list[dict]:
    """One record per planet of `catalog` (module docstring); `run` is a run directory or a
    loaded `Run`."""
    run = _run(run, device)
    catalog = Path(catalog)
    samples = read_exoplanet_archive(catalog, run.config.data, on_error=on_error)
    extras = _extra_columns(catalog)  # after the reader has checked the file
    if not samples:
        raise DataError("no planet to predict", file=str(catalog))
    records = []
    for record in predict_samples(run, samples, batch_size, progress, total=len(samples)):
        extra = extras.get(record["planet"], {})
        records.append({**record, **{k: extra.get(k) or None for k in EXTRA_COLUMNS}})
    return records


def predict_dataset(root: str | Path, run: str | Path | Run, device: str = "auto",
                    splits: tuple[str, ...] = ("train", "val", "test"),
                    batch_size: int = BATCH_SIZE, progress: bool = False) -> list[dict]:
    """One record per planet of the dataset at `root` (the given splits), every modality it
    has, with its split and known targets."""
    from astrobio.data.format import card_config
    from astrobio.data.reader import AstroBioDataset

    run = _run(run, device)
    root = Path(root)
    built, wanted = card_config(read_card(root), root), run.config.data
    for key in ("climate_levels", "lat", "lon", "spectrum_bins"):
        if getattr(built, key) != getattr(wanted, key):
            raise ConfigError(f"{root} has data.{key}={getattr(built, key)}, the run was "
                              f"trained with {getattr(wanted, key)}; build the dataset with "
                              f"`python -m astrobio.data build ... --run {run.files.root}`")
    datasets = {split: AstroBioDataset(root, split) for split in splits}
    order: list[str] = []  # the split of each sample, in the order the records come

    def samples() -> Iterator[PlanetSample]:
        for split, dataset in datasets.items():
            for i in range(len(dataset)):
                order.append(split)
                yield dataset[i]

    records = [{"planet": r.pop("planet"), "split": order[n], **r} for n, r in enumerate(
        predict_samples(run, samples(), batch_size, progress,
                        total=sum(len(d) for d in datasets.values()), labels=True))]
    if not records:
        raise DataError("no planet to predict", file=str(root))
    return records


def format_table(records: list[dict], limit: int = 50) -> str:
    head = (f"{'planet':<15} {'S/S_E':>9} {'Teff':>6} {'physics HZ':<13} {'literature':<13} "
            f"{'P(hab)':>6} {'class':<10} {'T_s (K)':>7} {'OOD':>3}")
    lines = [head, "-" * len(head)]
    for r in records[:limit]:
        physics = (r["physics_hz"] or "-") + ("*" if r["physics_hz_teff_clamped"] else "")
        insol = f"{r['pl_insol']:>9.3g}" if r["pl_insol"] is not None else f"{'-':>9}"
        teff = f"{r['st_teff']:>6.0f}" if r["st_teff"] is not None else f"{'-':>6}"
        lines.append(f"{r['planet']:<15} {insol} {teff} {physics:<13} "
                     f"{r.get('lit_hz') or '-':<13} {r['p_habitable']:>6.3f} "
                     f"{r['predicted_class']:<10} {r['predicted_surface_temperature_k']:>7.0f} "
                     f"{'yes' if r['out_of_distribution'] else '':>3}".rstrip())
    if len(records) > limit:
        lines.append(f"... and {len(records) - limit} more planets (all in the CSV and JSON)")
    if any(r["physics_hz_teff_clamped"] for r in records):
        lines.append("* Teff outside 2600-7200 K: the Kopparapu fit is evaluated at the edge")
    if any(r["out_of_distribution"] for r in records):
        lines.append("OOD: inputs outside the training distribution (see the "
                     "out_of_distribution column)")
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
    rated = [r for r in records if r.get("lit_hz")]
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
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--catalog", default=None,
                        help="pscomppars CSV (default: the curated catalogue shipped with "
                             "astrobio)")
    source.add_argument("--data", help="a built dataset: predict its planets with every "
                        "modality they have")
    parser.add_argument("--split", choices=("train", "val", "test", "all"), default="all",
                        help="with --data: which split (default all)")
    parser.add_argument("--run", required=True, help="run directory of a trained system")
    parser.add_argument("--out", help="output folder (default: RUN/predictions)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                        help=f"planets per forward pass (default {BATCH_SIZE})")
    parser.add_argument("--skip-bad-rows", action="store_true",
                        help="warn about and skip bad catalogue rows instead of stopping")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    run = load_run(args.run, args.device)
    if run.device.type == "cpu" and run.config.train.cpu_threads > 0:
        torch.set_num_threads(run.config.train.cpu_threads)
    with warnings.catch_warnings(record=True) as caught:  # printed after the progress bar
        warnings.simplefilter("always")
        if args.data:
            splits = ("train", "val", "test") if args.split == "all" else (args.split,)
            records = predict_dataset(args.data, run, splits=splits,
                                      batch_size=args.batch_size, progress=not args.quiet)
            stem = Path(args.data).name
        else:
            catalog = Path(args.catalog) if args.catalog else bundled_catalogue()
            records = predict_catalogue(catalog, run, on_error="skip" if args.skip_bad_rows
                                        else "raise", batch_size=args.batch_size,
                                        progress=not args.quiet)
            stem = catalog.stem
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    print(format_table(records))
    scores = agreement(records)
    if scores["n"]:
        print(f"against the literature's habitable-zone status ({scores['n']} planets): physics "
              f"in/out agreement {scores['physics_in_zone_agreement']:.2f}, model (P >= 0.5) "
              f"{scores['model_in_zone_agreement']:.2f}")
    out = Path(args.out) if args.out else Path(args.run) / "predictions"
    paths = write_predictions(records, out, stem)
    print(f"wrote {paths[0]} and {paths[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
