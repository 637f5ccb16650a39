"""One code path for numpy and torch: inputs are converted together and the math names the
array library through a small namespace.

Any torch tensor among the inputs makes every input a tensor of the promoted floating dtype on
that tensor's device (so autograd flows through); otherwise inputs become float64 numpy arrays
and a result from all-scalar inputs comes back as a numpy scalar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from astrobio.errors import DataError


@dataclass(frozen=True)
class ArrayLib:
    is_torch: bool
    sqrt: Any
    log10: Any
    expm1: Any
    arcsin: Any
    where: Any
    clip: Any
    abs: Any
    isfinite: Any
    broadcast: Any
    scalar_input: bool = False

    def finish(self, value):
        """The result in the caller's type: a numpy scalar when every input was a scalar."""
        if not self.is_torch and self.scalar_input:
            return value[()]
        return value


_NUMPY = dict(sqrt=np.sqrt, log10=np.log10, expm1=np.expm1, arcsin=np.arcsin, where=np.where,
              clip=np.clip, abs=np.abs, isfinite=np.isfinite, broadcast=np.broadcast_arrays)
_TORCH = dict(sqrt=torch.sqrt, log10=torch.log10, expm1=torch.expm1, arcsin=torch.asin,
              where=torch.where, clip=torch.clamp, abs=torch.abs, isfinite=torch.isfinite,
              broadcast=torch.broadcast_tensors)


def as_arrays(*values) -> tuple[ArrayLib, list]:
    """`values` as arrays of one library, broadcast-ready, plus that library's namespace."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if tensors:
        dtype = torch.get_default_dtype()
        floats = [t.dtype for t in tensors if t.is_floating_point()]
        if floats:
            dtype = floats[0]
            for other in floats[1:]:
                dtype = torch.promote_types(dtype, other)
        device = tensors[0].device
        converted = [torch.as_tensor(v, dtype=dtype, device=device) for v in values]
        return ArrayLib(is_torch=True, **_TORCH), converted
    converted = [np.asarray(v, dtype=np.float64) for v in values]
    scalar = all(c.ndim == 0 for c in converted)
    return ArrayLib(is_torch=False, scalar_input=scalar, **_NUMPY), converted


def _checking(value) -> bool:
    # Inside torch.compile the values are symbolic; validation is an eager-mode service.
    return not (isinstance(value, torch.Tensor) and torch.compiler.is_compiling())


def require(ok, values, field: str, condition: str) -> None:
    """Raise `DataError` for `field` unless `ok` holds everywhere, quoting offending values."""
    if not _checking(ok):
        return
    bad = ~ok
    if isinstance(bad, torch.Tensor):
        if not bool(bad.any()):
            return
        shown = torch.broadcast_to(values, bad.shape)[bad].detach().cpu().numpy()
    else:
        if not bad.any():
            return
        shown = np.broadcast_to(values, bad.shape)[bad]
    listing = ", ".join(f"{v:.6g}" for v in shown[:5]) + (" ..." if shown.size > 5 else "")
    raise DataError(f"{shown.size} value(s) not {condition}: {listing}", field=field)


def require_positive(x, field: str) -> None:
    lib_finite = torch.isfinite if isinstance(x, torch.Tensor) else np.isfinite
    require(lib_finite(x) & (x > 0), x, field, "finite and positive")
