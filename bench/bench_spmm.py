"""SpMM (message passing) forward and forward + backward: the triton backend against its peers.

Ours runs with the graph's schedule built once (`spmm_schedule`, as collate builds it for a
batch). Peers: PyG's scatter-based `MessagePassing` (aggr sum / mean / max, as GCN/GIN layers
run it), `torch.sparse_csr_tensor @ dense` (cuSPARSE; sum only; its backward gives grad x only, as
torch.sparse has no weight gradient for repeated (row, col) entries) and, when built, the CUDA
backend (`use_backend("cuda")`; forward only).
Graphs: a power-law (Chung-Lu, exponent 2.1) graph the size of the model's batch graph (tiny
preset, batch 32: 1,111 nodes, 6,645 edges, as bench_system_step measured), a batch of 32
copies of the real E. coli iJO1366 metabolic network (cobra's package data; 1805 metabolites,
13.6k links, hubs H+, H2O, ATP; only where cobra is installed), each with a random 20% of its
links dropped as planets differ, and a power-law graph of 2M edges. Features 64 (the model's),
128, 256; fp32 and bf16; edge weights in x's dtype.

Roofline: compulsory bytes (every index, weight and feature row read once, every output written
once; `compulsory_bytes`) over the median time, against the GPU's copy bandwidth (H200 4.3 TB/s
measured, RTX A5000 768 GB/s datasheet). Gathers that miss the cache cost more than this, so
the fraction is a lower bound on how well the kernel uses memory.

    python bench/bench_spmm.py                      # markdown table for bench/RESULTS.md
    python bench/bench_spmm.py --tiny               # tiny shapes on the CPU (interpreter)
    pytest bench/test_kernels_gate.py --benchmark-only   # the regression gate (CUDA)
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import sys
import time
from dataclasses import dataclass

import torch

if "--tiny" in sys.argv and not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is first imported

import torch_geometric  # noqa: E402
import triton  # noqa: E402
from torch_geometric.nn import MessagePassing  # noqa: E402
from tqdm import tqdm  # noqa: E402

from astrobio import ops  # noqa: E402
from astrobio.ops.graph import batch_graphs, csr_from_edges  # noqa: E402
from astrobio.ops.spmm import SpmmSchedule, csr_rows, spmm_schedule  # noqa: E402
from astrobio.ops.spmm_cuda import cuda_spmm_available  # noqa: E402

PEAK_BANDWIDTH = {"H200": 4.3e12, "A5000": 768e9}  # bytes/s, see the module docstring
FEATURES = (64, 128, 256)
DTYPES = (torch.float32, torch.bfloat16)
PEERS = ("pyg", "cusparse", "cuda")


@dataclass
class Graph:
    name: str
    rowptr: torch.Tensor
    col: torch.Tensor
    transposed: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    edge_index: torch.Tensor  # [2, E] (source, destination) in CSR order, for PyG
    schedule: SpmmSchedule  # built once, as collate does for a batch

    @property
    def num_nodes(self) -> int:
        return self.rowptr.numel() - 1

    @property
    def num_edges(self) -> int:
        return self.col.numel()

    def shape(self) -> str:
        max_degree = int(self.rowptr.diff().max()) if self.num_nodes else 0
        return f"{self.name}: N={self.num_nodes}, E={self.num_edges}, max deg {max_degree}"


CPU_LABEL = "CPU (--tiny, interpreter: not a measurement)"


def csr_graph(name: str, edge_index: torch.Tensor, num_nodes: int, device) -> Graph:
    rowptr, col, _ = csr_from_edges(edge_index, num_nodes)
    in_csr_order = torch.stack([col, csr_rows(rowptr, col.numel())])
    transposed = csr_from_edges(in_csr_order.flip(0), num_nodes)
    schedule = spmm_schedule(rowptr, col.numel(), transposed[0])
    to = lambda t: t.to(device)
    return Graph(name, to(rowptr), to(col), tuple(map(to, transposed)), to(in_csr_order),
                 schedule.apply(to))


def metabolic_batch(num_graphs: int, model: str, device, keep: float = 0.8) -> Graph:
    """`num_graphs` copies of a cobra model's network, each keeping a random `keep` of links."""
    from astrobio.data.metabolism import bundled_model, metabolic_graph

    node_features, edge_index, _ = metabolic_graph(bundled_model(model))
    edge_index, num_nodes = torch.from_numpy(edge_index), node_features.shape[0]
    generator = torch.Generator().manual_seed(0)
    parts = [edge_index[:, torch.rand(edge_index.shape[1], generator=generator) < keep]
             for _ in range(num_graphs)]
    batched, _, ptr = batch_graphs(parts, [num_nodes] * num_graphs)
    return csr_graph(f"{num_graphs} x {model}", batched, int(ptr[-1]), device)


def power_law(num_nodes: int, num_edges: int, device, exponent: float = 2.1,
              name: str | None = None) -> Graph:
    """Chung-Lu: both ends drawn with probability ~ rank^(-1/(exponent-1)), ids shuffled."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.arange(1, num_nodes + 1, dtype=torch.float64) ** (-1.0 / (exponent - 1.0))
    ends = torch.multinomial(weight, 2 * num_edges, replacement=True, generator=generator)
    ends = torch.randperm(num_nodes, generator=generator)[ends].view(2, num_edges)
    return csr_graph(name or f"power law {exponent}", ends, num_nodes, device)


class WeightedAggregation(MessagePassing):
    """The minimal PyG layer: messages `w_e * x_j`, aggregated by scatter."""

    def __init__(self, aggr: str):
        super().__init__(aggr=aggr)

    def forward(self, x, edge_index, weight):
        return self.propagate(edge_index, x=x, weight=weight)

    def message(self, x_j, weight):
        return x_j * weight.unsqueeze(-1)


def implementation(name: str, graph: Graph, reduce: str):
    """fn(x, w) -> out for `name` in ("triton", *PEERS), or None where it does not apply."""
    if name == "triton":
        def run(x, w):
            with ops.use_backend("triton"):
                return ops.spmm(graph.rowptr, graph.col, x, w, reduce,
                                transposed=graph.transposed, schedule=graph.schedule)
        return run
    if name == "pyg":
        layer = WeightedAggregation(reduce)
        return lambda x, w: layer(x, graph.edge_index, w)
    if name == "cusparse" and reduce == "sum":
        size = (graph.num_nodes, graph.num_nodes)
        return lambda x, w: torch.sparse_csr_tensor(graph.rowptr, graph.col, w, size,
                                                    check_invariants=False) @ x
    if name == "cuda" and cuda_spmm_available():  # the extension may lack it (no nvcc)
        def run(x, w):
            with ops.use_backend("cuda"):
                return ops.spmm(graph.rowptr, graph.col, x, w, reduce)
        return run
    return None


def compulsory_bytes(graph: Graph, features: int, dtype: torch.dtype, backward: bool) -> int:
    """Forward: rowptr, col, w, x read once, out written once. Backward adds grad x over the
    transposed CSR (rowptr_t, col_t, perm_t, w, grad_out read, grad_x written) and grad w (row,
    col, grad_out, x read, grad_w written)."""
    n, e, f = graph.num_nodes, graph.num_edges, features
    index, value = graph.col.element_size(), dtype.itemsize
    forward = (n + 1 + e) * index + e * value + 2 * n * f * value
    if not backward:
        return forward
    grad_x = (n + 1 + 2 * e) * index + e * value + 2 * n * f * value
    grad_w = 2 * e * index + 2 * n * f * value + e * value
    return forward + grad_x + grad_w


def make_step(fn, graph: Graph, features: int, dtype: torch.dtype, backward: bool,
              weight_grad: bool = True):
    device = graph.col.device
    x = torch.randn(graph.num_nodes, features, device=device, dtype=dtype)
    w = torch.rand(graph.num_edges, device=device, dtype=dtype)
    if not backward:
        return lambda: fn(x, w)
    x.requires_grad_(True)
    w.requires_grad_(weight_grad)
    grad = torch.randn(graph.num_nodes, features, device=device, dtype=dtype)

    def step():
        x.grad = w.grad = None
        fn(x, w).backward(grad)
    return step


def median_ms(step) -> float:
    if torch.cuda.is_available():
        return triton.testing.do_bench(step, warmup=25, rep=100, return_mode="median")
    step()  # dry run on the CPU: one untimed call, then one timed
    start = time.perf_counter()
    step()
    return (time.perf_counter() - start) * 1e3


def peak_bandwidth() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_BANDWIDTH.items() if key in name), None)


def has_cobra() -> bool:
    try:
        import cobra  # noqa: F401
    except ImportError:
        return False
    return True


MODEL_BATCH = (1111, 6645)  # nodes, edges of the tiny preset's batch-32 graph


@functools.cache
def graphs(tiny: bool) -> tuple[Graph, ...]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if tiny:
        found = [power_law(300, 1500, device)]
        if has_cobra():
            found.append(metabolic_batch(2, "textbook", device))
        return tuple(found)
    found = [power_law(*MODEL_BATCH, device, name="model batch size, power law")]
    if has_cobra():
        found.append(metabolic_batch(32, "iJO1366", device))
    found.append(power_law(250_000, 2_000_000, device))
    return tuple(found)


def cases(tiny: bool):
    """(graph, features, dtype, backward, reduce) to measure."""
    features = (8,) if tiny else FEATURES
    dtypes = (torch.float32,) if tiny else DTYPES  # the interpreter has no bf16
    for graph in graphs(tiny):
        for f in features:
            for dtype in dtypes:
                for backward in (False, True):
                    for reduce in ("sum", "max"):
                        yield graph, f, dtype, backward, reduce


def measure(graph, features, dtype, backward, reduce):
    """Rows of the table: ours against every peer that applies."""
    ours = median_ms(make_step(implementation("triton", graph, reduce), graph, features,
                               dtype, backward))
    moved = compulsory_bytes(graph, features, dtype, backward)
    peak = peak_bandwidth()
    gbps = moved / (ours * 1e-3) / 1e9
    roofline = f"{gbps * 1e9 / peak:.2f}" if peak else "n/a"
    rows = []
    for peer in PEERS:
        fn = implementation(peer, graph, reduce)
        if fn is None or (backward and peer == "cuda"):
            continue
        # torch.sparse cannot give a weight gradient with repeated (row, col) entries
        weight_grad = peer != "cusparse"
        if backward and not weight_grad:
            peer = f"{peer} (grad x only)"
        try:
            step = make_step(fn, graph, features, dtype, backward, weight_grad)
            theirs = f"{median_ms(step):.3f}"
            ratio = f"{float(theirs) / ours:.2f}"
        except RuntimeError as error:  # e.g. no bf16 or no gradient in cuSPARSE
            theirs, ratio = f"n/a ({type(error).__name__})", "n/a"
        rows.append((graph.shape(), features, str(dtype).removeprefix("torch."),
                     "fwd+bwd" if backward else "fwd", reduce, f"{ours:.3f}", peer, theirs,
                     ratio, f"{gbps:.0f}", roofline))
    return rows


HEADER = ("shape", "F", "dtype", "pass", "reduce", "ours ms", "peer", "peer ms",
          "speed-up (peer/ours)", "ours GB/s", "roofline fraction")


def context_line() -> str:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else CPU_LABEL
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    return (f"{date}, {device}, torch {torch.__version__}, triton {triton.__version__}, "
            f"PyG {torch_geometric.__version__}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true",
                        help="tiny shapes, fp32, runs on the CPU through the triton interpreter")
    args = parser.parse_args(argv)
    todo = list(cases(args.tiny))
    rows = [row for case in tqdm(todo, desc="spmm cases", unit="case") for row in measure(*case)]
    print(f"\n### spmm: {context_line()}\n")
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")


if __name__ == "__main__":
    main()
