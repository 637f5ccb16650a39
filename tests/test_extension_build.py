"""The C++/CUDA extension was built by `pip install -e .`: `astrobio._C` always, and
`astrobio._cuda` whenever nvcc was there, importable on a machine without a GPU."""

import contextlib
import importlib
import os
import shutil
import subprocess
import sys

import pytest


def nvcc_present() -> bool:
    """setup.py's rule: nvcc under CUDA_HOME / CUDA_PATH or on PATH, unless switched off."""
    if os.environ.get("ASTROBIO_BUILD_CUDA") == "0":
        return False
    homes = [os.environ.get(v) for v in ("CUDA_HOME", "CUDA_PATH")]
    in_home = any(h and os.path.isfile(os.path.join(h, "bin", "nvcc")) for h in homes)
    return in_home or shutil.which("nvcc") is not None


def test_cpu_extension_is_built():
    _C = importlib.import_module("astrobio._C")
    assert _C.num_threads() >= 1


@pytest.mark.skipif(not nvcc_present(), reason="no nvcc: astrobio._cuda is not built")
def test_cuda_extension_is_built_and_imports_without_a_gpu():
    # A fresh interpreter that sees no GPU (and never imports torch): the import and the
    # runtime queries must work, with no CUDA call at import time.
    code = (
        "import sys, astrobio._cuda as m; "
        "assert 'torch' not in sys.modules; "
        "print(m.runtime_version(), m.device_count())"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    runtime, devices = map(int, result.stdout.split())
    assert runtime >= 11000 and devices == 0


@pytest.mark.skipif(not nvcc_present() or shutil.which("ldd") is None,
                    reason="no nvcc or no ldd")
def test_cuda_extension_links_neither_torch_nor_the_shared_cuda_runtime():
    path = importlib.import_module("astrobio._cuda").__file__
    linked = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
    assert "libtorch" not in linked and "libcudart" not in linked and "libc10" not in linked


def _setup_function(name: str):
    """One function of setup.py (importing it would run setup())."""
    import ast
    from pathlib import Path

    source = (Path(__file__).parents[1] / "setup.py").read_text()
    tree = ast.parse(source)
    names = {}
    for node in tree.body:  # the module constants the function reads
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            with contextlib.suppress(ValueError):
                names[node.targets[0].id] = ast.literal_eval(node.value)
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    exec(compile(ast.Module([function], []), "setup.py", "exec"), names)
    return names[name]


def test_cuda_archs_follow_torch_cuda_arch_list():
    flags = _setup_function("cuda_gencode_flags")
    assert flags(None) == flags("") == [
        "-gencode=arch=compute_80,code=sm_80", "-gencode=arch=compute_86,code=sm_86",
        "-gencode=arch=compute_90,code=[sm_90,compute_90]"]
    assert flags("8.6;9.0+PTX") == ["-gencode=arch=compute_86,code=sm_86",
                                    "-gencode=arch=compute_90,code=[sm_90,compute_90]"]
    assert flags("8.0 9.0a") == ["-gencode=arch=compute_80,code=sm_80",
                                 "-gencode=arch=compute_90a,code=sm_90a"]
    with pytest.raises(RuntimeError, match="TORCH_CUDA_ARCH_LIST"):
        flags("sm_86")
