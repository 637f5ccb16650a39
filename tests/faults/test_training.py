"""Training under bad settings, non-finite numbers, signals and resumes: each a named error or
the correct result, never a hang, a traceback or a silent change."""

import json
import os
import signal

import pytest
import torch

from astrobio.config import load_config
from astrobio.errors import ConfigError
from astrobio.run import load_run
from astrobio.train import checkpoint, trainer
from astrobio.train.__main__ import main as train_main
from astrobio.train.trainer import TrainingDiverged, TrainingInterrupted, train


def _steps(run):
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
            if "loss/total" in json.loads(line)]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(("flags", "named"), [
    (["--set", "train.grad_accum=0"], "train.grad_accum"),
    (["--set", "train.checkpoint_every=0"], "train.checkpoint_every"),
    (["--set", "train.eval_every=0"], "train.eval_every"),
    (["--set", "train.gradient_flow_every=0"], "train.gradient_flow_every"),
    (["--batch-size", "0"], "train.batch_size"),
    (["--batch-size", "-3"], "train.batch_size"),
    (["--lr", "-0.1"], "train.lr"),
    (["--lr", "nan"], "train.lr"),
    (["--lr", "inf"], "train.lr"),
    (["--lr", "1e4"], "train.lr"),
    (["--steps", "0"], "train.steps"),
    (["--steps", "-5"], "train.steps"),
    (["--epochs", "-1"], "--epochs"),
    (["--epochs", "nan"], "--epochs"),
    (["--backend", "fast"], "train.backend"),
    (["--set", "train.modality_dropout=1.5"], "train.modality_dropout"),
    (["--set", "loss.habitable=-1"], "loss.habitable"),
    (["--set", "model.d_model=0"], "model.d_model"),
    (["--force"], "--force"),
    (["--set", "parallel.lora_rank=4"], "parallel.lora_rank=4"),  # a single process ignored it
    (["--set", "parallel.freeze_llm=true"], "parallel.freeze_llm=True"),
])
def test_user_mistakes_are_one_named_line_before_anything_runs(tmp_path, train_args, capsys,
                                                               flags, named):
    run = tmp_path / "run"
    assert train_main(train_args(run, *flags)) == 2
    assert named in _error_line(capsys)
    assert not (run / "checkpoint.pt").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_named_before_data_is_built(tmp_path, capsys):
    assert train_main(["--data", str(tmp_path / "never-built"), "--out", str(tmp_path / "run"),
                       "--device", "cuda", "--quiet"]) == 2
    assert "CUDA is not available" in _error_line(capsys)
    assert not (tmp_path / "never-built").exists()


def test_batch_larger_than_the_training_split_is_an_error_not_a_hang(tmp_path, train_args,
                                                                     capsys):
    """48 planets, 31 of them in the training split: a batch of 64 would never be drawn."""
    assert train_main(train_args(tmp_path / "run", "--batch-size", "64")) == 2
    line = _error_line(capsys)
    assert "train.batch_size=64" in line and "training split" in line
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_skipped_last_step_fails_naming_planets_and_the_last_checkpoint(
        tmp_path, dataset, overrides, monkeypatch):
    """Step 4 of 4 is non-finite: no final checkpoint can be written, so the run must not
    report success; the step-2 checkpoint is kept, finite."""
    config = load_config("tiny", overrides=overrides)
    real = trainer.compute_losses
    batches = []

    def nan_at_last_step(output, batch, loss_config, step, uncertainty=None):
        total, terms = real(output, batch, loss_config, step, uncertainty)
        if step == 3:
            batches.append(batch.planet_ids)
            total = total * float("nan")
        return total, terms

    monkeypatch.setattr(trainer, "compute_losses", nan_at_last_step)
    with pytest.warns(RuntimeWarning, match="step 4: non-finite"), \
            pytest.raises(TrainingDiverged) as failure:
        train(config, tmp_path / "run", dataset, progress=False)
    message = str(failure.value)
    assert "step 2's" in message and batches[0][0] in message and "did not finish" in message
    state = checkpoint.load(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert not (tmp_path / "run" / "test_metrics.json").exists()


def test_no_checkpoint_of_non_finite_weights(tmp_path, dataset, overrides, monkeypatch):
    """A step with a finite loss and gradient can still leave a weight at inf (an overflow in
    the update); the checkpoint of that step is refused and the last finite one stays."""
    config = load_config("tiny", overrides=overrides)
    real_step = torch.optim.AdamW.step
    calls = []

    def overflowing_step(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 4:
            self.param_groups[0]["params"][0].data.fill_(float("inf"))
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", overflowing_step)
    with pytest.raises(TrainingDiverged, match="not finite, so no checkpoint.*step 2's"):
        train(config, tmp_path / "run", dataset, progress=False)
    state = checkpoint.load(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(t).all() for t in state["model"].values())


def test_a_successful_run_ends_with_a_final_checkpoint(tmp_path, dataset, overrides):
    """5 steps with checkpoints every 2: the last one is written at step 5 regardless."""
    config = load_config("tiny", overrides=overrides + ["train.steps=5"])
    train(config, tmp_path / "run", dataset, progress=False)
    assert checkpoint.load(tmp_path / "run" / "checkpoint.pt")["step"] == 5
    assert _steps(tmp_path / "run") == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM])
def test_signal_finishes_the_step_saves_and_says_how_to_resume(tmp_path, train_args,
                                                               monkeypatch, capsys, sent):
    """The signal arrives while step 3 is logged (checkpoints every 2): the run saves step 3,
    exits 130 with the resume command, and the resumed run ends as a whole one would."""
    run = tmp_path / "run"
    real_log = trainer._append_jsonl

    def log_then_signal(path, record):
        real_log(path, record)
        if record.get("step") == 3 and "loss/total" in record:
            os.kill(os.getpid(), sent)

    monkeypatch.setattr(trainer, "_append_jsonl", log_then_signal)
    # what the caller had, not Python's default: a job started in the background ignores SIGINT
    handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    assert train_main(train_args(run)) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{sent.name} at step 3" in err
    assert f"python -m astrobio.train --out {run} --resume" in err
    assert checkpoint.load(run / "checkpoint.pt")["step"] == 3
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == handlers
    monkeypatch.undo()
    assert train_main(["--out", str(run), "--resume", "--quiet"]) == 0
    assert _steps(run) == [1, 2, 3, 4]
    assert checkpoint.load(run / "checkpoint.pt")["step"] == 4


def test_second_sigint_stops_at_once_keeping_the_last_checkpoint(tmp_path, dataset, overrides,
                                                                monkeypatch):
    config = load_config("tiny", overrides=overrides)
    real_log = trainer._append_jsonl

    def log_then_two_signals(path, record):
        real_log(path, record)
        if record.get("step") == 3 and "loss/total" in record:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(trainer, "_append_jsonl", log_then_two_signals)
    with pytest.raises(TrainingInterrupted, match="stopped at once.*step 2's.*--resume"):
        train(config, tmp_path / "run", dataset, progress=False)
    assert checkpoint.load(tmp_path / "run" / "checkpoint.pt")["step"] == 2


def test_resume_keeps_the_runs_config_and_prints_an_override(run_copy, capsys):
    """No flags: the run's own settings (not the preset's defaults); --steps 6: applied and
    printed; config.json then says 6 and keeps everything else."""
    saved = json.loads((run_copy / "config.json").read_text())
    assert train_main(["--out", str(run_copy), "--resume", "--quiet"]) == 0
    assert json.loads((run_copy / "config.json").read_text()) == saved
    capsys.readouterr()
    assert train_main(["--out", str(run_copy), "--resume", "--quiet", "--steps", "6"]) == 0
    assert "train.steps: 4 -> 6" in capsys.readouterr().out
    now = json.loads((run_copy / "config.json").read_text())
    assert now["train"].pop("steps") == 6 and saved["train"].pop("steps") == 4
    assert now == saved
    assert _steps(run_copy) == [1, 2, 3, 4, 5, 6]
    assert load_run(run_copy).step == 6


def test_resume_refuses_a_trajectory_change_without_force(run_copy, capsys):
    before = (run_copy / "config.json").read_text()
    assert train_main(["--out", str(run_copy), "--resume", "--quiet", "--lr", "0.01"]) == 2
    line = _error_line(capsys)
    assert "train.lr: 0.002 -> 0.01" in line and "--force" in line
    assert (run_copy / "config.json").read_text() == before  # nothing changed
    assert train_main(["--out", str(run_copy), "--resume", "--quiet", "--preset", "small"]) == 2
    assert "preset 'tiny'" in _error_line(capsys)
    assert train_main(["--out", str(run_copy), "--resume", "--quiet", "--lr", "0.01",
                       "--steps", "5", "--force"]) == 0
    out = capsys.readouterr().out
    assert "train.lr: 0.002 -> 0.01" in out and "train.steps: 4 -> 5" in out
    assert json.loads((run_copy / "config.json").read_text())["train"]["lr"] == 0.01


def test_resume_with_a_different_model_is_refused(run_copy, dataset, overrides):
    config = load_config("tiny", overrides=overrides + ["model.d_model=24"])
    with pytest.raises(ConfigError, match="model.d_model: 16 -> 24"):
        train(config, run_copy, dataset, resume=True, progress=False)


def test_damaged_logs_are_repaired_on_resume(run_copy, recwarn):
    """A crash cut the last line of each log in half: resume drops it and goes on."""
    for name in ("metrics.jsonl", "gradient_flow.jsonl"):
        with open(run_copy / name, "a") as handle:
            handle.write('{"step": 5, "loss/tot')
    assert train_main(["--out", str(run_copy), "--resume", "--quiet", "--steps", "5"]) == 0
    assert any("dropped 1 damaged line" in str(w.message) for w in recwarn)
    assert _steps(run_copy) == [1, 2, 3, 4, 5]
    for name in ("metrics.jsonl", "gradient_flow.jsonl"):
        for line in (run_copy / name).read_text().splitlines():
            json.loads(line)


def test_truncated_config_is_a_named_error(run_copy, capsys):
    path = run_copy / "config.json"
    path.write_text(path.read_text()[:100])
    assert train_main(["--out", str(run_copy), "--resume", "--quiet"]) == 2
    assert "config.json: unreadable or truncated" in _error_line(capsys)
