import pytest

from astrobio.config import PRESETS, config_from_dict, load_config
from astrobio.errors import ConfigError


def test_presets_build_and_13b_is_llama2_13b_shaped():
    for name in PRESETS:
        assert load_config(name).preset == name
    llm = load_config("13b").model.llm
    assert (llm.hidden_size, llm.num_layers, llm.num_heads, llm.intermediate_size,
            llm.vocab_size) == (5120, 40, 40, 13824, 32000)


def test_overrides_are_typed():
    config = load_config("tiny", overrides=["train.lr=1e-3", "model.cnn_channels=8,16",
                                            "loss.uncertainty_weighting=true",
                                            "model.llm.path=none"])
    assert config.train.lr == 1e-3
    assert config.model.cnn_channels == (8, 16)
    assert config.loss.uncertainty_weighting is True
    assert config.model.llm.path is None


@pytest.mark.parametrize("override", ["train.lrr=1", "nosuch.lr=1", "train.steps=2.5",
                                      "loss.uncertainty_weighting=maybe", "train.steps"])
def test_bad_overrides_are_errors(override):
    with pytest.raises(ConfigError):
        load_config("tiny", overrides=[override])


def test_file_unknown_key_is_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[train]\nsteps = 5\n[model.llm]\nhidden_size = 64\n")
    config = load_config("tiny", file=path)
    assert config.train.steps == 5 and config.model.llm.hidden_size == 64
    path.write_text("[train]\nstep = 5\n")
    with pytest.raises(ConfigError, match="train.step"):
        load_config("tiny", file=path)
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config("huge")


@pytest.mark.parametrize("override,field", [
    ("train.loader=ffcv", "train.loader"), ("train.backend=cudnn", "train.backend"),
    ("train.device=gpu", "train.device"), ("train.device=cuda:x", "train.device"),
    ("parallel.activation_checkpointing=some", "parallel.activation_checkpointing"),
    ("train.grad_accum=0", "train.grad_accum"), ("train.checkpoint_every=0",
                                                 "train.checkpoint_every"),
    ("train.eval_every=0", "train.eval_every"), ("train.batch_size=0", "train.batch_size"),
    ("train.steps=-5", "train.steps"), ("train.lr=-1e-3", "train.lr"), ("train.lr=nan", "train.lr"),
    ("train.lr=inf", "train.lr"), ("train.modality_dropout=1.5", "train.modality_dropout"),
    ("data.test_fraction=1", "data.test_fraction"), ("parallel.tp=0", "parallel.tp"),
])
def test_values_outside_a_fields_range_or_choices_fail_when_the_config_loads(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config("tiny", overrides=[override])


def test_saved_configs_are_checked_too():
    values = load_config("tiny").to_dict()
    values["train"]["loader"] = "ffcv"
    with pytest.raises(ConfigError, match="train.loader"):
        config_from_dict(values)


def test_accepted_edge_values():
    config = load_config("tiny", overrides=["train.device=cuda:1", "train.lr=0",
                                            "train.modality_dropout=0", "data.n_samples=1"])
    assert config.train.device == "cuda:1" and config.model.prefix_tokens == 8
