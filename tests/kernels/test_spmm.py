"""Triton spmm (CPU interpreter on CPU) against the float64 reference, hand cases and PyG layers."""

import os
import subprocess
import sys

import pytest
import torch
import triton
from torch.utils._python_dispatch import TorchDispatchMode
from torch_geometric.nn import GCNConv, GINConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from astrobio import ops
from astrobio.kernels import spmm as spmm_kernels
from astrobio.ops.graph import csr_from_edges
from astrobio.ops.spmm import csr_rows, spmm_csr, spmm_reference, spmm_schedule

TOL = {torch.float32: 1e-5, torch.float16: 5e-3}
REDUCTIONS = ("sum", "mean", "max")


def rel_err(out, ref):
    return ((out.double() - ref.double()).norm() / ref.double().norm()).item()


def make_graph(num_nodes, num_edges, hub_degree=0, index_dtype=torch.int64, unique=False,
               num_src=None):
    """Random destination-sorted CSR from `num_src` (default `num_nodes`) source nodes with
    self loops, isolated rows (no in-edges) and, optionally, row 1 as a hub with distinct
    sources. Returns (rowptr, col, transposed) as MultiModalBatch carries them."""
    num_src = num_src or num_nodes
    src = torch.randint(0, num_src, (num_edges,))
    dst = torch.randint(0, num_nodes, (num_edges,))
    # rows = 4 mod 5 get no in-edge, except multiples of 3 (their self loop): isolated nodes
    dst = torch.where(dst % 5 == 4, (dst + 1) % num_nodes, dst)
    loops = torch.arange(0, num_nodes, 3)
    src, dst = torch.cat([src, loops]), torch.cat([dst, loops])
    if hub_degree:
        hub_src = torch.randperm(num_src)[:hub_degree] if unique else torch.randint(
            0, num_src, (hub_degree,))
        src = torch.cat([src, hub_src])
        dst = torch.cat([dst, torch.ones(hub_src.numel(), dtype=torch.long)])
    edge_index = torch.stack([src, dst])
    if unique:
        edge_index = torch.unique(edge_index, dim=1)
    rowptr, col, _ = csr_from_edges(edge_index, num_src)
    rowptr = rowptr[: num_nodes + 1]  # destinations are < num_nodes <= num_src
    in_csr_order = torch.stack([col, csr_rows(rowptr, col.numel())])
    transposed = csr_from_edges(in_csr_order.flip(0), num_src)
    cast = lambda t: t.to(index_dtype)
    return cast(rowptr), cast(col), tuple(map(cast, transposed))


def hub_is_split(rowptr, col, features):
    """Whether the graph's largest row spans several chunks (the two-pass path runs)."""
    chunk = spmm_kernels.block_sizes(rowptr.numel() - 1, col.numel(), features)["chunk"]
    return int(rowptr.diff().max()) > chunk


def reference(rowptr, col, x, w, reduce):
    return spmm_reference(rowptr, col, x.double(), None if w is None else w.double(), reduce)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("reduce", REDUCTIONS)
@pytest.mark.parametrize("features", [1, 7, 33])
def test_forward_matches_reference(dtype, reduce, features):
    weighted, index_dtype = features != 7, torch.int32 if features == 33 else torch.int64
    rowptr, col, _ = make_graph(45, 60, hub_degree=200, index_dtype=index_dtype)
    assert hub_is_split(rowptr, col, features)
    x = torch.randn(45, features, dtype=dtype)
    # a strided weight, as a column of edge_attr would be
    w = torch.randn(col.numel(), 3, dtype=dtype)[:, 1] if weighted else None
    out = torch.full((45, features), float("nan"), dtype=dtype)
    result, argmax = spmm_kernels.spmm_csr(rowptr, col, x, w, reduce, out=out)
    assert result is out and out.dtype == dtype
    assert rel_err(out, reference(rowptr, col, x, w, reduce)) <= TOL[dtype]
    empty_rows = rowptr.diff() == 0
    assert empty_rows.any() and torch.equal(out[empty_rows], torch.zeros_like(out[empty_rows]))
    if reduce == "max":  # the argmax edge is in its row and holds the output value
        rows = torch.arange(45)[:, None].expand(-1, features)
        edge = argmax.long()
        assert torch.equal(edge < 0, empty_rows[:, None].expand(-1, features))
        edge, rows = edge[~empty_rows], rows[~empty_rows]
        assert torch.equal(csr_rows(rowptr, col.numel())[edge], rows)
        feature = torch.arange(features).expand_as(edge)
        held = x[col[edge].long(), feature].float() * (w[edge].float() if weighted else 1.0)
        assert torch.equal(held.to(dtype), out[~empty_rows])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_gradients_match_float64_autograd(dtype, reduce):
    # unique edges: the reference's amax splits the gradient of exact ties, ours does not
    rowptr, col, transposed = make_graph(47, 60, hub_degree=70, unique=True, num_src=80)
    assert hub_is_split(rowptr, col, 33)
    x = torch.randn(80, 33, dtype=dtype, requires_grad=True)
    w = torch.randn(col.numel(), dtype=dtype, requires_grad=True)
    with ops.use_backend("triton"):
        out = ops.spmm(rowptr, col, x, w, reduce, transposed=transposed)
    grad = torch.randn_like(out)
    grad_x, grad_w = torch.autograd.grad(out, (x, w), grad)
    x64, w64 = (t.detach().double().requires_grad_() for t in (x, w))
    ref = spmm_reference(rowptr, col, x64, w64, reduce)
    ref_x, ref_w = torch.autograd.grad(ref, (x64, w64), grad.double())
    assert grad_x.dtype == dtype and grad_w.dtype == dtype
    assert rel_err(out, ref) <= TOL[dtype]
    assert rel_err(grad_x, ref_x) <= TOL[dtype]
    assert rel_err(grad_w, ref_w) <= TOL[dtype]


def test_transpose_built_inside_equals_given_and_runs_repeat_bitwise():
    rowptr, col, transposed = make_graph(40, 30, hub_degree=100, index_dtype=torch.int32,
                                         num_src=53)
    assert hub_is_split(rowptr, col, 9)
    x = torch.randn(53, 9, requires_grad=True)
    w = torch.randn(col.numel(), requires_grad=True)
    results = []
    for given in (transposed, None, None):
        with ops.use_backend("triton"):
            out = ops.spmm(rowptr, col, x, w, "mean", transposed=given)
        results.append((out, *torch.autograd.grad(out.square().sum(), (x, w))))
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


def test_repeated_runs_bitwise_equal_over_split_rows():
    rowptr, col, _ = make_graph(60, 40, hub_degree=150)
    assert hub_is_split(rowptr, col, 5)
    x, w = torch.randn(60, 5), torch.randn(col.numel())
    for reduce in ("sum", "max"):
        first = spmm_kernels.spmm_csr(rowptr, col, x, w, reduce)
        # the second run writes into a strided view of a poisoned buffer
        buffer = torch.full((60, 8), float("nan"))
        again = spmm_kernels.spmm_csr(rowptr, col, x, w, reduce, out=buffer[:, 2:7])
        assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
        assert buffer[:, [0, 1, 7]].isnan().all()


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_hub_of_degree_2000(reduce):
    rowptr, col, transposed = make_graph(41, 60, hub_degree=2000)
    assert int(rowptr.diff().max()) >= 2000 and hub_is_split(rowptr, col, 3)
    x = torch.randn(41, 3, requires_grad=True)
    w = torch.randn(col.numel(), requires_grad=True)
    with ops.use_backend("triton"):
        out = ops.spmm(rowptr, col, x, w, reduce, transposed=transposed)
    grad_x, grad_w = torch.autograd.grad(out.sum(), (x, w))
    x64, w64 = (t.detach().double().requires_grad_() for t in (x, w))
    ref = spmm_reference(rowptr, col, x64, w64, reduce)
    ref_x, ref_w = torch.autograd.grad(ref.sum(), (x64, w64))
    for ours, truth in ((out, ref), (grad_x, ref_x), (grad_w, ref_w)):
        assert rel_err(ours, truth) <= 1e-5


def test_max_ties_route_to_first_edge_in_csr_order():
    # row 0 <- five copies of node 1 (spread over tiles and chunks), then node 2 (smaller)
    rowptr = torch.tensor([0, 6, 6])
    col = torch.tensor([1, 1, 1, 1, 1, 2])
    x = torch.tensor([[0.0, 0.0], [2.0, -1.0], [1.0, -5.0]], requires_grad=True)
    out, argmax = spmm_kernels.spmm_csr(rowptr, col, x.detach(), None, "max",
                                        chunk=2, block_e=2, chunks_per_program=1)
    assert torch.equal(out, torch.tensor([[2.0, -1.0], [0.0, 0.0]]))
    assert torch.equal(argmax, torch.tensor([[0, 0], [-1, -1]], dtype=torch.int32))
    w = torch.ones(6, requires_grad=True)
    with ops.use_backend("triton"):
        grad_x, grad_w = torch.autograd.grad(ops.spmm(rowptr, col, x, w, "max").sum(), (x, w))
    assert torch.equal(grad_x, torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]))
    assert torch.equal(grad_w, torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.0]))


@pytest.mark.parametrize("num_nodes", [0, 6])
def test_empty_graph(num_nodes):
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    col = torch.zeros(0, dtype=torch.long)
    x = torch.randn(num_nodes, 7, requires_grad=True)
    w = torch.randn(0, requires_grad=True)
    for reduce in REDUCTIONS:
        out_buffer = torch.full((num_nodes, 7), float("nan"))
        out, _ = spmm_kernels.spmm_csr(rowptr, col, x.detach(), w.detach(), reduce, out=out_buffer)
        assert torch.equal(out, torch.zeros(num_nodes, 7))
        with ops.use_backend("triton"):
            out = ops.spmm(rowptr, col, x, w, reduce)
        grad_x, grad_w = torch.autograd.grad(out.sum(), (x, w))
        assert torch.equal(grad_x, torch.zeros_like(x)) and grad_w.shape == (0,)


def test_gcn_conv_matches_pyg():
    num_nodes, channels = 37, (13, 7)
    edge_index = torch.randint(0, num_nodes, (2, 120))
    conv = GCNConv(*channels)
    torch.nn.init.normal_(conv.bias)
    x = torch.randn(num_nodes, channels[0])
    norm_index, norm_weight = gcn_norm(edge_index, None, num_nodes)
    rowptr, col, perm = csr_from_edges(norm_index, num_nodes)
    with ops.use_backend("triton"):
        ours = ops.spmm(rowptr, col, conv.lin(x), norm_weight[perm]) + conv.bias
    assert rel_err(ours, conv(x, edge_index)) <= 1e-5


def test_gin_conv_matches_pyg():
    num_nodes = 37
    edge_index = torch.randint(0, num_nodes, (2, 120))
    mlp = torch.nn.Sequential(torch.nn.Linear(11, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5))
    conv = GINConv(mlp, eps=0.3)
    x = torch.randn(num_nodes, 11)
    rowptr, col, _ = csr_from_edges(edge_index, num_nodes)
    with ops.use_backend("triton"):
        ours = mlp(1.3 * x + ops.spmm(rowptr, col, x))
    assert rel_err(ours, conv(x, edge_index)) <= 1e-5


def test_schedule_covers_every_edge_once_in_bounded_chunks():
    degrees = torch.tensor([0, 3, 17, 0, 64, 65, 1, 200])
    rowptr = torch.cat([torch.zeros(1, dtype=torch.long), degrees.cumsum(0)])
    num_edges, chunk = int(rowptr[-1]), 16
    packed = spmm_kernels.build_schedule(rowptr, num_edges, chunk, 3)
    num_chunks, num_split, num_slots = spmm_kernels.schedule_size(8, num_edges, chunk, 3)
    assert packed.shape == (4, num_chunks + num_split)
    schedule, split = packed[:, :num_chunks], packed[:, num_chunks:]
    row, start, end, slot = schedule
    assert schedule.shape[1] % 3 == 0 and bool(((end - start) <= chunk).all())
    covered = torch.zeros(num_edges, dtype=torch.long)
    for r, s, e in zip(row.tolist(), start.tolist(), end.tolist()):
        covered[s:e] += 1
        assert e == s or rowptr[r] <= s < e <= rowptr[r + 1]
    assert torch.equal(covered, torch.ones(num_edges, dtype=torch.long))
    assert set(row[slot == -1].tolist()) == {0, 1, 3, 6}  # rows of degree <= chunk
    live_split = split[:, split[2] > split[1]]
    assert live_split[0].tolist() == [2, 4, 5, 7]
    assert live_split[3].tolist() == [17, 64, 65, 200]
    assert (live_split[2] - live_split[1]).tolist() == [2, 4, 5, 13]
    assert sorted(slot[slot >= 0].tolist()) == list(range(24)) and num_slots >= 24


@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_schedule_cxx_equals_torch_and_is_reused(index_dtype):
    """spmm_schedule (C++ on the CPU) equals the torch build on hubs of degree >= 1000, and a
    spmm given it (forward and input gradient) equals one that builds its own, bit for bit."""
    rowptr, col, transposed = make_graph(60, 300, hub_degree=1500, index_dtype=index_dtype,
                                         num_src=1700)
    schedule = spmm_schedule(rowptr, col.numel(), transposed[0])
    for csr, built in ((rowptr, schedule.forward), (transposed[0], schedule.transposed)):
        sizes = spmm_kernels.chunk_sizes(csr.numel() - 1, col.numel())
        expected = spmm_kernels.build_schedule(csr, col.numel(), sizes["chunk"],
                                               sizes["chunks_per_program"])
        assert built.dtype == torch.int64 and torch.equal(built, expected)
    with ops.use_backend("reference"):  # the torch path of the same function
        assert torch.equal(spmm_schedule(rowptr, col.numel()).forward, schedule.forward)
    assert hub_is_split(rowptr, col, 9)
    x = torch.randn(1700, 9, requires_grad=True)
    w = torch.rand(col.numel(), requires_grad=True)
    grad = torch.randn(60, 9)
    results = []
    for given in (None, schedule):
        with ops.use_backend("triton"):
            out = ops.spmm(rowptr, col, x, w, "sum", transposed=transposed, schedule=given)
        results.append((out, *torch.autograd.grad(out, (x, w), grad)))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)
    x64, w64 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    ref = spmm_reference(rowptr, col, x64, w64, "sum")
    for got, expected in zip(results[1], (ref, *torch.autograd.grad(ref, (x64, w64), grad))):
        assert rel_err(got, expected) <= 1e-5


def test_schedule_for_another_graph_is_refused():
    rowptr, col, transposed = make_graph(20, 40)
    other, other_col, _ = make_graph(50, 400)
    wrong = spmm_schedule(other, other_col.numel())
    with pytest.raises(ValueError, match="not built for this graph"), ops.use_backend("triton"):
        ops.spmm(rowptr, col, torch.randn(20, 3), schedule=wrong)
    with pytest.raises(ValueError, match="SpmmSchedule"):
        ops.spmm(rowptr, col, torch.randn(20, 3), schedule=tuple(wrong))
    with pytest.raises(ValueError, match="transposed CSR"):
        ops.spmm(rowptr, col, torch.randn(20, 3),
                 schedule=spmm_schedule(rowptr, col.numel(), transposed[0]))


class _NoLaunch:
    """Stands in for a Triton kernel: records launches, runs nothing."""

    def __init__(self):
        self.launches = 0

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.launches += 1
        return launch


def test_cached_schedule_call_dispatches_few_aten_ops(monkeypatch):
    """Given the schedule, one spmm forward and its input gradient dispatch a handful of ATen
    ops each: the op call itself is one custom op per direction, and inside it the launcher
    only allocates outputs and workspaces around its two kernel launches; building the
    schedule on each call costs some fifty ops more. Kernels are stubbed (the interpreter's
    tensor copies are not the op's)."""
    rowptr, col, transposed = make_graph(200, 1300, hub_degree=1100, num_src=1200)
    schedule = spmm_schedule(rowptr, col.numel(), transposed[0])
    chunks, combine = _NoLaunch(), _NoLaunch()
    monkeypatch.setattr(spmm_kernels, "_spmm_chunks_kernel", chunks)
    monkeypatch.setattr(spmm_kernels, "_spmm_combine_kernel", combine)
    x = torch.randn(1200, 64, requires_grad=True)
    grad = torch.randn(200, 64)
    with ops.use_backend("triton"):
        with _OpLog() as forward:
            out = ops.spmm(rowptr, col, x, None, "sum", transposed=transposed,
                           schedule=schedule)
        with _OpLog() as backward:
            torch.autograd.grad(out, x, grad)
    assert forward.names == ["astrobio.spmm_csr.default"]
    assert [n for n in backward.names if n.startswith("astrobio")] == [
        "astrobio.spmm_csr_grad_x.default"] and len(backward.names) <= 4, backward.names
    # inside the ops: the launcher, both directions, with and without the schedule
    rowptr_t, col_t, _ = transposed
    for csr, index, rows, built in ((rowptr, col, x.detach(), schedule.forward),
                                    (rowptr_t, col_t, grad, schedule.transposed)):
        with _OpLog() as cached:
            spmm_kernels.spmm_csr(csr, index, rows, None, "sum", schedule=built)
        with _OpLog() as rebuilt:
            spmm_kernels.spmm_csr(csr, index, rows, None, "sum")
        assert len(cached.names) <= 5, cached.names
        assert len(rebuilt.names) >= len(cached.names) + 30
    assert chunks.launches == 6 and combine.launches == 6  # the hub is split both ways


def test_custom_op_registration():
    rowptr, col, transposed = make_graph(9, 14)
    x = torch.randn(9, 3, requires_grad=True)
    w = torch.randn(col.numel(), requires_grad=True)
    for reduce in ("mean", "max"):
        schedule = spmm_schedule(rowptr, col.numel(), transposed[0])
        torch.library.opcheck(spmm_csr, (rowptr, col, x, w, reduce, *transposed, *schedule),
                              test_utils=("test_schema", "test_autograd_registration",
                                          "test_faketensor"))


class _OpLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func))
        return func(*args, **(kwargs or {}))


def test_backend_switch_and_errors():
    rowptr, col, _ = make_graph(8, 12)
    x = torch.randn(8, 3)
    for backend, expected in (("triton", True), ("reference", False), ("auto", False)):
        with _OpLog() as log, ops.use_backend(backend):
            ops.spmm(rowptr, col, x)
        assert ("astrobio.spmm_csr.default" in log.names) is expected
    with pytest.raises(ValueError, match="reduce"):
        ops.spmm(rowptr, col, x, reduce="min")
    with pytest.raises(ValueError, match="int32 or int64"):
        ops.spmm(rowptr.float(), col, x)
    with pytest.raises(ValueError, match="transposed"):
        ops.spmm(rowptr, col, x, transposed=(rowptr, col[:-1], col))
    with pytest.raises(ValueError, match="triton backend takes"), ops.use_backend("triton"):
        ops.spmm(rowptr, col, x.double())


@pytest.mark.gpu
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_bf16_on_gpu(reduce):
    rowptr, col, transposed = make_graph(300, 2000, hub_degree=3000, unique=True, num_src=3100)
    rowptr, col = rowptr.cuda(), col.cuda()
    transposed = tuple(t.cuda() for t in transposed)
    x = torch.randn(3100, 129, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    w = torch.randn(col.numel(), device="cuda", dtype=torch.bfloat16, requires_grad=True)
    with ops.use_backend("triton"):
        out = ops.spmm(rowptr, col, x, w, reduce, transposed=transposed)
    grad_x, grad_w = torch.autograd.grad(out.float().square().sum(), (x, w))
    x64, w64 = (t.detach().double().requires_grad_() for t in (x, w))
    ref = spmm_reference(rowptr, col, x64, w64, reduce)
    ref_x, ref_w = torch.autograd.grad(ref.square().sum(), (x64, w64))
    for ours, truth in ((out, ref), (grad_x, ref_x), (grad_w, ref_w)):
        assert rel_err(ours, truth) <= 2e-2


GPU_ARCHS = (86, 90)  # RTX A5000, H200


def compile_for_gpu(kernel, types, constexprs, arch):
    """Compile `kernel` to a cubin for `arch` without a GPU (needs TRITON_INTERPRET unset)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    signature = {name: "constexpr" if name in constexprs else types[name]
                 for name in kernel.arg_names}
    constants = {(kernel.arg_names.index(name),): value for name, value in constexprs.items()}
    return triton.compile(ASTSource(kernel, signature, constexprs=constants),
                          target=GPUTarget("cuda", arch, 32))


def compile_every_variant(dtype="bf16"):
    from astrobio.kernels.sddmm import _sddmm_kernel

    spmm_types = dict(
        x_ptr=f"*{dtype}", col_ptr="*i32", weight_ptr=f"*{dtype}", edge_id_ptr="*i64",
        route_ptr="*i32", schedule_ptr="*i64", out_ptr=f"*{dtype}", argmax_ptr="*i32",
        partial_ptr="*fp32", partial_arg_ptr="*i32", stride_schedule="i32",
        num_features="i32", stride_x="i32", stride_out="i32", stride_route="i32",
    )
    combine_types = dict(
        partial_ptr="*fp32", partial_arg_ptr="*i32", schedule_ptr="*i64", out_ptr=f"*{dtype}",
        argmax_ptr="*i32", stride_schedule="i32", num_chunks="i32", num_features="i32",
        stride_out="i32",
    )
    sddmm_types = dict(
        row_ptr="*i64", col_ptr="*i32", a_ptr=f"*{dtype}", b_ptr=f"*{dtype}", route_ptr="*i32",
        out_ptr="*fp32", num_edges="i32", num_features="i32", stride_a="i32", stride_b="i32",
        stride_route="i32",
    )
    for arch in GPU_ARCHS:
        for reduce, routed in ((0, True), (1, False), (2, False)):
            compile_for_gpu(spmm_kernels._spmm_chunks_kernel, spmm_types, dict(
                HAS_WEIGHT=True, ROUTE=routed, REDUCE=reduce, CHUNKS_PER_PROGRAM=4, BLOCK_E=8,
                BLOCK_F=128), arch)
            compile_for_gpu(spmm_kernels._spmm_combine_kernel, combine_types,
                            dict(REDUCE=reduce, BLOCK_F=128), arch)
        compile_for_gpu(_sddmm_kernel, sddmm_types, dict(ROUTE=True, BLOCK_E=32, BLOCK_F=64),
                        arch)


def test_kernels_compile_for_gpu():
    """Every kernel variant compiles, in bf16, for the A5000 (sm86) and the H200 (sm90). The
    interpreter never runs the compiler, so compiled-path type errors show only here; it runs
    in a fresh process because the interpreter patches triton.language in this one."""
    if "nvidia" not in triton.backends.backends:
        pytest.skip("this triton has no NVIDIA backend")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, __file__, "--compile-for-gpu"], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]


if __name__ == "__main__" and sys.argv[1:] == ["--compile-for-gpu"]:
    compile_every_variant()
