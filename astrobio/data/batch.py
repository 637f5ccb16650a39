"""`MultiModalBatch` and `multimodal_collate_fn`: a list of `PlanetSample` to batched tensors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from astrobio.data.sample import PlanetSample
from astrobio.ops.graph import collate_graphs

PAD_TOKEN_ID = 0


@dataclass
class MultiModalBatch:
    """B planets. Graph fields follow PyG: `batch` maps node → graph, `ptr` offsets graphs.

    `edge_index`/`edge_attr` are in destination-sorted CSR order, so `rowptr`/`col` index them
    directly; `rowptr_t`/`col_t` are the transposed (source-sorted) CSR and `perm_t` maps its
    k-th edge to its position in `edge_index`. Text is right-padded with `PAD_TOKEN_ID`.
    """

    climate: torch.Tensor  # [B, V, Z, H, W]
    spectrum: torch.Tensor  # [B, L]
    spectrum_err: torch.Tensor  # [B, L]
    spectrum_mask: torch.Tensor  # [B, L] bool
    params: torch.Tensor  # [B, P]
    input_ids: torch.Tensor  # [B, T] long
    attention_mask: torch.Tensor  # [B, T] long
    node_features: torch.Tensor  # [N, F]
    edge_index: torch.Tensor  # [2, E]
    edge_attr: torch.Tensor  # [E, Fe]
    batch: torch.Tensor  # [N]
    ptr: torch.Tensor  # [B+1]
    rowptr: torch.Tensor  # [N+1]
    col: torch.Tensor  # [E]
    rowptr_t: torch.Tensor  # [N+1]
    col_t: torch.Tensor  # [E]
    perm_t: torch.Tensor  # [E]
    present: torch.Tensor  # [B, M] bool
    habitable: torch.Tensor  # [B] long
    habitability_class: torch.Tensor  # [B] long
    surface_temperature: torch.Tensor  # [B] float
    biosignature: torch.Tensor  # [B] long
    has_targets: torch.Tensor  # [B] bool
    planet_ids: list[str]

    @property
    def batch_size(self) -> int:
        return self.climate.shape[0]

    def _map(self, fn) -> MultiModalBatch:
        return dataclasses.replace(self, **{
            f.name: fn(getattr(self, f.name))
            for f in dataclasses.fields(self) if isinstance(getattr(self, f.name), torch.Tensor)
        })

    def to(self, device, non_blocking: bool = False) -> MultiModalBatch:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> MultiModalBatch:
        return self._map(lambda t: t.pin_memory())


def _stack(samples, name):
    return torch.from_numpy(np.stack([getattr(s, name) for s in samples]))


def _pad_tokens(samples: list[PlanetSample]):
    ids = [s.input_ids if s.input_ids is not None else np.zeros(0, np.int64) for s in samples]
    length = max(1, max(len(i) for i in ids))
    input_ids = torch.full((len(ids), length), PAD_TOKEN_ID, dtype=torch.long)
    attention_mask = torch.zeros((len(ids), length), dtype=torch.long)
    for row, tokens in enumerate(ids):
        input_ids[row, : len(tokens)] = torch.from_numpy(np.asarray(tokens, np.int64))
        attention_mask[row, : len(tokens)] = 1
    return input_ids, attention_mask


def multimodal_collate_fn(samples: list[PlanetSample]) -> MultiModalBatch:
    if not samples:
        raise ValueError("multimodal_collate_fn: cannot collate an empty list of samples")
    graphs = collate_graphs([s.edge_index for s in samples],
                            [s.node_features.shape[0] for s in samples],
                            [s.edge_attr for s in samples])
    input_ids, attention_mask = _pad_tokens(samples)
    return MultiModalBatch(
        climate=_stack(samples, "climate"),
        spectrum=_stack(samples, "spectrum"),
        spectrum_err=_stack(samples, "spectrum_err"),
        spectrum_mask=_stack(samples, "spectrum_mask"),
        params=_stack(samples, "params"),
        input_ids=input_ids,
        attention_mask=attention_mask,
        node_features=torch.from_numpy(np.concatenate([s.node_features for s in samples])),
        edge_index=graphs.edge_index,
        edge_attr=graphs.edge_attr,
        batch=graphs.batch,
        ptr=graphs.ptr,
        rowptr=graphs.rowptr,
        col=graphs.col,
        rowptr_t=graphs.rowptr_t,
        col_t=graphs.col_t,
        perm_t=graphs.perm_t,
        present=_stack(samples, "present"),
        habitable=torch.tensor([s.habitable for s in samples], dtype=torch.long),
        habitability_class=torch.tensor([s.habitability_class for s in samples],
                                        dtype=torch.long),
        surface_temperature=torch.tensor([s.surface_temperature for s in samples],
                                         dtype=torch.float32),
        biosignature=torch.tensor([s.biosignature for s in samples], dtype=torch.long),
        has_targets=torch.tensor([s.has_targets for s in samples], dtype=torch.bool),
        planet_ids=[s.planet_id for s in samples],
    )
