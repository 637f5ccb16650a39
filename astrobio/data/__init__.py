"""Datasets: samples, the on-disk format, its writer and reader, readers of real formats.

    from astrobio.data import PlanetSample, write_dataset, AstroBioDataset
"""

__all__ = ["AstroBioDataset", "PlanetSample", "write_dataset"]

_WHERE = {"AstroBioDataset": "astrobio.data.reader", "PlanetSample": "astrobio.data.sample",
          "write_dataset": "astrobio.data.writer"}


def __getattr__(name: str):
    # Lazy, so importing one module of the package does not load them all (torch, tokenizers).
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'astrobio.data' has no attribute {name!r}")
