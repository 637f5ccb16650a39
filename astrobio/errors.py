"""Errors for a user's mistakes, each naming where the bad value came from, and `cli`, the one
wrapper every `python -m astrobio.<name>` runs its `main` in."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass


class AstroBioError(Exception):
    """Base class of every error raised for bad user input."""


class ConfigError(AstroBioError, ValueError):
    """A config file, preset or CLI override is wrong (unknown key, bad type or value)."""


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


@dataclass(frozen=True)
class Problem:
    """A defect reported while the work goes on (`validate`, `data build`): where and what;
    `file` may end in `:line`."""

    file: str
    message: str
    sample: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = [self.file]
        if self.sample is not None:
            where.append(f"planet {self.sample}")
        if self.field is not None:
            where.append(f"field {self.field}")
        return f"{', '.join(where)}: {self.message}"


class RunError(AstroBioError):
    """A run directory is missing, incomplete, or cannot continue as asked."""


def cli(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Wrap a CLI's `main(argv) -> exit status`: a user's mistake (`AstroBioError`) prints one
    line `error: ...` and returns 2; Ctrl-C prints `interrupted` and returns 130; a bug keeps
    its traceback."""

    @functools.wraps(main)
    def run(argv: list[str] | None = None) -> int:
        try:
            return main(argv)
        except AstroBioError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return run
