"""Null distributions and resamples for statistics defined elsewhere: the draws live here.

claims/ describes a statistic (a function of resampled item indices, of signs, or of permuted labels)
and hands it to one of these functions, which draws the indices, signs or permutations and returns
the statistic under every draw. Every draw comes from :func:`robustalign.resampling.keyed_stream`:
the caller names the purpose and the unit (``key``), so a unit's null does not depend on which other
units are in the data. Draws are made in blocks of :data:`BLOCK_SIZE` rows, block ``k`` from the stream
``(*key, "block", k)``, so the numbers are the same however the blocks are grouped into tasks and
whichever executor runs them.

Public names
------------
item_bootstrap
    Items drawn with replacement: ``statistic(idx)`` for ``idx`` of shape ``(rows, n_items)``.
item_bootstrap_normals
    The same, with standard normal deviates drawn alongside: ``statistic((idx, z))``.
sign_flips
    Random signs per item: ``statistic(signs)`` for ``signs`` of shape ``(rows, n_items)`` in {-1, +1}.
within_item_permutations
    An independent permutation of ``n_labels`` labels in every item: ``statistic(perm)`` for ``perm`` of
    shape ``(rows, n_items, n_labels)``.
label_permutations
    Permutations of ``n_labels`` labels (e.g. the groups of a distance matrix), all of them when there
    are few: ``statistic(perm)`` for ``perm`` of shape ``(rows, n_labels)``.
p_values
    :func:`robustalign.resampling.permutation_p_values` for nulls with undefined (NaN) values and
    for two-sided tests about a centre other than 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import permutations
from typing import TYPE_CHECKING

import numpy as np

from robustalign._rng import RngLike, as_generator
from robustalign.resampling.permutation import permutation_p_values
from robustalign.resampling.streams import keyed_stream

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from robustalign.scaleout import ExecutorLike

__all__ = [
    "BLOCK_SIZE",
    "EXACT_MAX_LABELS",
    "item_bootstrap",
    "item_bootstrap_normals",
    "label_permutations",
    "p_values",
    "sign_flips",
    "within_item_permutations",
]

#: Rows drawn per stream block (the same as robustalign.scaleout.BLOCK_SIZE).
BLOCK_SIZE = 250
#: Enumerate every label order up to this many labels (7! = 5,040) when that is no more than requested.
EXACT_MAX_LABELS = 7


def _blocks(key: tuple, n_total: int) -> list[tuple[int, int, tuple]]:
    """``(block index, rows, key)`` for consecutive blocks of ``n_total`` draws."""
    if int(n_total) < 1:
        raise ValueError(f"the number of draws must be a positive integer; got {n_total}.")
    n_blocks = math.ceil(n_total / BLOCK_SIZE)
    return [(k, min(BLOCK_SIZE, n_total - k * BLOCK_SIZE), key) for k in range(n_blocks)]


def _draw_block(args) -> np.ndarray:
    """One block: the draws from its own stream, then the statistic (module level, so tasks pickle)."""
    statistic, draw, rng, k, rows, key, shape = args
    gen = keyed_stream(rng, *key, "block", k)
    return np.asarray(statistic(_DRAWS[draw](gen, rows, shape)), float)


def _draw_blocks(blocks) -> list[np.ndarray]:
    return [_draw_block(b) for b in blocks]


def _indices(gen, rows, shape):
    (n,) = shape
    return gen.integers(0, n, size=(rows, n), dtype=np.intp)


def _signs(gen, rows, shape):
    (n,) = shape
    return gen.choice(np.array([-1.0, 1.0]), size=(rows, n))


def _within(gen, rows, shape):
    n, k = shape
    return np.argsort(gen.random((rows, n, k)), axis=-1)


def _labels(gen, rows, shape):
    (k,) = shape
    return np.argsort(gen.random((rows, k)), axis=-1)


def _indices_normals(gen, rows, shape):
    n, k = shape
    return gen.integers(0, n, size=(rows, n), dtype=np.intp), gen.standard_normal((rows, k))


_DRAWS = {"indices": _indices, "signs": _signs, "within": _within, "labels": _labels,
          "indices_normals": _indices_normals}


def run_blocks(statistic: Callable, draw: str, shape: tuple, n_total: int, rng, key, executor) -> np.ndarray:
    """Internal (the draws of this module and of ``subsample``): ``statistic`` over ``n_total`` draws of kind
    ``draw`` (a key of ``_DRAWS``), in blocks whose streams are keyed by ``key`` and the block number."""
    if not key or not isinstance(key[0], str):
        raise ValueError(f"`key` must start with a purpose string, e.g. ('steerability.mantel', model); got {key!r}.")
    gen, _ = as_generator(rng)  # one seed for every block (None: fresh entropy, drawn once)
    tasks = [(statistic, draw, gen, k, rows, key, shape) for k, rows, key in _blocks(tuple(key), n_total)]
    if executor is None:
        parts = _draw_blocks(tasks)
    else:
        from robustalign.scaleout import map_chunks

        parts = map_chunks(_draw_blocks, tasks, executor=executor)
    return np.concatenate(parts, axis=0)


def item_bootstrap(statistic: Callable[[np.ndarray], np.ndarray], n_items: int, *, n_resamples: int, rng: RngLike,
                   key: tuple, executor: ExecutorLike = None) -> np.ndarray:
    """``statistic(idx)`` for ``n_resamples`` item resamples; ``idx`` is ``(rows, n_items)`` indices drawn
    with replacement. Returns the stacked results, ``(n_resamples, ...)``.

    ``rng`` is the user's seed (recorded by the caller); ``key`` names the purpose and the unit, e.g.
    ``("audit_claim.bootstrap", claim_text)``. ``statistic`` must be picklable to run on a process
    executor (a module-level function or a ``functools.partial`` of one).
    """
    return run_blocks(statistic, "indices", (int(n_items),), n_resamples, rng, key, executor)


def item_bootstrap_normals(statistic: Callable[[tuple], np.ndarray], n_items: int, n_normals: int, *,
                           n_resamples: int, rng: RngLike, key: tuple, executor: ExecutorLike = None) -> np.ndarray:
    """``statistic((idx, z))`` for ``n_resamples`` item resamples ``idx`` (``(rows, n_items)``, as in
    :func:`item_bootstrap`) drawn together with ``z``, ``(rows, n_normals)`` standard normal deviates: a
    quantity known only as an estimate with a standard error is redrawn in the same resample."""
    return run_blocks(statistic, "indices_normals", (int(n_items), int(n_normals)), n_resamples, rng, key, executor)


def sign_flips(statistic: Callable[[np.ndarray], np.ndarray], n_items: int, *, n_permutations: int, rng: RngLike,
               key: tuple, executor: ExecutorLike = None) -> np.ndarray:
    """``statistic(signs)`` for ``n_permutations`` draws of ``signs`` (``(rows, n_items)``, each -1 or +1 with
    probability 1/2): the null of a paired contrast whose two labels are exchangeable within item."""
    return run_blocks(statistic, "signs", (int(n_items),), n_permutations, rng, key, executor)


def within_item_permutations(statistic: Callable[[np.ndarray], np.ndarray], n_items: int, n_labels: int, *,
                             n_permutations: int, rng: RngLike, key: tuple, executor: ExecutorLike = None) -> np.ndarray:
    """``statistic(perm)`` for ``n_permutations`` draws of ``perm`` (``(rows, n_items, n_labels)``): in every
    item an independent uniform permutation of the labels (labels exchangeable within item)."""
    return run_blocks(statistic, "within", (int(n_items), int(n_labels)), n_permutations, rng, key, executor)


def label_permutations(statistic: Callable[[np.ndarray], np.ndarray], n_labels: int, *, n_permutations: int,
                       rng: RngLike, key: tuple) -> tuple[np.ndarray, bool]:
    """``statistic(perm)`` over permutations ``perm`` (``(rows, n_labels)``) of ``n_labels`` labels.

    With ``n_labels <= EXACT_MAX_LABELS`` and ``n_labels! <= n_permutations`` every order except the
    identity is enumerated (``exact=True``): :func:`p_values` of that null is the exact permutation
    p-value ``#{T* >= T} / n_labels!`` (the identity is the observed statistic, the ``1 +`` of the
    formula). Otherwise ``n_permutations`` uniform random orders are drawn. Returns ``(null, exact)``.
    """
    k = int(n_labels)
    if k <= EXACT_MAX_LABELS and math.factorial(k) <= n_permutations:
        perms = np.array(list(permutations(range(k)))[1:], dtype=np.intp).reshape(-1, k)
        return np.asarray(statistic(perms), float), True
    return run_blocks(statistic, "labels", (k,), n_permutations, rng, key, None), False


def p_values(observed: ArrayLike, null: ArrayLike, alternative: str, *, centre: ArrayLike | None = None,
             scale: ArrayLike | None = None) -> np.ndarray:
    """Permutation p-values ``(1 + b) / (1 + B)`` per column of ``null`` (``(B, C)``), through
    :func:`robustalign.resampling.permutation_p_values` (its tie rule).

    Null values that are NaN (a permutation under which the statistic is undefined) are left out of
    that column, ``B`` included; a column with no defined value, or a NaN observed value, gives NaN.
    Two-sided tests compare distances from ``centre`` (default 0; e.g. 0.5 for an AUC).
    """
    obs = np.atleast_1d(np.asarray(observed, float))
    null = np.asarray(null, float)
    null = null.reshape(len(null), -1)
    if null.shape[1] != obs.shape[0]:
        raise ValueError(f"`null` has {null.shape[1]} columns for {obs.shape[0]} observed statistics.")
    c = np.zeros(obs.shape) if centre is None else np.broadcast_to(np.asarray(centre, float), obs.shape)
    out = np.full(obs.shape, np.nan)
    finite = np.isfinite(null)
    whole = finite.all(0) & np.isfinite(obs)
    if whole.any():
        sc = None if scale is None else np.broadcast_to(np.asarray(scale, float), obs.shape)[whole]
        out[whole] = permutation_p_values(obs[whole] - c[whole], null[:, whole] - c[whole], alternative, sc)
    for j in np.flatnonzero(~whole & np.isfinite(obs) & finite.any(0)):
        sc = None if scale is None else np.broadcast_to(np.asarray(scale, float), obs.shape)[j : j + 1]
        out[j] = permutation_p_values(obs[j : j + 1] - c[j], null[finite[:, j], j : j + 1] - c[j], alternative, sc)[0]
    return out
