"""Variational graph auto-encoder over the batched metabolic networks (Kipf & Welling 2016).

Encoder: `gnn_layers` GCN-style layers on the graph made undirected (A + A^T) with self-loops,
symmetric normalisation folded into the edge weights:

    agg_i = sum_{j -> i} w_ji h_j + sum_{i -> j} w_ij h_j + h_i / deg_i
    w_ij  = gate(edge_attr_ij) / sqrt(deg_i deg_j),   deg = in-degree + out-degree + 1
    h     = LayerNorm(h + GELU(W agg))

The two sums are `astrobio.ops.spmm` over the destination-sorted CSR (`rowptr`, `col`) and the
transposed CSR (`rowptr_t`, `col_t`, weights permuted by `perm_t`), each given the other as its
`transposed=` hint so the backward needs no sort; `gate` is a learned sigmoid of the edge
features, one per layer.

Per node: `mu`, `logvar` (clamped to [-10, 10]); in training `z = mu + noise * exp(logvar / 2)`
with `noise ~ N(0, I)` (the reparameterisation), in eval `z = mu`. The edge decoder scores a pair
with `sddmm(src, dst, z, z)` (inner product) against every observed edge and one negative pair
per edge, drawn uniformly from the same graph in training and, in eval, the deterministic pair
`(src, node halfway round the graph from dst)` so evaluation is repeatable. Losses are over the
present graphs only: reconstruction = BCE averaged over positive and negative pairs, KL =
`-1/2 sum(1 + logvar - mu^2 - exp(logvar))` averaged over nodes.

Features: pooled = Linear([mean_pool(z), max_pool(z)]), tokens = `n_tokens` learned queries
attending (`astrobio.ops.cross_attention`) over each graph's nodes. A graph with no nodes gives
a zero pooled feature, zero tokens and an all-False token mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from astrobio.models.features import ModalityFeatures, learned_embeddings, merge_heads, split_heads
from astrobio.ops import cross_attention, sddmm, spmm
from astrobio.ops.buckets import bucket
from astrobio.ops.graph import GraphBatch
from astrobio.schema import N_EDGE_FEATURES, N_NODE_FEATURES

LOGVAR_LIMIT = 10.0


@dataclass
class GraphVAEOutput:
    features: ModalityFeatures
    mu: torch.Tensor  # [N, latent]
    logvar: torch.Tensor  # [N, latent]
    z: torch.Tensor  # [N, latent]
    reconstruction: torch.Tensor  # scalar, BCE
    kl: torch.Tensor  # scalar, per node


class GCNLayer(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.linear = nn.Linear(hidden, hidden)
        self.edge_gate = nn.Linear(N_EDGE_FEATURES, 1)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, g: GraphBatch, h: torch.Tensor, edge_norm: torch.Tensor,
                inv_degree: torch.Tensor) -> torch.Tensor:
        weight = edge_norm * torch.sigmoid(self.edge_gate(g.edge_attr)).squeeze(-1)
        schedule = g.spmm_schedule
        agg = spmm(g.rowptr, g.col, h, weight, "sum",
                   transposed=(g.rowptr_t, g.col_t, g.perm_t), schedule=schedule)
        agg = agg + spmm(g.rowptr_t, g.col_t, h, weight[g.perm_t], "sum",
                         transposed=(g.rowptr, g.col, g.inverse_perm_t),
                         schedule=None if schedule is None else schedule.transpose())
        agg = agg + h * inv_degree[:, None]
        return self.norm(h + F.gelu(self.linear(agg)))


class GraphVAE(nn.Module):
    def __init__(self, hidden: int, n_layers: int, latent: int, d_model: int,
                 n_tokens: int = 8, n_heads: int = 4):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"GraphVAE: d_model {d_model} is not divisible by {n_heads} heads")
        self.n_heads = n_heads
        self.input = nn.Linear(N_NODE_FEATURES, hidden)
        self.layers = nn.ModuleList(GCNLayer(hidden) for _ in range(n_layers))
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.pooled_proj = nn.Sequential(nn.Linear(2 * latent, d_model), nn.GELU(),
                                         nn.Linear(d_model, d_model))
        self.node_proj = nn.Linear(latent, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.queries = learned_embeddings(n_tokens, d_model)
        self.token_out = nn.Linear(d_model, d_model)

    def forward(self, g: GraphBatch, present: torch.Tensor) -> GraphVAEOutput:
        """`present [B]` bool: nodes and edges of absent graphs are left out of the losses."""
        if g.node_features.shape[1] != N_NODE_FEATURES:
            raise ValueError(f"GraphVAE: node_features {tuple(g.node_features.shape)}, expected "
                             f"[N, {N_NODE_FEATURES}]")
        degree = (g.rowptr.diff() + g.rowptr_t.diff() + 1).to(g.node_features.dtype)
        src, dst = g.edge_index
        edge_norm = torch.rsqrt(degree[src] * degree[dst])
        h = self.input(g.node_features)
        for layer in self.layers:
            h = layer(g, h, edge_norm, 1.0 / degree)
        mu = self.mu(h)
        logvar = self.logvar(h).clamp(-LOGVAR_LIMIT, LOGVAR_LIMIT)
        if self.training:
            noise = torch.randn_like(mu)
            z = mu + noise * torch.exp(0.5 * logvar)
        else:
            z = mu
        node_present = present[g.batch]
        reconstruction = self._reconstruction(g, z, node_present)
        kl_per_node = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(-1)
        kl = _masked_average(kl_per_node, node_present)
        features = self._features(g, z, present.shape[0])
        return GraphVAEOutput(features, mu, logvar, z, reconstruction, kl)

    def _negative_destinations(self, g: GraphBatch, src: torch.Tensor,
                               dst: torch.Tensor) -> torch.Tensor:
        graph = g.batch[src]
        start, size = g.ptr[graph], g.ptr[graph + 1] - g.ptr[graph]
        if self.training:
            negative_offset = torch.rand(src.shape, device=src.device) * size
            negative_offset = negative_offset.long().clamp(max=size - 1)
        else:
            negative_offset = (dst - start + size // 2) % size
        return start + negative_offset

    def _reconstruction(self, g: GraphBatch, z: torch.Tensor,
                        node_present: torch.Tensor) -> torch.Tensor:
        src, dst = g.edge_index
        if src.numel() == 0:
            return z.sum() * 0.0
        edge_present = node_present[dst]
        positive = sddmm(src, dst, z, z)
        negative = sddmm(src, self._negative_destinations(g, src, dst), z, z)
        bce = (F.binary_cross_entropy_with_logits(positive, torch.ones_like(positive),
                                                  reduction="none")
               + F.binary_cross_entropy_with_logits(negative, torch.zeros_like(negative),
                                                    reduction="none"))
        return 0.5 * _masked_average(bce, edge_present)

    def _features(self, g: GraphBatch, z: torch.Tensor, n_graphs: int) -> ModalityFeatures:
        d_model = self.node_proj.out_features
        counts = g.ptr.diff()
        mean = z.new_zeros(n_graphs, z.shape[1]).index_add(0, g.batch, z)
        mean = mean / counts.clamp(min=1).to(z.dtype)[:, None]
        index = g.batch[:, None].expand_as(z)
        peak = z.new_zeros(n_graphs, z.shape[1]).scatter_reduce(0, index, z, "amax",
                                                                 include_self=False)
        pooled = self.pooled_proj(torch.cat([mean, peak], dim=-1))
        has_nodes = counts > 0
        pooled = torch.where(has_nodes[:, None], pooled, 0.0)

        # Pad each graph's nodes into [B, n_max, d] for attention pooling, n_max a bucket so
        # batches share a few attention shapes.
        n_max = bucket(g.max_nodes)
        slot = torch.arange(z.shape[0], device=z.device) - g.ptr[g.batch]
        dense = z.new_zeros(n_graphs, n_max, d_model)
        dense = dense.index_put((g.batch, slot), self.node_proj(z))
        node_mask = torch.arange(n_max, device=z.device)[None, :] < counts[:, None]
        k, v = self.kv(dense).chunk(2, dim=-1)
        heads = self.n_heads
        q = self.queries.expand(n_graphs, -1, -1)
        attended = cross_attention(split_heads(q, heads), split_heads(k, heads),
                                   split_heads(v, heads), node_mask)
        tokens = self.token_out(merge_heads(attended))
        tokens = torch.where(has_nodes[:, None, None], tokens, 0.0)
        mask = has_nodes[:, None].expand(-1, tokens.shape[1])
        return ModalityFeatures(pooled, tokens, mask)


def _masked_average(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask`; an exact 0 (still in the graph) where nothing is."""
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp(min=1).to(values.dtype)
