import pytest

from astrobio.config import PRESETS, load_config
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
