"""`MultiModalBatch` and `multimodal_collate_fn`: a list of `PlanetSample` to batched tensors.

Variable lengths are padded to buckets (`astrobio.ops.buckets`): text to the bucket of the
batch's longest, so batches share a few shapes and the kernels a few tuned configurations.
The batch's graph carries its spmm schedule, built here once for every layer of the encoder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from astrobio.data.sample import PlanetSample
from astrobio.ops.buckets import bucket
from astrobio.ops.graph import GraphBatch, collate_graphs
from astrobio.ops.spmm import spmm_schedule
from astrobio.schema import MODALITIES, PAD_TOKEN_ID


@dataclass
class MultiModalBatch:
    """B planets. `graph` holds their metabolic networks as one `GraphBatch` (PyG's batching,
    destination-sorted CSR and its transpose, their spmm schedule). Text is right-padded with
    `PAD_TOKEN_ID` to the bucket of the longest."""

    climate: torch.Tensor  # [B, V, Z, H, W]
    spectrum: torch.Tensor  # [B, L]
    spectrum_err: torch.Tensor  # [B, L]
    spectrum_mask: torch.Tensor  # [B, L] bool
    params: torch.Tensor  # [B, P]
    input_ids: torch.Tensor  # [B, T] long
    attention_mask: torch.Tensor  # [B, T] long
    graph: GraphBatch
    present: torch.Tensor  # [B, M] bool, as `schema.MODALITIES`
    habitable: torch.Tensor  # [B] long
    habitability_class: torch.Tensor  # [B] long
    surface_temperature: torch.Tensor  # [B] float
    biosignature: torch.Tensor  # [B] long
    has_targets: torch.Tensor  # [B] bool
    planet_ids: list[str]

    @property
    def batch_size(self) -> int:
        return self.climate.shape[0]

    def masked(self, keep: torch.Tensor) -> MultiModalBatch:
        """This batch with only the modalities `keep` marks ([M] or [B, M] bool) still
        present; a hidden modality reaches no encoder output (the model's missing path)."""
        return dataclasses.replace(self, present=self.present.bool() & keep.to(
            self.present.device))

    def _map(self, fn) -> MultiModalBatch:
        changed = {f.name: fn(getattr(self, f.name)) for f in dataclasses.fields(self)
                   if isinstance(getattr(self, f.name), torch.Tensor)}
        return dataclasses.replace(self, graph=self.graph.apply(fn), **changed)

    def to(self, device, non_blocking: bool = False) -> MultiModalBatch:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> MultiModalBatch:
        return self._map(lambda t: t.pin_memory())


def modality_mask(names) -> torch.Tensor:
    """[M] bool: True for each modality in `names` (for `MultiModalBatch.masked`)."""
    names = set(names)
    unknown = sorted(names - set(MODALITIES))
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; choose from {MODALITIES}")
    return torch.tensor([name in names for name in MODALITIES])


def _stack(samples, name):
    return torch.from_numpy(np.stack([getattr(s, name) for s in samples]))


def _pad_tokens(samples: list[PlanetSample]):
    ids = [s.input_ids if s.input_ids is not None else np.zeros(0, np.int64) for s in samples]
    length = bucket(max(len(i) for i in ids))
    input_ids = torch.full((len(ids), length), PAD_TOKEN_ID, dtype=torch.long)
    attention_mask = torch.zeros((len(ids), length), dtype=torch.long)
    for row, tokens in enumerate(ids):
        input_ids[row, : len(tokens)] = torch.from_numpy(np.asarray(tokens, np.int64))
        attention_mask[row, : len(tokens)] = 1
    return input_ids, attention_mask


def multimodal_collate_fn(samples: list[PlanetSample]) -> MultiModalBatch:
    if not samples:
        raise ValueError("multimodal_collate_fn: cannot collate an empty list of samples")
    graph = collate_graphs([s.edge_index for s in samples],
                           [s.node_features.shape[0] for s in samples],
                           [s.edge_attr for s in samples],
                           [s.node_features for s in samples])
    graph.spmm_schedule = spmm_schedule(graph.rowptr, graph.col.numel(), graph.rowptr_t)
    input_ids, attention_mask = _pad_tokens(samples)
    return MultiModalBatch(
        climate=_stack(samples, "climate"),
        spectrum=_stack(samples, "spectrum"),
        spectrum_err=_stack(samples, "spectrum_err"),
        spectrum_mask=_stack(samples, "spectrum_mask"),
        params=_stack(samples, "params"),
        input_ids=input_ids,
        attention_mask=attention_mask,
        graph=graph,
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
