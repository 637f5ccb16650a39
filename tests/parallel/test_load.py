"""`load.materialize` from a saved LLM's files in one process (plain tensors) and its errors; the
tensor-parallel case is in test_parallel.py."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file

from astrobio.config import LLMConfig
from astrobio.errors import ConfigError
from astrobio.models.llm import build_llama
from astrobio.parallel.load import SafetensorsFiles, materialize, saved_tensor_files

LLM = LLMConfig(hidden_size=16, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=24,
                vocab_size=37, max_position_embeddings=16)


def test_meta_build_filled_from_the_files_equals_from_pretrained(tmp_path, test_seed):
    torch.manual_seed(test_seed)
    build_llama(LLM).save_pretrained(tmp_path)
    saved = dataclasses.replace(LLM, path=str(tmp_path))
    whole = build_llama(saved)
    meta = build_llama(saved, weights=False)
    assert all(p.is_meta for p in meta.parameters())
    with SafetensorsFiles(tmp_path) as files:
        materialize(meta, files, torch.device("cpu"), prefix="llm.lm.")
    for (name, a), (_, b) in zip(whole.state_dict().items(), meta.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    for name, buffer in whole.named_buffers():  # the rotary tables, not in the file
        assert torch.equal(buffer, meta.get_buffer(name)), name
    ids = torch.randint(0, LLM.vocab_size, (2, 7))
    torch.testing.assert_close(meta(ids).logits, whole(ids).logits, rtol=0, atol=0)


def test_sharded_files_and_missing_tensors(tmp_path):
    lm = build_llama(LLM)
    lm.save_pretrained(tmp_path / "one")
    names = sorted(lm.state_dict())
    halves = {"a.safetensors": names[: len(names) // 2], "b.safetensors": names[len(names) // 2:]}
    (tmp_path / "two").mkdir()
    for file, keys in halves.items():
        save_file({k: lm.state_dict()[k].contiguous() for k in keys}, tmp_path / "two" / file)
    (tmp_path / "two" / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {k: f for f, keys in halves.items() for k in keys}}))
    files = saved_tensor_files(tmp_path / "two")
    assert {k: f.name for k, f in files.items()} == {k: f for f, keys in halves.items()
                                                      for k in keys}
    assert set(saved_tensor_files(tmp_path / "one")) == set(names)

    with pytest.raises(ConfigError, match="safetensors"):
        saved_tensor_files(tmp_path)
    (tmp_path / "two" / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {k: f for f, keys in halves.items() for k in keys if "lm_head" not in k}}))
    meta = build_llama(dataclasses.replace(LLM, path=str(tmp_path / "one")), weights=False)
    files = SafetensorsFiles(tmp_path / "two")
    with pytest.raises(ConfigError, match="lm_head.weight"), files:
        materialize(meta, files, torch.device("cpu"), prefix="llm.lm.")
