"""Fused conv3d (Triton) against cuDNN at the DatacubeCNN layer shapes.

Layers: every block of `DatacubeCNN` for the tiny, small and 13b presets, read from
`astrobio.config` (`data.climate_shape` = [V, Z, H, W], `model.cnn_channels`): kernel 3,
stride 2, padding 1, GELU, channels V -> c1 -> c2 ..., the grid halving (ceil) per block.
Batch 32 for tiny and small, 8 for 13b (whose training micro-batch is 1; 8 keeps the layers
large enough to time). bf16, channels_last_3d input.

Ours: `astrobio.ops.conv3d(..., activation="gelu")` with the triton backend (bias and GELU in
the epilogue). Peer: `F.gelu(F.conv3d(x, w, b, 2, 1))` on channels_last_3d, i.e. cuDNN plus a
separate activation kernel. forward + backward computes dw and db, and dx for every block but
the first (whose input, the datacube, needs no gradient), as in training.

FLOPs: 2·M·Cout·K per GEMM with M = N·Do·Ho·Wo, K = 27·Cin: forward one GEMM, backward two
(one without dx). Roofline: min(peak, intensity × bandwidth) with the compulsory traffic
(x, w, y forward; dy, x, w read and dw, dx written backward).

    python bench/bench_conv3d.py                       # markdown table for bench/RESULTS.md
    python bench/bench_conv3d.py --tiny                # small shapes on the CPU (interpreter)
    pytest bench/test_kernels_gate.py --benchmark-only # the regression gate (needs CUDA)
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from astrobio.config import load_config

PRESETS = ("tiny", "small", "13b")
BATCH = {"tiny": 32, "small": 32, "13b": 8}
# GPU name fragment -> (dense bf16 TFLOP/s, copy TB/s): H200 measured, A5000 datasheet.
CEILINGS = {"H200": (790.0, 4.3), "A5000": (111.0, 0.768)}


@dataclass(frozen=True)
class Layer:
    preset: str
    block: int
    batch: int
    cin: int
    cout: int
    grid: tuple[int, int, int]  # input D, H, W

    @property
    def out_grid(self):
        return tuple((n + 1) // 2 for n in self.grid)  # kernel 3, stride 2, padding 1

    @property
    def needs_input_grad(self):
        return self.block > 0

    def name(self):
        return (f"{self.preset}/{self.block} N{self.batch} {self.cin}->{self.cout} "
                f"{'x'.join(map(str, self.grid))}")


CPU_LABEL = "CPU (--tiny, interpreter: not a measurement)"


def datacube_layers(preset: str, batch: int | None = None) -> list[Layer]:
    config = load_config(preset)
    n_vars, *grid = config.data.climate_shape
    widths = (n_vars, *config.model.cnn_channels)
    layers = []
    for block, (cin, cout) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(Layer(preset, block, batch or BATCH[preset], cin, cout, tuple(grid)))
        grid = [(n + 1) // 2 for n in grid]
    return layers


def shrunk(layer: Layer) -> Layer:
    """The same layer at a size the interpreter runs in seconds (for --tiny)."""
    return Layer(layer.preset, layer.block, 1, min(layer.cin, 5), min(layer.cout, 6),
                 tuple(min(n, 5) for n in layer.grid))


def flops(layer: Layer, backward: bool) -> float:
    m = layer.batch * layer.out_grid[0] * layer.out_grid[1] * layer.out_grid[2]
    gemm = 2.0 * m * layer.cout * 27 * layer.cin
    if not backward:
        return gemm
    return gemm * (3 if layer.needs_input_grad else 2)


def compulsory_bytes(layer: Layer, itemsize: int, backward: bool) -> float:
    x = layer.batch * layer.cin * layer.grid[0] * layer.grid[1] * layer.grid[2]
    y = layer.batch * layer.cout * layer.out_grid[0] * layer.out_grid[1] * layer.out_grid[2]
    w = 27 * layer.cin * layer.cout
    total = x + w + y
    if backward:
        total += y + x + 2 * w + (x if layer.needs_input_grad else 0)
    return total * itemsize


def make_inputs(layer: Layer, dtype, device, backward: bool):
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(layer.batch, layer.cin, *layer.grid, generator=gen)
    w = torch.randn(layer.cout, layer.cin, 3, 3, 3, generator=gen) / (27 * layer.cin) ** 0.5
    b = torch.randn(layer.cout, generator=gen)
    x = x.to(device, dtype).contiguous(memory_format=torch.channels_last_3d)
    w, b = w.to(device, dtype), b.to(device, dtype)
    x.requires_grad_(backward and layer.needs_input_grad)
    w.requires_grad_(backward)
    b.requires_grad_(backward)
    return x, w, b


def run_ours(x, w, b):
    from astrobio import ops

    with ops.use_backend("triton"):
        return ops.conv3d(x, w, b, stride=2, padding=1, activation="gelu")


def run_cudnn(x, w, b):
    return F.gelu(F.conv3d(x, w, b, 2, 1))


IMPLEMENTATIONS = {"ours": run_ours, "cudnn": run_cudnn}


def step(fn, inputs, backward: bool):
    """A zero-argument closure: the forward, and with `backward` also the gradients."""
    if not backward:
        return lambda: fn(*inputs)
    leaves = [t for t in inputs if t.requires_grad]
    dy = torch.randn_like(fn(*inputs))
    return lambda: torch.autograd.grad(fn(*inputs), leaves, dy)


def timed_ms(fn, device) -> float:
    if device == "cuda":
        import triton.testing

        return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
    fn()
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def relative_error(layer: Layer, dtype, device) -> float:
    """Our forward against float64 F.conv3d + GELU on the same inputs."""
    x, w, b = make_inputs(layer, dtype, device, backward=False)
    with torch.no_grad():
        ours = run_ours(x, w, b).double()
        expected = run_cudnn(x.double(), w.double(), b.double())
    return ((ours - expected).norm() / expected.norm()).item()


def ceiling(device_name: str):
    for fragment, values in CEILINGS.items():
        if fragment in device_name:
            return values
    return None


def table(layers: list[Layer], dtype, device) -> str:
    import triton

    gpu = torch.cuda.get_device_name() if device == "cuda" else CPU_LABEL
    versions = f"torch {torch.__version__} / triton {triton.__version__}"
    date = datetime.date.today().isoformat()
    limits = ceiling(gpu)
    itemsize = torch.finfo(dtype).bits // 8
    head = ("| date | GPU | versions | layer (preset/block N Cin->Cout DxHxW) | pass | ours ms "
            "| ours TFLOP/s | cuDNN ms | cuDNN TFLOP/s | cuDNN/ours | ours % peak "
            "| ours % roofline | rel err |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for layer in layers:
        rel = relative_error(layer, dtype, device)
        for backward in (False, True):
            ms = {name: timed_ms(step(fn, make_inputs(layer, dtype, device, backward), backward),
                                 device)
                  for name, fn in IMPLEMENTATIONS.items()}
            work = flops(layer, backward)
            tflops = {name: work / t / 1e9 for name, t in ms.items()}
            peak = roof = "-"
            if limits:
                peak_tflops, bandwidth = limits
                intensity = work / compulsory_bytes(layer, itemsize, backward)
                peak = f"{tflops['ours'] / peak_tflops:.1%}"
                roof = f"{tflops['ours'] / min(peak_tflops, intensity * bandwidth):.1%}"
            lines.append(
                f"| {date} | {gpu} | {versions} | {layer.name()} "
                f"| {'fwd+bwd' if backward else 'fwd'} | {ms['ours']:.3f} | {tflops['ours']:.2f} "
                f"| {ms['cudnn']:.3f} | {tflops['cudnn']:.2f} | {ms['cudnn'] / ms['ours']:.2f} "
                f"| {peak} | {roof} | {rel:.1e} |"
            )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true",
                        help="shrunken layers in fp32 on the CPU through the Triton interpreter")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    args = parser.parse_args(argv)
    layers = [layer for preset in args.presets for layer in datacube_layers(preset)]
    if args.tiny:
        if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
            raise SystemExit("--tiny needs TRITON_INTERPRET=1 before triton is imported")
        os.environ["TRITON_INTERPRET"] = "1"
        for layer in layers:
            print(f"{layer.name()}: {flops(layer, False) / 1e9:.2f} GFLOP forward, "
                  f"{flops(layer, True) / 1e9:.2f} GFLOP forward + backward")
        # Shrunken layers of different presets look alike: time one preset's.
        first = datacube_layers(args.presets[0])
        print(table([shrunk(layer) for layer in first], torch.float32, "cpu"))
        return
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device; use --tiny to check the script on the CPU")
    print(table(layers, torch.bfloat16, "cuda"))


if __name__ == "__main__":
    main()
