"""The conv3d and cross-attention kernels compile for the GPUs without one: Triton's own
compiler targets sm_86 (RTX A5000, ~99 KB of shared memory per block) and sm_90 (H100/H200)
at the model's shapes (bf16; attention head dim 64, the largest the presets use). Compiled
shared memory must fit sm_86 and stay within the estimate the autotuner prunes by, so pruning
never keeps a config that cannot launch. The interpreter never runs the compiler, so
compiled-path errors show only here; the compile runs in a fresh process (the interpreter
patches triton.language in this one).

The test compiles, per kernel variant, its smallest config for both GPUs and its largest
(by the estimate) for sm_86: about a minute. `python tests/kernels/test_gpu_compile.py --all`
compiles every autotune config and prints one line each (a few minutes); with another Triton
first on sys.path it checks that version (how triton 3.6 was checked).
"""

import json
import os
import subprocess
import sys

import pytest
import triton

SM86_SHARED = 99 * 1024  # bytes per block an sm_86 kernel may use (101376)


def compile_variant(kernel, pointers, constexprs, arch, num_warps=4, num_stages=3):
    """Compile the JIT function `kernel` for `arch`; pointers: name -> element type (e.g.
    'bf16'), other non-constexpr arguments are i32 (fp32 where named *scale)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    def arg_type(name):
        if name in constexprs:
            return "constexpr"
        if name in pointers:
            return "*" + pointers[name]
        return "fp32" if name.endswith("scale") else "i32"

    signature = {name: arg_type(name) for name in kernel.arg_names}
    constants = {(kernel.arg_names.index(name),): value for name, value in constexprs.items()}
    compiled = triton.compile(ASTSource(kernel, signature, constexprs=constants),
                              target=GPUTarget("cuda", arch, 32),
                              options={"num_warps": num_warps, "num_stages": num_stages})
    return compiled.metadata.shared


def conv3d_variants():
    from astrobio.kernels import conv3d

    common = dict(KD=3, KH=3, KW=3, SD=2, SH=2, SW=2, PRECISION="ieee")
    fwd_ptrs = dict(x_ptr="bf16", w_ptr="bf16", b_ptr="bf16", y_ptr="bf16", z_ptr="bf16",
                    partial_ptr="fp32")
    for config in conv3d._conv3d_fwd_kernel.configs:
        for packed, split in ((False, False), (True, True)):
            yield ("conv3d fwd", conv3d._conv3d_fwd_kernel.fn, fwd_ptrs,
                   dict(common, POINTWISE=False, PACKED=packed, SPLIT_K=split, HAS_BIAS=True,
                        ACTIVATION="gelu", SAVE_Z=True, **config.kwargs), config,
                   ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
    for config in conv3d._conv3d_bwd_input_kernel.configs:
        yield ("conv3d dx", conv3d._conv3d_bwd_input_kernel.fn,
               dict(dz_ptr="bf16", w_ptr="bf16", dx_ptr="fp32"), dict(common, **config.kwargs),
               config, ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
    for config in conv3d._conv3d_bwd_weight_kernel.configs:
        for packed in (False, True):
            yield ("conv3d dw", conv3d._conv3d_bwd_weight_kernel.fn,
                   dict(x_ptr="bf16", dz_ptr="bf16", partial_ptr="fp32"),
                   dict(common, PACKED=packed, **config.kwargs), config,
                   ("BLOCK_CI", "BLOCK_CO", "BLOCK_P"))


def attention_variants(head_dim=64):
    from astrobio.kernels import cross_attention as ca

    tensors = ("Q", "K", "V", "Out", "DOut", "DK", "DV", "DQ")
    pointers = dict.fromkeys(tensors, "bf16") | dict(
        KPM="u8", Lse="fp32", Acc="fp32", Max="fp32", Sum="fp32", Delta="fp32",
        DQPartial="fp32")
    common = dict(HEAD_DIM=head_dim, BLOCK_D=head_dim, HAS_MASK=True, DOT_PRECISION="tf32")
    for name, tuned, extra in (
        ("attention fwd", ca._fwd_tuned, dict(SPLIT_K=False)),
        ("attention fwd few-query", ca._fwd_small_tuned, dict(SPLIT_K=True)),
        ("attention dkdv", ca._dkdv_tuned, dict(WRITE_DQ=False)),
        ("attention dkdv few-query", ca._dkdv_small_tuned, dict(WRITE_DQ=True)),
        ("attention dq", ca._dq_tuned, {}),
    ):
        for config in tuned.configs:
            yield (name, tuned.fn, pointers, dict(common, **extra, **config.kwargs), config,
                   ("BLOCK_M", "BLOCK_N"))


def estimate(name, constexprs, config):
    """The shared memory the autotuner's pruning assumes for this config."""
    if name.startswith("attention"):
        from astrobio.kernels.cross_attention import shared_bytes

        return shared_bytes(constexprs["BLOCK_M"], constexprs["BLOCK_N"],
                            constexprs["BLOCK_D"], config.num_stages, 2,
                            backward=" d" in name)
    rows, cols, red = (("BLOCK_CI", "BLOCK_CO", "BLOCK_P") if name == "conv3d dw"
                       else ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
    return config.num_stages * 2 * constexprs[red] * (constexprs[rows] + constexprs[cols])


def selected(variants, every_config: bool):
    """(variant, archs): every config for sm_86 (the first also for sm_90), or per kernel
    variant its first config for both GPUs and its largest-estimate one for sm_86."""
    groups = {}
    for variant in variants:
        name, _, _, constexprs, config, _ = variant
        key = (name, tuple(sorted((k, v) for k, v in constexprs.items() if "BLOCK" not in k)))
        groups.setdefault(key, []).append(variant)
    for group in groups.values():
        yield group[0], (86, 90)
        rest = group[1:] if every_config else [max(
            group[1:], key=lambda v: estimate(v[0], v[3], v[4]))] if group[1:] else []
        for variant in rest:
            yield variant, (86,)


def main(every_config: bool):
    from astrobio.kernels import conv3d
    from astrobio.kernels import cross_attention as ca

    for variant, archs in selected([*conv3d_variants(), *attention_variants()], every_config):
        name, kernel, pointers, constexprs, config, blocks = variant
        for arch in archs:
            shared = compile_variant(kernel, pointers, constexprs, arch, config.num_warps,
                                     config.num_stages)
            print(json.dumps(dict(kernel=name, arch=arch, shared=shared,
                                  estimate=estimate(name, constexprs, config),
                                  config=[constexprs[b] for b in blocks]
                                  + [config.num_warps, config.num_stages])), flush=True)
    # the helper kernels, once each
    compile_variant(conv3d._split_k_epilogue_kernel, dict(
        partial_ptr="fp32", b_ptr="bf16", y_ptr="bf16", z_ptr="bf16"), dict(
        HAS_BIAS=True, ACTIVATION="gelu", SAVE_Z=True, BLOCK_M=64, BLOCK_N=64), 86)
    compile_variant(ca._fwd_combine_kernel, dict(Acc="fp32", Max="fp32", Sum="fp32",
                                                 Out="bf16", Lse="fp32"),
                    dict(HEAD_DIM=64, BLOCK_D=64, BLOCK_M=16), 86)
    print(json.dumps(dict(triton=triton.__version__)))


def test_every_config_compiles_and_fits_sm86():
    if "nvidia" not in triton.backends.backends:
        pytest.skip("this triton has no NVIDIA backend")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True,
                            timeout=1200)
    assert result.returncode == 0, result.stderr[-4000:]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    compiled = [r for r in records if "kernel" in r]
    assert len(compiled) >= 30
    for r in compiled:
        assert r["shared"] <= SM86_SHARED, r
        assert r["shared"] <= r["estimate"], r  # pruning by the estimate is safe


if __name__ == "__main__":
    main(every_config="--all" in sys.argv)
