"""Cross-modal fusion of every encoder's tokens, and the prediction heads.

Keys: for each modality `m` in `schema.MODALITIES` order, its pooled feature as a summary token
followed by its tokens, plus a learned modality embedding. Key mask: the summary token is valid
where `present[:, m]`, a token where `present[:, m]` and the encoder's token mask. A learned
gate `g_m = sigmoid(gate_logit_m)` scales the values of modality `m`'s keys, i.e. its
contribution to every attention read.

`fusion_layers` pre-norm layers update `n_queries` learned query tokens:

    q = q + Attn(LN(q), LN(keys), gated values, key mask)   astrobio.ops.cross_attention
    q = q + SelfAttn(LN(q))                                 same op, q = k = v, no mask
    q = q + MLP(LN(q))

and the fused representation is LN(mean of the queries). A modality that is absent has every
key masked, so it contributes exactly nothing; a sample with no modality at all reads zeros
(the op's empty-row rule) and still gets finite predictions from the learned queries.

Heads (`PredictionHeads`): habitable logit, 5 habitability-class logits, surface temperature
(predicted as `z` in `normalisation`'s log space, returned in both `z` and kelvin) and
biosignature logit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from astrobio.models.features import ModalityFeatures, learned_embeddings, merge_heads, split_heads
from astrobio.models.normalisation import denormalise_temperature
from astrobio.ops import cross_attention
from astrobio.schema import HABITABILITY_CLASSES, MODALITIES


@dataclass
class FusionOutput:
    fused: torch.Tensor  # [B, d]
    gates: torch.Tensor  # [M], sigmoid gate per modality
    key_mask: torch.Tensor  # [B, L_keys] bool


def _mlp(d_model: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(4 * d_model, d_model))


class FusionLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.query_norm = nn.LayerNorm(d_model)
        self.key_norm = nn.LayerNorm(d_model)
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)
        self.cross_out = nn.Linear(d_model, d_model)
        self.self_norm = nn.LayerNorm(d_model)
        self.self_qkv = nn.Linear(d_model, 3 * d_model)
        self.self_out = nn.Linear(d_model, d_model)
        self.mlp_norm = nn.LayerNorm(d_model)
        self.mlp = _mlp(d_model, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries, keys, key_mask, key_gate):
        h = self.n_heads
        q = split_heads(self.q_proj(self.query_norm(queries)), h)
        k, v = self.kv_proj(self.key_norm(keys)).chunk(2, dim=-1)
        v = v * key_gate[None, :, None]
        read = cross_attention(q, split_heads(k, h), split_heads(v, h), key_mask)
        queries = queries + self.dropout(self.cross_out(merge_heads(read)))
        q, k, v = (split_heads(t, h) for t in self.self_qkv(self.self_norm(queries)).chunk(3, -1))
        queries = queries + self.dropout(self.self_out(merge_heads(cross_attention(q, k, v))))
        return queries + self.dropout(self.mlp(self.mlp_norm(queries)))


class ModalityFusion(nn.Module):
    def __init__(self, d_model: int, n_layers: int, n_heads: int, dropout: float = 0.0,
                 n_queries: int = 8, modalities: tuple[str, ...] = MODALITIES):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"fusion: d_model {d_model} is not divisible by {n_heads} heads")
        self.modalities = modalities
        self.modality_embedding = learned_embeddings(len(modalities), d_model)
        self.gate_logits = nn.Parameter(torch.zeros(len(modalities)))
        self.queries = learned_embeddings(n_queries, d_model)
        self.layers = nn.ModuleList(FusionLayer(d_model, n_heads, dropout)
                                    for _ in range(n_layers))
        self.out_norm = nn.LayerNorm(d_model)

    def gates(self) -> torch.Tensor:
        return torch.sigmoid(self.gate_logits)

    def forward(self, features: dict[str, ModalityFeatures],
                present: torch.Tensor) -> FusionOutput:
        """`features[m]` for every modality; `present [B, M]` bool in `modalities` order."""
        gates = self.gates()
        keys, masks, key_gates = [], [], []
        for index, name in enumerate(self.modalities):
            f = features[name]
            here = present[:, index]
            keys.append(torch.cat([f.pooled[:, None], f.tokens], dim=1)
                        + self.modality_embedding[index])
            masks.append(torch.cat([here[:, None], f.mask & here[:, None]], dim=1))
            key_gates.append(gates[index].expand(1 + f.tokens.shape[1]))
        keys, key_mask, key_gate = torch.cat(keys, 1), torch.cat(masks, 1), torch.cat(key_gates)
        queries = self.queries.expand(present.shape[0], -1, -1)
        for layer in self.layers:
            queries = layer(queries, keys, key_mask, key_gate)
        return FusionOutput(self.out_norm(queries.mean(1)), gates, key_mask)


@dataclass
class HeadOutputs:
    habitable_logit: torch.Tensor  # [B]
    habitability_class_logits: torch.Tensor  # [B, n_classes]
    surface_temperature_z: torch.Tensor  # [B], normalised (log space)
    surface_temperature: torch.Tensor  # [B], kelvin
    biosignature_logit: torch.Tensor  # [B]


class PredictionHeads(nn.Module):
    def __init__(self, d_model: int, dropout: float = 0.0):
        super().__init__()
        self.n_classes = len(HABITABILITY_CLASSES)
        self.trunk = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Dropout(dropout))
        self.out = nn.Linear(d_model, 3 + self.n_classes)

    def forward(self, fused: torch.Tensor) -> HeadOutputs:
        out = self.out(self.trunk(fused))
        habitable, temperature_z, biosignature, classes = out.split([1, 1, 1, self.n_classes],
                                                                    dim=-1)
        temperature_z = temperature_z.squeeze(-1)
        return HeadOutputs(habitable.squeeze(-1), classes, temperature_z,
                           denormalise_temperature(temperature_z), biosignature.squeeze(-1))
