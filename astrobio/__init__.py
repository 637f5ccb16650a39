"""AstroBio: exoplanet habitability from five modalities trained as one model."""

__version__ = "0.1.0"
