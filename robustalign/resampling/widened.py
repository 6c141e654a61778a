"""Bootstrap results whose intervals are widened for a bias the resamples do not show.

Near the maximum of a similarity with a kink there (JS and TV at P = Q) the corrected per-item values
keep a bias of order 1/sqrt(n) that moves every resample with the estimate: the bootstrap spread does
not contain it. :class:`WidenedBootstrapResult` carries, per statistic, an allowance below and above
that is added to every interval read from it (any level or method), a ceiling (the upper end of the
scale, beyond which a widened end is not taken) and a sentence saying why. Linear combinations
(:meth:`~WidenedBootstrapResult.contrast`, hence :meth:`~WidenedBootstrapResult.pairwise`) carry the
allowances through their coefficients: a difference ``a - b`` is widened above by ``a``'s allowance
above and ``b``'s below, and below by the reverse. :meth:`~WidenedBootstrapResult.apply` (any function)
cannot carry them and returns a plain :class:`~robustalign.resampling.BootstrapResult` whose
``provenance["widened_dropped"]`` names the statistics that were widened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from robustalign.resampling.results import BootstrapResult

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["WidenedBootstrapResult", "widen"]


def _names(labels: pd.DataFrame) -> list[str]:
    if not labels.shape[1]:
        return [f"#{i}" for i in range(len(labels))]
    return labels.astype(str).agg(" / ".join, axis=1).tolist()


@dataclass(frozen=True, eq=False, repr=False)
class WidenedBootstrapResult(BootstrapResult):
    """A :class:`~robustalign.resampling.BootstrapResult` with per-statistic allowances for bias.

    Attributes (besides those of the base class)
    ----------------------------------------------
    widen_low, widen_high : ndarray (k,)
        Non-negative amounts subtracted from the lower and added to the upper end of every interval.
    ceiling : ndarray (k,)
        The upper end of the statistic's scale (NaN: none). A widened upper end is not taken beyond it;
        an interval that already reaches beyond it is not shortened.
    widen_note : ndarray (k,) of str
        Why each statistic is widened ("" where it is not); appended to ``method_note`` by
        :meth:`to_frame`, which also has a boolean column ``widened``.
    """

    widen_low: np.ndarray | None = None
    widen_high: np.ndarray | None = None
    ceiling: np.ndarray | None = None
    widen_note: np.ndarray | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        k = len(self)
        for name, fill in (("widen_low", 0.0), ("widen_high", 0.0), ("ceiling", np.nan)):
            v = getattr(self, name)
            a = np.full(k, fill) if v is None else np.array(v, dtype=float).reshape(-1)
            if a.size != k:
                raise ValueError(f"WidenedBootstrapResult: `{name}` has {a.size} values for {k} statistics.")
            if name != "ceiling" and (a < 0).any():
                raise ValueError(f"WidenedBootstrapResult: `{name}` must be >= 0; got {a[a < 0][0]!r}.")
            a.flags.writeable = False
            object.__setattr__(self, name, a)
        notes = np.full(k, "", dtype=object) if self.widen_note is None else np.array(self.widen_note, dtype=object)
        if notes.size != k:
            raise ValueError(f"WidenedBootstrapResult: `widen_note` has {notes.size} values for {k} statistics.")
        object.__setattr__(self, "widen_note", notes.reshape(-1))

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``widen_low, widen_high, ceiling, widen_note`` as arrays (``__post_init__`` fills every one)."""
        lo, hi, ceil, note = self.widen_low, self.widen_high, self.ceiling, self.widen_note
        assert lo is not None and hi is not None and ceil is not None and note is not None
        return lo, hi, ceil, note

    @property
    def widened(self) -> np.ndarray:
        """True for the statistics whose intervals are widened."""
        lo, hi, _, note = self._arrays()
        return np.asarray((lo > 0) | (hi > 0) | (note != ""))

    def base(self) -> BootstrapResult:
        """The same replicates as a plain :class:`BootstrapResult` (intervals without the allowances)."""
        return BootstrapResult(**{f.name: getattr(self, f.name) for f in fields(BootstrapResult)})

    def _interval(self, level: float | None, method: str | None) -> tuple[np.ndarray, np.ndarray, float, str | np.ndarray]:
        low, high, lev, used = super()._interval(level, method)
        wl, wh, ceil, _ = self._arrays()
        up = np.where(np.isfinite(ceil), np.maximum(high, np.minimum(high + wh, ceil)), high + wh)
        return low - wl, up, lev, used

    def to_frame(self, confidence_level: float | None = None, method: str | None = None, *,
                 level: float | None = None) -> pd.DataFrame:
        """As :meth:`BootstrapResult.to_frame`, with the allowances applied, a column ``widened`` and the
        reason in ``method_note``. Where the ceiling is the upper end, its Monte Carlo error is 0."""
        out = super().to_frame(confidence_level, method, level=level)
        w = self.widened
        _, _, ceil, why = self._arrays()
        notes = out["method_note"].to_numpy(object) if "method_note" in out else np.full(len(self), "", object)
        out["method_note"] = [("; ".join(x for x in (a, b) if x)) for a, b in zip(notes, why, strict=True)]
        at_ceiling = w & np.isfinite(ceil) & (out["conf_high"].to_numpy(float) == ceil)
        out.loc[at_ceiling, "conf_high_mcse"] = 0.0
        out.insert(out.columns.get_loc("method_note") + 1, "widened", w)
        return out

    def apply(self, func: Callable[[np.ndarray], np.ndarray], *, labels: pd.DataFrame | Sequence | None = None,
              statistic: str | None = None) -> BootstrapResult:
        """As :meth:`BootstrapResult.apply`: a function of the statistics, from the plain replicates. The
        allowances are not carried (a function need not be monotone); ``provenance["widened_dropped"]``
        lists the statistics that had them."""
        out = self.base().apply(func, labels=labels, statistic=statistic)
        if self.widened.any():
            dropped = [n for n, w in zip(_names(self.labels), self.widened, strict=True) if w]
            out = replace(out, provenance={**out.provenance, "widened_dropped": dropped})
        return out

    def contrast(self, coefficients: pd.DataFrame | ArrayLike, *,
                 labels: pd.DataFrame | Sequence | None = None) -> BootstrapResult:
        """Linear combinations, widened through their coefficients (see the module docstring)."""
        out = self.base().contrast(coefficients, labels=labels)
        c = coefficients.to_numpy(float) if isinstance(coefficients, pd.DataFrame) else np.asarray(coefficients, float)
        c = c[:, None] if c.ndim == 1 else c
        pos, neg = np.clip(c, 0.0, None), np.clip(-c, 0.0, None)
        wl, wh, _, _ = self._arrays()
        hi = pos.T @ wh + neg.T @ wl
        lo = pos.T @ wl + neg.T @ wh
        names = np.array(_names(self.labels), dtype=object)
        notes = []
        for j in range(c.shape[1]):
            inv = (c[:, j] != 0) & self.widened
            notes.append("" if not inv.any() else
                         f"widened by {lo[j]:.3g} below and {hi[j]:.3g} above for the bias allowance of "
                         f"{', '.join(names[inv])} (see their notes)")
        fl = {f.name: getattr(out, f.name) for f in fields(BootstrapResult)}
        return WidenedBootstrapResult(**fl, widen_low=lo, widen_high=hi, ceiling=np.full(len(lo), np.nan),
                                      widen_note=np.array(notes, dtype=object))

    def subset(self, **levels: object) -> BootstrapResult:
        """The statistics whose label columns equal the given values, with their allowances."""
        out = self.base().subset(**levels)
        keep = np.ones(len(self), bool)
        for name, val in levels.items():
            vals = val if isinstance(val, (list, tuple, set)) else [val]
            keep &= self.labels[name].isin(vals).to_numpy()
        idx = np.flatnonzero(keep)
        wl, wh, ceil, note = self._arrays()
        fl = {f.name: getattr(out, f.name) for f in fields(BootstrapResult)}
        return WidenedBootstrapResult(**fl, widen_low=wl[idx], widen_high=wh[idx], ceiling=ceil[idx],
                                      widen_note=note[idx])


def widen(result: BootstrapResult, *, low: ArrayLike = 0.0, high: ArrayLike = 0.0, ceiling: ArrayLike = np.nan,
          note: ArrayLike = "") -> WidenedBootstrapResult:
    """``result`` with per-statistic allowances (scalars broadcast to every statistic)."""
    k = len(result)
    fl = {f.name: getattr(result, f.name) for f in fields(BootstrapResult)}
    return WidenedBootstrapResult(
        **fl, widen_low=np.broadcast_to(np.asarray(low, float), (k,)).copy(),
        widen_high=np.broadcast_to(np.asarray(high, float), (k,)).copy(),
        ceiling=np.broadcast_to(np.asarray(ceiling, float), (k,)).copy(),
        widen_note=np.broadcast_to(np.asarray(note, dtype=object), (k,)).copy())
