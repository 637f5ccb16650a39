"""Build script: the Python package, `kernels/` installed as `astrobio.kernels`, and the
C++/CUDA extension modules declared in `_extensions()`. The build never imports torch.

- `astrobio._C` (C++17, OpenMP) is always built.
- `astrobio._cuda` (nvcc, static CUDA runtime, no torch) is built when nvcc is found through
  CUDA_HOME/CUDA_PATH or PATH. ASTROBIO_BUILD_CUDA=0 skips it; =1 makes a missing nvcc an error.
  Its GPU architectures: TORCH_CUDA_ARCH_LIST when set (torch's syntax, e.g. "8.6;9.0+PTX" or
  "8.0 8.6 9.0"; "+PTX" also embeds that arch's PTX), else DEFAULT_CUDA_ARCHS with PTX of
  the newest.
"""

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import find_packages, setup

DEFAULT_CUDA_ARCHS = ("80", "86", "90")  # A100, RTX A5000 / 30xx, H100 / H200
NVCC_FLAGS = ["-O3", "-std=c++17", "-Xcompiler", "-fPIC", "--threads", "0"]
OPENMP = ["-fopenmp"] if sys.platform.startswith("linux") else []


def _nvcc() -> str | None:
    for var in ("CUDA_HOME", "CUDA_PATH"):
        home = os.environ.get(var)
        if home and os.path.isfile(os.path.join(home, "bin", "nvcc")):
            return os.path.join(home, "bin", "nvcc")
    return shutil.which("nvcc")


NVCC = _nvcc()


def cuda_gencode_flags(arch_list: str | None) -> list[str]:
    """nvcc -gencode flags for TORCH_CUDA_ARCH_LIST (None or empty: the defaults, PTX of the
    newest). Entries are separated by ';' or spaces: "8.6", "9.0a", "8.6+PTX"."""
    if not arch_list or not arch_list.strip():
        *older, newest = DEFAULT_CUDA_ARCHS
        return ([f"-gencode=arch=compute_{a},code=sm_{a}" for a in older]
                + [f"-gencode=arch=compute_{newest},code=[sm_{newest},compute_{newest}]"])
    flags = []
    for entry in arch_list.replace(";", " ").split():
        arch, ptx = entry.removesuffix("+PTX"), entry.endswith("+PTX")
        major, dot, minor = arch.partition(".")
        if not dot or not major.isdigit() or not minor[:1].isdigit():
            raise RuntimeError(f"TORCH_CUDA_ARCH_LIST: cannot read {entry!r} (expected e.g. "
                               f"'8.6', '9.0a' or '8.6+PTX')")
        code = major + minor
        targets = f"[sm_{code},compute_{code}]" if ptx else f"sm_{code}"
        flags.append(f"-gencode=arch=compute_{code},code={targets}")
    return flags


def _cuda_home(nvcc: str) -> str:
    """The toolkit root holding libcudart_static (nvcc may be a wrapper script elsewhere)."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"),
                  os.path.dirname(os.path.dirname(os.path.realpath(nvcc))), "/usr/local/cuda"]
    for home in filter(None, candidates):
        if os.path.isfile(os.path.join(home, "include", "cuda_runtime.h")):
            return home
    raise RuntimeError(f"found {nvcc} but no CUDA toolkit (include/cuda_runtime.h); set CUDA_HOME")


def _build_cuda(nvcc: str | None) -> bool:
    flag = os.environ.get("ASTROBIO_BUILD_CUDA", "")
    if flag not in ("", "0", "1"):
        raise RuntimeError(f"ASTROBIO_BUILD_CUDA must be 0 or 1, got {flag!r}")
    if flag == "1" and nvcc is None:
        raise RuntimeError("ASTROBIO_BUILD_CUDA=1 but nvcc was not found: set CUDA_HOME or put "
                           "nvcc on PATH")
    if flag == "0":
        print("astrobio: ASTROBIO_BUILD_CUDA=0, not building astrobio._cuda")
        return False
    if nvcc is None:
        print("astrobio: nvcc not found (CUDA_HOME, CUDA_PATH, PATH): not building astrobio._cuda;"
              " the CUDA graph ops will be unavailable")
        return False
    return True


class BuildExtWithNvcc(build_ext):
    """Compiles an extension's .cu sources with nvcc (in parallel) and links the objects in."""

    def build_extension(self, ext):
        cu_sources = [s for s in ext.sources if s.endswith(".cu")]
        if cu_sources:
            ext.sources = [s for s in ext.sources if not s.endswith(".cu")]
            ext.extra_objects += self._nvcc_compile(cu_sources, ext.include_dirs)
        super().build_extension(ext)

    def _nvcc_compile(self, sources, include_dirs):
        gencode = cuda_gencode_flags(os.environ.get("TORCH_CUDA_ARCH_LIST"))
        includes = [f"-I{d}" for d in include_dirs]
        objects = [os.path.join(self.build_temp, src + ".o") for src in sources]

        def compile_one(src_obj):
            src, obj = src_obj
            os.makedirs(os.path.dirname(obj), exist_ok=True)
            cmd = [NVCC, *NVCC_FLAGS, *gencode, *includes, "-c", src, "-o", obj]
            print(" ".join(cmd))
            subprocess.run(cmd, check=True)

        with ThreadPoolExecutor(max_workers=len(sources)) as pool:
            list(pool.map(compile_one, zip(sources, objects)))
        return objects


def _extensions():
    extensions = [
        Pybind11Extension("astrobio._C", ["csrc/graph_cpu.cpp"], cxx_std=17,
                          extra_compile_args=["-O3", *OPENMP], extra_link_args=OPENMP),
    ]
    if _build_cuda(NVCC):
        home = _cuda_home(NVCC)
        extensions.append(Pybind11Extension(
            "astrobio._cuda",
            ["csrc/cuda/module.cpp", "csrc/cuda/runtime.cpp", "csrc/cuda/csr.cu",
             "csrc/cuda/spmm.cu"],
            cxx_std=17,
            include_dirs=["csrc/cuda", os.path.join(home, "include")],
            library_dirs=[os.path.join(home, "lib64"), os.path.join(home, "lib")],
            libraries=["cudart_static", "rt", "pthread", "dl"],
        ))
    return extensions


setup(
    packages=find_packages(include=["astrobio", "astrobio.*"]) + ["astrobio.kernels"],
    package_dir={"astrobio.kernels": "kernels"},
    ext_modules=_extensions(),
    cmdclass={"build_ext": BuildExtWithNvcc},
)
