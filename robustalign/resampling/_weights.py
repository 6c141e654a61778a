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


def index_draws(gen: np.random.Generator, n_rows: int, n: int) -> np.ndarray:
    """``(n_rows, n)`` cluster indices drawn with replacement (one bootstrap resample per row)."""
    return gen.integers(0, n, size=(n_rows, n), dtype=np.intp)


def counts_from_indices(idx: np.ndarray, n: int) -> np.ndarray:
    """Multinomial counts ``(rows, n)`` (float) of how often each cluster was drawn in each row."""
    rows = idx.shape[0]
    idx = idx + (np.arange(rows, dtype=np.intp) * n)[:, None]
    flat = idx.ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(float)


def multinomial_counts(gen: np.random.Generator, n_rows: int, n: int) -> np.ndarray:
    """Cluster-bootstrap weight matrix: each row ~ Multinomial(n, 1/n), as float."""
    return counts_from_indices(index_draws(gen, n_rows, n), n)


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


def permutation_codes(gen: np.random.Generator, n_rows: int, n_strata: int, n_levels: int) -> np.ndarray:
    """Uniform random permutations per (resample, stratum).

    Returns indices into :func:`permutation_table` ``(n_rows, n_strata)`` when ``n_levels`` is small,
    otherwise the permutations themselves ``(n_rows, n_strata, n_levels)`` from argsort of random keys.
    """
    if uses_table(n_levels):
        return gen.integers(0, factorial(n_levels), size=(n_rows, n_strata), dtype=np.intp)
    return np.argsort(gen.random((n_rows, n_strata, n_levels)), axis=-1)


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
