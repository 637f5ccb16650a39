"""`python -m astrobio.evaluate --run DIR`: score a trained run and plot what it learned.

Writes into `DIR/evaluation/`: `evaluation.json` (test metrics, per-class report, ablation),
`loss_curves.png`, `ablation.png`, `gradient_flow.png` and `reliability.png`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from astrobio.data.loader import make_loader
from astrobio.data.reader import AstroBioDataset
from astrobio.errors import cli
from astrobio.eval import plots
from astrobio.eval.evaluate import ablation, flat_metrics, predict, score
from astrobio.ops import use_backend
from astrobio.run import load_run


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def evaluate_run(run_dir: str | Path, split: str = "test", device: str = "auto",
                 batch_size: int | None = None) -> dict:
    run = load_run(run_dir, device)
    model, config, files, torch_device = run.model, run.config, run.files, run.device
    loader = make_loader(AstroBioDataset(run.data_dir, split),
                         batch_size or config.train.batch_size, shuffle=False)

    out = files.root / "evaluation"
    out.mkdir(exist_ok=True)
    with use_backend(config.train.backend):
        predictions = predict(model, loader, torch_device)
        results = score(predictions)
        removed = ablation(model, loader, torch_device, predictions)
    results["ablation_auroc"] = {name: r["auroc"] for name, r in removed.items()}
    results["ablation_drop"] = {name: {k: r[k] for k in ("drop", "low", "high")}
                                for name, r in removed.items()}
    results["split"], results["step"] = split, run.step
    (out / "evaluation.json").write_text(json.dumps(results, indent=2))

    labelled = predictions["has_targets"].astype(bool)
    plots.plot_reliability(predictions["habitable"][labelled],
                           predictions["p_habitable"][labelled], out / "reliability.png")
    plots.plot_ablation(results["habitable"]["auroc"], results["ablation_auroc"],
                        out / "ablation.png", results["ablation_drop"])
    losses = [r for r in _read_jsonl(files.metrics) if any(k.startswith("loss/") for k in r)]
    if losses:
        plots.plot_loss_curves(losses, out / "loss_curves.png")
    flow = _read_jsonl(files.gradient_flow)
    if flow:
        plots.plot_gradient_flow(flow, out / "gradient_flow.png")
    return results


@cli
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m astrobio.evaluate", description=__doc__)
    parser.add_argument("--run", required=True, help="run directory of python -m astrobio.train")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int)
    args = parser.parse_args(argv)
    results = evaluate_run(args.run, args.split, args.device, args.batch_size)
    print(f"{args.split} split ({results['n']} planets), step {results['step']}")
    for key, value in flat_metrics(results).items():
        print(f"  {key:<34} {value:.4f}")
    print("ablation: test AUROC (habitable) with one modality removed, and its drop with a 95 %"
          " paired-bootstrap interval")
    for name, value in results["ablation_auroc"].items():
        drop = results["ablation_drop"][name]
        print(f"  without {name:<26} {value:.4f}   drop {drop['drop']:+.4f} "
              f"[{drop['low']:+.4f}, {drop['high']:+.4f}]")
    print(f"plots and evaluation.json in {Path(args.run) / 'evaluation'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
