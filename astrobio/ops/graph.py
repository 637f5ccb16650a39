"""Graph-structure ops: CSR from COO edges, and batching many small graphs into one CSR.

CSR here is always sorted by destination: row `i` of `(rowptr, col)` lists the sources of the
edges that end at node `i`, so a message-passing `spmm` over it aggregates into destinations.
"""

from __future__ import annotations

import torch


def csr_from_edges(edge_index: torch.Tensor, num_nodes: int):
    """(rowptr [N+1], col [E], perm [E]) for edges sorted stably by destination.

    `perm[k]` is the position in `edge_index` of the k-th CSR edge, so per-edge data follows
    with `edge_attr[perm]`. Unsorted and duplicate edges are fine; out-of-range indices raise.
    """
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must be [2, E], got {tuple(edge_index.shape)}")
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


def batch_graphs(edge_indices: list[torch.Tensor], num_nodes: list[int]):
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
