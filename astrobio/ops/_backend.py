"""Which implementation of a fused op runs: `reference` (plain PyTorch), `triton` or `cuda`.

The choice comes from the innermost `use_backend(...)` block, else the environment variable
`ASTROBIO_BACKEND`, else `auto`: Triton for CUDA tensors, the reference on the CPU.
Triton kernels run on CPU tensors only through the interpreter (`TRITON_INTERPRET=1` set
before triton is imported), which the tests use.
"""

from __future__ import annotations

import contextlib
import contextvars
import os

import torch

from astrobio.config import BACKENDS
from astrobio.errors import ConfigError

_override: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "astrobio_backend", default=None
)


def _check(name: str) -> str:
    if name not in BACKENDS:
        raise ConfigError(f"unknown kernel backend {name!r}; choose one of {BACKENDS}")
    return name


# Dynamo cannot read a ContextVar; a compiled graph keeps the backend it was traced with.
@torch.compiler.assume_constant_result
def requested_backend() -> str:
    """The backend asked for by `use_backend` or `ASTROBIO_BACKEND` (default `auto`)."""
    name = _override.get()
    if name is None:
        name = os.environ.get("ASTROBIO_BACKEND", "auto")
    return _check(name)


@contextlib.contextmanager
def use_backend(name: str):
    """Run the ops called inside this block with backend `name`."""
    token = _override.set(_check(name))
    try:
        yield
    finally:
        _override.reset(token)


def triton_interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def select_backend(op: str, tensor: torch.Tensor, available: tuple[str, ...]) -> str:
    """Resolve the requested backend for `op` on `tensor`'s device.

    `available` lists the backends this op implements; asking for any other is an error, as is
    asking for Triton on CPU tensors without the interpreter.
    """
    name = requested_backend()
    if name == "auto":
        return "triton" if tensor.is_cuda and "triton" in available else "reference"
    if name not in available:
        raise ValueError(f"{op} has no {name!r} backend; available: {available}")
    if name == "triton" and not tensor.is_cuda and not triton_interpreter_enabled():
        raise ValueError(
            f"{op}: the triton backend needs CUDA tensors, or TRITON_INTERPRET=1 set before "
            "triton is imported to run on the CPU"
        )
    if name == "cuda" and not tensor.is_cuda:
        raise ValueError(f"{op}: the cuda backend needs CUDA tensors, got {tensor.device}")
    return name
