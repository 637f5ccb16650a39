"""A LLaMA causal LM that also reads numerical and spectral features as prefix tokens.

The LM is a `transformers.LlamaForCausalLM`, built from `LLMConfig` or, when `LLMConfig.path`
is set, loaded from that local directory (`from_pretrained(..., local_files_only=True)`,
safetensors); nothing is ever downloaded.

Prefix (LLaVA-style soft tokens): `numerical_data [B, n_num]` is projected by one Linear to
`numerical_tokens` embeddings and `spectral_data [B, n_spec]` to `spectral_tokens`; they are
placed before the token embeddings, so the sequence is

    [numerical prefix (Pn) | spectral prefix (Ps) | text (T)]     S = Pn + Ps + T

and text token `t` sits at position `P + t` (`P = Pn + Ps`). The attention mask gets ones for
the prefix, or zeros for samples whose `numerical_present` / `spectral_present` is False (the
text then never attends to it, so an absent modality cannot leak into the text states).
Labels get -100 for the prefix, wherever the text attention mask is 0, and for a token whose
predicting position (the one before it) is masked, e.g. the first text token after an absent
prefix. The LM loss is the next-token cross-entropy averaged over the supervised tokens (0,
still differentiable, when there are none); the last prefix position predicts the first text
token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from astrobio.config import LLMConfig
from astrobio.errors import ConfigError

IGNORE_INDEX = -100


@dataclass
class LLMOutput:
    loss: torch.Tensor  # scalar
    hidden_states: torch.Tensor  # [B, S, hidden], last layer (after the final norm)
    attention_mask: torch.Tensor  # [B, S] long, prefix included
    labels: torch.Tensor | None  # [B, S], -100 where not supervised
    text_start: int  # = P, the position of the first text token
    lm_head: nn.Module = field(repr=False)

    @property
    def logits(self) -> torch.Tensor:
        """[B, S, vocab], computed on request: the loss needs only the supervised positions."""
        return self.lm_head(self.hidden_states)

    @property
    def text_positions(self) -> slice:
        return slice(self.text_start, self.hidden_states.shape[1])

    @property
    def text_hidden_states(self) -> torch.Tensor:
        """[B, T, hidden]"""
        return self.hidden_states[:, self.text_positions]


def build_llama(config: LLMConfig, weights: bool = True) -> LlamaForCausalLM:
    """A randomly initialised LLaMA from `config`, or the one saved at `config.path`; with
    `weights=False` the saved one's architecture on the meta device, weights unread (for
    `astrobio.parallel.load`, which fills each rank's shards)."""
    if config.path is not None:
        path = Path(config.path)
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.llm.path {str(path)!r}: no config.json there; give a "
                              "directory written by save_pretrained")
        if not weights:
            saved = LlamaConfig.from_pretrained(path, local_files_only=True)
            saved._attn_implementation = "sdpa"
            with torch.device("meta"):
                return LlamaForCausalLM(saved)
        return LlamaForCausalLM.from_pretrained(path, local_files_only=True,
                                                attn_implementation="sdpa")
    llama_config = LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=False,
        use_cache=False,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(llama_config)


class MultiModalLLM(nn.Module):
    def __init__(self, config: LLMConfig, numerical_dim: int, spectral_dim: int,
                 numerical_tokens: int, spectral_tokens: int, load_weights: bool = True):
        super().__init__()
        self.lm = build_llama(config, weights=load_weights)
        hidden = self.lm.config.hidden_size
        self.hidden_size = hidden
        self.numerical_tokens = numerical_tokens
        self.spectral_tokens = spectral_tokens
        self.numerical_projector = nn.Linear(numerical_dim, numerical_tokens * hidden)
        self.spectral_projector = nn.Linear(spectral_dim, spectral_tokens * hidden)

    @property
    def max_positions(self) -> int:
        return self.lm.config.max_position_embeddings

    def _prefix(self, projector, data, n_tokens, present):
        embeds = projector(data).unflatten(-1, (n_tokens, self.hidden_size))
        mask = torch.ones(data.shape[0], n_tokens, dtype=torch.long, device=data.device)
        if present is not None:
            mask = mask * present.long()[:, None]
        return embeds, mask

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        numerical_data: torch.Tensor | None = None,
        spectral_data: torch.Tensor | None = None,
        numerical_present: torch.Tensor | None = None,
        spectral_present: torch.Tensor | None = None,
    ) -> LLMOutput:
        """`input_ids [B, T]`, `attention_mask [B, T]` (1 = token), `labels [B, T]` or None,
        `numerical_data [B, n_num]`, `spectral_data [B, n_spec]`, `*_present [B]` bool."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        vocab = self.lm.config.vocab_size
        # An eager-mode service (like astrobio.physics): a traced graph skips the host sync.
        checking = input_ids.numel() and not torch.compiler.is_compiling()
        if checking and (int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab):
            raise ValueError(f"MultiModalLLM: input_ids span [{int(input_ids.min())}, "
                             f"{int(input_ids.max())}] but the LM vocabulary has {vocab} tokens")
        embeds = [self.lm.get_input_embeddings()(input_ids)]
        masks = [attention_mask.long()]
        if spectral_data is not None:
            prefix = self._prefix(self.spectral_projector, spectral_data, self.spectral_tokens,
                                  spectral_present)
            embeds.insert(0, prefix[0].to(embeds[-1].dtype))
            masks.insert(0, prefix[1])
        if numerical_data is not None:
            prefix = self._prefix(self.numerical_projector, numerical_data,
                                  self.numerical_tokens, numerical_present)
            embeds.insert(0, prefix[0].to(embeds[-1].dtype))
            masks.insert(0, prefix[1])
        inputs_embeds = torch.cat(embeds, dim=1)
        full_mask = torch.cat(masks, dim=1)
        text_start = inputs_embeds.shape[1] - input_ids.shape[1]
        if inputs_embeds.shape[1] > self.max_positions:
            raise ValueError(f"MultiModalLLM: {text_start} prefix + {input_ids.shape[1]} text "
                             f"tokens exceed max_position_embeddings {self.max_positions}")

        hidden = self.lm.model(inputs_embeds=inputs_embeds, attention_mask=full_mask,
                               use_cache=False).last_hidden_state
        full_labels = None
        if labels is not None:
            text_labels = labels.masked_fill(attention_mask == 0, IGNORE_INDEX)
            prefix_labels = text_labels.new_full((labels.shape[0], text_start), IGNORE_INDEX)
            full_labels = torch.cat([prefix_labels, text_labels], dim=1)
            # A token is supervised only when the position that predicts it is attended; the
            # state of a masked (absent) prefix position must not enter the loss.
            predictor_attended = F.pad(full_mask[:, :-1], (1, 0))
            full_labels = full_labels.masked_fill(predictor_attended == 0, IGNORE_INDEX)
            loss = next_token_loss(hidden, full_labels, self.lm.lm_head)
        else:
            loss = hidden.new_zeros(())
        return LLMOutput(loss, hidden, full_mask, full_labels, text_start, self.lm.lm_head)


def next_token_loss(hidden: torch.Tensor, labels: torch.Tensor, lm_head: nn.Module
                    ) -> torch.Tensor:
    """Mean cross-entropy of `lm_head(hidden[:, s])` against `labels[:, s + 1]` over the labels
    != -100; the head runs on those positions only (no logits for prefix and padding)."""
    target = labels[:, 1:]
    supervised = target != IGNORE_INDEX
    predicted = lm_head(hidden[:, :-1][supervised]).float()
    total = F.cross_entropy(predicted, target[supervised], reduction="sum")
    return total / supervised.sum().clamp(min=1)
