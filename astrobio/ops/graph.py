"""Graph-structure ops: CSR from COO edges, and batching many small graphs into one CSR.

CSR here is always sorted by destination: row `i` of `(rowptr, col)` lists the sources of the
edges that end at node `i`, in input order (a stable sort), so a message-passing `spmm` over it
aggregates into destinations.

The plain-PyTorch `*_reference` functions are the ground truth. The public functions run the
C++ extension instead where it is built (`astrobio._C` on the CPU, `astrobio._cuda` on the GPU;
identical results) unless `use_backend("reference")` asks for the reference. The CPU extension
uses up to `torch.get_num_threads()` OpenMP threads, so in a DataLoader worker (one thread) it
runs inline and never starts an OpenMP team (GNU OpenMP's pool does not survive fork()).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from astrobio.ops._backend import requested_backend

if TYPE_CHECKING:  # spmm imports this module (through spmm_cuda)
    from astrobio.ops.spmm import SpmmSchedule

try:
    from astrobio import _C
except ImportError:  # the package runs from a source tree without the built extension
    _C = None
try:
    from astrobio import _cuda
except ImportError:  # built without nvcc
    _cuda = None

INDEX_DTYPES = (torch.int32, torch.int64)


def _check_edge_index(edge_index: torch.Tensor) -> None:
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must be [2, E], got {tuple(edge_index.shape)}")


def csr_from_edges_reference(edge_index: torch.Tensor, num_nodes: int):
    """(rowptr [N+1], col [E], perm [E]) for edges sorted stably by destination.

    `perm[k]` is the position in `edge_index` of the k-th CSR edge, so per-edge data follows
    with `edge_attr[perm]`. Unsorted and duplicate edges are fine; out-of-range indices raise.
    """
    _check_edge_index(edge_index)
    edge_index = edge_index.long()
    if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= num_nodes):
        raise ValueError(
            f"edge_index spans [{int(edge_index.min())}, {int(edge_index.max())}] "
            f"but there are {num_nodes} node(s)"
        )
    src, dst = edge_index
    perm = torch.sort(dst, stable=True).indices
    counts = torch.bincount(dst, minlength=num_nodes)
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=edge_index.device)
    torch.cumsum(counts, 0, out=rowptr[1:])
    return rowptr, src[perm], perm


@torch.library.custom_op("astrobio::csr_from_edges", mutates_args=(), device_types="cpu")
def _csr_from_edges_op(
    edge_index: torch.Tensor, num_nodes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if _C is None:
        return csr_from_edges_reference(edge_index, num_nodes)
    out = _C.csr_from_edges(edge_index.numpy(), num_nodes, torch.get_num_threads())
    return tuple(torch.from_numpy(a) for a in out)


@_csr_from_edges_op.register_kernel("cuda")
def _csr_from_edges_cuda(edge_index: torch.Tensor, num_nodes: int):
    if _cuda is None:
        return csr_from_edges_reference(edge_index, num_nodes)
    edge_index = edge_index.contiguous()
    num_edges = edge_index.shape[1]
    rowptr, col, perm = _csr_from_edges_fake(edge_index, num_nodes)
    workspace = torch.empty(_cuda.csr_workspace_bytes(num_edges, num_nodes), dtype=torch.uint8,
                            device=edge_index.device)
    _cuda.csr_from_edges(
        edge_index.device.index, edge_index.data_ptr(), edge_index.dtype == torch.int64,
        num_edges, num_nodes, rowptr.data_ptr(), col.data_ptr(), perm.data_ptr(),
        workspace.data_ptr(), workspace.numel(),
        torch.cuda.current_stream(edge_index.device).cuda_stream,
    )
    return rowptr, col, perm


@_csr_from_edges_op.register_fake
def _csr_from_edges_fake(edge_index: torch.Tensor, num_nodes: int):
    num_edges = edge_index.shape[1]
    return (edge_index.new_empty(num_nodes + 1, dtype=torch.long),
            edge_index.new_empty(num_edges, dtype=torch.long),
            edge_index.new_empty(num_edges, dtype=torch.long))


def csr_from_edges(edge_index: torch.Tensor, num_nodes: int):
    """(rowptr [N+1], col [E], perm [E]) int64, edges sorted stably by destination.

    `col = edge_index[0][perm]`. Any int32/int64 edge list on the CPU or GPU; equals
    `csr_from_edges_reference`. Out-of-range indices raise ValueError.
    """
    _check_edge_index(edge_index)
    if num_nodes < 0:
        raise ValueError(f"num_nodes must be >= 0, got {num_nodes}")
    if requested_backend() == "reference":
        return csr_from_edges_reference(edge_index, num_nodes)
    if edge_index.dtype not in INDEX_DTYPES:
        edge_index = edge_index.long()
    return _csr_from_edges_op(edge_index, num_nodes)


def batch_graphs_reference(edge_indices: list[torch.Tensor], num_nodes: list[int]):
    """Concatenate graphs into one: (edge_index [2, E], batch [N], ptr [B+1]).

    Node ids of graph `g` are offset by `ptr[g]`; `batch[n]` is the graph of node `n`.
    """
    counts = torch.tensor(num_nodes, dtype=torch.long)
    ptr = torch.zeros(len(num_nodes) + 1, dtype=torch.long)
    torch.cumsum(counts, 0, out=ptr[1:])
    batch = torch.repeat_interleave(torch.arange(len(num_nodes)), counts)
    edge_counts = torch.tensor([e.shape[1] for e in edge_indices], dtype=torch.long)
    offsets = torch.repeat_interleave(ptr[:-1], edge_counts)
    if edge_indices:
        edge_index = torch.cat([e.long() for e in edge_indices], dim=1) + offsets
    else:
        edge_index = torch.zeros(2, 0, dtype=torch.long)
    return edge_index, batch, ptr


def _as_numpy(a) -> np.ndarray:
    return a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _use_cpu_extension(arrays) -> bool:
    on_cpu = all(not isinstance(a, torch.Tensor) or a.device.type == "cpu" for a in arrays)
    return _C is not None and on_cpu and requested_backend() != "reference"


def batch_graphs(edge_indices: list[torch.Tensor | np.ndarray], num_nodes: list[int]):
    """Concatenate graphs into one: (edge_index [2, E], batch [N], ptr [B+1]), int64.

    Node ids of graph `g` are offset by `ptr[g]`; `batch[n]` is the graph of node `n`. Each
    graph's indices must lie in `[0, num_nodes[g])`, else ValueError names the graph.
    """
    if len(edge_indices) != len(num_nodes):
        raise ValueError(f"got {len(edge_indices)} edge_index array(s) but {len(num_nodes)} "
                         "node count(s)")
    if not _use_cpu_extension(edge_indices):
        return batch_graphs_reference([torch.as_tensor(e) for e in edge_indices], num_nodes)
    out = _C.batch_graphs([_as_numpy(e) for e in edge_indices], list(num_nodes),
                          torch.get_num_threads())
    return tuple(torch.from_numpy(a) for a in out)


@dataclass
class GraphBatch:
    """B graphs as one graph (PyG's batching), every index int64, edges in destination-sorted
    CSR order; the one batched-graph type, from collate to the graph encoder.

    node_features [N, F]        the graphs' nodes, graph after graph
    edge_index [2, E]           offset by `ptr`, sorted stably by destination
    edge_attr [E, Fe]           per edge, in that order
    batch [N], ptr [B+1]        the graph of each node; each graph's first node
    rowptr [N+1], col [E]       CSR by destination (`col == edge_index[0]`)
    perm [E]                    position of each sorted edge in the graphs' concatenated edges
    rowptr_t [N+1], col_t [E]   CSR by source (the transpose), `col_t` the destinations
    perm_t [E]                  position of each transposed edge in `edge_index`
    max_nodes                   nodes of the largest graph, a Python int (no device sync)
    spmm_schedule               the triton spmm's work lists of this graph and its transpose
                                (`astrobio.ops.spmm.spmm_schedule`, built by collate), or None
    """

    node_features: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    batch: torch.Tensor
    ptr: torch.Tensor
    rowptr: torch.Tensor
    col: torch.Tensor
    perm: torch.Tensor
    rowptr_t: torch.Tensor
    col_t: torch.Tensor
    perm_t: torch.Tensor
    max_nodes: int
    spmm_schedule: SpmmSchedule | None = None

    @property
    def num_graphs(self) -> int:
        return self.ptr.numel() - 1

    @functools.cached_property
    def inverse_perm_t(self) -> torch.Tensor:
        """[E]: the position in transposed-CSR order of each CSR edge, so `(rowptr, col,
        inverse_perm_t)` is the transpose of the graph `(rowptr_t, col_t)`."""
        inverse = torch.empty_like(self.perm_t)
        inverse[self.perm_t] = torch.arange(self.perm_t.numel(), device=self.perm_t.device)
        return inverse

    def apply(self, fn) -> GraphBatch:
        """This graph with `fn` applied to every tensor (device moves, pinning)."""
        schedule = None if self.spmm_schedule is None else self.spmm_schedule.apply(fn)
        return dataclasses.replace(self, spmm_schedule=schedule, **{
            f.name: fn(getattr(self, f.name)) for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)})


def _node_features(node_features, num_nodes: list[int]) -> torch.Tensor:
    if node_features is None:
        return torch.zeros(sum(num_nodes), 0)
    if len(node_features) != len(num_nodes):
        raise ValueError(f"got {len(num_nodes)} node count(s) but {len(node_features)} "
                         "node_features array(s)")
    for g, (features, n) in enumerate(zip(node_features, num_nodes)):
        if features.shape[0] != n:
            raise ValueError(f"graph {g}: node_features has {features.shape[0]} row(s) but "
                             f"the graph has {n} node(s)")
    if not node_features:
        return torch.zeros(0, 0)
    return torch.from_numpy(np.concatenate([_as_numpy(f) for f in node_features]))


def _edge_attr_or_empty(edge_attr, num_edges: int) -> torch.Tensor:
    return torch.zeros(num_edges, 0) if edge_attr is None else edge_attr


def collate_graphs_reference(edge_indices, num_nodes, edge_attrs=None,
                             node_features=None) -> GraphBatch:
    """`batch_graphs`, then `csr_from_edges` by destination and by source, in plain PyTorch.
    Without `edge_attrs` (`node_features`) the graph's edge (node) features have width 0."""
    edge_indices = [torch.as_tensor(e) for e in edge_indices]
    for e in edge_indices:
        _check_edge_index(e)
    x = _node_features(node_features, num_nodes)
    edge_index, batch, ptr = batch_graphs_reference(edge_indices, num_nodes)
    edge_graph = torch.repeat_interleave(
        torch.tensor([e.shape[1] for e in edge_indices], dtype=torch.long))
    local = edge_index - ptr[edge_graph]
    bad = ((local < 0) | (local >= torch.tensor(num_nodes, dtype=torch.long)[edge_graph])).any(0)
    if bad.any():
        g = int(edge_graph[bad][0])
        e = edge_indices[g]
        raise ValueError(f"graph {g}: edge_index spans [{int(e.min())}, {int(e.max())}] "
                         f"but there are {num_nodes[g]} node(s)")
    total = int(ptr[-1])
    rowptr, col, perm = csr_from_edges_reference(edge_index, total)
    edge_index = edge_index[:, perm]
    rowptr_t, col_t, perm_t = csr_from_edges_reference(edge_index.flip(0), total)
    edge_attr = None
    if edge_attrs is not None:
        edge_attr = torch.from_numpy(np.concatenate([_as_numpy(a) for a in edge_attrs]))[perm]
    return GraphBatch(x, edge_index, _edge_attr_or_empty(edge_attr, col.numel()), batch, ptr,
                      rowptr, col, perm, rowptr_t, col_t, perm_t, max(num_nodes, default=0))


def collate_graphs(
    edge_indices: list[np.ndarray | torch.Tensor],
    num_nodes: list[int],
    edge_attrs: list[np.ndarray | torch.Tensor] | None = None,
    node_features: list[np.ndarray | torch.Tensor] | None = None,
) -> GraphBatch:
    """Batch B graphs into one destination-sorted `GraphBatch` with both CSRs, in one C++ pass.

    The hot path of `multimodal_collate_fn`: offsetting, concatenation, the CSR by destination
    and its transpose, and the gather of `edge_attrs` into sorted order, parallel over graphs;
    int32/int64 inputs are read in place. Equals `collate_graphs_reference`.
    """
    if len(edge_indices) != len(num_nodes):
        raise ValueError(f"got {len(edge_indices)} edge_index array(s) but {len(num_nodes)} "
                         "node count(s)")
    if edge_attrs is not None and len(edge_attrs) != len(edge_indices):
        raise ValueError(f"got {len(edge_indices)} edge_index array(s) but {len(edge_attrs)} "
                         "edge_attr array(s)")
    if not _use_cpu_extension(list(edge_indices) + list(edge_attrs or [])):
        return collate_graphs_reference(edge_indices, num_nodes, edge_attrs, node_features)
    x = _node_features(node_features, num_nodes)
    attrs = None if edge_attrs is None else [np.ascontiguousarray(_as_numpy(a))
                                             for a in edge_attrs]
    *index_arrays, edge_attr = _C.collate_graphs(
        [_as_numpy(e) for e in edge_indices], list(num_nodes), attrs, torch.get_num_threads())
    edge_index, batch, ptr, rowptr, col, perm, rowptr_t, col_t, perm_t = (
        torch.from_numpy(a) for a in index_arrays)
    edge_attr = None if edge_attr is None else torch.from_numpy(edge_attr)
    return GraphBatch(x, edge_index, _edge_attr_or_empty(edge_attr, col.numel()), batch, ptr,
                      rowptr, col, perm, rowptr_t, col_t, perm_t, max(num_nodes, default=0))
