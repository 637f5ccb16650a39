"""Errors for a user's mistakes: each names where the bad value came from."""

from __future__ import annotations


class AstroBioError(Exception):
    """Base class of every error raised for bad user input."""


class ConfigError(AstroBioError, ValueError):
    """A config file, preset or CLI override is wrong (unknown key, bad type)."""


class DataError(AstroBioError, ValueError):
    """A data file or sample is wrong; the message names the file, the sample and the field."""

    def __init__(self, message: str, *, file: str | None = None, sample: str | None = None,
                 field: str | None = None):
        self.message, self.file, self.sample, self.field = message, file, sample, field
        where = ", ".join(
            f"{name} {value!r}"
            for name, value in (("file", file), ("sample", sample), ("field", field))
            if value is not None
        )
        super().__init__(f"{where}: {message}" if where else message)
