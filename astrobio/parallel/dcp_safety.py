"""Safe loading of `torch.distributed.checkpoint` directories, which torch does not give:
its `FileSystemReader` unpickles `.metadata` with `pickle.load`, and its `DefaultLoadPlanner`
reads non-tensor items by unpickling them in full (weights_only off), so a crafted checkpoint
runs code.

`check_metadata` unpickles `.metadata` with only DCP's metadata classes allowed, before torch
reads it; `SafeLoadPlanner` loads each non-tensor item with `weights_only=True` first (the
planner's own reading runs only once that passed). Either refusal is a `RunError`.
"""

from __future__ import annotations

import io
import pathlib
import pickle
from pathlib import Path

import torch
from torch.distributed.checkpoint import DefaultLoadPlanner

from astrobio.errors import RunError

# Modules whose classes (defined there) a DCP `.metadata` file is made of.
_CLASS_MODULES = ("torch.distributed.checkpoint.metadata",
                  "torch.distributed.checkpoint.filesystem")
_NAMES = {("torch", "Size"), ("torch.serialization", "_get_layout"),
          ("collections", "OrderedDict"), ("pathlib", "PosixPath"),
          ("pathlib", "WindowsPath"), ("pathlib", "PurePosixPath"),
          ("pathlib", "PureWindowsPath")}


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module in _CLASS_MODULES:
            found = getattr(__import__(module, fromlist=[name]), name, None)
            if isinstance(found, type) and found.__module__ == module:
                return found
        elif module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        elif (module, name) in _NAMES:
            return getattr(pathlib, name) if module == "pathlib" else \
                super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of DCP metadata")


def check_metadata(path: str | Path) -> None:
    """Refuse a DCP directory whose `.metadata` holds anything but DCP's metadata."""
    file = Path(path) / ".metadata"
    try:
        with open(file, "rb") as handle:
            _MetadataUnpickler(handle).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as err:
        raise RunError(f"{file}: refused: not plain checkpoint metadata, and loading it "
                       f"could run code ({err})") from None


class SafeLoadPlanner(DefaultLoadPlanner):
    """`DefaultLoadPlanner` whose non-tensor items must load with `weights_only=True`."""

    def load_bytes(self, read_item, value: io.BytesIO) -> None:
        try:
            torch.load(value, weights_only=True)
        except pickle.UnpicklingError as err:
            raise RunError(f"checkpoint item {read_item.dest_index.fqn!r}: refused: it holds "
                           "Python objects beyond tensors and plain values, which loading "
                           "would run as code") from err
        value.seek(0)
        super().load_bytes(read_item, value)
