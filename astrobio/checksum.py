"""sha256 checksums kept beside files as `<name>.sha256`, in `sha256sum`'s format, so that
`sha256sum -c checkpoint.pt.sha256` checks one by hand too (and writes one for a file made
elsewhere: `sha256sum checkpoint.pt > checkpoint.pt.sha256`)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

SUFFIX = ".sha256"
_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def checksum_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def checksum_line(digest: str, name: str) -> str:
    return f"{digest}  {name}\n"


def read_checksum(path: str | Path) -> str | None:
    """The digest a checksum file states, or None when it is missing or unreadable."""
    try:
        match = _LINE.match(Path(path).read_text().strip())
    except (OSError, UnicodeDecodeError):
        return None
    return match.group(1) if match else None


def write_synced(path: str | Path, text: str) -> None:
    """`text` written and flushed to disk (a crash leaves it whole or absent only with a
    rename after it; see `write_checksum`)."""
    with open(path, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def write_checksum(path: str | Path) -> str:
    """Write `path`'s checksum beside it, atomically; returns the digest."""
    path = Path(path)
    digest = sha256_file(path)
    target = checksum_path(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    write_synced(tmp, checksum_line(digest, path.name))
    os.replace(tmp, target)
    return digest


def checksum_problem(path: str | Path, accepted: tuple[str, ...] = ()) -> str | None:
    """Why `path` does not match its checksum file (None when it does). `accepted` are further
    digests to take as a match (a save interrupted between its two renames)."""
    path = Path(path)
    expected = read_checksum(checksum_path(path))
    actual = sha256_file(path)
    if actual == expected or actual in accepted:
        return None
    if expected is None:
        return (f"no readable checksum file {checksum_path(path).name} beside it, so its "
                f"integrity cannot be checked; if you trust the file, write one with "
                f"`sha256sum {path.name} > {checksum_path(path).name}` in {path.parent}")
    return (f"sha256 {actual[:16]}... differs from {expected[:16]}... in "
            f"{checksum_path(path).name}: the file changed after it was written (a flipped "
            f"bit, a partial copy or an edit)")
