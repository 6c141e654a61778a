"""Result objects of the resampling engine.

A result keeps its replicates, so a new confidence level, another interval method, contrasts, ranks
or any other function of the statistics are computed from the stored resamples without drawing again
(as ``scipy.stats.bootstrap(bootstrap_result=...)`` allows). Columns are stable snake_case; the level
is a value in ``conf_level``, never part of a column name. Every number that moves with the seed has
its Monte Carlo standard error in a column with the suffix ``_mcse`` (``conf_low_mcse``,
``conf_high_mcse``, ``p_value_mcse``; see :mod:`robustalign.resampling.mcerror`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from robustalign._errors import DegenerateResampleWarning
from robustalign._result import Result
from robustalign._rng import RngRecord
from robustalign._validation import INTERVAL_METHODS, check_confidence_level, check_method, resolve_level
from robustalign.resampling import intervals as _iv
from robustalign.resampling.mcerror import p_value_mcse

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from numpy.typing import ArrayLike

__all__ = ["EXPANDED", "BootstrapResult", "PermutationResult"]

#: Suffix of the interval methods read at the small-sample expanded level of a mean over items
#: (:func:`robustalign.resampling.intervals.expanded_level`): ``"bca-expanded"``, ``"percentile-expanded"``.
EXPANDED = "-expanded"
_BASE_METHODS = (*INTERVAL_METHODS, "bca_or_percentile")
#: The t interval of a mean over items with the bootstrap SE (:func:`robustalign.resampling.intervals.t_interval`);
#: statistics that are not means over items keep ``"bca_or_percentile"`` at the plain level.
T_METHOD = "t"
_ALL_METHODS = (*_BASE_METHODS, *(m + EXPANDED for m in _BASE_METHODS), T_METHOD)

FRAME_COLUMNS = ("estimate", "std_error", "conf_low", "conf_high", "conf_level", "method", "n_resamples",
                 "conf_low_mcse", "conf_high_mcse")


def _readonly(a):
    if isinstance(a, np.ndarray):
        a.flags.writeable = False
    return a


def _with(labels: pd.DataFrame, **columns) -> pd.DataFrame:
    """``labels`` plus new columns, built in one construction (inserting columns one by one is slow)."""
    data = {c: labels[c] for c in labels.columns}
    data.update(columns)
    return pd.DataFrame(data, index=labels.index)


def _group_ids(frame: pd.DataFrame, cols: Sequence[str]) -> np.ndarray:
    """One integer per row for the combination of ``cols`` (zeros without columns)."""
    if not cols:
        return np.zeros(len(frame), np.intp)
    codes = np.column_stack([pd.factorize(frame[c])[0] for c in cols])
    return np.unique(codes, axis=0, return_inverse=True)[1].ravel()


def _fmt(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.4g}"


@dataclass(frozen=True, eq=False, repr=False)
class BootstrapResult(Result):
    """Bootstrap replicates of one or more statistics, with their intervals on demand.

    Attributes
    ----------
    estimate : ndarray (k,)
        The statistics on the original data.
    resamples : ndarray (n_resamples, k)
        One row per bootstrap resample; all statistics of a row come from the same resample, so
        differences, ratios and ranks between them are paired.
    jackknife : ndarray (n_clusters, k) or None
        Delete-one-cluster values (BCa acceleration). None when BCa is not available (two-way design).
    labels : DataFrame (k rows)
        What each statistic is (e.g. columns ``model, steer_target``).
    design : str
        ``"cluster"``, ``"paired"``, ``"two-way"`` (plus ``"+dirichlet"`` when human reference draws
        were propagated).
    method, confidence_level : str, float
        Defaults used by :meth:`to_frame` and :meth:`conf_int`.
    n_clusters : int or tuple of int
        Number of resampled units (items; items and groups for the two-way design).
    rng : RngRecord
        Seed entropy and spawn key: the same record redraws the same resamples.
    statistic : str
        What was computed, in words.
    provenance : dict
        Call arguments and design choices.
    mean_n : ndarray (k,) or None
        Items behind each statistic that is a mean over items (NaN for one that is not, e.g. a
        correlation). With it, the ``"bca-expanded"`` and ``"percentile-expanded"`` methods read the
        same replicates at the small-sample expanded level of a mean over ``mean_n`` items (Hesterberg
        2015; :func:`robustalign.resampling.intervals.expanded_level`); statistics with NaN keep the
        plain level and method. :meth:`contrast` and :meth:`pairwise` carry it (a linear combination
        of means over items is a mean over items), :meth:`apply` drops it. The ``"t"`` method reads them
        as ``estimate +- sqrt(n / (n - 1)) t_{n-1} SE``, the t interval with the bootstrap SE.
    pair_method : str or None
        The method :meth:`pairwise` gives its differences (None: this result's ``method``). Set by
        :func:`robustalign.alignment` to ``"t"`` for the quadratic metrics, whose per-item differences
        between models are nearly symmetric (docs/resampling.md, "Pairwise cramer").
    """

    estimate: np.ndarray
    resamples: np.ndarray
    jackknife: np.ndarray | None
    labels: pd.DataFrame
    design: str
    method: str
    confidence_level: float
    n_clusters: int | tuple[int, ...]
    rng: RngRecord | None
    statistic: str = ""
    provenance: dict = field(default_factory=dict)
    mean_n: np.ndarray | None = None
    pair_method: str | None = None

    def __post_init__(self):
        est = np.atleast_1d(np.asarray(self.estimate, dtype=float))
        res = np.asarray(self.resamples, dtype=float)
        if res.ndim == 1:
            res = res[:, None]
        if res.shape[1] != est.size or len(self.labels) != est.size:
            raise ValueError(
                f"BootstrapResult: estimate has {est.size} statistics, resamples {res.shape[1]} columns and "
                f"labels {len(self.labels)} rows; they must agree."
            )
        jk = None if self.jackknife is None else np.asarray(self.jackknife, dtype=float).reshape(-1, est.size)
        object.__setattr__(self, "estimate", _readonly(est))
        object.__setattr__(self, "resamples", _readonly(res))
        object.__setattr__(self, "jackknife", _readonly(jk))
        object.__setattr__(self, "labels", self.labels.reset_index(drop=True))
        if self.mean_n is not None:
            mn = np.asarray(self.mean_n, dtype=float).reshape(-1)
            if mn.size != est.size:
                raise ValueError(f"BootstrapResult: `mean_n` has {mn.size} values for {est.size} statistics; "
                                 "give one item count per statistic (NaN where it is not a mean over items).")
            object.__setattr__(self, "mean_n", _readonly(mn))
        elif self.method.endswith(EXPANDED) or self.method == T_METHOD:
            raise ValueError(f"BootstrapResult: method {self.method!r} needs `mean_n`, the items behind each mean.")

    # ------------------------------------------------------------------ basic quantities
    @property
    def n_resamples(self) -> int:
        return int(self.resamples.shape[0])

    @property
    def std_error(self) -> np.ndarray:
        """Bootstrap standard error (SD of the finite replicates, ddof=1)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.std(self.resamples, axis=0, ddof=1)
            bad = ~np.isfinite(sd)
            if bad.any():  # undefined replicates: SD of the finite ones
                sd[bad] = np.nanstd(self.resamples[:, bad], axis=0, ddof=1)
            return sd

    def __len__(self) -> int:
        return self.estimate.size

    def __repr__(self) -> str:
        return (
            f"BootstrapResult(design={self.design!r}, {len(self)} statistics, n_resamples={self.n_resamples}, "
            f"n_clusters={self.n_clusters}, method={self.method!r}, confidence_level={self.confidence_level})"
        )

    # ------------------------------------------------------------------ intervals
    def _plain(self, level: float, method: str,
               cols: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Endpoints and per-statistic method tokens at one level for the statistics ``cols`` (all)."""
        res = self.resamples if cols is None else self.resamples[:, cols]
        est = self.estimate if cols is None else self.estimate[cols]
        jk = self.jackknife if cols is None or self.jackknife is None else self.jackknife[:, cols]
        k = est.size
        if method == "bca_or_percentile":
            # BCa where it is defined; the percentile interval for the statistics where it is not (e.g.
            # a rate that is 0 in most resamples); ``method`` then says, per statistic, which was used
            pl, ph = (np.atleast_1d(x) for x in _iv.percentile_interval(res, confidence_level=level))
            if jk is None:
                return pl, ph, np.full(k, "percentile", dtype=object)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DegenerateResampleWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                bl, bh = (np.atleast_1d(x) for x in _iv.bca_interval(res, est, jk, confidence_level=level))
            bad = ~(np.isfinite(bl) & np.isfinite(bh))
            return np.where(bad, pl, bl), np.where(bad, ph, bh), np.where(bad, "percentile", "bca").astype(object)
        if method == "bca":
            if jk is None:
                raise ValueError(
                    f"method='bca' needs delete-one-cluster jackknife values, which the {self.design!r} design "
                    "does not have; use method='percentile'."
                )
            low, high = _iv.bca_interval(res, est, jk, confidence_level=level)
        else:
            low, high = _iv.percentile_interval(res, confidence_level=level)
        return np.atleast_1d(low), np.atleast_1d(high), np.full(k, method, dtype=object)

    def _levels(self, level: float, method: str | np.ndarray) -> np.ndarray:
        """The level each statistic's interval is read at: the expanded level for ``*-expanded`` tokens."""
        per = np.broadcast_to(np.asarray(method, dtype=object), (len(self),))
        lev = np.full(len(self), level)
        exp = np.array([str(m).endswith(EXPANDED) for m in per], dtype=bool)
        if exp.any() and self.mean_n is not None:
            lev[exp] = _iv.expanded_level(level, self.mean_n[exp])
        return lev

    def _interval(self, level: float | None, method: str | None) -> tuple[np.ndarray, np.ndarray, float, str | np.ndarray]:
        level = self.confidence_level if level is None else check_confidence_level(level)
        method = self.method if method is None else check_method(method, _ALL_METHODS)
        if method == T_METHOD:
            low, high, used = self._t(level)
            return low, high, level, used
        if not method.endswith(EXPANDED):
            low, high, used = self._plain(level, method)
            return low, high, level, used if method == "bca_or_percentile" else method
        if self.mean_n is None:
            raise ValueError(f"method={method!r} needs the number of items behind each mean (`mean_n`), which "
                             f"this result does not have; use method={method.removesuffix(EXPANDED)!r}.")
        # means over items: the same replicates read at the expanded level; other statistics at `level`
        base = method.removesuffix(EXPANDED)
        lev = _iv.expanded_level(level, self.mean_n)
        low, high = np.full(len(self), np.nan), np.full(len(self), np.nan)
        used = np.empty(len(self), dtype=object)
        for lv in np.unique(lev[np.isfinite(lev)]):
            cols = np.flatnonzero(lev == lv)
            low[cols], high[cols], u = self._plain(float(lv), base, cols)
            used[cols] = [f"{x}{EXPANDED}" for x in u]
        cols = np.flatnonzero(~np.isfinite(lev))
        if cols.size:
            low[cols], high[cols], used[cols] = self._plain(level, base, cols)
        return low, high, level, used

    def _fallback(self) -> str:
        """The plain method for statistics that are not means over items."""
        return "bca_or_percentile" if self.jackknife is not None else "percentile"

    def _t(self, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``"t"`` method: t intervals for means over items, the plain fallback for the others."""
        if self.mean_n is None:
            raise ValueError("method='t' needs the number of items behind each mean (`mean_n`), which this "
                             "result does not have; use method='bca' or 'percentile'.")
        ok = self.mean_n >= 2
        low, high = np.full(len(self), np.nan), np.full(len(self), np.nan)
        used = np.full(len(self), T_METHOD, dtype=object)
        if ok.any():
            low[ok], high[ok] = _iv.t_interval(self.resamples[:, ok], self.estimate[ok], self.mean_n[ok],
                                               confidence_level=level)
        cols = np.flatnonzero(~ok)
        if cols.size:
            low[cols], high[cols], used[cols] = self._plain(level, self._fallback(), cols)
        return low, high, used

    def _endpoint_mcse(self, level: float, method: str | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Monte Carlo SE of the endpoints for ``method`` (a name, or one name per statistic), each at the
        level its interval was read at."""
        per = np.broadcast_to(np.asarray(method, dtype=object), (len(self),))
        base = np.array([str(m).removesuffix(EXPANDED) for m in per], dtype=object)
        lev = self._levels(level, per)
        lo, hi = np.full(len(self), np.nan), np.full(len(self), np.nan)
        t = base == T_METHOD
        if t.any() and self.mean_n is not None:
            lo[t] = hi[t] = _iv.t_mcse(self.resamples[:, t], self.mean_n[t], confidence_level=level)
        for lv in np.unique(lev[np.isfinite(lev)]):
            at = (lev == lv) & ~t
            pct = at & (base == "percentile")
            if pct.any():
                lo[pct], hi[pct] = _iv.percentile_mcse(self.resamples[:, pct], confidence_level=float(lv))
            bca = at & (base == "bca")
            if bca.any() and self.jackknife is not None:
                lo[bca], hi[bca] = _iv.bca_mcse(self.resamples[:, bca], self.estimate[bca], self.jackknife[:, bca],
                                                confidence_level=float(lv))
        return lo, hi

    def _notes(self, level: float, used: str | np.ndarray) -> np.ndarray:
        """One sentence per statistic read at the expanded level ("" for the others)."""
        lev = self._levels(level, used)
        notes = np.full(len(self), "", dtype=object)
        per = np.broadcast_to(np.asarray(used, dtype=object), (len(self),))
        for j in np.flatnonzero(per == T_METHOD):
            n = self.mean_n[j] if self.mean_n is not None else np.nan
            notes[j] = (f"mean over {n:.0f} items: estimate +- t({n - 1:.0f}) x bootstrap SE x sqrt(n / (n - 1)), "
                        "the t interval (symmetric)")
        for j in np.flatnonzero((lev != level) & (per != T_METHOD)):
            n = self.mean_n[j] if self.mean_n is not None else np.nan
            notes[j] = (f"mean over {n:.0f} items: the {level:.0%} interval is read from the same resamples at the "
                        f"small-sample expanded level {lev[j]:.4f} (Hesterberg 2015), as wide as a t interval")
        return notes

    def mcse(self, confidence_level: float | None = None, method: str | None = None, *, level: float | None = None) -> pd.DataFrame:
        """Monte Carlo standard errors of the interval endpoints (order-statistic estimate; for BCa with
        the noise of the bias correction): the label columns plus ``conf_low_mcse, conf_high_mcse``."""
        _, _, level, used = self._interval(resolve_level(confidence_level, level, self.confidence_level), method)
        lo, hi = self._endpoint_mcse(level, used)
        return _with(self.labels, conf_low_mcse=lo, conf_high_mcse=hi)

    def conf_int(self, confidence_level: float | None = None, method: str | None = None, *, level: float | None = None) -> pd.DataFrame:
        """Confidence intervals from the stored resamples (no new resampling).

        Parameters
        ----------
        confidence_level : float, optional
            Confidence level in (0, 1); default the level the result was made with (0.95 unless set).
        method : {"percentile", "bca", "bca_or_percentile", "t"} or the first three with "-expanded", optional
            Default the result's method. ``"bca_or_percentile"`` falls back to the percentile interval
            for the statistics whose BCa interval is undefined; the ``method`` column says which. The
            ``"-expanded"`` methods (results with ``mean_n``, e.g. :func:`robustalign.alignment`) read
            means over items at the small-sample expanded level; ``conf_level`` stays the nominal level.
            ``"t"`` gives means over items the t interval with the bootstrap SE (symmetric), the others
            ``"bca_or_percentile"``.

        Returns
        -------
        DataFrame
            The label columns plus ``conf_low, conf_high, conf_level, method``.
        """
        low, high, level, used = self._interval(resolve_level(confidence_level, level, self.confidence_level),
                                                method)
        return _with(self.labels, conf_low=low, conf_high=high, conf_level=level, method=used)

    def to_frame(self, confidence_level: float | None = None, method: str | None = None, *, level: float | None = None) -> pd.DataFrame:
        """One row per statistic: labels, ``estimate, std_error, conf_low, conf_high, conf_level, method,
        n_resamples, conf_low_mcse, conf_high_mcse`` (the endpoints' Monte Carlo standard errors)."""
        low, high, level, used = self._interval(resolve_level(confidence_level, level, self.confidence_level),
                                                method)
        low_se, high_se = self._endpoint_mcse(level, used)
        note = {}
        if self.mean_n is not None:  # the expanded level of means over items, said per row
            note = {"method_note": self._notes(level, used)}
        return _with(
            self.labels, estimate=self.estimate, std_error=self.std_error, conf_low=low, conf_high=high,
            conf_level=level, method=used, **note, n_resamples=self.n_resamples, conf_low_mcse=low_se,
            conf_high_mcse=high_se,
        )

    @property
    def statistic_name(self) -> str:
        """What was computed, in words (the same attribute name as on :class:`PermutationResult`)."""
        return self.statistic

    def summary(self, max_rows: int = 12) -> str:
        """The estimates with their intervals in words, one line each (the first ``max_rows``), after a
        line on the design, resamples, interval method and level."""
        n_cl = self.n_clusters if isinstance(self.n_clusters, int) else " x ".join(map(str, self.n_clusters))
        head = (
            f"{self.statistic or 'estimate'}: {self.design} bootstrap over {n_cl} clusters, {self.n_resamples} "
            f"resamples, {self.method} {self.confidence_level:.0%} intervals"
        )
        low, high, _, _ = self._interval(None, None)
        names = (self.labels.astype(str).agg(" / ".join, axis=1) if self.labels.shape[1]
                 else pd.Series([f"#{i}" for i in range(len(self))]))
        lines = [f"  {n}: {_fmt(e)} [{_fmt(lo)}, {_fmt(hi)}]"
                 for n, e, lo, hi in zip(names[:max_rows], self.estimate, low, high, strict=False)]
        if len(self) > max_rows:
            lines.append(f"  ... and {len(self) - max_rows} more (to_frame() has them all)")
        return "\n".join([head, *lines])

    # narrower than Result.plot's pass-through keywords on purpose: the options this figure has
    def plot(self, ax: Axes | None = None, *, confidence_level: float | None = None,  # type: ignore[override]
             method: str | None = None, level: float | None = None) -> Axes:
        """Estimates with their intervals, one row per statistic. Returns the matplotlib Axes."""
        from robustalign.plots.results import plot_estimates

        return plot_estimates(self, ax=ax, confidence_level=resolve_level(confidence_level, level,
                                                                          self.confidence_level), method=method)

    # ------------------------------------------------------------------ derived results
    def apply(
        self, func: Callable[[np.ndarray], np.ndarray], *, labels: pd.DataFrame | Sequence | None = None,
        statistic: str | None = None,
    ) -> BootstrapResult:
        """A new result for ``func`` of the statistics, from the same resamples (no new draws).

        ``func`` maps an array ``(..., k)`` to ``(..., m)`` (it is called on the estimate, on the
        ``(n_resamples, k)`` replicates and on the jackknife values), e.g. a ratio
        ``lambda s: s[..., :1] / s[..., 1:2]``. Without ``labels`` the labels are kept when ``func``
        returns as many statistics as it got, and numbered otherwise.
        """
        est = np.asarray(func(self.estimate[None, :]), dtype=float).reshape(1, -1)[0]
        res = np.asarray(func(self.resamples), dtype=float).reshape(self.n_resamples, -1)
        if not res.flags.f_contiguous:  # keep each statistic's replicates contiguous (interval code reads columns)
            res = np.asfortranarray(res)
        jk = None
        if self.jackknife is not None:
            jk = np.asarray(func(self.jackknife), dtype=float).reshape(self.jackknife.shape[0], -1)
        if labels is None:  # same number of statistics: keep the labels, otherwise number them
            labels = self.labels if est.size == len(self) else pd.DataFrame({"statistic": np.arange(est.size)})
        elif not isinstance(labels, pd.DataFrame):
            labels = pd.DataFrame({"statistic": list(labels)})
        # an arbitrary function of means is not a mean over items: plain level (contrast() restores it)
        return replace(
            self, estimate=est, resamples=res, jackknife=jk, labels=labels,
            statistic=self.statistic if statistic is None else statistic,
            method=self._fallback() if self.method == T_METHOD else self.method.removesuffix(EXPANDED), mean_n=None,
        )

    def contrast(self, coefficients: pd.DataFrame | ArrayLike, *, labels: pd.DataFrame | Sequence | None = None) -> BootstrapResult:
        """Linear combinations of the statistics, paired through the shared resamples.

        ``coefficients`` is ``(k, m)`` (a DataFrame's columns name the contrasts).
        """
        c = coefficients
        if isinstance(c, pd.DataFrame):
            labels = pd.DataFrame({"contrast": [str(x) for x in c.columns]}) if labels is None else labels
            c = c.to_numpy(float)
        c = np.asarray(c, dtype=float)
        if c.ndim == 1:
            c = c[:, None]
        if c.shape[0] != len(self):
            raise ValueError(f"`coefficients` must have {len(self)} rows (one per statistic); got shape {c.shape}.")
        ct = np.ascontiguousarray(c.T)
        # (c.T @ R.T).T: with R stored statistic-major this is one product into statistic-major output
        out = self.apply(lambda s: (ct @ s.T).T, labels=labels)
        if self.mean_n is None:
            return out
        # a linear combination of means over items is a mean over items (of the combined per-item
        # values); with unequal counts the smallest count involved is used (the wider interval)
        used = c != 0
        involved = np.where(used, self.mean_n[:, None], np.inf)
        n = involved.min(axis=0)
        n[~used.any(axis=0) | np.isnan(involved).any(axis=0)] = np.nan
        return replace(out, method=self.method, mean_n=n)

    def _check_factor(self, factor: str, within: Sequence[str]) -> list[str]:
        cols = list(self.labels.columns)
        for name in [factor, *within]:
            if name not in cols:
                raise ValueError(f"`{name}` is not a label column of this result; label columns are {cols}.")
        return [c for c in cols if c != factor and c not in within]

    def pairwise(self, factor: str, *, within: Sequence[str] | str | None = None) -> BootstrapResult:
        """Every pairwise difference between the levels of ``factor`` (level a minus level b, a before b).

        Without ``within``, each level's statistic is the equally weighted mean over the other label
        columns (e.g. a model's mean over steering prompts); with ``within`` the differences are taken
        inside each combination of those columns. Pairing comes from the shared resamples.
        """
        within = [within] if isinstance(within, str) else list(within or [])
        other = self._check_factor(factor, within)
        lab = self.labels
        f_codes, levels = pd.factorize(lab[factor], sort=False)  # levels in order of appearance
        levels = list(levels)
        w_codes, o_codes = _group_ids(lab, within), _group_ids(lab, other)
        cols = []
        rows: dict = {name: [] for name in [*within, f"{factor}_a", f"{factor}_b"]}
        for g in np.unique(w_codes):
            in_g = w_codes == g
            first = int(np.flatnonzero(in_g)[0])
            sel = [in_g & (f_codes == k) for k in range(len(levels))]
            keys = [frozenset(o_codes[m].tolist()) if other else int(m.sum()) for m in sel]
            if any(k != keys[0] for k in keys) or any(int(m.sum()) != len(cast(frozenset, keys[0]))
                                                      for m in sel if other):
                raise ValueError(
                    f"pairwise({factor!r}): the levels of {factor!r} do not share the same combinations of {other}, "
                    "so their means would average different cells. Pass `within=` to compare inside each "
                    "combination, or build the coefficients yourself and call `contrast()`."
                )
            for a, b in combinations(range(len(levels)), 2):
                v = np.zeros(len(lab))
                v[sel[a]] = 1.0 / sel[a].sum()
                v[sel[b]] -= 1.0 / sel[b].sum()
                cols.append(v)
                for name in within:
                    rows[name].append(lab[name].iloc[first])
                rows[f"{factor}_a"].append(levels[a])
                rows[f"{factor}_b"].append(levels[b])
        out = self.contrast(np.column_stack(cols), labels=pd.DataFrame(rows))
        method = self.pair_method if self.pair_method is not None and out.mean_n is not None else out.method
        return replace(out, design="paired" if self.design == "cluster" else self.design, method=method,
                       statistic=f"difference in {self.statistic}" if self.statistic else "difference")

    def subset(self, **levels: object) -> BootstrapResult:
        """The statistics whose label columns equal the given values (``res.subset(model="m1")``)."""
        keep = np.ones(len(self), bool)
        for name, val in levels.items():
            if name not in self.labels:
                raise ValueError(f"`{name}` is not a label column; label columns are {list(self.labels.columns)}.")
            vals = val if isinstance(val, (list, tuple, set)) else [val]
            hit = self.labels[name].isin(vals).to_numpy()
            if not hit.any():
                have = list(dict.fromkeys(self.labels[name].astype(str)))
                raise ValueError(f"`{name}` has no statistic for {val!r}; its values are {have[:20]}"
                                 f"{' ...' if len(have) > 20 else ''}. Pass one of them.")
            keep &= hit
        idx = np.flatnonzero(keep)
        return replace(
            self, estimate=self.estimate[idx], resamples=self.resamples[:, idx],
            jackknife=None if self.jackknife is None else self.jackknife[:, idx], labels=self.labels.iloc[idx],
            mean_n=None if self.mean_n is None else self.mean_n[idx],
        )

    def flip_probability(self) -> pd.DataFrame:
        """Share of resamples in which each statistic does not have the sign of its estimate.

        For a pairwise difference this is the ranking-flip probability of METHODS 3.9,
        ``P(sign(S_b(m) - S_b(m')) != sign(S(m) - S(m')))``; a replicate of exactly 0 counts as a flip.
        """
        s = np.sign(self.estimate)[None, :]
        finite = np.isfinite(self.resamples)
        flips = ((self.resamples * s) <= 0) & finite
        with np.errstate(invalid="ignore", divide="ignore"):
            p = flips.sum(axis=0) / finite.sum(axis=0)
        p[s[0] == 0] = np.nan
        return _with(self.labels, estimate=self.estimate, p_flip=p, n_resamples=self.n_resamples)

    def ranks(
        self, *, within: Sequence[str] | str | None = None, higher_is_better: bool = True,
        level: float | None = None,
    ) -> pd.DataFrame:
        """Rank of every statistic (1 = best) with a bootstrap rank interval and P(rank 1).

        Ranks are taken among the statistics that share the values of ``within`` (all together by
        default). Columns: labels, ``estimate, rank, rank_mean, rank_low, rank_high, p_top, conf_level``;
        the rank interval is the outward-rounded percentile interval of the replicate ranks.
        """
        from scipy.stats import rankdata

        within = [within] if isinstance(within, str) else list(within or [])
        level = self.confidence_level if level is None else check_confidence_level(level, "level")
        for name in within:
            if name not in self.labels:
                raise ValueError(f"`{name}` is not a label column; label columns are {list(self.labels.columns)}.")
        sign = -1.0 if higher_is_better else 1.0
        if within:
            gid = self.labels.groupby(within, sort=False).ngroup().to_numpy()
            groups = [np.flatnonzero(gid == g) for g in np.unique(gid)]
        else:
            groups = [np.arange(len(self))]
        rank = np.empty(len(self))
        mean = np.empty(len(self))
        low = np.empty(len(self))
        high = np.empty(len(self))
        top = np.empty(len(self))
        alpha = (1 - level) / 2
        for idx in groups:
            rank[idx] = rankdata(sign * self.estimate[idx])
            r = rankdata(sign * self.resamples[:, idx], axis=1)
            mean[idx] = r.mean(axis=0)
            low[idx] = np.floor(np.quantile(r, alpha, axis=0))
            high[idx] = np.ceil(np.quantile(r, 1 - alpha, axis=0))
            top[idx] = (r == 1).mean(axis=0)
        return _with(self.labels, estimate=self.estimate, rank=rank, rank_mean=mean, rank_low=low, rank_high=high,
                     p_top=top, conf_level=level)


@dataclass(frozen=True, eq=False, repr=False)
class PermutationResult(Result):
    """A stratified permutation (or sign-flip) test of one or more statistics.

    Attributes
    ----------
    statistic : ndarray (k,)
        Observed statistics.
    p_value : ndarray (k,)
        ``(1 + b) / (1 + B)`` with ``b`` the number of permuted statistics at least as extreme.
    null_distribution : ndarray (n_resamples, k)
        Permuted statistics; all statistics of a row share one permutation.
    labels : DataFrame (k rows)
    alternative : str
    test : str
        ``"sign flip"`` or ``"stratified permutation"``.
    statistic_name : str
    n_strata, n_levels : int
    rng : RngRecord
    bootstrap : BootstrapResult or None
        Cluster-bootstrap replicates of the same statistics over strata, when ``n_bootstrap > 0``.
    provenance : dict
    """

    statistic: np.ndarray
    p_value: np.ndarray
    null_distribution: np.ndarray
    labels: pd.DataFrame
    alternative: str
    test: str
    statistic_name: str
    n_strata: int
    n_levels: int
    rng: RngRecord | None
    bootstrap: BootstrapResult | None = None
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "statistic", _readonly(np.atleast_1d(np.asarray(self.statistic, float))))
        object.__setattr__(self, "p_value", _readonly(np.atleast_1d(np.asarray(self.p_value, float))))
        nd = np.asarray(self.null_distribution, float)
        object.__setattr__(self, "null_distribution", _readonly(nd.reshape(nd.shape[0], -1)))
        object.__setattr__(self, "labels", self.labels.reset_index(drop=True))

    @property
    def n_resamples(self) -> int:
        return int(self.null_distribution.shape[0])

    @property
    def p_value_mcse(self) -> np.ndarray:
        """Monte Carlo standard error of each p-value, :math:`\\sqrt{p(1-p)/B}`."""
        return p_value_mcse(self.p_value, self.n_resamples)

    def __len__(self) -> int:
        return self.statistic.size

    def __repr__(self) -> str:
        return (
            f"PermutationResult(test={self.test!r}, statistic={self.statistic_name!r}, {len(self)} statistics, "
            f"n_resamples={self.n_resamples}, n_strata={self.n_strata}, alternative={self.alternative!r})"
        )

    @property
    def estimate(self) -> np.ndarray:
        """The observed statistics (the same attribute name as on :class:`BootstrapResult`)."""
        return self.statistic

    def conf_int(self, confidence_level: float | None = None, method: str | None = None, *, level: float | None = None) -> pd.DataFrame:
        """Bootstrap intervals of the statistics (needs ``n_bootstrap > 0`` in the test call)."""
        if self.bootstrap is None:
            raise ValueError(
                "This test was run without a bootstrap, so it has no confidence interval. "
                "Run it again with `n_bootstrap=2000` (or call `cluster_bootstrap` on the same aggregates)."
            )
        out = self.bootstrap.conf_int(resolve_level(confidence_level, level, self.bootstrap.confidence_level),
                                      method)
        return _with(self.labels, **{c: out[c].to_numpy() for c in ("conf_low", "conf_high", "conf_level", "method")})

    def to_frame(self, confidence_level: float | None = None, method: str | None = None, *, level: float | None = None) -> pd.DataFrame:
        """One row per statistic: labels, ``estimate, std_error, conf_low, conf_high, conf_level, method,
        n_resamples, p_value, alternative, p_value_mcse, conf_low_mcse, conf_high_mcse`` (interval columns
        NaN without ``n_bootstrap``; ``*_mcse`` are Monte Carlo standard errors)."""
        cols: dict = {"estimate": self.statistic}
        boot_cols = ("std_error", "conf_low", "conf_high", "conf_level", "method")
        nan = np.full(len(self), np.nan)
        if level is not None:
            confidence_level = resolve_level(confidence_level, level)
        b = self.bootstrap.to_frame(confidence_level, method) if self.bootstrap is not None else None
        if b is not None:
            cols.update({c: b[c].to_numpy() for c in boot_cols})
        else:
            cols.update(std_error=nan, conf_low=nan, conf_high=nan, conf_level=nan, method=None)
        cols.update(n_resamples=self.n_resamples, p_value=self.p_value, alternative=self.alternative,
                    p_value_mcse=self.p_value_mcse)
        for c in ("conf_low_mcse", "conf_high_mcse"):
            cols[c] = b[c].to_numpy() if b is not None else nan
        return _with(self.labels, **cols)

    def summary(self, max_rows: int = 12) -> str:
        """The observed statistics with their p-values in words, one line each (the first ``max_rows``)."""
        head = (
            f"{self.test} test of {self.statistic_name} ({self.alternative}), {self.n_strata} strata x "
            f"{self.n_levels} levels, {self.n_resamples} permutations"
        )
        names = (self.labels.astype(str).agg(" / ".join, axis=1) if self.labels.shape[1]
                 else pd.Series([f"#{i}" for i in range(len(self))]))
        lines = [f"  {n}: statistic {_fmt(t)}, p = {_fmt(p)} (Monte Carlo SE {_fmt(se)})"
                 for n, t, p, se in zip(names[:max_rows], self.statistic, self.p_value, self.p_value_mcse,
                                        strict=False)]
        if len(self) > max_rows:
            lines.append(f"  ... and {len(self) - max_rows} more (to_frame() has them all)")
        return "\n".join([head, *lines])

    # narrower than Result.plot's pass-through keywords on purpose: the options this figure has
    def plot(self, ax: Axes | None = None, *, which: int = 0, bins: int = 50) -> Axes:  # type: ignore[override]
        """Histogram of the permutation null of statistic ``which`` with the observed value; returns the Axes
        (:func:`robustalign.plots.results.plot_null`)."""
        from robustalign.plots.results import plot_null

        return plot_null(self, ax=ax, which=which, bins=bins)
