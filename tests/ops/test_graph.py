"""Graph-structure ops (C++ extension and CUDA) against the plain-PyTorch references."""

import numpy as np
import pytest
import torch

from astrobio.ops import graph, use_backend
from astrobio.ops.graph import (
    batch_graphs,
    batch_graphs_reference,
    collate_graphs,
    collate_graphs_reference,
    csr_from_edges,
    csr_from_edges_reference,
)
from astrobio.ops.spmm import spmm_schedule

pytestmark = pytest.mark.skipif(graph._C is None, reason="astrobio._C is not built")


def random_edges(rng, num_nodes, num_edges, dtype=np.int64, hub=None, hub_degree=0):
    """Unsorted edges with duplicates; with `hub`, `hub_degree` extra edges end at it."""
    edges = rng.integers(0, max(num_nodes, 1), size=(2, num_edges)) if num_nodes else \
        np.zeros((2, 0), np.int64)
    if hub is not None:
        src = rng.integers(0, num_nodes, size=hub_degree)
        edges = np.concatenate([edges, np.stack([src, np.full(hub_degree, hub)])], axis=1)
        edges = edges[:, rng.permutation(edges.shape[1])]
    if num_edges > 1:
        edges[:, -1] = edges[:, 0]  # a duplicate edge
    return edges.astype(dtype)


def assert_same(actual, expected):
    for a, e in zip(actual, expected, strict=True):
        assert a.dtype == e.dtype == torch.long
        assert torch.equal(a, e)


INDEX_FIELDS = ("edge_index", "batch", "ptr", "rowptr", "col", "perm", "rowptr_t", "col_t",
                "perm_t")


def assert_same_graph(actual, expected):
    assert_same([getattr(actual, f) for f in INDEX_FIELDS],
                [getattr(expected, f) for f in INDEX_FIELDS])
    assert actual.max_nodes == expected.max_nodes
    assert torch.equal(actual.node_features, expected.node_features)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("num_nodes,num_edges", [(37, 211), (1, 5), (13, 0), (0, 0), (2003, 97)])
def test_csr_matches_reference(rng, dtype, num_nodes, num_edges):
    edge_index = torch.from_numpy(random_edges(rng, num_nodes, num_edges, dtype))
    assert_same(csr_from_edges(edge_index, num_nodes),
                csr_from_edges_reference(edge_index, num_nodes))


def test_csr_parallel_path_with_hub_matches_reference(rng):
    # Enough edges per node for the multi-threaded histogram, and a hub of degree 3000.
    num_nodes = 5003
    edge_index = torch.from_numpy(random_edges(rng, num_nodes, 60_001, hub=17, hub_degree=3000))
    rowptr, col, perm = csr_from_edges(edge_index, num_nodes)
    assert_same((rowptr, col, perm), csr_from_edges_reference(edge_index, num_nodes))
    assert int(rowptr[18] - rowptr[17]) >= 3000


def test_csr_reads_strided_input_and_its_stable_order(rng):
    # A [E, 2] buffer seen as [2, E]: strided rows, read in place.
    pairs = torch.from_numpy(random_edges(rng, 9, 41).T.copy())
    edge_index = pairs.t()
    assert not edge_index.is_contiguous()
    rowptr, col, perm = csr_from_edges(edge_index, 9)
    src, dst = edge_index
    assert torch.equal(col, src[perm])
    assert torch.equal(rowptr, torch.searchsorted(dst[perm], torch.arange(10)))
    for v in range(9):  # within a row, edges keep their input order
        segment = perm[rowptr[v]:rowptr[v + 1]]
        assert torch.all(segment[1:] > segment[:-1])
        assert torch.all(dst[segment] == v)


@pytest.mark.parametrize("bad", [[[0, 1], [1, 3]], [[-1, 0], [0, 1]]])
def test_csr_out_of_range_raises(bad):
    with pytest.raises(ValueError, match="spans"):
        csr_from_edges(torch.tensor(bad), 3)


def test_csr_bad_shape_and_num_nodes_raise():
    with pytest.raises(ValueError, match=r"\[2, E\]"):
        csr_from_edges(torch.zeros(3, 4, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="num_nodes"):
        csr_from_edges(torch.zeros(2, 0, dtype=torch.long), -1)
    with pytest.raises(ValueError, match="int32 or int64"):
        graph._C.csr_from_edges(np.zeros((2, 3), np.float32), 4)


def test_csr_op_fake_and_opcheck(rng):
    edge_index = torch.from_numpy(random_edges(rng, 11, 23))
    torch.library.opcheck(graph._csr_from_edges_op, (edge_index, 11))
    meta = torch.empty(2, 23, dtype=torch.long, device="meta")
    rowptr, col, perm = graph._csr_from_edges_op(meta, 11)
    assert rowptr.shape == (12,) and col.shape == perm.shape == (23,)


def random_batch(rng, sizes, dtype=np.int64):
    """Graphs of `sizes` (nodes, edges); int32 and int64 mixed when dtype is None."""
    edges, nodes, attrs = [], [], []
    for g, (n, e) in enumerate(sizes):
        d = dtype or (np.int32 if g % 2 else np.int64)
        edges.append(random_edges(rng, n, e if n else 0, d))
        nodes.append(n)
        attrs.append(rng.standard_normal((edges[-1].shape[1], 3)).astype(np.float32))
    return edges, nodes, attrs


BATCHES = {
    "metabolic": [(57, 203), (119, 397), (83, 251), (61, 0), (101, 311)],
    "with_empty": [(0, 0), (5, 9), (7, 0), (0, 0), (3, 4)],
    "all_empty": [(0, 0), (4, 0)],
    "single": [(1, 1)],
    "none": [],
}


@pytest.mark.parametrize("dtype", [np.int64, np.int32, None])
@pytest.mark.parametrize("name", BATCHES)
def test_collate_matches_reference(rng, dtype, name):
    edges, nodes, attrs = random_batch(rng, BATCHES[name], dtype)
    if not edges:
        attrs = None  # no graph to take the attribute width from
    actual = collate_graphs(edges, nodes, attrs)
    expected = collate_graphs_reference(edges, nodes, attrs)
    assert_same_graph(actual, expected)
    assert torch.equal(actual.edge_attr, expected.edge_attr)
    assert actual.max_nodes == max(nodes, default=0)
    with use_backend("reference"):
        assert_same_graph(collate_graphs(edges, nodes), expected)


def test_collate_is_the_batch_graph_and_its_csrs(rng):
    """Independent of the reference: the collated graph is the disjoint union, re-ordered."""
    edges, nodes, attrs = random_batch(rng, BATCHES["metabolic"] + BATCHES["with_empty"], None)
    out = collate_graphs(edges, nodes, attrs)
    ptr = np.concatenate([[0], np.cumsum(nodes)])
    union = np.concatenate([e.astype(np.int64) + ptr[g] for g, e in enumerate(edges)], axis=1)
    assert np.array_equal(out.edge_index.numpy(), union[:, out.perm.numpy()])
    assert np.array_equal(out.edge_attr.numpy(), np.concatenate(attrs)[out.perm.numpy()])
    assert np.array_equal(np.sort(out.perm.numpy()), np.arange(union.shape[1]))
    dst = out.edge_index[1].numpy()
    assert np.all(np.diff(dst) >= 0)
    assert np.array_equal(out.rowptr.numpy(), np.searchsorted(dst, np.arange(ptr[-1] + 1)))
    assert np.array_equal(out.batch.numpy(), np.repeat(np.arange(len(nodes)), nodes))
    assert np.array_equal(out.ptr.numpy(), ptr)
    src_t = out.edge_index[0][out.perm_t].numpy()
    assert np.all(np.diff(src_t) >= 0)
    assert np.array_equal(out.col_t.numpy(), out.edge_index[1][out.perm_t].numpy())
    assert np.array_equal(out.rowptr_t.numpy(), np.searchsorted(src_t, np.arange(ptr[-1] + 1)))


@pytest.mark.parametrize("dtype", [np.int64, None])
def test_batch_graphs_matches_reference(rng, dtype):
    edges, nodes, _ = random_batch(rng, BATCHES["metabolic"] + BATCHES["with_empty"], dtype)
    assert_same(batch_graphs(edges, nodes),
                batch_graphs_reference([torch.from_numpy(e) for e in edges], nodes))
    tensors = [torch.from_numpy(e) for e in edges]
    assert_same(batch_graphs(tensors, nodes), batch_graphs_reference(tensors, nodes))


def test_results_do_not_depend_on_the_thread_count(rng):
    edge_index = random_edges(rng, 3001, 300_001, hub=5, hub_degree=1500)  # > 2^18: a team
    one, three = (graph._C.csr_from_edges(edge_index, 3001, n) for n in (1, 3))
    assert all(np.array_equal(a, b) for a, b in zip(one, three, strict=True))
    edges, nodes, attrs = random_batch(rng, BATCHES["metabolic"] * 240, None)  # > 2^18 edges
    one, three = (graph._C.collate_graphs(edges, nodes, attrs, n) for n in (1, 3))
    assert all(np.array_equal(a, b) for a, b in zip(one, three, strict=True))


def _collate_in_child(edges, nodes, queue):
    torch.set_num_threads(1)  # as in a DataLoader worker
    queue.put(collate_graphs(edges, nodes).rowptr.tolist())


def test_collate_in_a_forked_worker_after_parallel_use(rng):
    """GNU OpenMP's pool does not survive fork(): a worker must run inline, not hang."""
    edges, nodes, _ = random_batch(rng, BATCHES["metabolic"] * 240)
    expected = graph._C.collate_graphs(edges, nodes, None, 2)[3].tolist()  # a 2-thread team
    context = torch.multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_collate_in_child, args=(edges, nodes, queue))
    child.start()
    try:
        assert queue.get(timeout=120) == expected, "the forked worker hung or failed"
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()


def test_extension_keeps_converted_inputs_alive():
    # Nested lists become temporary arrays inside the extension; they must outlive the work.
    out = graph._C.collate_graphs([[[0], [1]], [[0, 0], [0, 0]]], [2, 1],
                                  [[[1.0, 2.0]], [[3.0, 4.0], [5.0, 6.0]]])
    assert out[0].tolist() == [[0, 2, 2], [1, 2, 2]]
    assert out[-1].tolist() == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]


def test_collate_bad_input_raises(rng):
    edges, nodes, attrs = random_batch(rng, BATCHES["metabolic"])
    bad = [e.copy() for e in edges]
    bad[2][1, 5] = nodes[2]  # one past the last node of graph 2
    with pytest.raises(ValueError, match="graph 2: edge_index spans"):
        collate_graphs(bad, nodes, attrs)
    with pytest.raises(ValueError, match="graph 2: edge_index spans"):
        batch_graphs(bad, nodes)
    with use_backend("reference"), pytest.raises(ValueError, match="graph 2: edge_index spans"):
        collate_graphs(bad, nodes, attrs)
    with pytest.raises(ValueError, match="node count"):
        collate_graphs(edges, nodes[:-1])
    with pytest.raises(ValueError, match="edge_attr"):
        collate_graphs(edges, nodes, attrs[:-1])
    with pytest.raises(ValueError, match=r"edge_attrs\[1\]"):
        collate_graphs(edges, nodes, [attrs[0], attrs[1][:-1]] + attrs[2:])
    with pytest.raises(ValueError, match="2-D"):
        collate_graphs(edges, nodes, [attrs[0][:, 0]] + attrs[1:])
    with pytest.raises(ValueError, match="numeric"):
        graph._C.collate_graphs(edges, nodes, [a.astype(object) for a in attrs])
    with pytest.raises(ValueError, match=r"edge_indices\[0\] must have shape \[2, E\]"):
        collate_graphs([edges[0][:1]] + edges[1:], nodes)
    with pytest.raises(ValueError, match="int32 or int64"):
        collate_graphs([edges[0].astype(np.float64)] + edges[1:], nodes)
    with pytest.raises(ValueError, match=r"num_nodes\[1\]"):
        collate_graphs(edges, [nodes[0], -1] + nodes[2:])


@pytest.mark.gpu
@pytest.mark.skipif(graph._cuda is None, reason="astrobio._cuda is not built")
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("num_nodes,num_edges", [(37, 211), (13, 0), (0, 0), (70_001, 400_003)])
def test_csr_cuda_matches_reference(rng, dtype, num_nodes, num_edges):
    edge_index = torch.from_numpy(random_edges(rng, num_nodes, num_edges, dtype,
                                               hub=0 if num_nodes else None, hub_degree=2000))
    expected = csr_from_edges_reference(edge_index, num_nodes)
    edge_index = edge_index.cuda()
    for size in (num_nodes + 1, edge_index.shape[1], edge_index.shape[1]):
        torch.full((size,), -7, device="cuda")  # the op's outputs reuse these poisoned blocks
    actual = csr_from_edges(edge_index, num_nodes)
    assert all(a.is_cuda for a in actual)
    assert_same([a.cpu() for a in actual], expected)


@pytest.mark.gpu
@pytest.mark.skipif(graph._cuda is None, reason="astrobio._cuda is not built")
def test_csr_cuda_out_of_range_raises():
    with pytest.raises(ValueError, match="outside"):
        csr_from_edges(torch.tensor([[0, 1], [1, 3]], device="cuda"), 3)


def test_collate_carries_node_features_and_moves_as_one(rng):
    edges, nodes, attrs = random_batch(rng, BATCHES["with_empty"], None)
    features = [rng.standard_normal((n, 5)).astype(np.float32) for n in nodes]
    out = collate_graphs(edges, nodes, attrs, features)
    assert torch.equal(out.node_features, torch.from_numpy(np.concatenate(features)))
    assert out.num_graphs == len(nodes)
    inverse = out.inverse_perm_t
    assert torch.equal(out.perm_t[inverse], torch.arange(out.col.numel()))
    doubled = out.apply(lambda t: t * 2)
    assert torch.equal(doubled.rowptr, out.rowptr * 2) and doubled.max_nodes == out.max_nodes
    assert doubled.spmm_schedule is None  # collate_graphs builds none; the batch collate does
    out.spmm_schedule = spmm_schedule(out.rowptr, out.col.numel(), out.rowptr_t)
    moved = out.apply(lambda t: t + 1)
    assert torch.equal(moved.spmm_schedule.forward, out.spmm_schedule.forward + 1)
    assert torch.equal(moved.spmm_schedule.transposed, out.spmm_schedule.transposed + 1)
    assert torch.equal(out.spmm_schedule.transpose().forward, out.spmm_schedule.transposed)
    with pytest.raises(ValueError, match="graph 1: node_features has"):
        collate_graphs(edges, nodes, attrs, [features[0], features[1][:-1], *features[2:]])
