"""Graph-structure ops: the C++/CUDA extension against its peers.

- collate: graphs/s batching 32 metabolic graphs of the synthetic dataset (nodes, edges, edge
  features) with `collate_graphs` (C++, and it also builds both CSRs) against PyG's
  `Batch.from_data_list` (no CSR) and the pure-PyTorch path (`collate_graphs_reference`).
- CSR: `csr_from_edges` (C++ counting sort) against the `torch.sort` build, one large graph.
- GPU only: CSR (CUDA radix sort) against `torch.sort`, and SpMM backend cuda against triton.

    pytest bench/test_pipeline.py --benchmark-only   # pytest-benchmark statistics
    python bench/bench_graph.py                      # a printed markdown table
"""

from __future__ import annotations

import datetime
import os
import platform
import time

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from astrobio.config import DataConfig
from astrobio.data.synthetic import generate_samples
from astrobio.ops import spmm, use_backend
from astrobio.ops.graph import (
    collate_graphs,
    collate_graphs_reference,
    csr_from_edges,
    csr_from_edges_reference,
)
from astrobio.ops.spmm_cuda import cuda_spmm_available, spmm_cuda

BATCH_SIZE = 32
N_GRAPHS = 256  # synthetic planets, cycled through in batches


def _graph_batches():
    samples = generate_samples(0, N_GRAPHS, DataConfig())
    return [samples[i:i + BATCH_SIZE] for i in range(0, N_GRAPHS, BATCH_SIZE)]


def _ours(batch):
    graphs = collate_graphs([s.edge_index for s in batch],
                            [s.node_features.shape[0] for s in batch],
                            [s.edge_attr for s in batch])
    return torch.from_numpy(np.concatenate([s.node_features for s in batch])), graphs


def _torch(batch):
    graphs = collate_graphs_reference([s.edge_index for s in batch],
                                      [s.node_features.shape[0] for s in batch],
                                      [s.edge_attr for s in batch])
    return torch.from_numpy(np.concatenate([s.node_features for s in batch])), graphs


def _pyg_data(batch):
    return [Data(x=torch.from_numpy(s.node_features), edge_index=torch.from_numpy(s.edge_index),
                 edge_attr=torch.from_numpy(s.edge_attr)) for s in batch]


def _large_graph(num_nodes=200_003, num_edges=2_000_003, device="cpu"):
    generator = torch.Generator().manual_seed(0)
    # A few hubs: a quarter of the edges end at 1 % of the nodes.
    dst = torch.randint(0, num_nodes, (num_edges,), generator=generator)
    hubs = torch.randint(0, num_nodes // 100, (num_edges // 4,), generator=generator)
    dst[: num_edges // 4] = hubs
    src = torch.randint(0, num_nodes, (num_edges,), generator=generator)
    return torch.stack([src, dst]).to(device), num_nodes


def _cases() -> list[tuple[str, str, callable, callable, float, str]]:
    """(name, shape, ours, peer, units per call, unit) for everything this machine can run."""
    batches = _graph_batches()
    pyg_batches = [_pyg_data(b) for b in batches]
    counter = iter(range(10**12))
    edges = sum(s.edge_index.shape[1] for b in batches for s in b) / N_GRAPHS
    nodes = sum(s.node_features.shape[0] for b in batches for s in b) / N_GRAPHS
    shape = f"B={BATCH_SIZE}, ~{nodes:.0f} nodes, ~{edges:.0f} edges/graph"
    large, n = _large_graph()
    large_shape = f"N={n}, E={large.shape[1]}, hubs"
    cases = [
        ("collate vs PyG Batch.from_data_list", shape,
         lambda: _ours(batches[next(counter) % len(batches)]),
         lambda: Batch.from_data_list(pyg_batches[next(counter) % len(batches)]),
         BATCH_SIZE, "graphs/s"),
        ("collate vs pure-torch path", shape,
         lambda: _ours(batches[next(counter) % len(batches)]),
         lambda: _torch(batches[next(counter) % len(batches)]),
         BATCH_SIZE, "graphs/s"),
        ("CSR build (CPU) vs torch.sort", large_shape,
         lambda: csr_from_edges(large, n), lambda: csr_from_edges_reference(large, n),
         1, "graphs/s"),
    ]
    if torch.cuda.is_available():
        gpu, n = _large_graph(device="cuda")
        cases.append(("CSR build (CUDA) vs torch.sort", large_shape,
                      lambda: csr_from_edges(gpu, n), lambda: csr_from_edges_reference(gpu, n),
                      1, "graphs/s"))
    if cuda_spmm_available():
        rowptr, col, _ = csr_from_edges(gpu, n)
        for dtype in (torch.float32, torch.bfloat16):
            x = torch.randn(n, 128, device="cuda", dtype=dtype)

            def triton_spmm(x=x):
                with use_backend("triton"):
                    return spmm(rowptr, col, x)

            cases.append((f"SpMM sum cuda vs triton, {dtype}", f"{large_shape}, F=128",
                          lambda x=x: spmm_cuda(rowptr, col, x), triton_spmm, 1, "SpMM/s"))
    return cases


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _rate(fn, units, min_seconds=1.0):
    fn()
    _sync()
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < min_seconds or len(times) < 5:
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t0)
    return units / min(times)  # the best of the repeats: this machine is shared


def _fmt(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.2f}"


def main():
    hardware = torch.cuda.get_device_name() if torch.cuda.is_available() else (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores")
    versions = f"torch {torch.__version__}, numpy {np.__version__}"
    print(f"{datetime.date.today()}; {hardware}; {versions}; "
          f"{torch.get_num_threads()} torch threads\n")
    print("| op | shape | unit | ours | peer | ratio |")
    print("|---|---|---|---|---|---|")
    for name, shape, ours, peer, units, unit in _cases():
        a, b = _rate(ours, units), _rate(peer, units)
        print(f"| {name} | {shape} | {unit} | {_fmt(a)} | {_fmt(b)} | {a / b:.2f}x |")


if __name__ == "__main__":
    main()
