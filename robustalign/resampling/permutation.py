r"""Stratified permutation tests: level labels are swapped only within strata (e.g. within item).

For a within-item design the strata are items and the levels are, e.g., the formats every item was
asked in. Under the null hypothesis the levels are exchangeable within each item, so permuting the
labels inside every item independently gives the exact null distribution; nothing is swapped across
items, which keeps the item effects out of the null (METHODS 3.3, 4.2 item 15).

``p = (1 + b) / (1 + B)`` with ``b`` the number of the ``B`` random permutations whose statistic is at
least as extreme as the observed one: the observed labelling counts as one permutation, so the test
never reports ``p = 0`` and its size is at most the nominal level.

Fast paths
----------
- Two levels, mean difference: swapping the two labels inside a stratum flips the sign of that
  stratum's difference, so the null is ``(signs @ d) / n`` for a ``(B x strata)`` matrix of random signs
  -- one matrix product for all cells.
- More levels, spread of the level means: with the data centred within each stratum, the permuted
  level sums are ``S_l = sum_q x[q, pi_q(l)]``. For each level the permutation is a one-hot
  ``(B, strata x levels)`` matrix, so all permuted sums of all cells are one matrix product
  per level and chunk. Permutations come from a table of all ``L!`` orders for ``L <= 7`` (one random
  integer per stratum) and from the argsort of random keys otherwise.
- Any other statistic: a vectorised callable on the permuted array ``(chunk, strata, levels, ...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from robustalign._rng import RngLike, as_generator
from robustalign._validation import (
    as_float_array,
    check_alternative,
    check_chunk_size,
    check_confidence_level,
    check_n_resamples,
)
from robustalign.resampling import _weights as _w
from robustalign.resampling._aggregate import group_array
from robustalign.resampling.bootstrap import cluster_bootstrap, labels_for
from robustalign.resampling.intervals import TIE_REL_TOL
from robustalign.resampling.results import BootstrapResult, PermutationResult

__all__ = ["permutation_p_values", "sign_flip_test", "stratified_permutation_test"]

STATISTICS = ("auto", "mean_difference", "spread")


def permutation_p_values(observed: np.ndarray, null: np.ndarray, alternative: str, scale: np.ndarray | None = None) -> np.ndarray:
    """``(1 + b) / (1 + B)`` per column, counting near-ties (floating-point noise) as extreme.

    Permuted statistics within ``1e-10 * max(|observed|, scale)`` of the observed one count as ties;
    ``scale`` is the size the statistic can reach (default: the largest permuted value).
    """
    if scale is None:
        with np.errstate(invalid="ignore"):
            scale = np.nanmax(np.abs(null), axis=0, initial=0.0)
    tol = TIE_REL_TOL * np.maximum(np.abs(observed), scale)
    if alternative == "greater":
        b = (null >= observed - tol).sum(axis=0)
    elif alternative == "less":
        b = (null <= observed + tol).sum(axis=0)
    else:
        b = (np.abs(null) >= np.abs(observed) - tol).sum(axis=0)
    return (1.0 + b) / (1.0 + null.shape[0])


def maxt_p_values(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Westfall-Young single-step max-T adjusted p-values from a joint permutation null.

    Parameters
    ----------
    observed : array (k,)
        Observed test statistics (absolute values are used: two-sided).
    null : array (B, k)
        The statistics under the same B permutations for every test (rows are joint draws).

    Returns
    -------
    array (k,)
        ``(1 + #{b : max_j |T*_bj| >= |T_i|}) / (1 + B)``, which controls the family-wise error rate
        under any dependence between the tests. Near-ties count as extreme with the tolerance of
        :func:`permutation_p_values`.
    """
    t = np.abs(np.asarray(observed, float))
    n = np.abs(np.asarray(null, float))
    if n.ndim != 2 or n.shape[1] != t.size:
        raise ValueError(f"`null` must have shape (B, {t.size}); got {n.shape}.")
    mx = np.nanmax(n, axis=1)
    scale = np.full(t.shape, np.nanmax(mx, initial=0.0))
    return permutation_p_values(t, mx[:, None], "greater", scale=scale)


def _sign_flip_null(d: np.ndarray, gen, n_resamples: int, chunk_size):
    """Observed mean, sign-flip null ``(B, C)`` and scale of the columns of ``d`` (NaN = absent stratum)."""
    present = np.isfinite(d)
    d0 = np.where(present, d, 0.0)
    n_c = present.sum(axis=0).astype(float)
    if (n_c == 0).any():
        raise ValueError("every cell needs at least one stratum with data.")
    obs = d0.sum(axis=0) / n_c
    n = d0.shape[0]
    rows = _w.chunk_rows(n_resamples, n * 8 * 2, chunk_size)
    null = np.empty((n_resamples, d0.shape[1]))
    for s, e in _w.chunks(n_resamples, rows):
        null[s:e] = (_w.random_signs(gen, e - s, n) @ d0) / n_c
    return obs, null, np.abs(d0).sum(axis=0) / n_c


def _spread(level_means: np.ndarray, axis: int) -> np.ndarray:
    """SD (ddof=0) of level means along ``axis``."""
    return np.sqrt(np.mean((level_means - level_means.mean(axis=axis, keepdims=True)) ** 2, axis=axis))


def _spread_null(x: np.ndarray, gen: np.random.Generator, n_resamples: int,
                 chunk_size: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed spread, its permutation null and scale for complete blocks ``x`` (strata, L, C).

    The permuted level sums are one-hot matrix products in single precision (half the memory traffic
    of double). Every permutation whose statistic could lie, within the rounding bound of that
    product, on the other side of (or tie with) the observed value is recomputed in double precision
    from the data, so the p-values are those of an all-double computation.
    """
    S, L, C = x.shape
    xc = x - x.mean(axis=1, keepdims=True)
    obs = _spread(x.mean(axis=0), axis=0)
    L1 = L - 1
    perms = _w.permutation_table(L) if _w.uses_table(L) else None
    blocks = _spread_blocks(xc, perms)
    bound = _spread_bound(xc, obs)
    rows = _w.chunk_rows(n_resamples, L1 * S * L1 * 4, chunk_size, cap=1000)
    if chunk_size is None:
        rows = min(rows, max(16, (5 * 2**20) // max(L1 * S * L1 * 4, 1)), n_resamples)
    bufs = [np.empty((L1, rows, S, w), dtype=np.float32) for w, _, _ in blocks]
    stream = _w.PermutationStream(gen, S, L, n_resamples)
    # level sums of every permutation (single precision), post-processed in groups of chunks
    group = max(rows, min(n_resamples, 4096))
    null = np.empty((n_resamples, C))
    for g0, g1 in _w.chunks(n_resamples, group):
        sums, ones, codes = _level_sums(stream, blocks, bufs, perms, rows, g1 - g0, S, L, C)
        v = _refined_sums_of_squares(sums, ones, codes, bound, xc, perms, len(blocks))
        null[g0:g1] = np.sqrt(v / L) / S
    return obs, null, bound["scale"]


def _spread_blocks(xc: np.ndarray, perms: np.ndarray | None) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(width, one-hot rows per permutation code, data) blocks of the level sums of :func:`_spread_null`."""
    S, L, C = xc.shape
    L1 = L - 1
    # The last level is minus the sum of the others once every stratum is centred, so level l's sum is
    # E_l @ X with E_l[b, (q, g)] = 1[pi_bq(l) = g] - 1[pi_bq(l) = L-1] over the first L-1 levels g.
    eye = np.eye(L, dtype=np.float32)
    rows_of = eye[:, :L1] - eye[:, L1:]  # value from original level g, expressed on the first L-1 levels
    source = rows_of[perms].transpose(1, 0, 2) if perms is not None else rows_of  # (L, L!, L-1) or (L, L-1)
    # E is gathered row by row; rows of 1, 2, 4 or 8 float32 use numpy's fast copy path, so the L-1
    # columns are split into such blocks, each with its own matrix product.
    # Cells are padded to a multiple of 16 columns (a full AVX-512 lane of float32). One padding column
    # holds ones: its product counts, per level and permutation, the strata whose last level moved there
    # (they contribute L-1 terms each), which gives a rounding bound per output rather than a worst case.
    Cp = -(-(C + 1) // 16) * 16 if C + 1 > 8 else C + 1
    xp = np.zeros((S, L, Cp), dtype=np.float32)
    xp[:, :, :C] = xc
    xp[:, :, C] = 1.0
    blocks, g0 = [], 0
    for width in (8, 4, 2, 1):
        while L1 - g0 >= width:
            tab = np.ascontiguousarray(source[..., g0 : g0 + width])
            X = np.ascontiguousarray(xp[:, g0 : g0 + width, :]).reshape(S * width, Cp)
            blocks.append((width, tab, X))
            g0 += width
    return blocks


def _spread_bound(xc: np.ndarray, obs: np.ndarray) -> dict[str, np.ndarray]:
    """Pieces of the rounding bound of a permuted level sum, and the observed sum of squares.

    Higham, Accuracy and Stability, 2nd ed., sec. 4.2: the inputs are rounded to float32 (u) and a sum of
    m nonzero exact products (E is 0 or +-1; adding an exact zero does not round) errs by at most
    gamma_m * sum|terms|. With k strata whose last level moved to level l, m <= S + (L-2) k and
    sum|terms| <= M1 + k M2.
    """
    S, L, _ = xc.shape
    absx = np.abs(xc[:, :L - 1, :])
    scale = absx.sum(axis=(0, 1)) / S
    return {"m1": absx.max(axis=1).sum(axis=0),  # (C,) one term per stratum
            "m2": absx.sum(axis=1).max(axis=0),  # (C,) the largest whole-row stratum
            "v_obs": L * (S * obs) ** 2,  # sum over levels of squared level sums, observed
            "scale": scale,
            "tol_v": L * S**2 * (4 * TIE_REL_TOL * np.maximum(obs, scale) * np.maximum(obs, scale))}


def _level_sums(stream, blocks: list, bufs: list, perms: np.ndarray | None, rows: int, n: int, S: int, L: int,
                C: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Single-precision level sums (L-1, n, C) of the next ``n`` permutations, the ones column (L-1, n)
    and the permutation codes drawn (kept for the refinement)."""
    L1 = L - 1
    sums = np.empty((L1, n, C), dtype=np.float32)
    ones = np.empty((L1, n), dtype=np.float32)
    codes_g = []
    for s, e in _w.chunks(n, rows):
        b = e - s
        raw = stream.next(b, raw=True)
        codes_g.append(raw)  # kept small for the refinement
        codes = raw.astype(np.intp) if perms is not None else raw
        acc = None
        for (w, tab, X), buf in zip(blocks, bufs):
            E = buf if b == rows else np.empty((L1, b, S, w), dtype=np.float32)
            for lev in range(L1):
                if perms is not None:
                    np.take(tab[lev], codes, axis=0, out=E[lev], mode="clip")
                else:
                    np.take(tab, codes[:, :, lev], axis=0, out=E[lev], mode="clip")
            part = E.reshape(L1 * b, S * w) @ X
            if acc is None:
                acc = part
            else:
                acc += part
        assert acc is not None  # there is at least one block (L >= 2)
        sums[:, s:e] = acc[:, :C].reshape(L1, b, C)
        ones[:, s:e] = acc[:, C].reshape(L1, b)
    return sums, ones, codes_g


def _refined_sums_of_squares(sums: np.ndarray, ones: np.ndarray, codes_g: list[np.ndarray], bound: dict,
                             xc: np.ndarray, perms: np.ndarray | None, n_blocks: int) -> np.ndarray:
    """Sum over levels of squared level sums (n, C); recomputed in double precision from the data for
    every (permutation, cell) whose single-precision value could tie with or cross the observed one."""
    S, L, C = xc.shape
    u = 2.0**-24
    sums64 = sums.astype(float)
    last = -sums64.sum(axis=0)
    v = np.einsum("lbc,lbc->bc", sums64, sums64) + last**2
    k = np.rint((S - ones.astype(float)) / L)  # (L1, b): E @ 1 = S - L k exactly (small integers)
    m = S + (L - 2) * k + n_blocks
    gamma = m * u / (1 - m * u)
    delta = ((u + gamma * (1 + u)) * 1.01)[..., None] * (bound["m1"] + k[..., None] * bound["m2"]) + 1e-300
    d_last = delta.sum(axis=0)
    err = (2 * np.abs(sums64) * delta + delta**2).sum(axis=0) + 2 * np.abs(last) * d_last + d_last**2
    bb, cc = np.nonzero(np.abs(v - bound["v_obs"]) <= err + bound["tol_v"])
    if bb.size:  # exact (double) level sums for the (permutation, cell) pairs near the observed value
        codes_all = np.concatenate(codes_g)
        if perms is not None:  # rows of 8 int32 (32 bytes) take numpy's fast copy path
            perms32 = np.zeros((len(perms), 8 * (-(-L // 8))), dtype=np.int32)
            perms32[:, :L] = perms
            perm = np.take(perms32, codes_all[bb].astype(np.intp), axis=0, mode="clip")[..., :L]  # (n, S, L)
        else:
            perm = codes_all[bb]
        flat = perm + (np.arange(S, dtype=np.int64) * L)[None, :, None]
        flat *= C
        flat += cc[:, None, None]
        exact = xc.ravel().take(flat).sum(axis=1)  # (n, L) level sums in double precision
        v[bb, cc] = (exact**2).sum(axis=1)
    return v


def _general_null(x: np.ndarray, statistic, gen, n_resamples: int, chunk_size):
    """Observed statistic and null by permuting the array itself (any vectorised statistic)."""
    S, L = x.shape[:2]
    obs = _call_stat(statistic, x[None], 1)[0]
    per_row = x.nbytes * 2
    rows = _w.chunk_rows(n_resamples, per_row, chunk_size, cap=1000)
    table = _w.permutation_table(L) if _w.uses_table(L) else None
    null = np.empty((n_resamples, obs.size))
    q = np.arange(S)[None, :, None]
    stream = _w.PermutationStream(gen, S, L, n_resamples)  # the same permutations as the fast path
    for s, e in _w.chunks(n_resamples, rows):
        perm = _w.permutations_from_codes(stream.next(e - s), L, table)
        null[s:e] = _call_stat(statistic, x[q, perm], e - s)
    return obs, null, None


def _call_stat(statistic, x, rows):
    r = np.asarray(statistic(x), dtype=float)
    if r.ndim == 0 or r.shape[0] != rows:
        raise ValueError(
            f"`statistic` must be vectorised over a leading permutation axis: given shape {x.shape} it returned "
            f"shape {r.shape}; reduce over axis 1 (strata) and 2 (levels)."
        )
    return r.reshape(rows, -1)


def _check_test_args(n_resamples, n_bootstrap, alternative, confidence_level, chunk_size):
    return (
        check_n_resamples(n_resamples),
        check_n_resamples(n_bootstrap, "n_bootstrap", minimum=0),
        check_alternative(alternative),
        check_confidence_level(confidence_level),
        check_chunk_size(chunk_size),
    )


def _make_result(obs, null, scale, alternative, test, name, labels, S, L, record, boot, prov) -> PermutationResult:
    return PermutationResult(
        statistic=obs, p_value=permutation_p_values(obs, null, alternative, scale), null_distribution=null, labels=labels,
        alternative=alternative, test=test, statistic_name=name, n_strata=int(S), n_levels=int(L), rng=record,
        bootstrap=boot, provenance=prov,
    )


def sign_flip_test(
    differences: ArrayLike,
    *,
    alternative: str = "two-sided",
    n_resamples: int = 10_000,
    n_bootstrap: int = 0,
    confidence_level: float = 0.95,
    labels: pd.DataFrame | Sequence | None = None,
    rng: RngLike = None,
    chunk_size: int | None = None,
) -> PermutationResult:
    r"""Paired permutation test of a mean within-stratum difference by random sign flips.

    For two conditions measured on the same items, ``d_q = x_q(B) - x_q(A)``; swapping the two labels
    inside item *q* turns ``d_q`` into ``-d_q``. The statistic is the mean of ``d`` over items
    (equal weights), its null the means of ``s_q d_q`` for random signs ``s`` -- the stratified
    permutation test of METHODS 3.3, and ``scipy.stats.permutation_test(..., permutation_type="samples")``.

    Parameters
    ----------
    differences : array (n_strata,) or (n_strata, n_cells)
        Per-item differences; several cells (e.g. models) share every sign flip. NaN = the item is
        absent from that cell (it then counts in no permutation of that cell).
    alternative : {"two-sided", "greater", "less"}
        Two-sided counts ``|T*| >= |T|``.
    n_resamples : int
        Random sign-flip vectors (METHODS: 10,000 for reported p-values).
    n_bootstrap : int
        If positive, also a cluster bootstrap of the mean difference (BCa) for ``conf_int()``.
    confidence_level : float
    labels : DataFrame or sequence, optional
    rng : int, Generator or None
    chunk_size : int, optional

    Returns
    -------
    PermutationResult

    Examples
    --------
    >>> import numpy as np
    >>> from robustalign.resampling import sign_flip_test
    >>> d = np.random.default_rng(3).normal(0.02, 0.1, 400)
    >>> res = sign_flip_test(d, rng=0)
    >>> bool(res.p_value[0] < 0.01), res.n_resamples
    (True, 10000)
    """
    n_resamples, n_boot, alternative, confidence_level, chunk_size = _check_test_args(
        n_resamples, n_bootstrap, alternative, confidence_level, chunk_size
    )
    d = as_float_array(differences, "differences", (1, 2))
    if d.ndim == 1:
        d = d[:, None]
    if np.isinf(d).any():
        raise ValueError("`differences` contains infinite values.")
    gen, record = as_generator(rng)
    boot_gen = gen.spawn(1)[0]
    obs, null, scale = _sign_flip_null(d, gen, n_resamples, chunk_size)
    lab = labels_for(labels, d.shape[1])
    boot = None
    if n_boot:
        boot = cluster_bootstrap(d, labels=lab, n_resamples=n_boot, confidence_level=confidence_level, rng=boot_gen)
    return _make_result(obs, null, scale, alternative, "sign flip", "mean difference", lab, d.shape[0], 2, record, boot,
                        {"chunk_size": chunk_size})


def stratified_permutation_test(
    data: pd.DataFrame | ArrayLike,
    statistic: str | Callable = "auto",
    *,
    value: str | None = None,
    factor: str | None = None,
    strata: str = "item",
    by: Sequence[str] | str | None = None,
    levels: Sequence | None = None,
    drop_incomplete: bool = False,
    alternative: str = "two-sided",
    n_resamples: int = 10_000,
    n_bootstrap: int = 0,
    confidence_level: float = 0.95,
    labels: pd.DataFrame | Sequence | None = None,
    rng: RngLike = None,
    chunk_size: int | None = None,
) -> PermutationResult:
    r"""Test a factor's effect by permuting its level labels within strata (e.g. formats within item).

    Parameters
    ----------
    data : DataFrame or array (n_strata, n_levels) or (n_strata, n_levels, n_cells)
        A long table (averaged to one value per stratum x level x cell, each row of a cell weighted
        equally) or the complete blocks directly.
    statistic : {"auto", "mean_difference", "spread"} or callable
        - ``"mean_difference"`` (two levels): mean over strata of level 2 minus level 1; tested by
          sign flips (see :func:`sign_flip_test`).
        - ``"spread"``: SD (ddof=0) over levels of the level means, in the units of the data; large
          when any level differs. The alternative is then "the levels differ" (``"less"`` is refused).
        - ``"auto"``: ``"mean_difference"`` for two levels, ``"spread"`` otherwise.
        - callable: ``statistic(x)`` on the permuted array ``(chunk, n_strata, n_levels, ...)``,
          returning ``(chunk,)`` or ``(chunk, k)``.
    value, factor, strata, by : str
        Columns of a DataFrame ``data``: the numeric value, the factor whose labels are permuted, the
        strata (default ``"item"``) and the cells tested separately (e.g. ``"model"``).
    levels : sequence, optional
        Levels of ``factor`` to use, in order (default: all, sorted).
    drop_incomplete : bool
        Strata lacking a level in some cell make the blocks incomplete: an error by default, dropped
        (and counted in ``provenance``) when True.
    alternative : {"two-sided", "greater", "less"}
    n_resamples : int
        Random permutations (METHODS: 10,000).
    n_bootstrap : int
        If positive, a cluster bootstrap over strata of the same statistic, for ``conf_int()``.
    confidence_level : float
    labels : DataFrame or sequence, optional
        Cell names for array data.
    rng : int, Generator or None
    chunk_size : int, optional

    Returns
    -------
    PermutationResult
        One p-value per cell; every cell sees the same permutations.

    Examples
    --------
    >>> import numpy as np
    >>> from robustalign.resampling import stratified_permutation_test
    >>> x = np.random.default_rng(2).normal(size=(100, 4, 3))     # 100 items x 4 formats x 3 models
    >>> x[:, 3, 0] += 0.5                                        # format 4 shifts model 1
    >>> res = stratified_permutation_test(x, rng=0, n_resamples=2000)
    >>> (res.p_value < 0.01).tolist()
    [True, False, False]
    """
    n_resamples, n_boot, alternative, confidence_level, chunk_size = _check_test_args(
        n_resamples, n_bootstrap, alternative, confidence_level, chunk_size
    )
    if not callable(statistic) and statistic not in STATISTICS:
        raise ValueError(f"`statistic` must be one of {list(STATISTICS)} or a callable; got {statistic!r}.")
    prov: dict = {"chunk_size": chunk_size}
    x, level_names, strata_names, lab = _blocks_of(data, statistic, value, factor, strata, by, labels, prov)
    x, level_names = _complete_blocks(x, levels, level_names, strata_names, drop_incomplete, prov)
    S, L = x.shape[:2]
    name = statistic if isinstance(statistic, str) else getattr(statistic, "__name__", "statistic")
    if name == "auto":
        name = "mean_difference" if L == 2 else "spread"
    if name == "mean_difference" and L != 2:
        raise ValueError(f"statistic='mean_difference' needs exactly 2 levels; got {L}. Use 'spread' or `levels=`.")
    if name == "spread" and alternative == "less":
        raise ValueError("statistic='spread' is non-negative and large when levels differ; alternative='less' "
                         "is not meaningful. Use 'two-sided' (same as 'greater').")
    gen, record = as_generator(rng)
    boot_gen = gen.spawn(1)[0]
    boot: BootstrapResult | None = None
    if callable(statistic):
        obs, null, scale = _general_null(x, statistic, gen, n_resamples, chunk_size)
        lab = labels_for(labels, obs.size, "statistic")
        test = "stratified permutation"
        if n_boot:
            boot = cluster_bootstrap(x, statistic=statistic, labels=lab, n_resamples=n_boot,
                                     confidence_level=confidence_level, rng=boot_gen)
    elif name == "mean_difference":
        d = x[:, 1] - x[:, 0]
        obs, null, scale = _sign_flip_null(d, gen, n_resamples, chunk_size)
        test = "sign flip"
        if n_boot:
            boot = cluster_bootstrap(d, labels=lab, n_resamples=n_boot, confidence_level=confidence_level, rng=boot_gen)
    else:
        obs, null, scale = _spread_null(x, gen, n_resamples, chunk_size)
        test = "stratified permutation"
        if n_boot:
            boot = _spread_bootstrap(x, lab, n_boot, confidence_level, boot_gen)
    desc = {"mean_difference": f"mean difference ({level_names[1]} - {level_names[0]})",
            "spread": "spread (SD) of level means"}.get(name, name)
    return _make_result(obs, null, scale, alternative, test, desc, lab, S, L, record, boot, prov)


def _blocks_of(data, statistic, value: str | None, factor: str | None, strata: str, by, labels,
               prov: dict) -> tuple[np.ndarray, list, list, pd.DataFrame | None]:
    """The blocks (strata, levels[, cells]) of :func:`stratified_permutation_test`, level and stratum names,
    and the cell labels (None for a callable statistic)."""
    if isinstance(data, pd.DataFrame):
        if value is None or factor is None:
            raise ValueError("with a DataFrame, give `value` (numeric column) and `factor` (the column to permute).")
        by_l = [by] if isinstance(by, str) else list(by or [])
        if factor in by_l or strata in by_l or factor == strata:
            raise ValueError(f"`factor` ({factor!r}), `strata` ({strata!r}) and `by` ({by_l}) must be different columns.")
        x, _, (st_lab, lev_lab, lab) = group_array(data, value, [[strata], [factor], by_l])
        prov.update(value=value, factor=factor, strata=strata, by=by_l)
        return x, list(lev_lab[factor]), list(st_lab[strata]), lab
    if value is not None or factor is not None or by is not None:
        raise ValueError("`value`, `factor` and `by` apply to a DataFrame; pass blocks (strata, levels[, cells]).")
    if callable(statistic):
        x = np.asarray(data, dtype=float)
        if x.ndim < 2:
            raise ValueError(f"`data` must have a strata and a level axis; got shape {x.shape}.")
    else:
        x = as_float_array(data, "data", (2, 3))
        if x.ndim == 2:
            x = x[:, :, None]
    lab = labels_for(labels, x.shape[2] if x.ndim >= 3 else 1) if not callable(statistic) else None
    return x, list(range(x.shape[1])), list(range(x.shape[0])), lab


def _complete_blocks(x: np.ndarray, levels: Sequence | None, level_names: list, strata_names: list,
                     drop_incomplete: bool, prov: dict) -> tuple[np.ndarray, list]:
    """The chosen ``levels`` of ``x`` and its complete strata (or an error naming the incomplete ones)."""
    if levels is not None:
        missing = [lv for lv in levels if lv not in level_names]
        if missing:
            raise ValueError(f"`levels` {missing} are not levels of the factor; it has {level_names}.")
        x = x[:, [level_names.index(lv) for lv in levels]]
        level_names = list(levels)
    S, L = x.shape[:2]
    if L < 2:
        raise ValueError(f"a permutation test needs at least 2 levels; got {L} ({level_names}).")
    incomplete = ~np.isfinite(x).reshape(S, -1).all(axis=1)
    if incomplete.any():
        if not drop_incomplete:
            raise ValueError(
                f"{int(incomplete.sum())} of {S} strata lack some level in some cell (e.g. "
                f"{[strata_names[i] for i in np.flatnonzero(incomplete)[:5]]}), so labels cannot be swapped "
                "within them. Pass `drop_incomplete=True` to drop them (counted in `provenance`), or choose "
                "`levels=` that every stratum has."
            )
        x = x[~incomplete]
        if x.shape[0] == 0:
            raise ValueError("no complete stratum is left after dropping incomplete ones.")
    prov.update(levels=level_names, n_dropped_strata=int(incomplete.sum()))
    if np.isinf(x).any():
        raise ValueError("`data` contains infinite values.")
    return x, level_names


def _spread_bootstrap(x: np.ndarray, lab, n_boot: int, confidence_level: float,
                      gen: np.random.Generator) -> BootstrapResult:
    """Cluster bootstrap over strata of the spread of level means of every cell."""
    S, L, C = x.shape
    cells = cluster_bootstrap(x.reshape(S, L * C), n_resamples=n_boot, confidence_level=confidence_level, rng=gen)
    return cells.apply(lambda m: _spread(m.reshape(*m.shape[:-1], L, C), axis=-2), labels=lab,
                       statistic="spread of level means")
