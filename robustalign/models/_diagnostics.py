"""Rank-normalised split R-hat and bulk / tail ESS, vectorised over every scalar of a variable at once.

The definitions are those of Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021), "Rank-normalization,
folding, and localization: an improved R-hat for assessing convergence of MCMC", as implemented by
``arviz_stats`` (``array_stats.rhat(method="rank")`` and ``array_stats.ess(method="bulk" | "tail")``),
step for step: split chains, Blom's rank back-transform, Geyer's initial positive and monotone sequences
on FFT autocovariances, and the same edge cases (constant draws, NaN, very short chains). The tests
compare every output with ``arviz_stats`` to 1e-10.

Why not call ``arviz_stats``: it evaluates the estimators one scalar at a time in Python (a
``numpy.vectorize`` over the scalars, with Geyer's sequences as Python loops), about 5 ms per scalar for
R-hat, bulk and tail ESS together. A full-size fit of the response model stores about 17,000 scalars, so
the gate spent about 85 CPU-seconds on diagnostics; this module does the same arithmetic on arrays
(``bench/bench_models.py`` prints both times and their ratio).

Tail ESS is taken at the 5% and 95% quantiles, as in the paper, Stan and ArviZ before version 1.
ArviZ 1 takes its default ``prob`` from ``rcParams["stats.ci_prob"]`` (0.89), which judges the 11% and
89% quantiles instead: a laxer check of the tails than the one the thresholds were set for.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sp_fft
from scipy import special

#: Quantiles at which tail ESS is judged (Vehtari et al. 2021): the smaller of the two ESS.
TAIL_PROB = (0.05, 0.95)

#: Scalars per FFT batch: bounds the complex work array (chains x 2 x draws x batch) to about 100 MB.
_BATCH_BYTES = 100 * 2**20

#: Scalars per chunk of :func:`diagnostics`: one float array of a chunk's draws is at most 4 MB.
_CHUNK_BYTES = 4 * 2**20

_RESOLUTION = np.finfo(float).resolution


def _as_3d(ary) -> tuple[np.ndarray, tuple[int, ...]]:
    """``(chain, draw, *shape)`` -> contiguous float ``(scalar, chain, draw)``, and the trailing shape."""
    a = np.asarray(ary, dtype=float)
    if a.ndim < 2:
        raise ValueError(f"draws must have shape (chain, draw, ...); got shape {a.shape}.")
    return np.ascontiguousarray(np.moveaxis(a.reshape(a.shape[0], a.shape[1], -1), 2, 0)), a.shape[2:]


def _split(a: np.ndarray) -> np.ndarray:
    """Each chain split in halves (the middle draw of an odd length dropped): ``(s, 2 chain, draw // 2)``."""
    half = a.shape[2] // 2
    return np.concatenate((a[:, :, :half], a[:, :, a.shape[2] - half:]), axis=1)


def _sorted_ranks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Sort order along the last axis of a 2-D array, the rows with ties, and their average ranks in order.

    Returns ``(order, tied_rows, ranks)``: ``ranks[i, k]`` is the 1-based average rank (ties share their
    mean rank) of ``x[tied_rows[i], order[tied_rows[i], k]]``; rows without ties have ranks 1..n in order.
    """
    s, n = x.shape
    order = np.argsort(x, axis=1)
    xs = np.take_along_axis(x, order, axis=1)
    same = xs[:, 1:] == xs[:, :-1]
    tied = np.flatnonzero(same.any(axis=1))
    new = np.ones((tied.size, n), dtype=bool)
    new[:, 1:] = ~same[tied]
    last = np.ones((tied.size, n), dtype=bool)
    last[:, :-1] = new[:, 1:]
    pos = np.broadcast_to(np.arange(n), (tied.size, n))
    start = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    end = np.minimum.accumulate(np.where(last, pos, n)[:, ::-1], axis=1)[:, ::-1]
    return order, tied, (start + end) / 2.0 + 1.0


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based average ranks along the last axis of a 2-D array without NaN.

    ``scipy.stats.rankdata(x, method="average", axis=1)``, in one argsort.
    """
    order, tied, tied_ranks = _sorted_ranks(x)
    ranked = np.broadcast_to(np.arange(1.0, x.shape[1] + 1.0), x.shape).copy()
    ranked[tied] = tied_ranks
    ranks = np.empty(x.shape)
    np.put_along_axis(ranks, order, ranked, axis=1)
    return ranks


def _z_scale(a: np.ndarray) -> np.ndarray:
    """Rank-normalise each scalar over all its draws: average ranks, Blom's offset 3/8, normal quantiles.

    Without ties a scalar's z-values are a permutation of one table of N normal quantiles, so only rows
    with ties evaluate the normal quantile function.
    """
    s, c, d = a.shape
    n = c * d
    order, tied, tied_ranks = _sorted_ranks(a.reshape(s, n))
    z_sorted = np.broadcast_to(special.ndtri((np.arange(1.0, n + 1.0) - 0.375) / (n + 0.25)), (s, n)).copy()
    z_sorted[tied] = special.ndtri((tied_ranks - 0.375) / (n + 0.25))
    z = np.empty((s, n))
    np.put_along_axis(z, order, z_sorted, axis=1)
    return z.reshape(s, c, d)


def _rhat(a: np.ndarray) -> np.ndarray:
    """Basic R-hat per scalar of ``(s, chain, draw)``."""
    n = a.shape[2]
    between = n * a.mean(axis=2).var(axis=1, ddof=1)
    within = a.var(axis=2, ddof=1).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def _invalid(a: np.ndarray, min_chains: int) -> np.ndarray:
    """Scalars arviz leaves as NaN: any NaN draw, or too few chains or draws."""
    bad = np.isnan(a).any(axis=(1, 2))
    if a.shape[1] < min_chains or a.shape[2] < 4:
        bad[:] = True
    return bad


def _autocov(a: np.ndarray) -> np.ndarray:
    """Autocovariance of each scalar and chain at every lag, by FFT (biased, divided by the length)."""
    n = a.shape[2]
    m = sp_fft.next_fast_len(2 * n)
    x = a - a.mean(axis=2, keepdims=True)
    # the transforms of the scalars are independent: pocketfft runs them on every core, each computed as on one
    f = sp_fft.rfft(x, n=m, axis=2, workers=-1)
    f *= np.conjugate(f)
    return sp_fft.irfft(f, n=m, axis=2, workers=-1)[:, :, :n] / n


def _ess(a: np.ndarray) -> np.ndarray:
    """ESS per scalar of ``(s, chain, draw)`` (already split / transformed), Geyer's monotone sequence."""
    s, c, n = a.shape
    out = np.empty(s)
    const = (a.max(axis=(1, 2)) - a.min(axis=(1, 2))) < _RESOLUTION
    out[const] = c * n
    idx = np.flatnonzero(~const)
    step = max(1, int(_BATCH_BYTES // (16 * c * 2 * n)))
    for lo in range(0, idx.size, step):
        cols = idx[lo:lo + step]
        out[cols] = _ess_batch(a[cols], float(c * n))
    return out


def _ess_batch(a: np.ndarray, total: float) -> np.ndarray:
    s, c, n = a.shape
    mean_acov = _autocov(a).mean(axis=1)               # (s, lag)
    mean_var = mean_acov[:, 0] * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if c > 1:
        var_plus = var_plus + a.mean(axis=2).var(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (mean_var[:, None] - mean_acov) / var_plus[:, None]   # rho[:, 0] is replaced by 1
    rho[:, 0] = 1.0
    n_pairs = n // 2
    pair = rho[:, 0:2 * n_pairs:2] + rho[:, 1:2 * n_pairs:2]              # (s, pair): rho[2j] + rho[2j + 1]
    # Geyer's initial positive sequence, as arviz walks it: pair j (j >= 1) is looked at while the
    # previous pair's sum is > 0 and 2j - 1 < n - 3; J = the last pair looked at (0: none)
    j_lim = max(0, (n - 1) // 2 - 1)
    rows = np.arange(s)
    if j_lim >= 1:
        nonpos = pair[:, 1:j_lim + 1] <= 0
        first = np.where(nonpos.any(axis=1), nonpos.argmax(axis=1) + 1, j_lim)
        big_j = np.where(pair[:, 0] > 0, first, 0)
    else:
        big_j = np.zeros(s, dtype=int)
    # Geyer's initial monotone sequence: pair sums 0..J-1 replaced by their running minimum
    running = np.minimum.accumulate(pair[:, :max(j_lim, 1)], axis=1)
    keep = np.arange(running.shape[1])[None, :] < big_j[:, None]
    body = np.where(keep, running, 0.0).sum(axis=1)
    even = np.where(big_j > 0, rho[rows, 2 * big_j], 1.0)
    pair_j = np.where(big_j > 0, pair[rows, np.minimum(big_j, n_pairs - 1)], np.inf)
    last = np.where(even > 0, even, np.where(pair_j >= 0, even, 0.0))
    tau = np.maximum(-1.0 + 2.0 * body + last, 1.0 / np.log10(total))
    ess = total / tau
    ess[np.isnan(rho[:, 1])] = np.nan                  # arviz: a NaN in the sequence gives NaN
    return ess


def rhat_rank(ary) -> np.ndarray:
    """Rank-normalised split R-hat, the larger of the bulk and the folded (tail) version, per scalar.

    ``ary`` has shape ``(chain, draw, *shape)``; returns an array of ``shape``. Equals
    ``arviz_stats.base.array_stats.rhat(ary, chain_axis=0, draw_axis=1)`` (``method="rank"``).
    """
    return diagnostics(ary, ess=False)["r_hat"]


def diagnostics(ary, *, ess: bool = True, prob: tuple[float, float] = TAIL_PROB) -> dict[str, np.ndarray]:
    """R-hat (rank), bulk ESS and tail ESS per scalar of ``(chain, draw, *shape)``, sharing the ranks.

    Returns ``{"r_hat", "ess_bulk", "ess_tail"}`` (the ESS only with ``ess=True``), each of ``shape``.
    """
    a, shape = _as_3d(ary)
    out = {k: np.full(a.shape[0], np.nan) for k in (("r_hat", "ess_bulk", "ess_tail") if ess else ("r_hat",))}
    # every number is a function of its own scalar's draws: scalars in chunks bound the work arrays
    # (ranks, z-values, indicators; about a dozen of one chunk's size) without changing a bit
    step = max(1, _CHUNK_BYTES // (8 * max(1, a.shape[1] * a.shape[2])))
    for lo in range(0, a.shape[0], step):
        part = _diagnostics_rows(a[lo:lo + step], ess, prob)
        for k, v in part.items():
            out[k][lo:lo + step] = v
    return {k: v.reshape(shape) for k, v in out.items()}


def _diagnostics_rows(a: np.ndarray, ess: bool, prob: tuple[float, float]) -> dict[str, np.ndarray]:
    """:func:`diagnostics` of ``(scalar, chain, draw)`` as flat arrays."""
    out = {k: np.full(a.shape[0], np.nan) for k in (("r_hat", "ess_bulk", "ess_tail") if ess else ("r_hat",))}
    ok_r = ~_invalid(a, 2)
    ok_e = ~_invalid(a, 1)
    x = a[ok_e]
    sp = _split(x)
    z = _z_scale(sp)
    if ok_r.any():
        sub = ok_r[ok_e]
        bulk = _rhat(z[sub])
        med = np.median(sp[sub].reshape(int(sub.sum()), -1), axis=1)
        tail = _rhat(_z_scale(np.abs(sp[sub] - med[:, None, None])))
        # arviz takes Python's max(bulk, tail): tail only when it is strictly larger
        out["r_hat"][ok_r] = np.where(tail > bulk, tail, bulk)
    if ess and x.size:
        out["ess_bulk"][ok_e] = _ess(z)
        q = np.quantile(x.reshape(x.shape[0], -1), sorted(prob), axis=1)
        out["ess_tail"][ok_e] = np.minimum(_ess(_split((x <= q[0][:, None, None]).astype(float))),
                                           _ess(_split((x <= q[1][:, None, None]).astype(float))))
    return out


def ess_bulk(ary) -> np.ndarray:
    """Bulk ESS (rank-normalised split chains) per scalar of ``(chain, draw, *shape)``.

    Equals ``arviz_stats.base.array_stats.ess(ary, chain_axis=0, draw_axis=1, method="bulk")``.
    """
    return diagnostics(ary)["ess_bulk"]


def ess_tail(ary, prob: tuple[float, float] = TAIL_PROB) -> np.ndarray:
    """Tail ESS: the smaller ESS of the indicators of the ``prob`` quantiles (split chains), per scalar.

    Equals ``arviz_stats.base.array_stats.ess(ary, chain_axis=0, draw_axis=1, method="tail", prob=prob)``.
    """
    return diagnostics(ary, prob=prob)["ess_tail"]
