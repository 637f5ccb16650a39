"""The training loop: a run end to end, exact resume after a kill, and the non-finite guard."""

import dataclasses
import json
import signal
import subprocess
import sys

import pytest
import torch

from astrobio.config import load_config
from astrobio.data.batch import MultiModalBatch
from astrobio.errors import ConfigError
from astrobio.evaluate import evaluate_run
from astrobio.schema import MODALITIES
from astrobio.train import trainer
from astrobio.train.__main__ import main as train_main
from astrobio.train.trainer import TrainingDiverged, drop_modalities, train


def _losses(run_dir):
    """step -> total loss; a step logged twice is an error, so resume must not repeat one."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    steps = [r["step"] for r in records if "loss/total" in r]
    assert len(steps) == len(set(steps)), f"steps logged twice: {steps}"
    return {r["step"]: r["loss/total"] for r in records if "loss/total" in r}


def test_cli_trains_checkpoints_and_evaluates(tmp_path, small_dataset, small_overrides, capsys):
    run = tmp_path / "run"
    argv = ["--data", str(small_dataset), "--out", str(run), "--quiet"]
    # every modality in every logged batch, so each encoder's gradient must be nonzero
    for item in [*small_overrides, "train.modality_dropout=0", "train.catalogue_only=0"]:
        argv += ["--set", item]
    assert train_main(argv) == 0
    assert "habitable_auroc" in capsys.readouterr().out
    assert sorted(_losses(run)) == list(range(1, 7))
    assert all(torch.isfinite(torch.tensor(list(_losses(run).values()))))
    flow = [json.loads(line) for line in (run / "gradient_flow.jsonl").read_text().splitlines()]
    assert [r["step"] for r in flow] == [0, 2, 4]
    for encoder in ("climate", "graph", "spectrum", "params", "text"):
        assert all(r[encoder] > 0 for r in flow), encoder
    results = evaluate_run(run)
    assert set(results["ablation_auroc"]) == {"climate", "graph", "spectrum", "params", "text"}
    for name, drop in results["ablation_drop"].items():  # drop = full AUROC - ablated AUROC
        assert drop["drop"] == pytest.approx(
            results["habitable"]["auroc"] - results["ablation_auroc"][name], nan_ok=True)
    for plot in ("loss_curves", "ablation_test", "gradient_flow", "reliability_test"):
        assert (run / "evaluation" / f"{plot}.png").stat().st_size > 1000
    # a second run into the same directory must not overwrite it
    assert train_main(argv) == 2


def test_llm_path_flag_starts_from_the_saved_weights(tmp_path, small_dataset, small_overrides):
    """`--llm-path DIR` loads the LM that `save_pretrained` wrote there; at learning rate 0
    the trained run's LM weights are exactly the saved ones (a fresh LM would differ)."""
    from astrobio.models.llm import build_llama

    config = load_config("tiny", overrides=small_overrides)
    torch.manual_seed(12345)
    saved = build_llama(config.model.llm)
    saved.save_pretrained(tmp_path / "lm")
    run = tmp_path / "run"
    argv = ["--data", str(small_dataset), "--out", str(run), "--quiet", "--steps", "2",
            "--lr", "0", "--llm-path", str(tmp_path / "lm")]
    for item in small_overrides:
        argv += ["--set", item]
    assert train_main(argv) == 0
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["config"]["model"]["llm"]["path"] == str(tmp_path / "lm")
    for name, tensor in saved.state_dict().items():
        assert torch.equal(state["model"][f"llm.lm.{name}"], tensor), name


KILL_AT_STEP_3 = """
import os, signal, sys
from astrobio.data.batch import MultiModalBatch
from astrobio.train import trainer
log = trainer._append_jsonl
def log_then_die(path, record):
    log(path, record)
    if record.get("step") == 3 and "loss/total" in record:
        os.kill(os.getpid(), signal.SIGKILL)
trainer._append_jsonl = log_then_die
from astrobio.train.__main__ import main
main(sys.argv[1:])
"""


def test_resume_after_kill_equals_uninterrupted_run(tmp_path, small_dataset, small_overrides):
    """SIGKILL a run after step 3 (checkpoints at 2 and 4), resume it, and compare every loss
    with a run that was never interrupted."""
    args = ["--data", str(small_dataset), "--quiet"]
    for item in small_overrides:
        args += ["--set", item]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run([sys.executable, "-m", "astrobio.train", *args, "--out", str(whole)],
                   check=True, capture_output=True)
    died = subprocess.run([sys.executable, "-c", KILL_AT_STEP_3, *args, "--out", str(killed)],
                          capture_output=True)
    assert died.returncode == -signal.SIGKILL
    assert max(_losses(killed)) == 3
    assert torch.load(killed / "checkpoint.pt", weights_only=True)["step"] == 2

    subprocess.run([sys.executable, "-m", "astrobio.train", *args, "--out", str(killed),
                    "--resume"], check=True, capture_output=True)
    resumed, expected = _losses(killed), _losses(whole)
    assert sorted(resumed) == list(range(1, 7))
    assert resumed == expected
    flow = (killed / "gradient_flow.jsonl").read_text()
    assert flow == (whole / "gradient_flow.jsonl").read_text()


def test_non_finite_losses_skip_then_stop(tmp_path, small_dataset, small_overrides, monkeypatch):
    config = load_config("tiny", overrides=small_overrides + ["train.max_bad_steps=3",
                                                              "train.steps=8"])
    real = trainer.compute_losses

    def poisoned_after_two_steps(output, batch, loss_config, step, uncertainty=None):
        total, terms = real(output, batch, loss_config, step, uncertainty)
        return (total * float("nan") if step >= 2 else total), terms

    monkeypatch.setattr(trainer, "compute_losses", poisoned_after_two_steps)
    with pytest.warns(RuntimeWarning, match="non-finite"), pytest.raises(TrainingDiverged):
        train(config, tmp_path / "run", small_dataset, progress=False)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 2
    assert all(torch.isfinite(p).all() for p in state["model"].values())


def test_dali_loader_trains_and_augment_needs_it(tmp_path, small_dataset, small_overrides):
    pytest.importorskip("nvidia.dali", reason="DALI is not installed")
    config = load_config("tiny", overrides=small_overrides + [
        "train.loader=dali", "train.augment=true", "train.steps=2", "train.eval_every=100"])
    results = train(config, tmp_path / "dali", small_dataset, progress=False)
    assert results["n"] > 0
    state = torch.load(tmp_path / "dali" / "checkpoint.pt", weights_only=True)
    assert state["data_position"]["position"] == 2 * config.train.batch_size
    config = load_config("tiny", overrides=small_overrides + ["train.augment=true"])
    with pytest.raises(ConfigError, match="DALI"):
        train(config, tmp_path / "torch", small_dataset, progress=False)


def test_modality_dropout_hides_modalities_but_never_the_last():
    @dataclasses.dataclass
    class Batch:
        present: torch.Tensor
        masked = MultiModalBatch.masked

    present = torch.rand(4000, 5) < 0.8
    present[:10] = False  # samples with nothing stay so
    batch = Batch(present)
    assert torch.equal(drop_modalities(batch, 0.0).present, present)
    assert torch.equal(drop_modalities(batch, 1.0).present, present)  # all would go: keep all
    kept = drop_modalities(batch, 0.5).present
    assert not (kept & ~present).any()
    assert torch.equal(kept.any(dim=1), present.any(dim=1))
    multi = present.sum(dim=1) >= 2
    hidden = (present & ~kept)[multi].sum() / present[multi].sum()
    assert 0.4 < float(hidden) < 0.5  # 0.5, less the rows rescued whole


def test_catalogue_only_reduces_a_sample_to_what_a_catalogue_row_gives():
    @dataclasses.dataclass
    class Batch:
        present: torch.Tensor
        masked = MultiModalBatch.masked

    present = torch.ones(4000, len(MODALITIES), dtype=torch.bool)
    present[:100, [MODALITIES.index("params"), MODALITIES.index("text")]] = False
    catalogue = torch.tensor([m in ("params", "text") for m in MODALITIES])
    kept = drop_modalities(Batch(present), 0.0, 0.3).present
    assert torch.equal(kept[:100], present[:100])  # nothing of the catalogue's: keeps its own
    reduced = (kept[100:] == catalogue).all(dim=1)
    assert torch.equal(kept[100:][~reduced], present[100:][~reduced])
    assert 0.27 < float(reduced.float().mean()) < 0.33


def test_every_layout_has_every_member_of_the_protocol():
    from typing import get_type_hints

    from astrobio.train.distributed import MeshParallelism
    from astrobio.train.layout import Layout, SingleProcess

    members = set(get_type_hints(Layout)) | {
        name for name, value in vars(Layout).items() if callable(value)
        and not name.startswith("_")}
    assert {"device", "build", "save", "load", "all_finite"} <= members
    for layout in (SingleProcess, MeshParallelism):
        annotated = set(get_type_hints(layout)) | set(vars(layout))
        missing = {m for m in members if m not in annotated
                   and m not in ("device", "main", "world", "dp", "dp_rank")}
        assert not missing, (layout.__name__, missing)
