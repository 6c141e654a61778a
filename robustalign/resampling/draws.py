"""Random draws for resampling designs that live outside the bootstrap and permutation engines.

Every draw robustalign makes from a Generator is made under ``robustalign/resampling/`` (a test
enforces it); claims and reports describe statistics and nulls and take their draws from here. Each
function takes the Generator of one stream (:func:`~robustalign.resampling.keyed_stream`) and
consumes it in one fixed order, so the same stream gives the same draws whether they are asked for at
once or in chunks of any size: a result then does not depend on the chunk size, and so not on how
many other units shared the computation.

Public names
------------
bootstrap_counts
    Multinomial counts of ``n`` clusters drawn with replacement (the weights of a cluster bootstrap).
integer_draws
    Uniform integers in ``[0, high)`` (indices of a bootstrap over labels, e.g. target groups).
random_permutations
    Uniform random permutations along the last axis (argsort of uniform keys).
half_masks
    0/1 masks choosing a uniform random half (``n // 2``) of ``n`` items.
sample_with_replacement
    Values drawn with replacement from a finite population (simulation studies).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["bootstrap_counts", "half_masks", "integer_draws", "random_permutations", "sample_with_replacement"]


def bootstrap_counts(gen: np.random.Generator, n: int, rows: int) -> np.ndarray:
    """``(rows, n)`` float counts: how often each of ``n`` clusters is drawn in each of ``rows`` resamples.

    Each row is ``Multinomial(n, 1/n)``; rows are drawn one after another, so ``rows=a`` then ``rows=b``
    gives the same counts as ``rows=a+b``.
    """
    n = int(n)
    return gen.multinomial(n, np.full(n, 1.0 / n), size=int(rows)).astype(float)


def integer_draws(gen: np.random.Generator, high: int, shape: Sequence[int] | int) -> np.ndarray:
    """Uniform integers in ``[0, high)`` of the given shape (``int64``), drawn in C order."""
    return gen.integers(0, int(high), size=shape)


def random_permutations(gen: np.random.Generator, shape: Sequence[int] | int, n: int) -> np.ndarray:
    """``(*shape, n)`` independent uniform random permutations of ``0..n-1`` along the last axis.

    The argsort of i.i.d. uniform keys (ties have probability ~2^-53 per pair and resolve by index).
    """
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
    return np.argsort(gen.random((*shape, int(n))), axis=-1)


def half_masks(gen: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """``(rows, n)`` float masks with ones on a uniform random subset of ``n // 2`` of the ``n`` items."""
    order = random_permutations(gen, rows, n)
    mask = np.zeros((int(rows), int(n)))
    np.put_along_axis(mask, order[:, : int(n) // 2], 1.0, axis=-1)
    return mask


def sample_with_replacement(gen: np.random.Generator, population: ArrayLike,
                            shape: Sequence[int] | int) -> np.ndarray:
    """Values of ``population`` (1-D) drawn uniformly with replacement, in the given shape."""
    pop = np.asarray(population)
    if pop.ndim != 1 or pop.size == 0:
        raise ValueError(f"`population` must be a non-empty 1-D array; got shape {pop.shape}.")
    return gen.choice(pop, size=shape, replace=True)
