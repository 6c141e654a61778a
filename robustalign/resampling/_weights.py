"""Random draws for resampling, in chunks that bound memory.

Every draw consumes the generator in the same order whatever the chunk size, so a result depends on
the seed only, never on ``chunk_size``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from functools import lru_cache
from math import factorial

import numpy as np

#: Target size of one chunk's largest temporary array (bytes).
CHUNK_BYTES = 16 * 2**20
#: Up to this many levels, random permutations come from a table of all L! permutations.
PERMUTATION_TABLE_MAX_LEVELS = 7


def chunk_rows(n_total: int, bytes_per_row: int, chunk_size: int | None, *, cap: int = 2000) -> int:
    """Rows (resamples) per chunk: the user's ``chunk_size``, or what fits in ``CHUNK_BYTES``."""
    if chunk_size is not None:
        return max(1, min(int(chunk_size), n_total))
    rows = CHUNK_BYTES // max(int(bytes_per_row), 1)
    return int(max(16, min(cap, rows, n_total)))


def chunks(n_total: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n_total, size):
        yield start, min(start + size, n_total)


class IntegerStream:
    """Rows of uniform integers in ``[0, high)``, drawn from ``gen`` in blocks of fixed size.

    The sequence of generator calls depends only on ``(high, width, total_rows)``, never on how the rows
    are consumed, so results do not depend on the chunk size. Small ranges use 16-bit draws (faster);
    rows are returned as ``intp``.
    """

    BLOCK = 1024

    def __init__(self, gen: np.random.Generator, high: int, width: int, total_rows: int):
        self.gen, self.high, self.width, self.left = gen, int(high), int(width), int(total_rows)
        self.dtype = np.uint16 if self.high <= 2**16 else np.int64
        self.buf = np.empty((0, self.width), self.dtype)

    def next(self, rows: int, *, raw: bool = False) -> np.ndarray:
        """The next ``rows`` rows, as ``intp`` (or the stored small integer type with ``raw=True``)."""
        parts, need = [], int(rows)
        while need:
            if len(self.buf) == 0:
                size = min(self.BLOCK, self.left)
                if size <= 0:
                    raise RuntimeError("IntegerStream: more rows requested than were announced")
                self.buf = self.gen.integers(0, self.high, size=(size, self.width), dtype=self.dtype)
                self.left -= size
            k = min(need, len(self.buf))
            parts.append(self.buf[:k])
            self.buf = self.buf[k:]
            need -= k
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return out if raw else out.astype(np.intp)


def counts_from_indices(idx: np.ndarray, n: int) -> np.ndarray:
    """Multinomial counts ``(rows, n)`` (float) of how often each cluster was drawn in each row."""
    rows = idx.shape[0]
    flat = np.add(idx, (np.arange(rows, dtype=np.intp) * n)[:, None], dtype=np.intp).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(float)


def random_signs(gen: np.random.Generator, n_rows: int, n: int) -> np.ndarray:
    """``(n_rows, n)`` independent fair signs (+1/-1), 64 per raw 64-bit draw."""
    words = (n + 63) // 64
    raw = gen.bit_generator.random_raw(n_rows * words).astype("<u8", copy=False)
    bits = np.unpackbits(raw.view(np.uint8).reshape(n_rows, words * 8), axis=1, count=n)
    return bits.astype(float) * 2.0 - 1.0


@lru_cache(maxsize=8)
def permutation_table(n_levels: int) -> np.ndarray:
    """All ``n_levels!`` permutations, shape ``(n_levels!, n_levels)``, in lexicographic order (read-only)."""
    table = np.array(list(itertools.permutations(range(n_levels))), dtype=np.intp).reshape(-1, n_levels)
    table.flags.writeable = False
    return table


def uses_table(n_levels: int) -> bool:
    return n_levels <= PERMUTATION_TABLE_MAX_LEVELS


class PermutationStream:
    """Uniform random permutations per (resample, stratum), consumed in chunks of any size.

    ``next(rows)`` returns indices into :func:`permutation_table` ``(rows, n_strata)`` when
    ``n_levels <= 7``, otherwise the permutations themselves ``(rows, n_strata, n_levels)`` from the
    argsort of random keys.
    """

    def __init__(self, gen: np.random.Generator, n_strata: int, n_levels: int, total_rows: int):
        self.gen, self.S, self.L = gen, int(n_strata), int(n_levels)
        self.codes = IntegerStream(gen, factorial(self.L), self.S, total_rows) if uses_table(self.L) else None

    def next(self, rows: int, *, raw: bool = False) -> np.ndarray:
        """The next ``rows`` resamples; ``raw=True`` keeps table indices in their 16-bit type."""
        if self.codes is not None:
            return self.codes.next(rows, raw=raw)
        return np.argsort(self.gen.random((rows, self.S, self.L)), axis=-1)


def permutations_from_codes(codes: np.ndarray, n_levels: int, table: np.ndarray | None = None) -> np.ndarray:
    """``(rows, strata, n_levels)`` permutations: ``perm[b, q, l]`` is the level whose value moves to ``l``."""
    if codes.ndim == 3:
        return codes
    table = permutation_table(n_levels) if table is None else table
    return table[codes]


def dirichlet(gen: np.random.Generator, alpha: np.ndarray, n_rows: int) -> np.ndarray:
    """``(n_rows, *alpha.shape)`` Dirichlet draws over the last axis (gamma normalisation).

    Entries with ``alpha == 0`` stay exactly 0 (absent options); rows whose alphas are NaN stay NaN.
    """
    g = gen.standard_gamma(np.broadcast_to(np.nan_to_num(alpha, nan=1.0), (n_rows, *alpha.shape)))
    total = g.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = g / total
    out[:, np.isnan(alpha).any(axis=-1)] = np.nan
    return out


def leave_one_out(n: int, start: int, stop: int) -> np.ndarray:
    """Rows ``start..stop`` of the delete-one index table: row i lists every cluster of ``0..n-1`` but i.

    Built per chunk, so a jackknife over many clusters never holds the whole (n, n-1) table.
    """
    keep = np.arange(n - 1)
    return keep + (keep >= np.arange(start, stop)[:, None])
