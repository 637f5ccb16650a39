"""The multimodal LLM: prefix layout, extended mask and labels at hand-checked positions, the LM
loss against an independent cross-entropy, absent prefixes, and a save_pretrained round trip."""

import math

import pytest
import torch

from astrobio.config import LLMConfig
from astrobio.errors import ConfigError
from astrobio.models import MultiModalLLM

VOCAB = 29
LLM = LLMConfig(hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=24,
                vocab_size=VOCAB, max_position_embeddings=16)


def make_llm(config=LLM):
    return MultiModalLLM(config, numerical_dim=6, spectral_dim=5, numerical_tokens=2,
                         spectral_tokens=3).eval()


def inputs(batch=2, length=4):
    ids = torch.randint(1, VOCAB, (batch, length))
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, 3:] = 0  # sample 0 has three tokens and one pad
    return ids, mask, torch.randn(batch, 6), torch.randn(batch, 5)


def test_prefix_mask_and_labels_positions():
    llm = make_llm()
    ids, mask, num, spec = inputs()
    out = llm(ids, mask, labels=ids, numerical_data=num, spectral_data=spec,
              numerical_present=torch.tensor([False, True]),
              spectral_present=torch.tensor([True, False]))
    assert out.text_start == 5 and out.text_positions == slice(5, 9)
    assert out.logits.shape == (2, 9, VOCAB) and out.hidden_states.shape == (2, 9, 16)
    assert out.attention_mask.tolist() == [[0, 0, 1, 1, 1, 1, 1, 1, 0],
                                           [1, 1, 0, 0, 0, 1, 1, 1, 1]]
    ignore = -100
    assert out.labels[0].tolist() == [ignore] * 5 + ids[0, :3].tolist() + [ignore]
    # sample 1: the first text token is predicted from a masked (absent) spectral position
    assert out.labels[1].tolist() == [ignore] * 6 + ids[1, 1:].tolist()


def test_lm_loss_is_next_token_cross_entropy():
    llm = make_llm()
    ids, mask, num, spec = inputs()
    out = llm(ids, mask, labels=ids, numerical_data=num, spectral_data=spec)
    log_probs = torch.log_softmax(out.logits.double(), dim=-1)
    nll = []
    for b in range(2):
        for t in range(int(mask[b].sum())):
            # text token t sits at position 5 + t and is predicted from position 4 + t
            nll.append(-log_probs[b, 4 + t, ids[b, t]])
    assert torch.allclose(out.loss.double(), torch.stack(nll).mean(), rtol=1e-5)


def test_no_prefix_and_no_labels():
    llm = make_llm()
    ids, mask, _, _ = inputs()
    out = llm(ids, mask)
    assert out.text_start == 0 and out.labels is None and out.loss == 0
    assert out.logits.shape == (2, 4, VOCAB)


def test_absent_prefix_does_not_reach_text():
    llm = make_llm()
    ids, mask, num, spec = inputs()
    absent = torch.tensor([True, False])
    first = llm(ids, mask, ids, num, spec, spectral_present=absent)
    spec2 = spec.clone()
    spec2[1] = 100 * torch.randn(5)
    second = llm(ids, mask, ids, num, spec2, spectral_present=absent)
    assert torch.equal(first.text_hidden_states, second.text_hidden_states)
    assert torch.equal(first.loss, second.loss)
    spec2[0] += 1.0  # present for sample 0: its text must see it
    third = llm(ids, mask, ids, num, spec2, spectral_present=absent)
    assert not torch.allclose(first.text_hidden_states[0], third.text_hidden_states[0])


def test_no_supervised_token_gives_zero_loss_with_gradient():
    llm = make_llm()
    ids, _, num, spec = inputs()
    out = llm(ids, torch.zeros_like(ids), ids, num, spec)
    assert out.loss == 0 and math.isfinite(out.hidden_states.sum().item())
    out.loss.backward()


def test_save_pretrained_round_trip(tmp_path):
    llm = make_llm()
    llm.lm.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = make_llm(LLMConfig(**{**LLM.__dict__, "path": str(tmp_path)}))
    # the projectors are not part of the LM file
    loaded.numerical_projector.load_state_dict(llm.numerical_projector.state_dict())
    loaded.spectral_projector.load_state_dict(llm.spectral_projector.state_dict())
    for name, tensor in llm.lm.state_dict().items():
        assert torch.equal(tensor, loaded.lm.state_dict()[name]), name
    ids, mask, num, spec = inputs()
    a = llm(ids, mask, ids, num, spec)
    b = loaded(ids, mask, ids, num, spec)
    assert torch.allclose(a.logits, b.logits, atol=1e-6)


def test_bad_path_and_bad_ids(tmp_path):
    with pytest.raises(ConfigError, match="config.json"):
        make_llm(LLMConfig(**{**LLM.__dict__, "path": str(tmp_path / "missing")}))
    llm = make_llm()
    with pytest.raises(ValueError, match="vocabulary"):
        llm(torch.tensor([[1, VOCAB]]))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        llm(torch.ones(1, 12, dtype=torch.long), numerical_data=torch.randn(1, 6),
            spectral_data=torch.randn(1, 5))
