"""The offline text tokenizer: a byte-level BPE trained on the train split's descriptions.

Special tokens take the first ids, in `SPECIAL_TOKENS` order, so `<pad>` is 0 =
`schema.PAD_TOKEN_ID`. Byte-level means every string encodes (no `<unk>` in practice) and
decodes back to itself. The trained tokenizer is saved as one `tokenizer.json` and loads as a
transformers `PreTrainedTokenizerFast`, offline.

A user's Hugging Face tokenizer directory may replace it. Its pad id need not be 0: the collate
pads with `PAD_TOKEN_ID` and marks every pad in `attention_mask`, so padded positions are
identified by the mask, never by their id (losses must mask with `attention_mask` too).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from astrobio.errors import ConfigError, DataError
from astrobio.schema import PAD_TOKEN_ID, SPECIAL_TOKENS

PAD, BOS, EOS, UNK = SPECIAL_TOKENS
TOKENIZER_FILE = "tokenizer.json"
# A byte-level vocabulary holds every byte plus the special tokens before any merge.
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE of at most `vocab_size` tokens (fewer when the texts run out of
    pairs seen twice). Deterministic for the same texts in the same order."""
    if vocab_size < MIN_VOCAB_SIZE:
        raise ConfigError(f"config key 'data.vocab_size': {vocab_size} is below "
                          f"{MIN_VOCAB_SIZE}, the 256 bytes plus {len(SPECIAL_TOKENS)} specials")
    backend = Tokenizer(models.BPE(unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    if backend.token_to_id(PAD) != PAD_TOKEN_ID:
        raise RuntimeError(f"{PAD} got id {backend.token_to_id(PAD)}, expected {PAD_TOKEN_ID}")
    # `tokenizer(text)` then agrees with `encode_text` (bos ... eos).
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        special_tokens=[(BOS, backend.token_to_id(BOS)), (EOS, backend.token_to_id(EOS))],
    )
    return _wrap(backend)


def _wrap(backend: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD, bos_token=BOS,
                                   eos_token=EOS, unk_token=UNK)


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, path: str | Path) -> None:
    """Write the single-file form (`tokenizer.json`) that `load_tokenizer` reads."""
    tokenizer.backend_tokenizer.save(str(path), pretty=True)


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """A tokenizer from a `tokenizer.json` file, a dataset directory holding one, or a
    Hugging Face tokenizer directory (read with `local_files_only`, never downloaded)."""
    path = Path(path)
    try:
        if path.is_dir() and (path / "tokenizer_config.json").exists():
            return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        file = path / TOKENIZER_FILE if path.is_dir() else path
        if not file.is_file():
            raise DataError("no tokenizer.json, nor a Hugging Face tokenizer directory",
                            file=str(path), field="tokenizer")
        return _wrap(Tokenizer.from_file(str(file)))
    except DataError:
        raise
    except Exception as err:  # tokenizers and transformers raise many unrelated types
        raise DataError(f"cannot load a tokenizer: {err}", file=str(path),
                        field="tokenizer") from None


def encode_text(tokenizer: PreTrainedTokenizerBase, text: str, max_tokens: int) -> np.ndarray:
    """int64 ids `[bos] + text + [eos]`, the text cut so that the whole fits `max_tokens`.

    A tokenizer without a bos (or eos) token gets none added.
    """
    return encode_texts(tokenizer, [text], max_tokens)[0]


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: list[str],
                 max_tokens: int) -> list[np.ndarray]:
    """`encode_text` over many texts, in one batched call into the tokenizer."""
    head = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    tail = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    keep = max_tokens - len(head) - len(tail)
    if keep < 0:
        raise ConfigError(f"config key 'data.max_text_tokens': {max_tokens} leaves no room "
                          "for the bos/eos tokens")
    if not texts:
        return []
    bodies = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [np.asarray(head + body[:keep] + tail, dtype=np.int64) for body in bodies]
