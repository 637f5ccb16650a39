"""Fused ops behind one functional API; `use_backend` picks reference, Triton or CUDA."""

from astrobio.ops._backend import BACKENDS, requested_backend, use_backend
from astrobio.ops.conv3d import conv3d
from astrobio.ops.cross_attention import cross_attention
from astrobio.ops.sddmm import sddmm
from astrobio.ops.spmm import spmm

__all__ = [
    "BACKENDS", "conv3d", "cross_attention", "requested_backend", "sddmm", "spmm", "use_backend",
]
