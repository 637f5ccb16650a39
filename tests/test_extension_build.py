"""The C++/CUDA extension was built by `pip install -e .`: `astrobio._C` always, and
`astrobio._cuda` whenever nvcc was there, importable on a machine without a GPU."""

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
