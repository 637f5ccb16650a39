"""Checkpoints under attack and under crashes: a crafted pickle runs nothing, a flipped byte is
named, a kill during a save loses nothing, temporary files are cleaned."""

import io
import json
import os
import pickle
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from astrobio.checksum import checksum_path, sha256_file, write_checksum
from astrobio.config import load_config
from astrobio.evaluate import main as evaluate_main
from astrobio.predict import main as predict_main
from astrobio.run import load_run
from astrobio.train import checkpoint
from astrobio.train.__main__ import main as train_main
from astrobio.train.checkpoint import CheckpointError
from astrobio.train.trainer import train


class _Payload:
    """Unpickling this calls os.mkdir(marker): proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _plant_pickle(run, marker):
    """Replace the run's checkpoint by one carrying a payload, with a matching checksum (an
    attacker can compute one)."""
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["payload"] = _Payload(marker)
    torch.save(state, run / "checkpoint.pt")
    write_checksum(run / "checkpoint.pt")


def test_crafted_pickle_checkpoint_is_refused_everywhere_and_runs_nothing(run_copy, tmp_path,
                                                                          train_args, capsys):
    marker = tmp_path / "code-ran"
    _plant_pickle(run_copy, marker)
    with pytest.raises(CheckpointError, match="refused: it holds Python objects"):
        load_run(run_copy)
    assert evaluate_main(["--run", str(run_copy), "--quiet"]) == 2
    assert predict_main(["--run", str(run_copy)]) == 2
    assert train_main(train_args(run_copy, "--resume")) == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 3 and "Traceback" not in err
    assert "checkpoint.pt: refused" in err
    assert not marker.exists()


def test_flipped_byte_is_a_named_error_and_the_file_is_kept(run_copy, capsys):
    path = run_copy / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 .* differs"):
        load_run(run_copy)
    assert evaluate_main(["--run", str(run_copy), "--quiet"]) == 2
    assert "checkpoint.pt: sha256" in capsys.readouterr().err
    assert path.read_bytes() == bytes(data)  # nothing rewritten or deleted
    data[len(data) // 2] ^= 0x01  # the byte restored, the checkpoint loads again
    path.write_bytes(bytes(data))
    assert load_run(run_copy).step == 4


def test_checkpoint_without_checksum_is_named_with_the_remedy(run_copy):
    checksum_path(run_copy / "checkpoint.pt").unlink()
    with pytest.raises(CheckpointError, match="no readable checksum file.*sha256sum"):
        load_run(run_copy)


def test_truncated_checkpoint_is_a_named_error(run_copy):
    path = run_copy / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:1000])
    write_checksum(path)  # even with a matching checksum, a cut file is named
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_run(run_copy)


KILL_BETWEEN_RENAMES = """
import os, signal, sys
real_replace = os.replace
def replace(src, dst):
    real_replace(src, dst)
    if str(dst).endswith("checkpoint.pt") and os.environ["SAVES"] == "1":
        os.kill(os.getpid(), signal.SIGKILL)  # the checkpoint renamed, its checksum not yet
    if str(dst).endswith("checkpoint.pt"):
        os.environ["SAVES"] = "1"
os.replace = replace
os.environ["SAVES"] = "0"
from astrobio.train.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_between_the_renames_of_a_save_loses_nothing(tmp_path, train_args):
    """SIGKILL after the step-4 checkpoint replaced step 2's but before its checksum did: the
    pending checksum is finished on resume and the run continues from step 4."""
    run = tmp_path / "run"
    died = subprocess.run([sys.executable, "-c", KILL_BETWEEN_RENAMES,
                           *train_args(run, "--steps", "6")], capture_output=True)
    assert died.returncode == -signal.SIGKILL, died.stderr.decode()[-2000:]
    pending = list(run.glob(".checkpoint.pt.sha256.tmp-*"))
    assert len(pending) == 1
    assert load_run(run).step == 4  # the pending checksum vouches for the new file

    assert train_main(train_args(run, "--resume", sizes=False)) == 0
    assert not list(run.glob(".*.tmp-*"))
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 6
    state = checkpoint.load(run / "checkpoint.pt")
    assert state["step"] == 6
    assert sha256_file(run / "checkpoint.pt") in checksum_path(run / "checkpoint.pt").read_text()
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_crash_while_writing_keeps_the_previous_checkpoint_and_cleans_up(tmp_path, dataset,
                                                                         overrides, monkeypatch):
    """A save dies half-way through writing (disk full, power cut): the step-2 checkpoint stays
    loadable, and the resumed run removes the partial file and finishes."""
    config = load_config("tiny", overrides=overrides)
    real_save = torch.save

    def half_written(state, handle):
        if state["step"] == 4:
            handle.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(28, "No space left on device")
        real_save(state, handle)

    monkeypatch.setattr(checkpoint.torch, "save", half_written)
    with pytest.raises(OSError, match="No space"):
        train(config, tmp_path / "run", dataset, progress=False)
    monkeypatch.undo()
    partial = list((tmp_path / "run").glob(".checkpoint.pt.tmp-*"))
    assert len(partial) == 1
    assert load_run(tmp_path / "run").step == 2
    stale = tmp_path / "run" / ".checkpoint.pt.tmp-999999999"  # a process long gone
    stale.write_bytes(b"junk")
    train(config, tmp_path / "run", dataset, resume=True, progress=False)
    assert not list((tmp_path / "run").glob(".*.tmp-*"))
    assert load_run(tmp_path / "run").step == 4


def test_dcp_metadata_with_code_is_refused(tmp_path):
    from astrobio.errors import RunError
    from astrobio.parallel import dcp

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    dcp.save(tmp_path / "ckpt", model, optimizer, {"step": 3, **checkpoint.rng_states()})
    fresh = torch.nn.Linear(3, 2)
    fresh_optimizer = torch.optim.AdamW(fresh.parameters())
    assert dcp.load(tmp_path / "ckpt", fresh, fresh_optimizer)["step"] == 3  # plain: loads
    assert torch.equal(fresh.weight, model.weight)

    marker = tmp_path / "code-ran"
    trainer_file = tmp_path / "ckpt" / "trainer-rank0.pt"
    torch.save({"step": 3, "payload": _Payload(marker)}, trainer_file)
    with pytest.raises(RunError, match="trainer-rank0.pt: refused"):
        dcp.load(tmp_path / "ckpt", fresh, fresh_optimizer)
    (tmp_path / "ckpt" / ".metadata").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(RunError, match="metadata: refused"):
        dcp.load(tmp_path / "ckpt", fresh, fresh_optimizer)
    assert not marker.exists()


def test_dcp_non_tensor_item_with_code_is_refused(tmp_path):
    from astrobio.errors import RunError
    from astrobio.parallel.dcp_safety import SafeLoadPlanner

    marker = tmp_path / "code-ran"
    item = io.BytesIO()
    torch.save({"lr": 0.1, "payload": _Payload(marker)}, item)
    item.seek(0)
    read_item = SimpleNamespace(dest_index=SimpleNamespace(fqn="optimizer.param_groups"))
    with pytest.raises(RunError, match="optimizer.param_groups.*refused"):
        SafeLoadPlanner().load_bytes(read_item, item)
    assert not marker.exists()
