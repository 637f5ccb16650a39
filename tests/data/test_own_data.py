"""The README's "Your own data" commands, run as written (model sizes and step counts shrunk for
CI), and what they promise: `train --data` takes the dataset's settings, `--init` loads what it
can and says what it cannot, a dataset with another tokenizer is refused."""

import dataclasses
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch

from astrobio.config import load_config
from astrobio.data.__main__ import main as data_main
from astrobio.models import UnifiedMultiModalSystem
from astrobio.predict import main as predict_main
from astrobio.train.__main__ import load_matching
from astrobio.train.__main__ import main as train_main

REPO = Path(__file__).resolve().parents[2]
SMALL_MODEL = [
    "model.d_model=16", "model.cnn_channels=4,8", "model.gnn_hidden=16", "model.gnn_latent=8",
    "model.spectral_channels=8", "model.param_hidden=16", "model.fusion_layers=1",
    "model.fusion_heads=2", "model.llm.hidden_size=32", "model.llm.num_layers=1",
    "model.llm.num_heads=2", "model.llm.num_kv_heads=2", "model.llm.intermediate_size=64",
    "model.llm.vocab_size=300", "model.llm.max_position_embeddings=64",
]
SMALL_DATA = ["data.n_samples=48", "data.shard_size=16", "data.vocab_size=300",
              "data.max_text_tokens=48"]
PRETRAIN = [*SMALL_DATA, *SMALL_MODEL, "train.batch_size=8"]  # 31 planets in its train split
MAINS = {"astrobio.data": data_main, "astrobio.train": train_main,
         "astrobio.predict": predict_main}


def readme_block(language: str) -> str:
    """The first `language` code block of the README's "Your own data" section."""
    section = (REPO / "README.md").read_text().split("## Your own data", 1)[1]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


def readme_commands() -> list[list[str]]:
    """The bash block of the README's "Your own data" section, one argv per command."""
    block = readme_block("bash")
    return [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines()
            if line.strip()]


def _sets(overrides):
    return [arg for item in overrides for arg in ("--set", item)]


def test_readme_commands_run_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ASTROBIO_DATA_DIR", str(tmp_path / "cache"))
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    commands = readme_commands()
    assert [c[:3] for c in commands] == [
        ["python", "-m", "astrobio.data"], ["python", "-m", "astrobio.train"],
        ["python", "-m", "astrobio.data"], ["python", "-m", "astrobio.data"],
        ["python", "-m", "astrobio.train"], ["python", "-m", "astrobio.predict"]]
    for argv in commands:
        module, args = argv[2], argv[3:]
        if module == "astrobio.train" and "--init" not in args:  # the pre-training run
            args = [*args, "--steps", "2", *_sets(PRETRAIN), "--quiet"]
        elif module == "astrobio.train":
            args = [*args, "--steps", "2", "--quiet"]
        elif args[0] in ("build", "validate") or module == "astrobio.predict":
            args = [*args, "--quiet"]
        assert MAINS[module](args) == 0, (argv, capsys.readouterr().err)
        printed = capsys.readouterr()
        if args[0] == "build":
            assert "planets " in printed.out and "built 10 planets" in printed.out
            assert "warning" not in printed.err
        if args[0] == "validate":
            assert printed.out.startswith("ok:")
        if "--init" in args:
            assert "--init runs/pre: loaded 116 of 116 tensors" in printed.out
    records = json.loads(Path("runs/mine/predictions/mine_predictions.json").read_text())
    assert len(records) == 10
    earth = next(r for r in records if r["planet"] == "Earth")
    assert earth["modalities"] == "graph,params,text" and earth["true_habitable"] == 1
    assert earth["st_lum"] == 0.0 and 0 <= earth["p_habitable"] <= 1  # log10(1 Lsun)
    # the fine-tuned run trained on the user's dataset with its own data settings
    saved = json.loads(Path("runs/mine/config.json").read_text())
    card = json.loads(Path("data/mine/card.json").read_text())
    assert saved["data"] == card["config"] and saved["data_dir"].endswith("data/mine")
    assert saved["model"] == json.loads(Path("runs/pre/config.json").read_text())["model"]
    # then the section's Python: the same predictions from the API, and a dataset of them
    names: dict = {}
    exec(readme_block("python"), names)
    table = names["table"].set_index("planet")
    from_cli = {r["planet"]: r for r in json.loads(
        Path("runs/mine/predictions/mine_predictions.json").read_text())}
    assert sorted(table.index) == sorted(from_cli) and table.loc["Earth", "st_lum"] == 0.0
    assert table.loc["Earth", "modalities"] == "params,text"  # what a catalogue row holds
    assert data_main(["validate", "data/catalogue-only"]) == 0
    assert capsys.readouterr().out.startswith("ok:")


def test_train_data_takes_the_datasets_settings(tmp_path, capsys):
    data = tmp_path / "data"
    assert data_main(["build", "--n", "30", "--out", str(data), "--quiet",
                      *_sets(["data.vocab_size=300", "data.max_text_tokens=48",
                              "data.shard_size=8"])]) == 0
    out = tmp_path / "run"
    assert train_main(["--data", str(data), "--out", str(out), "--steps", "1", "--quiet",
                       "--batch-size", "4", *_sets(SMALL_MODEL)]) == 0
    assert json.loads((out / "config.json").read_text())["data"]["n_samples"] == 30
    capsys.readouterr()
    assert train_main(["--data", str(data), "--out", str(tmp_path / "other"), "--steps", "1",
                       "--quiet", *_sets(SMALL_MODEL + ["data.lat=8"])]) == 2
    assert "lat=16 (wanted 8)" in capsys.readouterr().err


def test_init_loads_what_fits_and_names_the_rest():
    small = load_config("tiny", overrides=PRETRAIN)
    other = load_config("tiny", overrides=[*PRETRAIN, "data.spectrum_bins=64",
                                           "model.fusion_layers=2"])
    torch.manual_seed(0)
    source = UnifiedMultiModalSystem(small)
    target = UnifiedMultiModalSystem(other)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    notes = load_matching(target, source.state_dict(), "runs/pre")
    loaded = int(notes[0].split()[3])
    after, origin = target.state_dict(), source.state_dict()
    same = [k for k in after if k in origin and origin[k].shape == after[k].shape]
    assert loaded == len(same) and notes[0].endswith(f"of {len(after)} tensors")
    for name in same:
        assert torch.equal(after[name], origin[name]), name
    skipped = [line for line in notes if line.startswith("not loaded")]
    assert sorted(line.split(":")[1].strip() for line in skipped) == sorted(
        k for k in after if k not in same)
    for name in (k for k in after if k not in same):
        assert torch.equal(after[name], before[name])  # left as initialised
    spectral = [line for line in skipped if "spectrum_encoder" in line and "shape" in line]
    assert spectral and all("runs/pre" in line for line in spectral)
    assert any("fusion.layers.1" in line and "has no such tensor" in line for line in skipped)


def test_init_refuses_a_dataset_with_another_tokenizer(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ASTROBIO_DATA_DIR", str(tmp_path / "cache"))
    pre = tmp_path / "pre"
    assert train_main(["--out", str(pre), "--steps", "1", "--quiet", *_sets(PRETRAIN)]) == 0
    bundle = tmp_path / "bundle"
    assert data_main(["example", "--out", str(bundle)]) == 0
    mine = tmp_path / "mine"
    config = load_config("tiny", overrides=SMALL_DATA)
    assert data_main(["build", "--catalog", str(bundle / "pscomppars.csv"), "--out", str(mine),
                      "--quiet", *_sets(f"data.{k}={v}" for k, v in dataclasses.asdict(
                          config.data).items() if k != "n_samples")]) == 0
    capsys.readouterr()
    assert train_main(["--data", str(mine), "--init", str(pre), "--out", str(tmp_path / "ft"),
                       "--steps", "1", "--quiet"]) == 2
    assert "another tokenizer" in capsys.readouterr().err
    assert train_main(["--data", str(mine), "--init", str(pre), "--resume", "--out",
                       str(tmp_path / "ft")]) == 2
    assert "--init starts a new" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--tokenizer", "x", "--run", "y"], ["--n", "5"]])
def test_build_from_files_refuses_contradictory_flags(argv, tmp_path, capsys):
    assert data_main(["build", "--catalog", "c.csv", "--out", str(tmp_path / "d"), *argv]) == 2
    assert "error:" in capsys.readouterr().err
