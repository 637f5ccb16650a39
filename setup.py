"""Build script: the Python package, `kernels/` installed as `astrobio.kernels`, and the
C++/CUDA extension modules declared in `_extensions()`. The build never imports torch."""

from setuptools import find_packages, setup


def _extensions():
    return []


setup(
    packages=find_packages(include=["astrobio", "astrobio.*"]) + ["astrobio.kernels"],
    package_dir={"astrobio.kernels": "kernels"},
    ext_modules=_extensions(),
)
