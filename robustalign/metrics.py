"""Alignment metrics between answer distributions, item profiles and survey indices.

Every function is pure NumPy and vectorised over leading axes. A *distribution* is an array
``(..., K)`` whose last axis holds the options of one item in canonical order. Items with different
numbers of options share one array by zero padding: options beyond an item's ``K`` hold 0, and the
metrics that need the true number of options (the W1 normaliser, the mean position, the normalised
entropy, the KL smoothing) take an explicit ``K``, an integer array that broadcasts against the
leading axes. Padding never changes a result.

Conventions
-----------
* Similarities are in [0, 1], higher = closer; distances are in the units stated (bits for KL and
  Jensen-Shannon, scale range for W1 and mean position).
* A row that contains NaN is a missing cell (e.g. :meth:`robustalign.Reference.array` marks absent
  item x group cells with NaN). It gives NaN, never an error, and callers count it.
* With ``check=True`` (the default) probabilities must be >= 0, rows must sum to 1 within
  :data:`SUM_TOL`, and options beyond ``K`` must be 0; a violation raises ``ValueError`` naming the
  argument, the offending value and the fix.
* Metrics for ordered scales (W1, mean position) return NaN where ``ordinal=False``; for nominal
  items use JS, total variation or plurality agreement instead.
* Results are an ndarray over the leading axes, or a NumPy scalar where those are empty (as NumPy's
  own reductions do); their return annotation is ``Any`` for that reason, and ``np.asarray`` of either
  is an array.

:data:`METRICS` maps short names to similarity functions with one signature,
``f(p, q, K=None, ordinal=None) -> similarity in [0, 1]``, so that a multiverse can loop over them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import ArrayLike

from robustalign._result import Result

if TYPE_CHECKING:
    import pandas as pd

    from robustalign.schema import Reference


__all__ = [
    "LINEAR_METRICS",
    "QUADRATIC_METRICS",
    "JACKKNIFE_ORDER",
    "METRICS",
    "FEW_ANSWER_METRICS",
    "MIN_ANSWERS",
    "MIN_ANSWERS_NONLINEAR",
    "NEAR_IDENTITY_METRICS",
    "SUM_TOL",
    "VSM2013",
    "ProxySimilarity",
    "agreement_probability",
    "between_group_sd",
    "brier_similarity",
    "cramer_similarity",
    "closest_groups",
    "disattenuated_pearson",
    "finite_sample_similarity",
    "js_distance",
    "js_similarity",
    "kl_divergence",
    "mass_on_model_answer",
    "mean_position",
    "mean_position_distance",
    "mean_position_similarity",
    "normalized_entropy",
    "plurality_agreement",
    "human_proxy_similarity",
    "identity_bias_bound",
    "identity_chi_square",
    "identity_p_value",
    "profile_correlation",
    "rank_groups",
    "spearman_alignment",
    "total_variation",
    "tv_similarity",
    "vsm2013_indices",
    "w1_distance",
    "w1_similarity",
]

#: Rows of a distribution must sum to 1 within this tolerance when ``check=True``.
SUM_TOL = 1e-6
_LN2 = np.log(2.0)


# --------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------
def _as_float(a, name: str) -> np.ndarray:
    try:
        arr = np.asarray(a, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"`{name}` must be an array of numbers; got {type(a).__name__} ({e}).") from None
    if arr.ndim == 0:
        raise ValueError(
            f"`{name}` must have at least one axis (the options); got a scalar {arr.item()!r}. "
            "Pass the distribution as an array of option shares."
        )
    return arr


def _check_dist(p: np.ndarray, name: str) -> None:
    """Non-negative entries, rows summing to 1 (rows with NaN are missing cells and skipped)."""
    neg = p < 0
    if neg.any():
        at = tuple(int(i) for i in np.argwhere(neg)[0])
        raise ValueError(
            f"`{name}` has negative probabilities ({int(neg.sum())} entries, e.g. {float(p[at])!r} at index {at}); "
            "probabilities must be >= 0."
        )
    s = p.sum(-1)
    bad = np.abs(s - 1.0) > SUM_TOL  # NaN rows compare False: they are missing cells, not errors
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"`{name}` rows must sum to 1 within {SUM_TOL:g} over the last axis (the options); "
            f"{int(bad.sum())} rows do not, e.g. row {at} sums to {float(s[at])!r}. Normalise the rows "
            f"({name} / {name}.sum(-1, keepdims=True)), or pass check=False if that is intended."
        )


def _pair(p, q, check: bool, names=("p", "q")) -> tuple[np.ndarray, np.ndarray]:
    p = _as_float(p, names[0])
    q = _as_float(q, names[1])
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"`{names[0]}` and `{names[1]}` must have the same number of options on the last axis; got "
            f"{names[0]}.shape={p.shape}, {names[1]}.shape={q.shape}. Pad the shorter with zeros and pass `K`."
        )
    try:
        np.broadcast_shapes(p.shape, q.shape)
    except ValueError:
        raise ValueError(
            f"`{names[0]}` with shape {p.shape} and `{names[1]}` with shape {q.shape} do not broadcast over "
            "their leading axes; add length-1 axes (e.g. p[:, None, :]) so that they line up."
        ) from None
    if check:
        _check_dist(p, names[0])
        _check_dist(q, names[1])
    return p, q


def _lead_shape(*arrays: np.ndarray) -> tuple[int, ...]:
    return np.broadcast_shapes(*(a.shape[:-1] for a in arrays))


def _as_K(K, kmax: int, lead: tuple[int, ...], arrays: Sequence[tuple[str, np.ndarray]], check: bool):
    """Validate ``K`` (None -> kmax) and, with ``check``, that mass beyond K is zero."""
    if K is None:
        if kmax < 2:
            raise ValueError(f"the last axis (options) must have length >= 2; got {kmax}.")
        return None
    k = np.asarray(K)
    if k.dtype == bool or not np.issubdtype(k.dtype, np.number):
        raise ValueError(f"`K` must be integer numbers of options; got dtype {k.dtype}.")
    bad = (k != np.round(k)) | (k < 2) | (k > kmax) | ~np.isfinite(k)
    if bad.any():
        v = (k[bad].ravel()[0] if k.ndim else k).item()
        raise ValueError(
            f"`K` must be whole numbers in [2, {kmax}] (the number of options of each item; the last axis "
            f"has length {kmax}); got {v!r}."
        )
    k = k.astype(np.intp)
    try:
        np.broadcast_shapes(k.shape, lead)
    except ValueError:
        raise ValueError(
            f"`K` with shape {k.shape} does not broadcast against the leading axes {lead} of the "
            "distributions; give one K per item with matching length-1 axes."
        ) from None
    if check and (k < kmax).any():
        beyond = np.arange(kmax) >= k[..., None]
        for name, a in arrays:
            m = beyond & (a != 0) & ~np.isnan(a)
            if m.any():
                at = tuple(int(i) for i in np.argwhere(m)[0])
                v = float(np.broadcast_to(a, m.shape)[at])
                raise ValueError(
                    f"`{name}` puts mass on options beyond `K` ({v!r} at index {at}); options beyond an "
                    "item's K must be 0 (zero padding). Check the option order and K."
                )
    return k


def _ordinal_mask(out: np.ndarray, ordinal) -> np.ndarray:
    if ordinal is None:
        return out
    o = np.asarray(ordinal)
    if o.dtype != bool:
        raise ValueError(f"`ordinal` must be booleans (True = ordered scale); got dtype {o.dtype}.")
    try:
        shape = np.broadcast_shapes(o.shape, np.shape(out))
    except ValueError:
        raise ValueError(
            f"`ordinal` with shape {o.shape} does not broadcast against the result shape {np.shape(out)}."
        ) from None
    if o.all():
        return out if shape == np.shape(out) else np.broadcast_to(out, shape).copy()
    return np.where(o, out, np.nan)


def _scalar(a):
    """0-d arrays become NumPy scalars; everything else is returned as is."""
    return a[()] if isinstance(a, np.ndarray) and a.ndim == 0 else a


def _xlogx_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise a * ln(a / b) with 0 * ln(0 / b) = 0; NaN propagates, a > 0 = b gives inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.divide(a, b)
        np.log(r, out=r)
        r *= a
    np.copyto(r, 0.0, where=(a == 0))
    return r


# --------------------------------------------------------------------------------------------------
# distribution metrics
# --------------------------------------------------------------------------------------------------
def js_distance(p: ArrayLike, q: ArrayLike, base: float = 2, *, check: bool = True) -> Any:
    r"""Jensen-Shannon distance between distributions (the square root of the JS divergence).

    Parameters
    ----------
    p, q : array_like, shape (..., K)
        Distributions over the options on the last axis; leading axes broadcast. Rows with NaN are
        missing cells and give NaN.
    base : float, default 2
        Logarithm base. With base 2 the distance is in [0, 1]; with base e its maximum is
        :math:`\sqrt{\ln 2} \approx 0.8326`.
    check : bool, default True
        Validate that entries are >= 0 and rows sum to 1 within :data:`SUM_TOL`.

    Returns
    -------
    ndarray or float
        Shape ``broadcast(p.shape, q.shape)[:-1]``.

    Notes
    -----
    .. math::
        D_{JS}(P, Q) = \sqrt{\tfrac12 KL(P \| M) + \tfrac12 KL(Q \| M)}, \quad M = \tfrac12 (P + Q),

    with :math:`0 \log 0 = 0`. Same formula as :func:`scipy.spatial.distance.jensenshannon`, whose
    default base is e, not 2. Inputs are not renormalised. Padding with zero options changes nothing.
    """
    if not (np.isscalar(base) and np.isfinite(base) and base > 0 and base != 1):
        raise ValueError(f"`base` must be a positive number other than 1 (2 gives bits); got {base!r}.")
    p, q = _pair(p, q, check)
    m = np.add(p, q)
    m *= 0.5
    js = np.asarray(_xlogx_ratio(p, m).sum(-1))
    js += _xlogx_ratio(q, m).sum(-1)
    js /= 2.0 * np.log(base)
    np.maximum(js, 0.0, out=js)  # round-off can give -1e-17 when p == q
    np.sqrt(js, out=js)
    if base == 2:
        np.minimum(js, 1.0, out=js)
    return _scalar(js)


def js_similarity(p: ArrayLike, q: ArrayLike, *, check: bool = True) -> Any:
    r"""Jensen-Shannon similarity :math:`1 - D_{JS}` in base 2, in [0, 1] (1 = identical).

    Parameters
    ----------
    p, q : array_like, shape (..., K)
        Model and human distributions (the metric is symmetric). Leading axes broadcast; rows with NaN
        give NaN.
    check : bool, default True
        Validate entries >= 0 and rows summing to 1.

    Returns
    -------
    ndarray or float
        :math:`S_{JS}` with shape ``broadcast(p.shape, q.shape)[:-1]``; unitless, higher = closer.

    Notes
    -----
    .. math::
        S_{JS} = 1 - \sqrt{\tfrac12 KL_2(P \| M) + \tfrac12 KL_2(Q \| M)}, \quad M = \tfrac12 (P + Q).

    For a one-hot model answer :math:`P = \delta_k` the similarity depends only on the human share
    :math:`h = Q_k`: :math:`D^2 = \tfrac12[\log_2 \tfrac{2}{1+h} + h \log_2 \tfrac{2h}{1+h} + 1 - h]`,
    so S = 0, 0.26, 0.44, 0.63, 0.77, 1 for h = 0, .25, .5, .75, .9, 1: a ceiling set by human
    consensus, not by the model.

    Examples
    --------
    >>> from robustalign.metrics import js_similarity
    >>> round(float(js_similarity([0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1])), 2)
    0.61
    """
    d = js_distance(p, q, 2, check=check)
    return _scalar(np.subtract(1.0, d))


def total_variation(p: ArrayLike, q: ArrayLike, *, check: bool = True) -> Any:
    r"""Total variation distance :math:`\tfrac12 \sum_k |p_k - q_k|`, in [0, 1] (0 = identical).

    Parameters
    ----------
    p, q : array_like, shape (..., K)
        Distributions; leading axes broadcast; rows with NaN give NaN.
    check : bool, default True
        Validate entries >= 0 and rows summing to 1.

    Returns
    -------
    ndarray or float
        The largest difference in probability the two distributions give any set of options.

    Notes
    -----
    .. math:: TV(P, Q) = \tfrac12 \sum_{k=1}^{K} |p_k - q_k| = \max_A |P(A) - Q(A)|.
    """
    p, q = _pair(p, q, check)
    d = np.asarray(np.abs(p - q).sum(-1))
    d *= 0.5
    np.clip(d, 0.0, 1.0, out=d)  # rows summing to 1 +/- round-off can give 1 + 1e-16
    return _scalar(d)


def tv_similarity(p: ArrayLike, q: ArrayLike, *, check: bool = True) -> Any:
    r"""Total-variation similarity :math:`1 - TV(P, Q)`, in [0, 1] (1 = identical).

    See :func:`total_variation`. Valid for nominal and ordinal items alike.
    """
    return _scalar(np.subtract(1.0, total_variation(p, q, check=check)))


def kl_divergence(p: ArrayLike, q: ArrayLike, *, eps: float = 1e-6, K: ArrayLike | None = None,
                  check: bool = True) -> Any:
    r"""Kullback-Leibler divergence :math:`KL(P \| Q)` in bits, with epsilon smoothing.

    A diagnostic, not a similarity: it is asymmetric and unbounded.

    Parameters
    ----------
    p, q : array_like, shape (..., K_max)
        Distributions (zero-padded beyond each item's K); leading axes broadcast; rows with NaN give NaN.
    eps : float, default 1e-6
        Smoothing mass added to each of the item's K options of **both** distributions before
        renormalising (see Notes). ``eps=0`` gives the unsmoothed divergence, which is ``inf`` when
        some :math:`q_k = 0 < p_k`.
    K : int or array_like of int, optional
        Number of options per item, broadcasting against the leading axes. Default: the length of the
        last axis. Padded options (beyond K) receive no smoothing mass, so padding changes nothing.
    check : bool, default True
        Validate entries >= 0, rows summing to 1 and zero mass beyond K.

    Returns
    -------
    ndarray or float
        KL in bits (base-2 logarithm), >= 0.

    Notes
    -----
    .. math::
        \tilde p_k = \frac{p_k + \varepsilon}{1 + K\varepsilon}, \quad
        \tilde q_k = \frac{q_k + \varepsilon}{1 + K\varepsilon}, \quad
        KL(P \| Q) = \sum_{k=1}^{K} \tilde p_k \log_2 \frac{\tilde p_k}{\tilde q_k}.

    Smoothing both sides (a mixture with the uniform distribution of weight
    :math:`K\varepsilon / (1 + K\varepsilon)`) keeps :math:`KL(P \| P) = 0` and is the same for
    either argument. Equal to ``scipy.stats.entropy(p~, q~, base=2)``.
    """
    if not (np.isscalar(eps) and np.isfinite(eps) and eps >= 0):
        raise ValueError(f"`eps` must be a finite number >= 0 (smoothing mass per option); got {eps!r}.")
    pa, qa = _pair(p, q, check)
    kmax = pa.shape[-1]
    k = _as_K(K, kmax, _lead_shape(pa, qa), [("p", pa), ("q", qa)], check)
    if eps > 0:
        if k is None:
            pa = (pa + eps) / (1 + kmax * eps)
            qa = (qa + eps) / (1 + kmax * eps)
        else:
            add = np.where(np.arange(kmax) < k[..., None], eps, 0.0)
            den = (1 + k * eps)[..., None]
            pa = (pa + add) / den
            qa = (qa + add) / den
    kl = np.asarray(_xlogx_ratio(pa, qa).sum(-1))
    kl /= _LN2
    np.maximum(kl, 0.0, out=kl)  # KL >= 0; terms of mixed sign can sum to -1e-16
    return _scalar(kl)


def normalized_entropy(p: ArrayLike, K: ArrayLike | None = None, *, check: bool = True) -> Any:
    r"""Shannon entropy divided by its maximum, :math:`H(P) / \log_2 K`, in [0, 1].

    Parameters
    ----------
    p : array_like, shape (..., K_max)
        Distributions, zero-padded beyond each item's K; rows with NaN give NaN.
    K : int or array_like of int, optional
        Number of options per item (broadcasts against the leading axes). Default: the last axis
        length. Pass it for padded items: the maximum entropy is that of K options, not K_max.
    check : bool, default True
        Validate entries >= 0, rows summing to 1 and zero mass beyond K.

    Returns
    -------
    ndarray or float
        0 = all mass on one option (consensus); 1 = uniform over the K options.

    Notes
    -----
    .. math:: \bar H(P) = \frac{-\sum_k p_k \log_2 p_k}{\log_2 K}, \quad 0 \log 0 = 0.

    A diagnostic for the entropy confound: distributional similarities reward high-entropy models
    against high-entropy groups.
    """
    p = _as_float(p, "p")
    if check:
        _check_dist(p, "p")
    kmax = p.shape[-1]
    k = _as_K(K, kmax, p.shape[:-1], [("p", p)], check)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.log2(p)
        t *= p
    np.copyto(t, 0.0, where=(p == 0))
    h = np.asarray(-t.sum(-1))
    h /= np.log2(kmax if k is None else k)
    return _scalar(np.clip(h, 0.0, 1.0))


def _positions(positions, kmax: int, k, lead) -> np.ndarray | None:
    """Validate option positions x_1 < ... < x_K (None = equal spacing)."""
    if positions is None:
        return None
    x = _as_float(positions, "positions")
    if x.shape[-1] != kmax:
        raise ValueError(
            f"`positions` must give one position per option on the last axis ({kmax}); got shape {x.shape}."
        )
    try:
        np.broadcast_shapes(x.shape[:-1], lead)
    except ValueError:
        raise ValueError(
            f"`positions` with shape {x.shape} does not broadcast against the distributions' leading axes {lead}."
        ) from None
    gaps = np.diff(x, axis=-1)
    used = np.ones(kmax - 1, bool) if k is None else np.arange(kmax - 1) < (k[..., None] - 1)
    bad = used & ~(gaps > 0)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        row = np.broadcast_to(x, (*bad.shape[:-1], kmax))[at[:-1]]
        raise ValueError(
            "`positions` must be finite and strictly increasing over each item's K options "
            f"(x_1 < ... < x_K); got {row.tolist()} (between options {at[-1] + 1} and {at[-1] + 2}). "
            "Give positions in canonical order."
        )
    return x


def w1_distance(p: ArrayLike, q: ArrayLike, K: ArrayLike | None = None, positions: ArrayLike | None = None, *,
                ordinal: ArrayLike | None = None, check: bool = True) -> Any:
    r"""Wasserstein-1 (earth mover's) distance on an ordered scale, in units of the positions.

    Parameters
    ----------
    p, q : array_like, shape (..., K_max)
        Distributions over ordered options (zero-padded beyond each item's K).
    K : int or array_like of int, optional
        Options per item, broadcasting against the leading axes. Default: the last axis length.
    positions : array_like, shape (..., K_max), optional
        Option positions :math:`x_1 < \dots < x_K`, broadcasting like the distributions. Default:
        equally spaced 0, 1, ..., K - 1 (so W1 is in scale steps).
    ordinal : bool or array_like of bool, optional
        Whether each item's scale is ordered; the result is NaN where False. Default: every item is
        taken as ordinal (the caller vouches for it).
    check : bool, default True
        Validate the distributions and K.

    Returns
    -------
    ndarray or float
        :math:`W_1 \ge 0`.

    Notes
    -----
    .. math:: W_1(P, Q) = \sum_{k=1}^{K-1} |F_P(k) - F_Q(k)| (x_{k+1} - x_k),

    with :math:`F` the cumulative distribution over canonical order. Equal to
    ``scipy.stats.wasserstein_distance(x, x, p, q)``.
    """
    p, q = _pair(p, q, check)
    w, _ = _w1(p, q, K, positions, check)
    return _scalar(_ordinal_mask(w, ordinal))


def _w1(p, q, K, positions, check):
    kmax = p.shape[-1]
    lead = _lead_shape(p, q)
    k = _as_K(K, kmax, lead, [("p", p), ("q", q)], check)
    x = _positions(positions, kmax, k, lead)
    d = np.cumsum(p - q, axis=-1)[..., :-1]  # F_P(k) - F_Q(k), k = 1..K_max - 1
    np.abs(d, out=d)
    if x is not None:
        d = d * np.diff(x, axis=-1)
    if k is not None:
        d = np.where(np.arange(kmax - 1) < (k[..., None] - 1), d, 0.0)
    return d.sum(-1), _span(x, k, kmax)


def _span(x, k, kmax: int):
    """Scale range x_K - x_1 of each item (K - 1 with equal spacing, x = None)."""
    if x is None:
        return (kmax if k is None else k) - 1
    if k is None:
        return x[..., -1] - x[..., 0]
    kk = np.broadcast_to(k, np.broadcast_shapes(k.shape, x.shape[:-1]))
    return np.take_along_axis(x, kk[..., None] - 1, axis=-1)[..., 0] - x[..., 0]


def w1_similarity(p: ArrayLike, q: ArrayLike, K: ArrayLike | None = None, positions: ArrayLike | None = None, *,
                  ordinal: ArrayLike | None = None, check: bool = True) -> Any:
    r"""Ordinal Wasserstein similarity :math:`1 - W_1 / (x_K - x_1)`, in [0, 1] (1 = identical).

    Only meaningful on ordered scales; the result is NaN where ``ordinal`` is False, so callers fall
    back to :func:`js_similarity` or :func:`tv_similarity` for nominal items.

    Parameters
    ----------
    p, q : array_like, shape (..., K_max)
        Distributions over ordered options (zero-padded beyond each item's K); rows with NaN give NaN.
    K : int or array_like of int, optional
        Options per item; broadcasts against the leading axes. Default: the last axis length.
    positions : array_like, shape (..., K_max), optional
        Option positions :math:`x_1 < \dots < x_K`; default equal spacing.
    ordinal : bool or array_like of bool, optional
        NaN where False. Default: all items treated as ordinal.
    check : bool, default True
        Validate the distributions and K.

    Returns
    -------
    ndarray or float
        0 = all mass at opposite ends of the scale; 1 = identical distributions.

    Notes
    -----
    .. math::
        S_W = 1 - \frac{\sum_{k=1}^{K-1} |F_P(k) - F_Q(k)| (x_{k+1} - x_k)}{x_K - x_1}

    (Santurkar et al. 2023, OpinionQA). Symmetric; unchanged when the scale is reversed for both.
    """
    p, q = _pair(p, q, check)
    w, span = _w1(p, q, K, positions, check)
    s = 1.0 - w / span
    return _scalar(_ordinal_mask(np.clip(s, 0.0, 1.0), ordinal))


def mean_position(p: ArrayLike, K: ArrayLike | None = None, positions: ArrayLike | None = None, *,
                  check: bool = True) -> Any:
    r"""Mean answer position on [0, 1]: :math:`\mu(P) = \sum_k p_k (k - 1)/(K - 1)`.

    Parameters
    ----------
    p : array_like, shape (..., K_max)
        Distributions over ordered options (zero-padded beyond each item's K); rows with NaN give NaN.
    K : int or array_like of int, optional
        Options per item; broadcasts against the leading axes. Default: the last axis length.
    positions : array_like, shape (..., K_max), optional
        Option positions; the mean is rescaled by :math:`(x_k - x_1)/(x_K - x_1)`. Default equal spacing.
    check : bool, default True
        Validate the distributions and K.

    Returns
    -------
    ndarray or float
        0 = all mass on the first option, 1 = all on the last. This is the unit of the between-group
        SD benchmark (:func:`between_group_sd`).

    Notes
    -----
    .. math:: \mu(P) = \sum_{k=1}^{K} p_k \frac{x_k - x_1}{x_K - x_1}, \quad x_k = k - 1 \text{ by default.}
    """
    p = _as_float(p, "p")
    if check:
        _check_dist(p, "p")
    return _scalar(np.clip(_mean_position(p, K, positions, check), 0.0, 1.0))


def _mean_position(p, K, positions, check):
    kmax = p.shape[-1]
    k = _as_K(K, kmax, p.shape[:-1], [("p", p)], check)
    x = _positions(positions, kmax, k, p.shape[:-1])
    if x is None:
        return (p @ np.arange(kmax, dtype=float)) / _span(x, k, kmax)
    rel = np.where(p == 0, 0.0, p * (x - x[..., :1]))  # padded positions may be anything (even NaN)
    return rel.sum(-1) / _span(x, k, kmax)


def mean_position_distance(p: ArrayLike, q: ArrayLike, K: ArrayLike | None = None, positions: ArrayLike | None = None,
                           *, ordinal: ArrayLike | None = None, check: bool = True) -> Any:
    r"""Distance between mean positions, :math:`|\mu(P) - \mu(Q)|`, in [0, 1] (Khan et al. 2025).

    Lossy (ignores dispersion) but interpretable; the same unit as :func:`between_group_sd`. NaN where
    ``ordinal`` is False. Parameters as in :func:`mean_position`.

    Notes
    -----
    .. math:: d_\mu(P, Q) = |\mu(P) - \mu(Q)| \le W_1(P, Q) / (x_K - x_1).
    """
    p, q = _pair(p, q, check)
    d = np.abs(_mean_position(p, K, positions, check) - _mean_position(q, K, positions, check))
    return _scalar(_ordinal_mask(d, ordinal))


def mean_position_similarity(p: ArrayLike, q: ArrayLike, K: ArrayLike | None = None,
                             positions: ArrayLike | None = None, *, ordinal: ArrayLike | None = None,
                             check: bool = True) -> Any:
    r"""Mean-position similarity :math:`1 - |\mu(P) - \mu(Q)|`, in [0, 1]; NaN where not ordinal."""
    d = mean_position_distance(p, q, K, positions, ordinal=ordinal, check=check)
    return _scalar(np.clip(np.subtract(1.0, d), 0.0, 1.0))


def brier_similarity(p: ArrayLike, q: ArrayLike, *, check: bool = True) -> Any:
    r"""Quadratic (Brier) similarity :math:`1 - \tfrac12 \sum_k (p_k - q_k)^2`, in [0, 1] (1 = identical).

    A polynomial of degree 2 in each distribution, so it has an exactly unbiased estimator from any
    number of sampled answers >= 2 (the U-statistic :math:`\sum_k n_k (n_k - 1) / (n (n - 1))` for
    :math:`\sum_k p_k^2`, which the first-order jackknife of :func:`finite_sample_similarity` gives
    exactly). Valid for nominal and ordinal items; padding changes nothing.

    Notes
    -----
    .. math:: S_{B}(P, Q) = 1 - \tfrac12 \lVert P - Q \rVert_2^2 \in [0, 1],

    since :math:`\lVert P - Q \rVert_2^2 \le \lVert P - Q \rVert_1 \le 2`.
    """
    p, q = _pair(p, q, check)
    d = np.asarray(((p - q) ** 2).sum(-1))
    return _scalar(np.clip(1.0 - 0.5 * d, 0.0, 1.0))


def cramer_similarity(p: ArrayLike, q: ArrayLike, K: ArrayLike | None = None, *, ordinal: ArrayLike | None = None,
                      check: bool = True) -> Any:
    r"""Cramér similarity for ordered scales: 1 - the Cramér distance between the answer positions, in [0, 1].

    With options at equally spaced positions :math:`(k - 1)/(K - 1)` on [0, 1],

    .. math:: S_{C}(P, Q) = 1 - \frac{1}{K - 1} \sum_{k=1}^{K-1} \big(F_P(k) - F_Q(k)\big)^2,

    where :math:`F` is the cumulative distribution: the integral of the squared difference of the CDFs
    (half the squared energy distance, :func:`scipy.stats.energy_distance`). Like W1 it respects the
    order of the options; unlike W1 it is a polynomial of degree 2 in each distribution, so its value for
    the answer distribution has an exactly unbiased estimator from two or more sampled answers. 1 =
    identical, 0 = all mass on opposite ends. NaN where ``ordinal`` is False.
    """
    p, q = _pair(p, q, check)
    kmax = p.shape[-1]
    k = _as_K(K, kmax, _lead_shape(p, q), [("p", p), ("q", q)], check)
    d = (np.cumsum(p, -1) - np.cumsum(q, -1))[..., :-1]  # beyond an item's K both CDFs are 1
    c = np.asarray((d * d).sum(-1)) / ((kmax if k is None else k) - 1.0)
    return _scalar(_ordinal_mask(np.clip(1.0 - c, 0.0, 1.0), ordinal))


def _argmax_sets(a: np.ndarray, tie_tol: float) -> np.ndarray:
    """Boolean mask of the options within ``tie_tol`` of the row maximum (all False for NaN rows)."""
    with np.errstate(invalid="ignore"):
        return a >= a.max(-1, keepdims=True) - tie_tol


def plurality_agreement(p: ArrayLike, q: ArrayLike, *, tie_tol: float = 1e-9, check: bool = True) -> Any:
    r"""Whether the modal (plurality) options agree, :math:`1[\arg\max P = \arg\max Q]`, in [0, 1].

    Parameters
    ----------
    p, q : array_like, shape (..., K)
        Distributions; leading axes broadcast; rows with NaN give NaN.
    tie_tol : float, default 1e-9
        Options whose share is within ``tie_tol`` of a row's maximum are tied for the plurality.
    check : bool, default True
        Validate entries >= 0 and rows summing to 1.

    Returns
    -------
    ndarray or float
        1 or 0 without ties. With ties, the overlap (Jaccard index) of the two sets of tied modal
        options (see Notes): e.g. P tied on options 1 and 2, Q modal on option 1 gives 1/2; P tied
        on {1, 2}, Q on {2, 3} gives 1/3; equal tie sets give 1.

    Notes
    -----
    With :math:`A_P = \{k : p_k \ge \max_j p_j - \text{tol}\}` and :math:`A_Q` likewise,

    .. math:: \text{agree}(P, Q) = \frac{|A_P \cap A_Q|}{|A_P \cup A_Q|}.

    Without ties this is :math:`1[\arg\max P = \arg\max Q]`. Unlike ``np.argmax``, which takes the
    first tied option (so the result would depend on option order), this rule is symmetric, gives
    :math:`\text{agree}(P, P) = 1`, and is unchanged by relabelling the options. (Breaking ties at
    random would give :math:`|A_P \cap A_Q| / (|A_P||A_Q|)`, which is below 1 for :math:`P = Q` with
    ties, so it is not used.)
    """
    p, q = _pair(p, q, check)
    a = _argmax_sets(p, tie_tol)
    b = _argmax_sets(q, tie_tol)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (a & b).sum(-1) / (a | b).sum(-1)
    missing = np.isnan(p).any(-1) | np.isnan(q).any(-1)
    return _scalar(np.where(missing, np.nan, out))


def mass_on_model_answer(p: ArrayLike, q: ArrayLike, *, tie_tol: float = 1e-9, check: bool = True) -> Any:
    r"""Human share on the model's modal answer, :math:`Q(\arg\max P)`, in [0, 1].

    Parameters
    ----------
    p : array_like, shape (..., K)
        Model distribution (its plurality option is "the model's answer").
    q : array_like, shape (..., K)
        Human distribution.
    tie_tol : float, default 1e-9
        Options of ``p`` within ``tie_tol`` of its maximum are tied; the result is then the mean of
        ``q`` over the tied options (the expectation under random tie breaking).
    check : bool, default True
        Validate the distributions.

    Returns
    -------
    ndarray or float
        Asymmetric. For a one-hot model this is :math:`h_k`, the only quantity JS similarity depends on.

    Notes
    -----
    .. math:: m(P, Q) = \frac{1}{|A_P|} \sum_{k \in A_P} q_k.
    """
    p, q = _pair(p, q, check)
    a = _argmax_sets(p, tie_tol)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(a, q, 0.0).sum(-1) / a.sum(-1)
    out = np.where(np.isnan(p).any(-1), np.nan, out)
    return _scalar(out)


# --------------------------------------------------------------------------------------------------
# metric registry: common signature f(p, q, K=None, ordinal=None) -> similarity in [0, 1]
# --------------------------------------------------------------------------------------------------
def _m_js(p, q, K=None, ordinal=None, *, check=True):
    """1 - Jensen-Shannon distance (base 2); any scale."""
    return js_similarity(p, q, check=check)


def _m_tv(p, q, K=None, ordinal=None, *, check=True):
    """1 - total variation; any scale."""
    return tv_similarity(p, q, check=check)


def _m_w1(p, q, K=None, ordinal=None, *, check=True):
    """1 - W1 / (K - 1), equal spacing; NaN on nominal items."""
    return w1_similarity(p, q, K, ordinal=ordinal, check=check)


def _m_mean_position(p, q, K=None, ordinal=None, *, check=True):
    """1 - |mu(P) - mu(Q)|; NaN on nominal items."""
    return mean_position_similarity(p, q, K, ordinal=ordinal, check=check)


def _m_brier(p, q, K=None, ordinal=None, *, check=True):
    """1 - half the squared Euclidean distance; any scale; quadratic (unbiased from 2 answers)."""
    return brier_similarity(p, q, check=check)


def _m_cramer(p, q, K=None, ordinal=None, *, check=True):
    """1 - Cramér distance on [0, 1] positions; NaN on nominal items; quadratic (unbiased from 2 answers)."""
    return cramer_similarity(p, q, K, ordinal=ordinal, check=check)


def _m_plurality(p, q, K=None, ordinal=None, *, check=True):
    """1[argmax P = argmax Q] (ties: overlap of the modal sets); any scale."""
    return plurality_agreement(p, q, check=check)


#: Similarity functions by name, each ``f(p, q, K=None, ordinal=None, *, check=True)`` returning a
#: similarity in [0, 1] (higher = closer). ``"w1"``, ``"mean_position"`` and ``"cramer"`` give NaN where
#: ``ordinal`` is False; the others ignore ``K`` and ``ordinal``, as padding does not change them.
def _m_agreement(p, q, K=None, ordinal=None, *, check=True):
    """Agreement probability sum_k p_k q_k (a random answer matches a random respondent); any scale."""
    return agreement_probability(p, q, check=check)


METRICS: dict[str, Callable] = {
    "js": _m_js,
    "w1": _m_w1,
    "tv": _m_tv,
    "mean_position": _m_mean_position,
    "plurality": _m_plurality,
    "agreement": _m_agreement,
    "brier": _m_brier,
    "cramer": _m_cramer,
}

#: Metrics whose per-item similarity is linear in each distribution: the plug-in value from n sampled
#: answers is unbiased for the value of the answer distribution at any n >= 1, so they need no
#: finite-sample correction. Every other metric in :data:`METRICS` is nonlinear (through |.|, a square
#: root, logarithms or an argmax) and is bias-corrected by :func:`finite_sample_similarity`.
LINEAR_METRICS = frozenset({"agreement"})

#: Fewest answers per cell from which a nonlinear metric is estimated for the answer distribution.
#: The jackknife needs two; below these counts its measured residual bias (docs/resampling.md) is as
#: large as the interval, so cells with fewer answers are reported as not estimable instead. JS needs
#: 10: from n answers the expectation of any estimator is a polynomial of degree n in p, and the best
#: such approximation of the JS similarity misses it by 0.032-0.054 (n = 5) and 0.015-0.026 (n = 9)
#: somewhere on the simplex (K = 4), against a standard error of a 40-item mean of 0.03-0.06. For
#: models not close to the human distribution the second-order jackknife covered 0.92-0.93 at 5
#: answers and 0.92-0.95 at 10; near it, no count up to 50 is enough for the corrected value itself, so
#: :func:`robustalign.alignment` widens the upper end there (NEAR_IDENTITY_METRICS; docs/resampling.md,
#: "Why JS needs 10 answers per cell" and "Near identity"). TV has a
#: kink in every option (p_k = h_k): for a model whose shares lie near the human ones its corrected
#: value kept a bias of -0.069 at 5 answers and -0.021 at 15 (0.7 standard deviations of a 40-item
#: mean; coverage 0.51 and 0.86), -0.008 at 30 (coverage 0.92-0.94), hence 30. W1 (one kink per
#: option boundary of the CDF) covered 0.92-0.94 from 5 answers.
MIN_ANSWERS = {"js": 10, "tv": 30, "w1": 5, "mean_position": 5, "plurality": 5, "brier": 2, "cramer": 2}

#: Metrics to name when a cell has too few answers for the one asked for: exactly unbiased from this
#: many answers (agreement is linear; brier and cramer are quadratic, see QUADRATIC_METRICS).
FEW_ANSWER_METRICS = {"agreement": 1, "brier": 2, "cramer": 2}

#: Nonlinear metrics that are polynomials of degree 2 in each distribution: the first-order jackknife
#: is their U-statistic, exactly unbiased for the answer distribution from 2 answers per cell (and 2
#: respondents). Every other nonlinear metric keeps a residual bias that shrinks with n.
QUADRATIC_METRICS = frozenset({"brier", "cramer"})
MIN_ANSWERS_NONLINEAR = 2


def agreement_probability(p: ArrayLike, q: ArrayLike, *, check: bool = True) -> Any:
    r"""Probability that a random answer from P agrees with a random draw from Q, :math:`\sum_k p_k q_k`.

    Linear in each distribution, so the value computed from sampled answers (and from a sampled human
    reference) is an unbiased estimate of the value of the underlying distributions at any number of
    answers, one included. In [0, 1]; unlike JS or TV it is not maximal at P = Q but when P puts all
    its mass on Q's plurality option, so read it as "how often would a random answer match a random
    respondent", not as a distance.

    >>> float(agreement_probability([0.5, 0.5], [0.8, 0.2]))
    0.5
    """
    p, q = _pair(p, q, check)
    return _scalar(np.asarray((p * q).sum(-1)))


def _deleted(x: np.ndarray, n: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Distributions left after deleting ``d`` (1 or 2) of the n observations, and their frequencies.

    Deleting one observation with option k leaves (n x - e_k) / (n - 1), for a share x_k of the
    n deletions; deleting an ordered pair (k, l) leaves (n x - e_k - e_l) / (n - 2), for a share
    x_k (n x_l - [k = l]) / (n - 1). Non-integer counts (weighted survey shares times n) are clipped at
    zero and renormalised. Shapes (..., K[, K], K) and (..., K[, K]).
    """
    kmax = x.shape[-1]
    eye = np.eye(kmax)
    if d == 1:
        cnt = n[..., None, None] * x[..., None, :] - eye
        w = x
    else:
        cnt = n[..., None, None, None] * x[..., None, None, :] - eye[:, None, :] - eye[None, :, :]
        w = x[..., :, None] * np.maximum(n[..., None, None] * x[..., None, :] - eye, 0.0) / (n[..., None, None] - 1)
    cnt = np.maximum(cnt, 0.0)
    tot = cnt.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.where(tot > 0, cnt / np.where(tot > 0, tot, 1.0), 1.0 / kmax)
    return dist, w


def _subsample_mean(f: Callable, x, other, n, K, ordinal, x_first: bool, d: int) -> np.ndarray:
    """Mean of the metric over all delete-``d`` subsamples of the side ``x`` (closed form over options)."""
    dist, w = _deleted(x, n, d)
    pad = (None,) * d
    o = other[(..., *pad, slice(None))]
    k = None if K is None else np.asarray(K)[(..., *pad)]
    ordl = None if ordinal is None else np.asarray(ordinal)[(..., *pad)]
    s = np.asarray(f(dist, o, K=k, ordinal=ordl, check=False) if x_first
                   else f(o, dist, K=k, ordinal=ordl, check=False), float)
    with np.errstate(invalid="ignore"):
        return np.where(w > 0, w * s, 0.0).sum(axis=tuple(range(-d, 0)))


def _jackknife_shift(f: Callable, x, other, n, s0, K, ordinal, x_first: bool, order: int) -> np.ndarray:
    """Bias estimate of the plug-in from the side ``x`` (n observations): plug-in minus extrapolation.

    Order 1 is the delete-one jackknife, (n - 1)(mean of leave-one-out values - full value). Order 2
    (n >= 3) extrapolates the means over subsamples of sizes n, n - 1 and n - 2 to infinite size,
    assuming a bias a/m + b/m^2 (Richardson; the second-order generalised jackknife of Schucany, Gray
    & Owen 1971). Rows with n < 2 or without a finite n get 0.
    """
    kmax = x.shape[-1]
    lead = np.broadcast_shapes(x.shape[:-1], other.shape[:-1], np.shape(n), np.shape(s0))
    x = np.broadcast_to(x, (*lead, kmax))
    other = np.broadcast_to(other, (*lead, kmax))
    n = np.broadcast_to(np.asarray(n, float), lead)
    ok = np.isfinite(n) & (n >= 2)
    m = np.where(ok, n, 3.0)
    s1 = _subsample_mean(f, x, other, m, K, ordinal, x_first, 1)
    first = (m - 1.0) * (s1 - s0)  # plug-in minus the order-1 extrapolation n s0 - (n - 1) s1
    if order >= 2 and (ok & (n >= 3)).any():
        s2 = _subsample_mean(f, x, other, np.maximum(m, 3.0), K, ordinal, x_first, 2)
        # Lagrange weights at 1/m = 1/n, 1/(n-1), 1/(n-2), evaluated at 0
        w0, w1, w2 = m * m / 2.0, -(m - 1.0) * (m - 1.0), (m - 2.0) * (m - 2.0) / 2.0
        second = s0 - (w0 * s0 + w1 * s1 + w2 * s2)
        first = np.where(n >= 3, second, first)
    return np.where(ok, first, 0.0)


#: Order of the jackknife per metric (default 1). JS is smooth away from P = Q but strongly curved
#: through its logarithms and square root: at 5 answers the first-order jackknife leaves a bias of
#: about -0.03, the second order about 0.005, at a 20-30% larger within-cell spread. For TV and W1
#: (piecewise linear) the second order adds spread without removing bias. Plurality agreement is an
#: indicator: a jackknife of it adds spread without removing the bias near ties (order 0 = plug-in).
JACKKNIFE_ORDER = {"js": 2, "plurality": 0}


def finite_sample_similarity(metric: str | Callable[..., Any], p: ArrayLike, q: ArrayLike, n_p: ArrayLike,
                             n_q: ArrayLike | None = None, *, K: ArrayLike | None = None,
                             ordinal: ArrayLike | None = None, order: int | None = None,
                             min_n: int | None = None) -> np.ndarray:
    r"""Similarity of the distributions behind sampled ``p`` (n_p answers) and ``q`` (n_q respondents).

    The plug-in value :math:`S(\hat p_n, \hat q_m)` of a nonlinear metric is biased for
    :math:`S(p, q)`, by an amount that depends on n and on how peaked p is (JS similarity from 15
    answers is typically 0.05-0.10 too low). This returns the two-sample delete-one jackknife
    (Quenouille; Arvesen 1969), one bias term per side (first order shown; see ``order``):

    .. math::
        \tilde S = S(\hat p, \hat q) - (n - 1)\,[\bar S_{(\cdot)}^{p} - S(\hat p, \hat q)]
                               - (m - 1)\,[\bar S_{(\cdot)}^{q} - S(\hat p, \hat q)],

    where :math:`\bar S_{(\cdot)}^{p} = \sum_k \hat p_k S((n\hat p - e_k)/(n - 1), \hat q)` is
    the mean over the n leave-one-answer-out values (closed form over the options, no loop over
    answers). For metrics that are smooth at (p, q) the bias falls from O(1/n) to O(1/n^2). Where the
    metric has a kink (TV, W1 and JS near p = q, plurality near a tie between the top two options)
    a bias of order 1/sqrt(n) remains there, about half of the plug-in's; it is small when p is not
    close to q (see docs/resampling.md for measured coverage). The estimate is not clipped to [0, 1]:
    clipping would bring the bias back.

    Parameters
    ----------
    metric : str or callable
        A name in :data:`METRICS` or ``f(p, q, K=None, ordinal=None, check=False)``.
    p, q : array_like (..., K)
        Observed shares: the model's answers (counts / n_p) and the human reference.
    n_p : array_like
        Answers behind each row of ``p`` (broadcasts against the leading axes). Rows with fewer than
        ``min_n`` answers give NaN for a nonlinear metric: one answer says nothing about the spread of
        p, so no estimate without a model of p exists (use a metric in :data:`LINEAR_METRICS`, or pool
        cells). ``np.inf`` = p is known exactly.
    n_q : array_like, optional
        Respondents behind each row of ``q``; NaN or ``np.inf`` (or None) = exact, no correction.
    K, ordinal
        As for the metric.
    order : {1, 2}, optional
        Jackknife order (both sides); default :data:`JACKKNIFE_ORDER` (2 for JS, 1 otherwise).
        Order 2 applies from 3 answers; cells with 2 answers get the first order. 0 = no correction
        (plurality, whose indicator a jackknife cannot correct near ties).
    min_n : int, optional
        Fewest answers for an estimate; default :data:`MIN_ANSWERS` (2 for the metrics in
        :data:`QUADRATIC_METRICS`, whose first-order jackknife is exactly unbiased; 10 for JS, whose
        kink at p = q leaves a bias no estimator from fewer answers removes; 30 for TV; 5 for the others).

    Returns
    -------
    ndarray
        The corrected similarity; linear metrics are returned as computed (already unbiased).
    """
    name = metric if isinstance(metric, str) else None
    f = METRICS[metric] if isinstance(metric, str) else metric
    p = _as_float(p, "p")
    q = _as_float(q, "q")
    s0 = np.asarray(f(p, q, K=K, ordinal=ordinal, check=False), float)
    if name in LINEAR_METRICS:
        return s0
    n_p = np.asarray(n_p, float)
    if (n_p < 1).any():
        raise ValueError(f"`n_p` must be >= 1 answers per row; got {float(n_p[n_p < 1].ravel()[0])!r}.")
    if order is None:
        order = JACKKNIFE_ORDER.get(name or "", 1)
    if min_n is None:
        min_n = MIN_ANSWERS.get(name or "", MIN_ANSWERS_NONLINEAR)
    out = s0
    if order > 0:
        out = s0 - _jackknife_shift(f, p, q, n_p, s0, K, ordinal, True, order)
        if n_q is not None:  # the same order on the human side (small surveys are as curved)
            out = out - _jackknife_shift(f, q, p, np.asarray(n_q, float), s0, K, ordinal, False, order)
    return np.where(np.broadcast_to(n_p, out.shape) < min_n, np.nan, out)


#: Similarity metrics whose maximum (1, at P = Q) is a kink: near it the bias of the corrected value
#: is of order 1/sqrt(n) and no per-cell correction removes it (docs/resampling.md, "Near identity").
#: For these :func:`robustalign.alignment` tests identity per scored unit (:func:`identity_chi_square`)
#: and, where identity is not rejected, reads the upper end of the interval as 1; for JS, items not
#: distinguishable from identity on their own add :func:`identity_bias_bound` (JS) or the exact
#: :func:`tv_identity_bias_bound` (TV: the jackknife's residual at the kink is erratic in n, so it is
#: computed, not approximated).
NEAR_IDENTITY_METRICS = frozenset({"js", "tv"})


def identity_chi_square(p: ArrayLike, q: ArrayLike, n_p: ArrayLike,
                        n_q: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Pearson chi-square of "the distribution behind ``p`` equals the one behind ``q``", row by row.

    ``p`` holds the shares of ``n_p`` sampled answers, ``q`` those of ``n_q`` respondents (None, NaN or
    ``np.inf``: exact shares). With ``q`` exact this is the goodness-of-fit statistic
    :math:`X^2 = \sum_k (c_k - n q_k)^2 / (n q_k)` (``scipy.stats.chisquare``), with ``p`` exact the same
    with the roles swapped, and with both sampled the homogeneity statistic of the 2 x K table
    (``scipy.stats.chi2_contingency`` without continuity correction). Options with no mass on either
    side are left out of the degrees of freedom; an answer on an option the exact side gives 0 makes
    the statistic infinite (identity is impossible).

    Returns
    -------
    stat, df, var : ndarray
        The statistic, its degrees of freedom (options used - 1) and its exact variance under identity
        when one side is exact, :math:`2(K - 1) + (\sum_k 1/q_k - K^2 - 2K + 2)/n` (the exact mean is
        ``df``); with both sides sampled the asymptotic ``2 df``. Rows with both sides exact give NaN.
        Sums over items are referred to a scaled chi-square with these moments
        (:func:`identity_p_value`).
    """
    p = _as_float(p, "p")
    q = _as_float(q, "q")
    lead = _lead_shape(p, q)
    p, q = np.broadcast_to(p, (*lead, p.shape[-1])), np.broadcast_to(q, (*lead, q.shape[-1]))
    n = np.broadcast_to(np.asarray(n_p, float), lead)
    m = np.broadcast_to(np.asarray(np.nan if n_q is None else n_q, float), lead)
    fin_p, fin_q = np.isfinite(n), np.isfinite(m)
    # one side exact: goodness of fit of the sampled side (x, with k answers) against the exact one (e)
    x = np.where(fin_p[..., None], p, q)
    e = np.where(fin_p[..., None], q, p)
    k = np.where(fin_p, n, m)
    with np.errstate(invalid="ignore", divide="ignore"):
        used = e > 0
        dev = np.where(used, (x - e) ** 2 / np.where(used, e, 1.0), np.where(x > 0, np.inf, 0.0))
        stat = k * dev.sum(-1)
        kk = used.sum(-1).astype(float)
        inv = np.where(used, 1.0 / np.where(used, e, 1.0), 0.0).sum(-1)
        var = 2.0 * (kk - 1.0) + (inv - kk**2 - 2.0 * kk + 2.0) / k
        df = kk - 1.0
        # both sampled: homogeneity of the 2 x K table, pooled shares
        both = fin_p & fin_q
        if both.any():
            pool = (n[..., None] * p + m[..., None] * q) / (n + m)[..., None]
            use2 = pool > 0
            den = np.where(use2, pool, 1.0)
            h2 = (n * m / (n + m)) * np.where(use2, (p - q) ** 2 / den, 0.0).sum(-1)
            df2 = use2.sum(-1) - 1.0
            stat, df, var = np.where(both, h2, stat), np.where(both, df2, df), np.where(both, 2.0 * df2, var)
    none = ~fin_p & ~fin_q
    return tuple(np.where(none, np.nan, a) for a in (stat, df, var))  # type: ignore[return-value]


def identity_bias_bound(df: ArrayLike, n: ArrayLike) -> np.ndarray:
    r"""Bound on the bias of the corrected JS similarity of one cell at identity (P = Q), per row.

    At P = Q the plug-in JS distance from ``n`` answers (effective ``n m / (n + m)`` with ``m`` sampled
    respondents) is :math:`\sqrt{X^2 / (8 n \ln 2)}` to first order, with :math:`X^2 \sim \chi^2_{df}`
    the chi-square of identity, so its expectation is
    :math:`\sqrt 2\,\Gamma((df + 1)/2) / \Gamma(df/2) / \sqrt{8 n \ln 2}` (0.214 at 10 answers and 4
    options). The second-order jackknife removes a little more than half of it (a bias of 0.067, 0.069 and
    0.039 remained at 10, 15 and 50 answers in docs/resampling.md); this returns half of the plug-in's,
    the allowance :func:`robustalign.alignment` adds per item that may sit at the kink.
    """
    from scipy.special import gammaln

    df, n = np.asarray(df, float), np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        lead = np.sqrt(2.0) * np.exp(gammaln((df + 1.0) / 2.0) - gammaln(np.where(df > 0, df, 1.0) / 2.0))
        out = 0.5 * lead / np.sqrt(8.0 * n * _LN2)
    return np.where((df > 0) & (n > 0), out, 0.0)


def _binom_pmf(x: np.ndarray, n: int, p: np.ndarray) -> np.ndarray:
    """Binomial probabilities of the counts ``x`` (last axis) for every ``p``: shape (*p.shape, len(x))."""
    from scipy.special import gammaln, xlog1py, xlogy

    c = gammaln(n + 1.0) - gammaln(x + 1.0) - gammaln(n - x + 1.0)
    pp = np.asarray(p, float)[..., None]
    return np.exp(c + xlogy(x, pp) + xlog1py(n - x, -pp))


def _tv_coordinate_bias(n: int, m: float, p: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Bias of the jackknifed |p_hat_k - h_hat_k| (one option of TV) for n answers, p_hat = X / n.

    X ~ Bin(n, p); with ``m`` finite the human share is Y / m, Y ~ Bin(m, h), and the correction is the
    two-sample one of :func:`finite_sample_similarity`. The jackknifed distance is
    (n + m - 1) D - (n - 1) L_p - (m - 1) L_q, where the mean of the leave-one-out values on a side has the
    expectation of the plug-in from one fewer answer on that side, so the bias is
    (n + m - 1) e(n, m) - (n - 1) e(n - 1, m) - (m - 1) e(n, m - 1) - |p - h| with
    e(a, b) = E|X_a / a - Y_b / b| summed exactly over the binomials (one-sample: e(a) = E|X_a / a - h|).
    """
    p, h = np.broadcast_arrays(np.asarray(p, float), np.asarray(h, float))

    def e(a: int, b: int | None) -> np.ndarray:
        x = np.arange(a + 1.0)
        wx = _binom_pmf(x, a, p)
        if b is None:
            return (wx * np.abs(x / a - h[..., None])).sum(-1)
        # E|U - V| = integral of F_U (1 - F_V) + F_V (1 - F_U): O(a + b) per point on the merged lattice
        y = np.arange(b + 1.0)
        wy = _binom_pmf(y, b, h)
        z = np.concatenate([x / a, y / b])
        order = np.argsort(z, kind="stable")
        fu = np.cumsum(np.concatenate([wx, np.zeros_like(wy)], -1)[..., order], -1)
        fv = np.cumsum(np.concatenate([np.zeros_like(wx), wy], -1)[..., order], -1)
        return ((fu + fv - 2.0 * fu * fv)[..., :-1] * np.diff(z[order])).sum(-1)

    if not np.isfinite(m):
        out = n * e(n, None) - (n - 1) * e(n - 1, None)
    else:
        mm = int(m)
        out = (n + mm - 1) * e(n, mm) - (n - 1) * e(n - 1, mm) - (mm - 1) * e(n, mm - 1)
    return out - np.abs(p - h)


#: Largest number of respondents for which :func:`tv_identity_bias_bound` sums the two-sample bias
#: exactly (the cost of each point of the search grows with answers + respondents); larger surveys are
#: searched along p = q with the human side's own jackknife term left out, which was conservative (1.7
#: times the exact bound at 100-200 respondents; docs/resampling.md).
TV_TWO_SAMPLE_MAX = 200


def tv_identity_bias_bound(q: ArrayLike, n: ArrayLike, n_q: ArrayLike | None = None, *,
                           p_low: ArrayLike | None = None, p_high: ArrayLike | None = None,
                           grid: int = 41) -> tuple[np.ndarray, np.ndarray]:
    r"""Bounds on the bias of the corrected TV similarity of one cell, per row, computed exactly.

    The TV similarity is :math:`1 - \tfrac12 \sum_k |p_k - q_k|` and its delete-one jackknife
    (:func:`finite_sample_similarity`) is a sum over the options of the jackknife of
    :math:`|\hat p_k - \hat q_k|`, each a function of one binomial count (deleting an answer of another
    option changes that share only through the common divisor n - 1). So the bias of the corrected
    value is :math:`-\tfrac12 \sum_k \beta(n, p_k, q_k)`, with :math:`\beta` the bias of one
    jackknifed absolute difference, summed exactly over the binomial(s). It is largest at the kink
    p_k = q_k and erratic in n (the lattice of counts: 0 to the whole of the plug-in's
    :math:`E|\hat p_k - p_k|`). This returns the supremum over p_k in ``[p_low, p_high]`` (default: all
    of [0, 1]), option by option, so it holds whatever the other options' shares are.

    Parameters
    ----------
    q : array_like (..., K)
        The human shares (exact, or of ``n_q`` respondents).
    n : array_like
        Answers per row (integers >= 2; other rows give 0).
    n_q : array_like, optional
        Respondents per row; NaN, ``np.inf`` or None = exact shares. With a sampled side the supremum
        is taken along p_k = q_k (where the one-sample shortfall is largest) within 3 standard errors of
        the survey share and the ``[p_low, p_high]`` range, for the two-sample jackknife (above
        :data:`TV_TWO_SAMPLE_MAX` respondents for the one-sample one, conservatively), and ``low`` is 0.
    p_low, p_high : array_like (..., K), optional
        Range of the model's share of each option (e.g. confidence limits).
    grid : int
        Points of the first search over p_k (half on [0, 1], half within 6 standard errors of q_k),
        each extreme then refined three times on a finer grid (to about 1e-9 of the supremum).

    Returns
    -------
    low, high : ndarray
        ``high``: the most by which the expected corrected similarity can fall below the true one,
        :math:`\tfrac12 \sum_k \max(0, \sup \beta)` (the allowance above the interval);
        ``low``: the most by which it can exceed it, :math:`\tfrac12 \sum_k \max(0, \sup -\beta)`.
    """
    q = _as_float(q, "q")
    lead = np.broadcast_shapes(q.shape[:-1], np.shape(n), () if n_q is None else np.shape(n_q))
    q = np.broadcast_to(q, (*lead, q.shape[-1]))
    n = np.broadcast_to(np.asarray(n, float), lead)
    m = np.broadcast_to(np.asarray(np.inf if n_q is None else n_q, float), lead)
    lo = np.broadcast_to(np.asarray(0.0 if p_low is None else p_low, float), q.shape)
    hi = np.broadcast_to(np.asarray(1.0 if p_high is None else p_high, float), q.shape)
    up, down = np.zeros(lead), np.zeros(lead)
    ok = np.isfinite(n) & (n >= 2)
    m = np.where(np.isfinite(m), np.round(m), np.inf)
    half = max(grid // 2, 3)
    for nn, mm in {(int(a), float(b)) for a, b in zip(n[ok].ravel(), m[ok].ravel(), strict=True)}:
        sel = ok & (n == nn) & ((m == mm) | (np.isinf(m) & np.isinf(mm)))
        # one search per distinct (share, range) of an option: rows share their human side across models
        trip, inv = np.unique(np.stack([q[sel], lo[sel], hi[sel]], -1).reshape(-1, 3), axis=0, return_inverse=True)
        h, a, b = trip[:, 0], trip[:, 1], trip[:, 2]  # (options,)
        along = np.isfinite(mm) and mm >= 2
        two = along and mm <= TV_TWO_SAMPLE_MAX
        if along:  # along p = q, over the human share's range (3 standard errors of the survey)
            sq = 3.0 * np.sqrt(np.maximum(h * (1.0 - h), 1.0 / mm) / mm)
            a, b = np.maximum(a, h - sq), np.minimum(b, h + sq)
        sd = np.sqrt(np.maximum(h * (1.0 - h), 1.0 / nn) / nn)
        t = np.concatenate([np.broadcast_to(np.linspace(0.0, 1.0, half), (*h.shape, half)),
                            h[..., None] + sd[..., None] * np.linspace(-6.0, 6.0, half), h[..., None]], -1)
        t = np.clip(t, a[..., None], np.maximum(a, b)[..., None])
        top, bottom = _refined_extremes(nn, mm if two else np.inf, t, h, along, a, np.maximum(a, b))
        shape = (int(sel.sum()), q.shape[-1])
        up[sel] = 0.5 * np.maximum(top, 0.0)[inv.reshape(-1)].reshape(shape).sum(-1)
        if not along:  # along p = q the search says nothing about over-correction off that line: no bound
            down[sel] = 0.5 * np.maximum(-bottom, 0.0)[inv.reshape(-1)].reshape(shape).sum(-1)
    return down, up


def _refined_extremes(n: int, m: float, t: np.ndarray, h: np.ndarray, along: bool, a: np.ndarray,
                      b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest and smallest coordinate bias over the points ``t`` (last axis), each refined three times on
    21 points within one spacing of the optimum so far (the bias is a polynomial of degree n in p)."""

    def bias(x: np.ndarray) -> np.ndarray:
        return _tv_coordinate_bias(n, m, x, x if along else np.broadcast_to(h[..., None], x.shape))

    beta0 = bias(t)
    gap0 = np.max(np.diff(np.sort(t, -1), axis=-1), -1, initial=0.0)  # the widest spacing of the search
    out = []
    for pick in (np.argmax, np.argmin):
        x, beta, gap = t, beta0, gap0
        for _ in range(3):  # zoom in three times, 21 points within one spacing of the best point
            best = np.take_along_axis(x, pick(beta, -1)[..., None], -1)
            x = np.clip(best + gap[..., None] * np.linspace(-1.0, 1.0, 21), a[..., None], b[..., None])
            x = np.concatenate([best, x], -1)
            beta, gap = bias(x), gap / 10.0
        out.append(np.take_along_axis(beta, pick(beta, -1)[..., None], -1)[..., 0])
    return out[0], out[1]


def identity_p_value(stat: ArrayLike, df: ArrayLike, var: ArrayLike) -> np.ndarray:
    """P-value of identity from a sum of per-item chi-square statistics, their df and null variances.

    The sum has mean ``df`` and variance ``var`` under identity (:func:`identity_chi_square`); it is
    referred to the scaled chi-square ``a * chi2(b)`` with those two moments (Satterthwaite 1946:
    ``a = var / (2 df)``, ``b = 2 df^2 / var``), which with ``var = 2 df`` is the plain chi-square. At 10
    answers per cell the plain chi-square is anti-conservative for items whose human distribution has
    small shares (the variance term in 1/q); the moment match holds the size (tests/test_js_near_identity.py).
    NaN where ``df`` is not positive.
    """
    from scipy import stats

    stat, df, var = (np.asarray(a, float) for a in (stat, df, var))
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(var > 0, var / (2.0 * df), 1.0)
        b = np.where(var > 0, 2.0 * df**2 / var, df)
        out = stats.chi2.sf(stat / a, b)
    return np.where(df > 0, out, np.nan)


# --------------------------------------------------------------------------------------------------
# profile (cross-item) correlations
# --------------------------------------------------------------------------------------------------
def _tie_blocks(new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last sorted index of the tie block of each entry; ``new`` marks where a block starts."""
    n = new.shape[-1]
    idx = np.broadcast_to(np.arange(n), new.shape)
    last = np.ones(new.shape, bool)
    last[:, :-1] = new[:, 1:]
    start = np.maximum.accumulate(np.where(new, idx, 0), axis=-1)
    end = np.minimum.accumulate(np.where(last, idx, n - 1)[:, ::-1], axis=-1)[:, ::-1]
    return start, end


#: Up to this many values per row, ranks come from comparing every pair (no sort), above from a sort.
_PAIRWISE_MAX = 8


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n along the last axis, ties averaged (as scipy.stats.rankdata); NaN stays NaN.

    A leading axis along which ``a`` is only broadcast (stride 0, e.g. one human profile against many
    models or replicates) is ranked once and broadcast back, so the result may be a read-only view.
    Every rank is a whole or half number, so the result is exact whichever way it was computed.
    """
    a = np.asarray(a, dtype=float)
    shape = a.shape
    if a.size == 0:
        return np.empty(shape)
    if a.ndim > 1 and any(s == 0 and d > 1 for s, d in zip(a.strides[:-1], shape[:-1], strict=True)):
        core = a[tuple(slice(0, 1) if s == 0 else slice(None) for s in a.strides[:-1])]
        return np.broadcast_to(_average_ranks(np.ascontiguousarray(core)), shape)
    n = shape[-1] if a.ndim else 1
    x = a.reshape(-1, n)
    if n <= _PAIRWISE_MAX:  # count the smaller and the equal values of each entry (exact in floats)
        less, equal = np.zeros(x.shape), np.zeros(x.shape)
        for j in range(n):
            less += x[:, j : j + 1] < x
            equal += x[:, j : j + 1] == x
        out = less + (equal + 1.0) / 2.0
    else:
        out = _sorted_ranks(x)
    out[np.isnan(x)] = np.nan
    return out.reshape(shape)


def _sorted_ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks along the rows of a 2-D ``x`` from one sort per row; NaN sorts last and gets a
    meaningless rank that the caller blanks."""
    m, n = x.shape
    nan = np.isnan(x)
    if nan.any() and not np.isposinf(x).any():
        # NaN takes numpy off its vectorised sort (several times slower); +inf sorts last as NaN does,
        # and with no real +inf to tie with, every value's rank is the same
        x = np.where(nan, np.inf, x)
    order = np.argsort(x, axis=-1)  # stability does not matter: tied values get the same rank
    xs = np.take_along_axis(x, order, axis=-1)
    new = np.empty(xs.shape, bool)  # where a tie block starts; every row starts one
    new[:, 0] = True
    np.not_equal(xs[:, 1:], xs[:, :-1], out=new[:, 1:])
    flat = new.ravel()
    starts = np.flatnonzero(flat)
    sizes = np.diff(np.append(starts, flat.size))
    block_rank = starts % n + (sizes - 1) / 2.0 + 1.0  # 1 + the mean of the block's 0-based positions
    out = np.empty(x.size)
    out[(order + (np.arange(m) * n)[:, None]).ravel()] = np.repeat(block_rank, sizes)
    return out.reshape(m, n)


_METHODS = ("pearson", "spearman", "cosine")
_NAN_POLICIES = ("propagate", "omit")


def profile_correlation(x: ArrayLike, y: ArrayLike, *, centred_on: ArrayLike | None = None, method: str = "pearson",
                        nan_policy: str = "propagate") -> Any:
    r"""Correlation of two item profiles across items, optionally centred on the across-group mean.

    Parameters
    ----------
    x, y : array_like, shape (..., items)
        Per-item values, e.g. mean positions :math:`\mu_m(q)` of a model and :math:`\mu_c(q)` of a
        group. Leading axes broadcast, so one call correlates many models with many groups.
    centred_on : array_like, shape (..., items), optional
        Subtracted from both profiles before correlating, typically :math:`\bar\mu(q)`, the mean over
        groups per item. The centred correlation asks whether the model follows a group's
        *distinctive* deviations rather than what all groups share.
    method : {"pearson", "spearman", "cosine"}
        Pearson r; Spearman rho (Pearson on average ranks, ties averaged as in scipy); or the cosine
        of the (centred, if ``centred_on`` is given) vectors, which unlike Pearson does not subtract
        each profile's own mean.
    nan_policy : {"propagate", "omit"}
        "propagate": NaN in a profile gives NaN. "omit": use the items where both are present
        (pairwise complete); the number used is ``np.sum(~np.isnan(x) & ~np.isnan(y), -1)``.

    Returns
    -------
    ndarray or float
        In [-1, 1]. NaN with fewer than 2 usable items or a constant profile (zero variance).

    Notes
    -----
    With :math:`u_q = x_q - c_q`, :math:`v_q = y_q - c_q` (c = ``centred_on`` or 0),

    .. math::
        r = \frac{\sum_q (u_q - \bar u)(v_q - \bar v)}{\sqrt{\sum_q (u_q - \bar u)^2 \sum_q (v_q - \bar v)^2}},
        \quad \cos = \frac{\sum_q u_q v_q}{\sqrt{\sum_q u_q^2 \sum_q v_q^2}};

    Spearman applies r to the average ranks of u and v.
    """
    if method not in _METHODS:
        raise ValueError(f"`method` must be one of {_METHODS}; got {method!r}.")
    if nan_policy not in _NAN_POLICIES:
        raise ValueError(f"`nan_policy` must be one of {_NAN_POLICIES}; got {nan_policy!r}.")
    x = _as_float(x, "x")
    y = _as_float(y, "y")
    arrays = [("x", x), ("y", y)]
    if centred_on is not None:
        c = _as_float(centred_on, "centred_on")
        arrays.append(("centred_on", c))
    try:
        shape = np.broadcast_shapes(*(a.shape for _, a in arrays))
    except ValueError:
        shapes = ", ".join(f"{n}.shape={a.shape}" for n, a in arrays)
        raise ValueError(
            f"profiles must broadcast, with items on the last axis; got {shapes}. "
            "Add length-1 axes so that models and groups line up."
        ) from None
    if len({a.shape[-1] for _, a in arrays} - {1}) > 1:
        raise ValueError(f"profiles must have the same number of items on the last axis; got {shape}.")
    if centred_on is not None:
        x = x - c
        y = y - c
    x, y = np.broadcast_arrays(x, y)
    ok = ~(np.isnan(x) | np.isnan(y))
    if nan_policy == "omit":
        x = np.where(ok, x, np.nan)
        y = np.where(ok, y, np.nan)
    if method == "spearman":
        x, y = _average_ranks(x), _average_ranks(y)
    if nan_policy == "omit":
        x = np.where(ok, x, 0.0)
        y = np.where(ok, y, 0.0)
        n = ok.sum(-1)
    else:
        n = np.full(x.shape[:-1], x.shape[-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        if method != "cosine":
            mx = (x.sum(-1) / n)[..., None]
            my = (y.sum(-1) / n)[..., None]
            x = x - mx
            y = y - my
            if nan_policy == "omit":
                x = np.where(ok, x, 0.0)
                y = np.where(ok, y, 0.0)
        sxy = (x * y).sum(-1)
        sxx = (x * x).sum(-1)
        syy = (y * y).sum(-1)
        r = sxy / np.sqrt(sxx * syy)
    r = np.where((n < 2) | (sxx == 0) | (syy == 0), np.nan, r)
    return _scalar(np.clip(r, -1.0, 1.0))


def spearman_alignment(model_scores: ArrayLike, human_scores: ArrayLike, *, nan_policy: str = "propagate") -> Any:
    r"""Spearman correlation across items between model and human scores (Rystrøm et al. 2025).

    The multicultural-alignment measure: per item, the model's mean "pro" score (share of pro
    answers) against the human ground-truth pro share; alignment is Spearman's rho across items.

    Parameters
    ----------
    model_scores, human_scores : array_like, shape (..., items)
        Per-item scores; leading axes broadcast (e.g. models x languages x items against
        languages x items), so bootstrap replicates can be evaluated in one call.
    nan_policy : {"propagate", "omit"}
        As in :func:`profile_correlation`.

    Returns
    -------
    ndarray or float
        Spearman rho in [-1, 1] (ties get average ranks, as in ``scipy.stats.spearmanr``); NaN for a
        constant profile.

    Notes
    -----
    :math:`\rho = r(\operatorname{rank}(x), \operatorname{rank}(y))` with Pearson r. Rank correlations
    ignore the level of the scores: a model that is uniformly more "pro" than humans can reach 1.
    """
    return profile_correlation(model_scores, human_scores, method="spearman", nan_policy=nan_policy)


def disattenuated_pearson(x: ArrayLike, y: ArrayLike, x_noise: ArrayLike, y_noise: ArrayLike | None = None) -> Any:
    r"""Pearson correlation across items of the *true* profiles behind noisy per-item means.

    ``x`` holds per-item means of sampled answers (e.g. a model's mean position from n answers per
    item), whose sampling noise inflates their across-item variance and so attenuates the Pearson r
    toward 0 (Spearman 1904). The noise is independent of ``y``, so the covariance is unbiased; the
    variance of the true profile is the observed variance minus the mean noise variance:

    .. math::
        \tilde r = \frac{\widehat{\operatorname{cov}}(\bar x, \bar y)}
        {\sqrt{\big(\widehat{\operatorname{var}}(\bar x) - \overline{e_x}\big)
               \big(\widehat{\operatorname{var}}(\bar y) - \overline{e_y}\big)}},

    with :math:`e_{x,q} = s_q^2 / n_q` the unbiased variance of item q's mean (sample variance with
    divisor n - 1 over n answers). The estimand is the Pearson correlation over the population of items
    between the answer distribution's mean positions and the human ones. Called inside an item bootstrap
    (recomputed per resample), its intervals carry the noise of the correction.

    Parameters
    ----------
    x, y : array_like, shape (..., items)
        Per-item means; leading axes broadcast (resamples, models, groups). NaN items are left out.
    x_noise, y_noise : array_like, shape (..., items)
        Sampling variance of each item's mean (``y_noise`` None = ``y`` exact).

    Returns
    -------
    ndarray or float
        Not clipped to [-1, 1] (clipping would bias it); NaN where fewer than 3 items are usable or
        the estimated true variance is not positive (the profile is indistinguishable from noise).
    """
    x, y, ex = _as_float(x, "x"), _as_float(y, "y"), _as_float(x_noise, "x_noise")
    ey = np.zeros(1) if y_noise is None else _as_float(y_noise, "y_noise")
    x, y, ex, ey = np.broadcast_arrays(x, y, ex, ey)
    ok = ~(np.isnan(x) | np.isnan(y) | np.isnan(ex) | np.isnan(ey))
    n = ok.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        def centred(a: np.ndarray) -> np.ndarray:
            a = np.where(ok, a, 0.0)
            return np.where(ok, a - (a.sum(-1) / n)[..., None], 0.0)

        u, v = centred(x), centred(y)
        vx = (u * u).sum(-1) / (n - 1) - np.where(ok, ex, 0.0).sum(-1) / n
        vy = (v * v).sum(-1) / (n - 1) - np.where(ok, ey, 0.0).sum(-1) / n
        r = (u * v).sum(-1) / (n - 1) / np.sqrt(vx * vy)
    return _scalar(np.where((n < 3) | ~(vx > 0) | ~(vy > 0), np.nan, r))


# --------------------------------------------------------------------------------------------------
# rankings of groups
# --------------------------------------------------------------------------------------------------
def _rank_desc(s: np.ndarray, tie_tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Competition ranks (1 = highest) and tie-block sizes along the last axis; NaN ranked NaN."""
    shape = s.shape
    g = shape[-1]
    x = s.reshape(-1, g)
    with np.errstate(invalid="ignore"):
        order = np.argsort(-x, axis=-1, kind="stable")  # NaN last
    xs = np.take_along_axis(x, order, axis=-1)
    new = np.ones(xs.shape, bool)
    with np.errstate(invalid="ignore"):
        new[:, 1:] = ~(xs[:, :-1] - xs[:, 1:] <= tie_tol)
    start, end = _tie_blocks(new)
    rank = (start + 1).astype(float)
    size = (end - start + 1).astype(float)
    nan = np.isnan(xs)
    rank[nan] = np.nan
    size[nan] = np.nan
    r_out = np.empty_like(rank)
    s_out = np.empty_like(size)
    np.put_along_axis(r_out, order, rank, axis=-1)
    np.put_along_axis(s_out, order, size, axis=-1)
    return r_out.reshape(shape), s_out.reshape(shape)


def rank_groups(scores: ArrayLike, *, tie_tol: float = 1e-12) -> Any:
    r"""Rank groups by similarity, closest first, along the last axis, with ties sharing a rank.

    Parameters
    ----------
    scores : array_like, shape (..., groups)
        Similarities S(m, c) (higher = closer); leading axes are kept (models, bootstrap replicates).
    tie_tol : float, default 1e-12
        Scores within ``tie_tol`` of the next higher score are tied (a chain of such gaps is one tie).
        The default only absorbs floating-point round-off.

    Returns
    -------
    ndarray of float
        Competition ranks ("1224"): 1 = closest; tied groups share the best rank of their block and the
        next rank skips. NaN scores get rank NaN.
    """
    s = _as_float(scores, "scores")
    return _scalar(_rank_desc(s, tie_tol)[0])


def closest_groups(scores: ArrayLike | pd.Series | pd.DataFrame, groups: Sequence[Any] | None = None, *,
                   tie_tol: float = 1e-12) -> pd.DataFrame:
    r"""Groups ordered from closest to farthest, with ties explicit.

    Parameters
    ----------
    scores : array_like of shape (groups,), Series, (rows, groups) array or DataFrame
        Similarities S(m, c), higher = closer. A Series supplies the group names in its index; a
        DataFrame has one row per model (index) and one column per group.
    groups : sequence of str, optional
        Group names for array input (default ``0..G-1``); must match the last axis.
    tie_tol : float, default 1e-12
        See :func:`rank_groups`.

    Returns
    -------
    DataFrame
        Long table sorted closest first (within ``row`` for 2-D input), with columns ``[row,] group,
        score, rank, n_tied``: ``rank`` is the competition rank (tied groups share it) and ``n_tied``
        the number of groups sharing that rank (1 = no tie). Groups with NaN scores come last with
        rank NaN.
    """
    import pandas as pd

    row_labels = None
    if isinstance(scores, pd.Series):
        groups = list(scores.index) if groups is None else groups
        arr = scores.to_numpy(float)
    elif isinstance(scores, pd.DataFrame):
        groups = list(scores.columns) if groups is None else groups
        row_labels = list(scores.index)
        arr = scores.to_numpy(float)
    else:
        arr = _as_float(scores, "scores")
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"`scores` must be 1-D (groups) or 2-D (rows x groups); got shape {arr.shape}. "
            "Use rank_groups for more leading axes."
        )
    g = arr.shape[-1]
    groups = list(range(g)) if groups is None else list(groups)
    if len(groups) != g:
        raise ValueError(f"`groups` has {len(groups)} names but `scores` has {g} groups on its last axis.")
    rank, size = _rank_desc(arr, tie_tol)
    a2 = np.atleast_2d(arr)
    r2, s2 = np.atleast_2d(rank), np.atleast_2d(size)
    if row_labels is None:
        row_labels = list(range(a2.shape[0]))
    out = pd.DataFrame(
        {
            "row": np.repeat(np.asarray(row_labels, dtype=object), g),
            "group": np.tile(np.asarray(groups, dtype=object), a2.shape[0]),
            "score": a2.ravel(),
            "rank": r2.ravel(),
            "n_tied": s2.ravel(),
        }
    )
    out["_o"] = np.tile(np.arange(g), a2.shape[0])
    out["_r"] = np.repeat(np.arange(a2.shape[0]), g)
    out = out.sort_values(["_r", "rank", "_o"], na_position="last", kind="stable")
    out = out.drop(columns=["_o", "_r"]).reset_index(drop=True)
    out["rank"] = out["rank"].astype("Int64")
    out["n_tied"] = out["n_tied"].astype("Int64")
    if arr.ndim == 1:
        out = out.drop(columns="row")
    return out


# --------------------------------------------------------------------------------------------------
# human baselines
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProxySimilarity(Result):
    """Similarity of each human group, used as a "model", to every other group.

    Attributes
    ----------
    similarity : ndarray, shape (groups, groups)
        ``similarity[i, j]`` = S(group i -> group j) = mean over items of S(h_i(q), h_j(q)), with
        group i in the model's place (first argument) and group j as the reference. NaN where no item
        was usable.
    n_items : ndarray of int, shape (groups, groups)
        Items that entered each mean (present for both groups, and ordinal for ordinal metrics).
    groups : tuple
        Group names (or ``0..G-1``).
    metric : str
    """

    similarity: np.ndarray
    n_items: np.ndarray
    groups: tuple
    metric: str

    def to_frame(self, confidence_level: float | None = None, *, include_self: bool = False) -> pd.DataFrame:
        """Long table ``proxy, target, similarity, estimate, n_items`` (self-pairs only when asked).

        A plug-in table without intervals (``estimate`` repeats ``similarity`` under the shared column
        name); ``confidence_level`` is accepted for the shared interface and must be None: intervals
        that carry the human sampling noise come from an audit of ``Claim.human_proxy``."""
        if confidence_level is not None:
            raise ValueError("ProxySimilarity is a plug-in table without intervals; for intervals audit "
                             "`Claim.human_proxy(...)` with `audit_claim` (human sampling noise included).")
        import pandas as pd

        g = len(self.groups)
        i, j = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
        keep = np.ones((g, g), bool) if include_self else (i != j)
        names = np.asarray(self.groups, dtype=object)
        return pd.DataFrame(
            {
                "proxy": names[i[keep]],
                "target": names[j[keep]],
                "similarity": self.similarity[keep],
                "estimate": self.similarity[keep],
                "n_items": self.n_items[keep],
            }
        )

    def summary(self) -> str:
        f = self.to_frame()
        if f.empty or f["similarity"].isna().all():
            return f"human-proxy {self.metric} similarity: no pair of groups shares an item."
        best = f.loc[f["similarity"].idxmax()]
        return (f"human-proxy {self.metric} similarity of {len(self.groups)} groups: from "
                f"{f['similarity'].min():.3f} to {f['similarity'].max():.3f}; closest pair {best['proxy']} -> "
                f"{best['target']} ({best['similarity']:.3f}). Plug-in values, no intervals.")


def human_proxy_similarity(ref_shares: Reference | ArrayLike, metric: str | Callable[..., Any] = "js", *,
                           K: ArrayLike | None = None, ordinal: ArrayLike | None = None,
                           groups: Sequence[Any] | None = None, check: bool = True) -> ProxySimilarity:
    r"""Human-proxy baseline: how similar each human group is, as a "model", to every other group.

    Parameters
    ----------
    ref_shares : Reference or array_like, shape (items, groups, K_max)
        Human shares per item and group, zero-padded beyond each item's K, NaN where an item x group
        cell is absent (as :meth:`robustalign.Reference.array` returns). A :class:`~robustalign.Reference`
        supplies ``K``, ``ordinal`` and the group names itself.
    metric : str or callable, default "js"
        A name in :data:`METRICS`, or a function ``f(p, q, K=None, ordinal=None)`` returning a
        similarity (NaN = not scorable), called with arrays (items, 1, K_max) and (items, groups, K_max).
    K : array_like of int, shape (items,), optional
        Options per item (array input only). Default: the last axis length.
    ordinal : array_like of bool, shape (items,), optional
        Ordinal flag per item (array input only); ordinal-only metrics skip nominal items.
    groups : sequence, optional
        Group names for array input.
    check : bool, default True
        Validate the shares.

    Returns
    -------
    ProxySimilarity
        ``similarity[i, j]`` = S(c_i -> c_j) and ``n_items[i, j]``; the diagonal is the self-similarity
        (1 for every metric). ``.to_frame()`` gives a long table.

    Notes
    -----
    .. math:: S(c' \to c) = \frac{1}{|Q_{c'c}|} \sum_{q \in Q_{c'c}} S(h_{c'}(q), h_c(q)),

    where :math:`Q_{c'c}` are the items present for both groups (and scorable by the metric), so each
    pair uses its own common item set and ``n_items`` reports its size. This is the "a U.S. respondent
    is a closer proxy than any model" baseline of Agarwal et al. (2025). Compare a model with a proxy
    only on the same items; with unequal item sets, restrict ``ref_shares`` to a common set first.
    """
    if hasattr(ref_shares, "array") and hasattr(ref_shares, "scales"):
        ref = cast("Reference", ref_shares)
        items = ref.items
        groups = list(ref.groups) if groups is None else list(groups)
        h = ref.array(items, groups)
        K = ref.K(items)
        ordinal = ref.ordinal(items)
    else:
        h = _as_float(ref_shares, "ref_shares")
    if h.ndim != 3:
        raise ValueError(f"`ref_shares` must have shape (items, groups, K_max); got {h.shape}.")
    n_items, g, kmax = h.shape
    groups = tuple(range(g)) if groups is None else tuple(groups)
    if len(groups) != g:
        raise ValueError(f"`groups` has {len(groups)} names but `ref_shares` has {g} groups (axis 1).")
    if isinstance(metric, str):
        if metric not in METRICS:
            raise ValueError(f"`metric` must be one of {sorted(METRICS)} or a function; got {metric!r}.")
        name, f = metric, METRICS[metric]
        kw = {"check": False}  # validated once below
    elif callable(metric):
        name, f, kw = getattr(metric, "__name__", "custom"), metric, {}
    else:
        raise ValueError(f"`metric` must be a name in {sorted(METRICS)} or a function; got {metric!r}.")
    if check:
        _check_dist(h, "ref_shares")
    k = None if K is None else np.asarray(K).reshape(n_items, 1)
    o = None if ordinal is None else np.asarray(ordinal, dtype=bool).reshape(n_items, 1)
    sim = np.empty((g, g))
    cnt = np.empty((g, g), dtype=np.intp)
    for i in range(g):  # one proxy group at a time keeps memory at items x groups x K
        s = f(h[:, i : i + 1, :], h, K=k, ordinal=o, **kw)  # (items, groups)
        s = np.asarray(s, dtype=float)
        ok = ~np.isnan(s)
        cnt[i] = ok.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            sim[i] = np.where(ok, s, 0.0).sum(0) / cnt[i]
    return ProxySimilarity(sim, cnt, groups, name)


def between_group_sd(mean_positions: ArrayLike | pd.DataFrame, ddof: int = 0, *, min_groups: int = 2) -> Any:
    r"""Human benchmark: SD of mean positions across groups, per item, averaged over items.

    The "+1 SD between-country variation" of Khan et al. (2025): 0.114 on their 77 GlobalOpinionQA
    items and 15 countries, in mean-position units (:func:`mean_position`).

    Parameters
    ----------
    mean_positions : array_like or DataFrame, shape (..., items, groups)
        Mean position of each group on each item; NaN where a group lacks the item. A DataFrame is
        items x groups.
    ddof : int, default 0
        Delta degrees of freedom of the SD; 0 is what ``np.nanstd`` (and Khan's code) uses.
    min_groups : int, default 2
        Items observed in fewer groups (or in no more than ``ddof``) are skipped: the SD of one group
        is 0 and would pull the benchmark down.

    Returns
    -------
    ndarray or float
        Mean over usable items of the per-item SD; shape = the leading axes. NaN if no item is usable.

    Notes
    -----
    .. math::
        \bar s = \frac{1}{|Q|} \sum_{q \in Q} \sqrt{\frac{1}{n_q - \text{ddof}} \sum_{c} (\mu_{cq} - \bar\mu_q)^2},

    sums over the groups observed on item q (``np.nanstd`` per item, then ``np.nanmean``).
    Compare it only with effects in the same unit (mean position on [0, 1]).
    """
    if hasattr(mean_positions, "to_numpy"):
        mean_positions = mean_positions.to_numpy(float)
    x = _as_float(mean_positions, "mean_positions")
    if x.ndim < 2:
        raise ValueError(f"`mean_positions` must be (..., items, groups); got shape {x.shape}.")
    if int(ddof) != ddof or ddof < 0:
        raise ValueError(f"`ddof` must be a non-negative integer; got {ddof!r}.")
    ok = ~np.isnan(x)
    n = ok.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(ok, x, 0.0).sum(-1) / n
        ss = np.where(ok, (x - mu[..., None]) ** 2, 0.0).sum(-1)
        sd = np.sqrt(ss / (n - ddof))
    usable = (n >= max(min_groups, ddof + 1))
    sd = np.where(usable, sd, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(usable, sd, 0.0).sum(-1) / usable.sum(-1)
    return _scalar(out)


# --------------------------------------------------------------------------------------------------
# Hofstede VSM-2013
# --------------------------------------------------------------------------------------------------
#: VSM-2013 index formulas: index -> ((weight, plus item, minus item), (weight, plus item, minus item)).
VSM2013 = {
    "PDI": ((35, "m07", "m02"), (25, "m20", "m23")),
    "IDV": ((35, "m04", "m01"), (35, "m09", "m06")),
    "MAS": ((35, "m05", "m03"), (35, "m08", "m10")),
    "UAI": ((40, "m18", "m15"), (25, "m21", "m24")),
    "LTO": ((40, "m13", "m14"), (25, "m19", "m22")),
    "IVR": ((35, "m12", "m11"), (40, "m17", "m16")),
}
_VSM_CONST = {"C_pd": "PDI", "C_ic": "IDV", "C_mf": "MAS", "C_ua": "UAI", "C_ls": "LTO", "C_ir": "IVR"}
_VSM_ITEMS = [f"m{i:02d}" for i in range(1, 25)]


def vsm2013_indices(item_means: Mapping[str, Any] | pd.Series | pd.DataFrame,
                    constants: Mapping[str, float] | None = None, *,
                    check: bool = True) -> dict[str, Any] | pd.Series | pd.DataFrame:
    r"""The six Hofstede VSM-2013 indices from the means of items m01..m24.

    Parameters
    ----------
    item_means : mapping, Series or DataFrame
        Mean answers on the 1..5 coding, keyed ``m01`` .. ``m24`` (dict keys, Series index or
        DataFrame columns; other keys are ignored). Mapping values may be arrays (e.g. bootstrap
        replicates); they broadcast.
    constants : mapping, optional
        Additive constants per index, keyed by index (``"PDI"``) or by the manual's names
        (``"C_pd"``, ``"C_ic"``, ``"C_mf"``, ``"C_ua"``, ``"C_ls"``, ``"C_ir"``). Missing ones are 0.
    check : bool, default True
        Require every non-missing mean to lie in [1, 5] (the VSM coding); a 0-4 or 0-1 coding would
        silently shift or shrink the indices.

    Returns
    -------
    dict, Series or DataFrame
        ``PDI, IDV, MAS, UAI, LTO, IVR``: a DataFrame (same index) for DataFrame input, a Series for
        a Series, a dict otherwise.

    Raises
    ------
    ValueError
        Listing the missing items, unknown constants, or means outside [1, 5].

    Notes
    -----
    .. math::
        PDI &= 35(m_{07} - m_{02}) + 25(m_{20} - m_{23}) + C_{pd} \\
        IDV &= 35(m_{04} - m_{01}) + 35(m_{09} - m_{06}) + C_{ic} \\
        MAS &= 35(m_{05} - m_{03}) + 35(m_{08} - m_{10}) + C_{mf} \\
        UAI &= 40(m_{18} - m_{15}) + 25(m_{21} - m_{24}) + C_{ua} \\
        LTO &= 40(m_{13} - m_{14}) + 25(m_{19} - m_{22}) + C_{ls} \\
        IVR &= 35(m_{12} - m_{11}) + 40(m_{17} - m_{16}) + C_{ir}

    Indices are comparable only across samples with the same constants and item wording. With one
    answer per item (a single persona) each term moves in steps of 25-40 points, and country-level
    formulas applied to one respondent are an ecological fallacy.
    """
    import pandas as pd

    if isinstance(item_means, pd.DataFrame):
        keys = [str(c) for c in item_means.columns]
        get = lambda m: item_means[m].to_numpy(float)  # noqa: E731
    elif isinstance(item_means, pd.Series):
        keys = [str(c) for c in item_means.index]
        get = lambda m: float(item_means[m])  # noqa: E731
    elif isinstance(item_means, Mapping):
        keys = [str(c) for c in item_means]
        get = lambda m: np.asarray(item_means[m], dtype=float)  # noqa: E731
    else:
        raise ValueError(
            f"`item_means` must be a mapping, Series or DataFrame keyed m01..m24; got {type(item_means).__name__}."
        )
    missing = [m for m in _VSM_ITEMS if m not in keys]
    if missing:
        hint = ""
        unpadded = [f"m{int(m[1:])}" for m in missing if f"m{int(m[1:])}" in keys]
        if unpadded:
            hint = f" Found {unpadded[:3]}: name items with two digits (m01, not m1)."
        raise ValueError(
            f"`item_means` is missing VSM-2013 items {missing}; all of m01..m24 are needed.{hint}"
        )
    c = {k: 0.0 for k in VSM2013}
    for key, val in dict(constants or {}).items():
        idx = _VSM_CONST.get(key, key if key in VSM2013 else None)
        if idx is None:
            raise ValueError(
                f"`constants` has unknown key {key!r}; use {list(VSM2013)} or {list(_VSM_CONST)}."
            )
        c[idx] = float(val)
    m = {k: get(k) for k in _VSM_ITEMS}
    if check:
        bad = [k for k, v in m.items() if np.any((np.asarray(v) < 1) | (np.asarray(v) > 5))]
        if bad:
            raise ValueError(
                f"VSM-2013 item means must lie in [1, 5] (answers coded 1..5); items {bad} do not, e.g. "
                f"{bad[0]} = {np.ravel(m[bad[0]])[:3].tolist()}. Recode answers to 1..5, or pass check=False."
            )
    out = {}
    for idx, ((w1, a1, b1), (w2, a2, b2)) in VSM2013.items():
        out[idx] = w1 * (m[a1] - m[b1]) + w2 * (m[a2] - m[b2]) + c[idx]
    if isinstance(item_means, pd.DataFrame):
        return pd.DataFrame(out, index=item_means.index)
    if isinstance(item_means, pd.Series):
        return pd.Series(out, dtype=float)
    return {k: _scalar(np.asarray(v)) for k, v in out.items()}
