"""The kernels' regression gate: `pytest bench/ --benchmark-only` on a GPU (bench/gpu_session.sh).

Each test runs one op at one of the model's shapes, times ours and every peer that accepts the
inputs in the same run (`triton.testing.do_bench` medians) and asserts

    ours_ms <= MAX_SLOWDOWN[op] * best_peer_ms,

then hands ours to pytest-benchmark, whose record gpu_session.sh compares with the committed
baseline of that GPU (`bench/baselines/<gpu>.json`, `--benchmark-compare-fail`), so a slowdown
of ours alone fails too.

MAX_SLOWDOWN is PROVISIONAL: no GPU has run these kernels yet, so the limits are loose guesses
(not measurements) meant to catch a gross regression only. Replace each with the first
measured ratio (bench/RESULTS.md) plus a margin once a GPU session has run the gate.
"""

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

import bench_conv3d  # noqa: E402
import bench_cross_attention  # noqa: E402
import bench_spmm  # noqa: E402

MAX_SLOWDOWN = {"conv3d": 2.0, "spmm": 1.5, "cross_attention": 1.5}  # provisional, see above


def median_ms(fn) -> float:
    import triton.testing

    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def gate(benchmark, op: str, ours, peers: dict):
    """Time ours and each peer that runs, record the ratio, benchmark ours, assert the limit."""
    ours()  # compile and autotune outside every timing
    ours_ms = median_ms(ours)
    peer_ms = {}
    for name, fn in peers.items():
        try:
            fn()
        except RuntimeError:  # a backend that rejects this shape, mask or dtype
            continue
        peer_ms[name] = median_ms(fn)
    assert peer_ms, f"{op}: no peer ran, nothing to compare with"
    best = min(peer_ms, key=peer_ms.get)
    ratio = ours_ms / peer_ms[best]
    benchmark.extra_info.update(ours_ms=ours_ms, best_peer=best, peer_ms=peer_ms, ratio=ratio,
                                max_slowdown=MAX_SLOWDOWN[op])

    def synced():
        ours()
        torch.cuda.synchronize()

    benchmark.pedantic(synced, rounds=30, warmup_rounds=3)
    assert ratio <= MAX_SLOWDOWN[op], (
        f"{op}: ours {ours_ms:.3f} ms is {ratio:.2f}x {best} ({peer_ms[best]:.3f} ms), over the "
        f"provisional limit {MAX_SLOWDOWN[op]}x")


CONV_LAYERS = [layer for preset in ("tiny", "small")
               for layer in bench_conv3d.datacube_layers(preset)]


@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
@pytest.mark.parametrize("layer", CONV_LAYERS, ids=bench_conv3d.Layer.name)
def test_conv3d(benchmark, layer, backward):
    inputs = bench_conv3d.make_inputs(layer, torch.bfloat16, "cuda", backward)
    gate(benchmark, "conv3d", bench_conv3d.step(bench_conv3d.run_ours, inputs, backward),
         {"cudnn": bench_conv3d.step(bench_conv3d.run_cudnn, inputs, backward)})


ATTENTION_SHAPES = [s for preset in bench_cross_attention.PRESETS
                    for s in bench_cross_attention.model_shapes(preset)]


@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
@pytest.mark.parametrize("shape", ATTENTION_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_cross_attention(benchmark, shape, backward):
    ca = bench_cross_attention
    q, k, v, mask = ca.make_inputs(shape, torch.bfloat16, "cuda", requires_grad=backward)
    peers = {}
    for name, (fn, leaves) in ca.peers(q, k, v, mask).items():
        try:  # with backward, step() runs the forward once already
            peers[name] = ca.step(fn, leaves, mask, backward)
        except RuntimeError:  # this SDPA backend rejects the shape or mask
            continue
    gate(benchmark, "cross_attention", ca.step(ca.run_ours, (q, k, v), mask, backward), peers)


@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
@pytest.mark.parametrize("reduce", ["sum", "max"])
def test_spmm_model_batch(benchmark, reduce, backward):
    graph = bench_spmm.graphs(False)[0]  # the model batch's size
    steps = {}
    for name in ("triton", *bench_spmm.PEERS):
        fn = bench_spmm.implementation(name, graph, reduce)
        if fn is None or (backward and name in ("cuda", "cusparse")):
            continue  # no backward, or (cuSPARSE) no weight gradient: not the same work
        steps[name] = bench_spmm.make_step(fn, graph, 64, torch.bfloat16, backward)
    gate(benchmark, "spmm", steps.pop("triton"), steps)
