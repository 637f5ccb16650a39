"""AstroBio: exoplanet habitability from five modalities trained as one model."""

__version__ = "0.1.0"
__all__ = ["load_run"]


def __getattr__(name: str):
    # `import astrobio` stays light (setup.py, the CLIs' --help); torch loads with the API.
    if name == "load_run":
        from astrobio.run import load_run

        return load_run
    raise AttributeError(f"module 'astrobio' has no attribute {name!r}")
