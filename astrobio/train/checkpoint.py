"""Atomic, checksummed training checkpoints: model, optimizer, scheduler, RNG states and data
position, as tensors and plain Python values only.

A checkpoint is written to a temporary file in the same directory, flushed to disk and renamed
over the target, so a crash mid-write leaves the previous checkpoint intact. Its sha256 goes
beside it (`checkpoint.pt.sha256`, `astrobio.checksum`): written to a temporary file before the
checkpoint's rename and renamed after it. A crash between the two renames leaves that pending
checksum matching the new checkpoint: `load` accepts it and `recover` finishes the save.
`load` checks the checksum, then reads with `weights_only=True` (tensors and plain values), so
a crafted file is refused before any code in it can run.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import torch

from astrobio.checksum import (
    checksum_line,
    checksum_path,
    checksum_problem,
    read_checksum,
    sha256_file,
    write_synced,
)
from astrobio.errors import RunError


class CheckpointError(RunError):
    """A checkpoint is damaged, unsafe to load, or not a checkpoint."""


def rng_states() -> dict:
    """Every generator's state as tensors and plain values (Python's state is a tuple of
    ints), so that `weights_only=True` loads it."""
    states = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _temporaries(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.tmp-*"))


def save_atomic(state: dict, path: Path) -> None:
    path = Path(path)
    tmp, pending = _temporary(path), _temporary(checksum_path(path))
    with open(tmp, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    write_synced(pending, checksum_line(sha256_file(tmp), path.name))
    os.replace(tmp, path)
    os.replace(pending, checksum_path(path))
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the renames themselves reach the disk
    finally:
        os.close(directory)


def _pending_digests(path: Path) -> tuple[str, ...]:
    return tuple(d for d in map(read_checksum, _temporaries(checksum_path(path))) if d)


def load(path: Path) -> dict:
    """The checkpoint at `path`, after its checksum; a `CheckpointError` names what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there")
    problem = checksum_problem(path, accepted=_pending_digests(path))
    if problem is not None:
        raise CheckpointError(f"{path}: {problem}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[-1]
        raise CheckpointError(f"{path}: refused: it holds Python objects beyond tensors and "
                              f"plain values, which loading would run as code ({reason})") \
            from None
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({err})") from None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is not writing now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(path: Path) -> list[Path]:
    """Finish a save interrupted between its renames, and remove the temporary files of
    saves whose process is gone; returns the files removed."""
    path = Path(path)
    target = checksum_path(path)
    digest = sha256_file(path) if path.is_file() else None
    finished = digest is None or read_checksum(target) == digest
    removed = []
    for tmp in _temporaries(path) + _temporaries(target):
        pid = tmp.name.rpartition("-")[2]
        if pid.isdigit() and _alive(int(pid)):
            continue
        if not finished and tmp in _temporaries(target) and read_checksum(tmp) == digest:
            os.replace(tmp, target)
            finished = True
            continue
        tmp.unlink()
        removed.append(tmp)
    return removed
