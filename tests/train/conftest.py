"""A very small dataset and model shared by the training tests (built once per session)."""

import pytest

from astrobio.config import load_config
from astrobio.data.cache import ensure_default_dataset

SMALL = [
    "data.n_samples=48", "data.shard_size=16", "data.vocab_size=300", "data.max_text_tokens=48",
    "model.d_model=16", "model.cnn_channels=4,8", "model.gnn_hidden=16", "model.gnn_latent=8",
    "model.spectral_channels=8", "model.param_hidden=16", "model.fusion_layers=1",
    "model.fusion_heads=2", "model.llm.hidden_size=32", "model.llm.num_layers=1",
    "model.llm.num_heads=2", "model.llm.num_kv_heads=2", "model.llm.intermediate_size=64",
    "model.llm.vocab_size=300", "model.llm.max_position_embeddings=64",
    "train.batch_size=8", "train.steps=6", "train.warmup_steps=2", "train.checkpoint_every=2",
    "train.eval_every=3", "train.gradient_flow_every=2",
]


@pytest.fixture(scope="session")
def small_overrides():
    return list(SMALL)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory):
    config = load_config("tiny", overrides=SMALL)
    return ensure_default_dataset(config.data, tmp_path_factory.mktemp("data") / "ds",
                                  progress=False)
