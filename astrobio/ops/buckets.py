"""The sizes a variable dimension is padded to and autotuned at: one place for the fact.

A kernel autotuned on an exact size (a batch's text length, its key count, its number of
output positions) re-tunes for every new size; padding and tuning at a few bucket sizes bounds
that to a handful. Buckets are quarter octaves: the smallest `m·2^k >= n` with `m` in
{4, 5, 6, 7} (16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, ...), at least
`MIN_BUCKET`. Padding to one wastes under 25 % (a power of two wastes up to 50 %); sizes from
`n` to `2n` fall in at most 5 buckets.

Ops key their autotuners on `bucket(size)`; a collate function that pads a dimension to
`bucket(longest)` makes every batch of similar lengths share one compiled, tuned kernel.
"""

from __future__ import annotations

MIN_BUCKET = 16


def bucket(n: int) -> int:
    """The bucket of size `n` >= 0: the smallest quarter-octave size >= max(n, MIN_BUCKET)."""
    if n < 0:
        raise ValueError(f"bucket: size must be >= 0, got {n}")
    n = max(int(n), MIN_BUCKET)
    step = 1 << max((n - 1).bit_length() - 3, 0)  # 2^k with 4·2^k < n <= 8·2^k
    return -(-n // step) * step
