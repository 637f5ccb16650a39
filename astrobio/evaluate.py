"""`python -m astrobio.evaluate --run DIR [--split test]`: score a trained run on one split and
plot what it learned.

Writes into `DIR/evaluation/`, each split's results beside the others': `evaluation_<split>.json`
(metrics, per-class report, ablation), `ablation_<split>.png` and `reliability_<split>.png`; and
the training curves `loss_curves.png` and `gradient_flow.png`. Runs on the run's
`train.cpu_threads` and `train.backend`, with a progress bar.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from astrobio.data.loader import make_loader
from astrobio.errors import ConfigError, cli
from astrobio.eval import plots
from astrobio.eval.evaluate import ablation, flat_metrics, predict, score
from astrobio.ops import use_backend
from astrobio.run import load_run, read_log
from astrobio.schema import MODALITIES


class _Counted:
    """`loader`, advancing `bar` by one for each batch every time it is iterated."""

    def __init__(self, loader, bar):
        self.loader, self.bar = loader, bar

    def __iter__(self):
        for batch in self.loader:
            yield batch
            self.bar.update(1)


def evaluate_run(run_dir: str | Path, split: str = "test", device: str = "auto",
                 batch_size: int | None = None, progress: bool = False) -> dict:
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be >= 1")
    run = load_run(run_dir, device)
    model, config, files, torch_device = run.model, run.config, run.files, run.device
    if torch_device.type == "cpu" and config.train.cpu_threads > 0:
        torch.set_num_threads(config.train.cpu_threads)
    loader = make_loader(run.dataset(split), batch_size or config.train.batch_size,
                         shuffle=False)

    out = files.evaluation
    out.mkdir(exist_ok=True)
    passes = 1 + len(MODALITIES)  # all modalities, then each one removed
    with use_backend(config.train.backend), tqdm(
            total=passes * len(loader), desc=f"evaluate {split}", unit="batch",
            disable=not progress) as bar:
        counted = _Counted(loader, bar)
        predictions = predict(model, counted, torch_device)
        results = score(predictions)
        removed = ablation(model, counted, torch_device, predictions)
    results["ablation_auroc"] = {name: r["auroc"] for name, r in removed.items()}
    results["ablation_drop"] = {name: {k: r[k] for k in ("drop", "low", "high")}
                                for name, r in removed.items()}
    results["split"], results["step"] = split, run.step
    (out / f"evaluation_{split}.json").write_text(json.dumps(results, indent=2))

    labelled = predictions["has_targets"].astype(bool)
    plots.plot_reliability(predictions["habitable"][labelled],
                           predictions["p_habitable"][labelled], out / f"reliability_{split}.png",
                           split)
    plots.plot_ablation(results["habitable"]["auroc"], results["ablation_auroc"],
                        out / f"ablation_{split}.png", results["ablation_drop"], split)
    losses = [r for r in read_log(files.metrics) if any(k.startswith("loss/") for k in r)]
    if losses:
        plots.plot_loss_curves(losses, out / "loss_curves.png")
    flow = read_log(files.gradient_flow)
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
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    results = evaluate_run(args.run, args.split, args.device, args.batch_size,
                           progress=not args.quiet)
    split = args.split
    print(f"{split} split ({results['n']} planets), step {results['step']}")
    for key, value in flat_metrics(results).items():
        print(f"  {key:<34} {value:.4f}")
    print(f"ablation: {split} AUROC (habitable) with one modality removed, and its drop with a "
          "95 % paired-bootstrap interval")
    for name, value in results["ablation_auroc"].items():
        drop = results["ablation_drop"][name]
        print(f"  without {name:<26} {value:.4f}   drop {drop['drop']:+.4f} "
              f"[{drop['low']:+.4f}, {drop['high']:+.4f}]")
    out = Path(args.run) / "evaluation"
    print(f"plots and evaluation_{split}.json in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
