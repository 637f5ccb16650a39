"""The offline byte-level BPE: special ids, round trips, truncation, offline loading."""

import numpy as np
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from astrobio.data.tokenizer import (
    BOS,
    EOS,
    PAD,
    UNK,
    encode_text,
    encode_texts,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)
from astrobio.errors import ConfigError, DataError
from astrobio.schema import PAD_TOKEN_ID

WORDS = ["temperate", "rocky", "planet", "orbiting", "an", "M", "dwarf", "water", "vapour",
         "methane", "ozone", "clouds", "surface", "insolation", "habitable", "zone", "the", "of",
         "with", "and", "at", "K", "AU"]


def _texts(rng, n=120):
    return [" ".join(rng.choice(WORDS, int(rng.integers(3, 40)))) + f" {rng.integers(0, 9999)}"
            for _ in range(n)]


@pytest.fixture
def tokenizer(rng):
    return train_tokenizer(_texts(rng), vocab_size=int(rng.integers(300, 600)))


def test_special_tokens_take_the_first_ids(tokenizer):
    assert tokenizer.pad_token_id == PAD_TOKEN_ID == 0
    assert [tokenizer.convert_tokens_to_ids(t) for t in (PAD, BOS, EOS, UNK)] == [0, 1, 2, 3]


def test_vocab_respects_the_config_and_merges_happen(rng):
    texts = _texts(rng)
    vocab_size = int(rng.integers(300, 600))
    tokenizer = train_tokenizer(texts, vocab_size)
    assert 260 < len(tokenizer) <= vocab_size
    # Without merges a byte-level tokenizer spends one token per byte. Measured over the whole
    # corpus (one short text varies too much): at most 0.55 tokens per byte for 300 ids over
    # seeds 0-29.
    tokens = sum(len(encode_text(tokenizer, text, 10_000)) - 2 for text in texts)
    assert tokens < 0.65 * sum(len(text.encode()) for text in texts)


def test_any_text_round_trips_without_unk(tokenizer, rng):
    alphabet = list("abcxyz ÄéØ☃🪐\t\n0123456789.,;-") + ["µm", "H₂O"]
    for _ in range(20):
        text = "".join(rng.choice(alphabet, int(rng.integers(0, 50))))
        ids = encode_text(tokenizer, text, 10_000)
        assert tokenizer.unk_token_id not in ids[1:-1].tolist()
        assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_encode_adds_bos_eos_and_truncates_the_body(tokenizer, rng):
    text = " ".join(rng.choice(WORDS, 60))
    body = tokenizer.encode(text, add_special_tokens=False)
    for max_tokens in (2, 3, 17, len(body) + 2, len(body) + 50):
        ids = encode_text(tokenizer, text, max_tokens)
        assert ids.dtype == np.int64
        expected = [1, *body[: max_tokens - 2], 2]
        assert ids.tolist() == expected
    assert [a.tolist() for a in encode_texts(tokenizer, [text, ""], 9)] == \
        [[1, *body[:7], 2], [1, 2]]
    # The saved tokenizer's own post-processor agrees with `encode_text`.
    assert tokenizer(text)["input_ids"] == encode_text(tokenizer, text, 10_000).tolist()


def test_too_small_limits_are_config_errors(tokenizer, rng):
    with pytest.raises(ConfigError, match="vocab_size"):
        train_tokenizer(_texts(rng), 200)
    with pytest.raises(ConfigError, match="max_text_tokens"):
        encode_text(tokenizer, "abc", 1)


def test_training_is_deterministic(rng, tmp_path):
    texts, vocab_size = _texts(rng), int(rng.integers(300, 600))
    save_tokenizer(train_tokenizer(texts, vocab_size), tmp_path / "a.json")
    save_tokenizer(train_tokenizer(texts, vocab_size), tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_saved_file_loads_offline_three_ways(tokenizer, rng, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    save_tokenizer(tokenizer, tmp_path / "tokenizer.json")
    text = " ".join(rng.choice(WORDS, 30))
    expected = encode_text(tokenizer, text, 64).tolist()
    from_file = load_tokenizer(tmp_path / "tokenizer.json")
    from_dir = load_tokenizer(tmp_path)  # a dataset directory holding tokenizer.json
    plain = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"),
                                    bos_token=BOS, eos_token=EOS, pad_token=PAD)
    tokenizer.save_pretrained(tmp_path / "hf")
    auto = AutoTokenizer.from_pretrained(tmp_path / "hf", local_files_only=True)
    via_hf_dir = load_tokenizer(tmp_path / "hf")
    for loaded in (from_file, from_dir, plain, auto, via_hf_dir):
        assert encode_text(loaded, text, 64).tolist() == expected
        assert loaded.pad_token_id == 0


def test_bad_tokenizer_paths_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no tokenizer.json"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot load") as err:
        load_tokenizer(tmp_path / "tokenizer.json")
    assert err.value.file == str(tmp_path / "tokenizer.json")
