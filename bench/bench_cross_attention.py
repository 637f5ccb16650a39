"""Cross-modal attention: our Triton kernels against SDPA (every backend) and flash-attn.

Shapes: first the model's own (`model_shapes`: the fusion layer of the tiny, small and 13b
presets, read from their configs: Lq = 8 learned queries, Lk = every encoder's tokens plus a
summary token per modality at the longest text, D = d_model / fusion_heads = 16, 32, 64, the
preset's batch; and its self-attention over the 8 queries, no mask), then larger generic ones
(Lq 16-256, Lk 64-2048, D 64 and 128, B·H up to 512). bf16; a key-padding mask made of whole
missing modalities (5 equal segments, each absent with probability 0.3, at least one present
per sample so every peer's output is defined).

FLOPs count the dense product, masked keys included: forward 4·B·H·Lq·Lk·D, backward 2.5×
that (five matmuls instead of two), so forward + backward is 14·B·H·Lq·Lk·D. The roofline is
min(peak, intensity × bandwidth) with the compulsory traffic (q, k, v, out read or written
once forward; q, k, v, out, dout read and dq, dk, dv written backward).

    python bench/bench_cross_attention.py                       # markdown table for RESULTS.md
    python bench/bench_cross_attention.py --tiny                # tiny shapes on the CPU
    pytest bench/test_kernels_gate.py --benchmark-only          # the regression gate (CUDA)
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

try:
    from flash_attn import flash_attn_varlen_func
except ImportError:
    flash_attn_varlen_func = None

PRESETS = ("tiny", "small", "13b")


CPU_LABEL = "CPU (--tiny, interpreter: not a measurement)"


def model_shapes(preset: str) -> list[tuple[int, int, int, int, int]]:
    """(B, H, Lq, Lk, D) of the fusion's cross-attention and of its self-attention over the
    queries, for `preset`, from the modules the model builds."""
    from astrobio.config import load_config
    from astrobio.models.datacube_cnn import DatacubeCNN
    from astrobio.models.fusion import ModalityFusion
    from astrobio.models.graph_vae import GraphVAE
    from astrobio.models.param_encoder import ParamEncoder
    from astrobio.models.spectral_encoder import SpectralEncoder

    config = load_config(preset)
    model, data = config.model, config.data
    tokens = (
        DatacubeCNN(data.climate_shape, model.cnn_channels, model.d_model).n_tokens
        + GraphVAE(model.gnn_hidden, model.gnn_layers, model.gnn_latent, model.d_model,
                   n_heads=model.fusion_heads).queries.shape[0]
        + SpectralEncoder(data.spectrum_bins, model.spectral_channels, model.d_model).n_tokens
        + ParamEncoder(model.param_hidden, model.d_model).n_tokens
        + data.max_text_tokens
    )
    fusion = ModalityFusion(model.d_model, model.fusion_layers, model.fusion_heads)
    lq = fusion.queries.shape[0]
    b, h, d = config.train.batch_size, model.fusion_heads, model.d_model // model.fusion_heads
    return [(b, h, lq, len(fusion.modalities) + tokens, d), (b, h, lq, lq, d)]


# (B, H, Lq, Lk, D)
GENERIC_SHAPES = [
    (32, 8, 16, 320, 64),
    (64, 8, 64, 640, 64),
    (32, 16, 256, 2048, 64),
    (64, 8, 32, 1280, 128),
    (16, 16, 128, 64, 128),
    (32, 16, 256, 2048, 128),
]
TINY_SHAPES = [(1, 2, 3, 20, 16), (2, 1, 17, 65, 32), (2, 2, 8, 135, 16)]
SDPA_BACKENDS = {
    "sdpa-flash": SDPBackend.FLASH_ATTENTION,
    "sdpa-efficient": SDPBackend.EFFICIENT_ATTENTION,
    "sdpa-cudnn": SDPBackend.CUDNN_ATTENTION,
    "sdpa-math": SDPBackend.MATH,
}
# GPU name fragment -> (dense bf16 TFLOP/s, copy TB/s): H200 measured, A5000 datasheet.
CEILINGS = {"H200": (790.0, 4.3), "A5000": (111.0, 0.768)}
MODALITIES = 5


def all_shapes():
    return [s for preset in PRESETS for s in model_shapes(preset)] + GENERIC_SHAPES


def make_inputs(shape, dtype, device, requires_grad=False):
    b, h, lq, lk, d = shape
    gen = torch.Generator(device="cpu").manual_seed(0)
    q, k, v = (torch.randn(b, h, n, d, generator=gen).to(device, dtype) for n in (lq, lk, lk))
    for t in (q, k, v):
        t.requires_grad_(requires_grad)
    absent = torch.rand(b, MODALITIES, generator=gen) < 0.3
    absent[absent.all(-1), 0] = False
    segment = torch.arange(lk) * MODALITIES // lk
    mask = (~absent)[:, segment].to(device)
    return q, k, v, mask


def flops(shape, backward):
    b, h, lq, lk, d = shape
    return (14 if backward else 4) * b * h * lq * lk * d


def compulsory_bytes(shape, itemsize, backward):
    b, h, lq, lk, d = shape
    forward = 2 * lq + 2 * lk
    return b * h * d * itemsize * (forward + (4 * lq + 4 * lk if backward else 0))


def run_ours(q, k, v, mask):
    from astrobio import ops

    with ops.use_backend("triton"):
        return ops.cross_attention(q, k, v, mask)


def sdpa_runner(backend):
    def run(q, k, v, mask):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])

    return run


def flash_attn_runner(q, k, v, mask):
    """flash-attn varlen on keys compacted per sample (the packing is done once, untimed)."""
    b, h, lq, d = q.shape
    lengths = mask.sum(-1, dtype=torch.int32)
    cu_k = torch.nn.functional.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    cu_q = torch.arange(0, (b + 1) * lq, lq, dtype=torch.int32, device=q.device)
    packed_q = q.detach().transpose(1, 2).reshape(b * lq, h, d).requires_grad_(q.requires_grad)
    packed_k, packed_v = (
        t.detach().transpose(1, 2)[mask].contiguous().requires_grad_(t.requires_grad)
        for t in (k, v)
    )
    max_k = int(lengths.max())

    def run(*_):
        return flash_attn_varlen_func(packed_q, packed_k, packed_v, cu_q, cu_k, lq, max_k)

    return run, (packed_q, packed_k, packed_v)


def peers(q, k, v, mask):
    """name -> (callable, its own leaf tensors); flash-attn only when importable."""
    found = {name: (sdpa_runner(backend), (q, k, v)) for name, backend in SDPA_BACKENDS.items()}
    if flash_attn_varlen_func is not None and q.is_cuda:
        found["flash-attn-varlen"] = flash_attn_runner(q, k, v, mask)
    return found


def step(fn, leaves, mask, backward):
    """A zero-argument closure: forward, and with `backward` also dq, dk, dv."""
    q, k, v = leaves
    if not backward:
        return lambda: fn(q, k, v, mask)
    out = fn(q, k, v, mask)
    dout = torch.randn_like(out)
    return lambda: torch.autograd.grad(fn(q, k, v, mask), leaves, dout)


def timed_ms(fn, device):
    if device == "cuda":
        import triton.testing

        return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
    fn()
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def measure(shape, dtype, device, backward):
    """{name: milliseconds or 'rejected: ...'} and our relative error against sdpa-math."""
    q, k, v, mask = make_inputs(shape, dtype, device, requires_grad=backward)
    results = {"ours": timed_ms(step(run_ours, (q, k, v), mask, backward), device)}
    for name, (fn, leaves) in peers(q, k, v, mask).items():
        try:
            results[name] = timed_ms(step(fn, leaves, mask, backward), device)
        except RuntimeError as error:
            results[name] = "rejected: " + str(error).strip().splitlines()[0][:60]
    with torch.no_grad():
        ours = run_ours(q, k, v, mask).double()
        expected = sdpa_runner(SDPBackend.MATH)(q.double(), k.double(), v.double(), mask)
    rel = ((ours - expected).norm() / expected.norm()).item()
    return results, rel


def ceiling(device_name):
    for fragment, values in CEILINGS.items():
        if fragment in device_name:
            return values
    return None


def table(shapes, dtype, device):
    name = torch.cuda.get_device_name() if device == "cuda" else CPU_LABEL
    import triton

    versions = f"torch {torch.__version__} / triton {triton.__version__}"
    date = datetime.date.today().isoformat()
    limits = ceiling(name)
    head = ("| date | GPU | versions | shape B,H,Lq,Lk,D | pass | ours ms | ours TFLOP/s "
            "| best peer | peer ms | peer/ours | roofline | ours vs math rel err |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    details = []
    for shape in shapes:
        for backward in (False, True):
            results, rel = measure(shape, dtype, device, backward)
            ours = results["ours"]
            timed = {k: v for k, v in results.items() if k != "ours" and isinstance(v, float)}
            best = min(timed, key=timed.get) if timed else "none"
            peer_ms = f"{timed[best]:.3f}" if timed else "-"
            ratio = f"{timed[best] / ours:.2f}" if timed else "-"
            tflops = flops(shape, backward) / ours / 1e9
            roof = "-"
            if limits:
                peak, bandwidth = limits
                intensity = flops(shape, backward) / compulsory_bytes(
                    shape, torch.finfo(dtype).bits // 8, backward)
                roof = f"{tflops / min(peak, intensity * bandwidth):.1%}"
            kind = "fwd+bwd" if backward else "fwd"
            lines.append(
                f"| {date} | {name} | {versions} | {','.join(map(str, shape))} | {kind} "
                f"| {ours:.3f} | {tflops:.1f} | {best} | {peer_ms} | {ratio} | {roof} "
                f"| {rel:.1e} |"
            )
            details.append(f"- {','.join(map(str, shape))} {kind}: " + ", ".join(
                f"{k} {v:.3f} ms" if isinstance(v, float) else f"{k} {v}"
                for k, v in results.items()))
    return "\n".join(lines + ["", "All backends (ms):", *details])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true",
                        help="tiny shapes on the CPU through the Triton interpreter")
    args = parser.parse_args(argv)
    if args.tiny:
        if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
            raise SystemExit("--tiny needs TRITON_INTERPRET=1 before triton is imported")
        os.environ["TRITON_INTERPRET"] = "1"
        print(table(TINY_SHAPES, torch.float16, "cpu"))
        return
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device; use --tiny to check the script on the CPU")
    print(table(all_shapes(), torch.bfloat16, "cuda"))


if __name__ == "__main__":
    main()
