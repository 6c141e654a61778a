"""Null distributions for stability: permutations of levels within strata and redrawn answers within cells.

Every draw here comes from the generator passed in; callers give each unit (model x factor) its own
stream (:func:`robustalign.resampling.keyed_stream`), so a unit's null does not depend on which other
units are in the data.

Public names
------------
level_permutation_null
    Null of a statistic linear in each stratum's level-to-cell assignment (position bias).
spread_permutation_null
    Null of the SD of additive-model level effects, values permuted among the levels of each stratum.
AnswerPermuter
    Random re-allocations of each stratum's answers among its levels (cell sizes kept).
modal_flip_null
    The modal flip rate under no effect at the numbers of answers actually sampled per cell (its noise floor).
interaction_null
    Null of the item x level interaction variance beyond within-cell noise, answers permuted within strata.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
from scipy.special import gammaln

from robustalign.resampling.sequential import SequentialRule

__all__ = ["AnswerPermuter", "ModalFlipStatistic", "answer_permutation_nulls", "interaction_null", "item_sums",
           "level_permutation_null", "modal_flip_null", "spread_permutation_null"]

_TIE_TOL = 1e-9


def _random_perms(gen: np.random.Generator, b: int, S: int, L: int) -> np.ndarray:
    return np.argsort(gen.random((b, S, L)), axis=2)


def level_permutation_null(A: np.ndarray, weights: np.ndarray, n_permutations: int, gen: np.random.Generator,
                           chunk: int = 500) -> np.ndarray:
    """Null of ``T = sum_s w_s sum_l A[c, s, l, pi_s(l)]`` under uniform random permutations ``pi_s`` of the
    levels of every stratum ``s`` (the same permutation for every statistic ``c``).

    ``A`` is ``(C, S, L, L)``: ``A[c, s, l, m]`` is the contribution of level ``l``'s role filled with the
    data of level ``m``; the observed statistic is the identity permutation. Returns ``(n_permutations, C)``.
    """
    C, S, L, _ = A.shape
    s_idx = np.arange(S)[None, :, None]
    l_idx = np.arange(L)[None, None, :]
    out = np.empty((n_permutations, C))
    for s in range(0, n_permutations, chunk):
        b = min(chunk, n_permutations - s)
        perms = _random_perms(gen, b, S, L)
        vals = A[:, s_idx, l_idx, perms]  # (C, b, S, L)
        out[s:s + b] = np.einsum("cbsl,s->bc", vals, weights)
    return out


def spread_permutation_null(c: np.ndarray, obs: np.ndarray, w: np.ndarray, C: np.ndarray, n_perm: int,
                            gen: np.random.Generator, chunk: int = 1000) -> np.ndarray:
    """Permute each stratum's centred values ``c`` (S, L) among the levels it has (``obs``), refit the
    additive model (normal matrix ``C``, stratum weights ``w``) and return the SD (ddof=1) of the level
    effects, ``(n_perm,)``; all NaN when the design is not connected."""
    S, L = c.shape
    if _rank(C) != L - 1:
        return np.full(n_perm, np.nan)
    pinv = np.linalg.pinv(C, hermitian=True)
    place = np.argsort(~obs, axis=1, kind="stable")  # observed positions first, in order
    vals_sorted = np.take_along_axis(c, place, axis=1)
    out = np.empty(n_perm)
    for s in range(0, n_perm, chunk):
        b = min(chunk, n_perm - s)
        keys = np.where(obs[None], gen.random((b, S, L)), np.inf)
        order = np.argsort(np.take_along_axis(keys, np.broadcast_to(place, keys.shape), axis=2), axis=2)
        permuted = np.take_along_axis(np.broadcast_to(vals_sorted, keys.shape), order, axis=2)
        r = np.zeros((b, S, L))
        np.put_along_axis(r, np.broadcast_to(place, keys.shape), permuted, axis=2)
        beta = np.einsum("s,bsl->bl", w, r) @ pinv.T
        out[s:s + b] = np.std(beta, axis=1, ddof=1)
    return out


def _rank(C: np.ndarray) -> int:
    """Numerical rank of a symmetric PSD matrix with a tolerance relative to its largest eigenvalue."""
    ev = np.linalg.eigvalsh(C)
    return int((ev > 1e-9 * max(ev.max(), 1e-300)).sum())


#: How :class:`AnswerPermuter` draws: ``"tables"`` (multivariate hypergeometric tables) or ``"sort"``
#: (sorting one uniform key per answer, the method of earlier versions; kept for benchmarks and tests).
DRAW_METHODS = ("tables", "sort")
#: The method used when none is given (recorded in the provenance of stability results).
NULL_DRAWS = "tables"
#: ``"tables"`` enumerates the outcomes of every level (alias tables) when no stratum has more answers than
#: this, and at most :data:`MAX_OUTCOMES` outcomes in all; otherwise it draws option by option with numpy's
#: hypergeometric sampler (cheaper per draw than enumeration beyond about 30 answers per stratum).
ALIAS_MAX_ANSWERS = 32
MAX_OUTCOMES = 500_000


@lru_cache(maxsize=256)
def _compositions(n: int, K: int) -> np.ndarray:
    """Every ``x >= 0`` with ``K`` entries summing to ``n``, ``(m, K)`` (stars and bars)."""
    x = np.zeros((1, 0), np.int64)
    for k in range(K):
        rem = n - x.sum(1)
        cnt = rem + 1 if k < K - 1 else np.ones_like(rem)
        rep = np.repeat(np.arange(len(x)), cnt)
        start = np.cumsum(cnt) - cnt
        val = np.arange(int(cnt.sum())) - start[rep] if k < K - 1 else rem
        x = np.column_stack([x[rep], val])
    return x


def _level_outcomes(pool: tuple[int, ...], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every way ``x`` of taking ``n`` answers from a pool with ``pool[k]`` answers of option ``k``
    (``0 <= x <= pool``, ``sum x = n``), with the alias table of their multivariate hypergeometric
    probabilities ``prod_k C(pool_k, x_k) / C(sum pool, n)``: ``(x (m, K), threshold (m,), alias (m,))``."""
    c = np.asarray(pool, np.int64)
    x = _compositions(n, len(pool))
    x = x[(x <= c).all(1)]
    logp = (gammaln(c + 1.0) - gammaln(x + 1.0) - gammaln(c - x + 1.0)).sum(1)
    prob = np.exp(logp - logp.max())
    return x, *_alias(prob / prob.sum())


def _alias(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table (Vose's construction): outcome ``j`` (uniform) is kept when a second uniform
    is below ``threshold[j]``, else replaced by ``alias[j]``."""
    m = len(p)
    q = p * m
    alias = np.arange(m)
    small = np.flatnonzero(q < 1.0).tolist()
    large = np.flatnonzero(q >= 1.0).tolist()
    ql = q.tolist()
    while small and large:
        s, g = small.pop(), large.pop()
        alias[s] = g
        ql[g] -= 1.0 - ql[s]
        (small if ql[g] < 1.0 else large).append(g)
    q = np.array(ql)
    q[small + large] = 1.0  # leftovers are 1 up to round-off
    return q, alias


class _Patterns:
    """The level outcomes of every *pattern* met so far in the process, for :class:`AnswerPermuter`.

    A pattern is (answers left per option, sizes of the levels still to fill, at least 2). Its outcomes are
    the tables of its first level, each with the pattern it leaves (or -1 when one level is left, which
    takes the answers left). Enumerated once per process: units and factors share most patterns.
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.ids: dict[tuple, int] = {}
        self.tables: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.n_outcomes = 0
        self.flat: dict[str, np.ndarray] | None = None

    def register(self, pool: tuple[int, ...], sizes: tuple[int, ...]) -> int:
        key = (pool, sizes)
        pid = self.ids.get(key)
        if pid is not None:
            return pid
        pid = len(self.tables)
        self.ids[key] = pid
        x, thr, alias = _level_outcomes(pool, sizes[0])
        self.n_outcomes += len(x)
        if self.n_outcomes > MAX_OUTCOMES:
            raise OverflowError
        child = np.full(len(x), -1, np.int64)
        self.tables.append((x, thr, alias, child))
        if len(sizes) > 2:
            child[:] = [self.register(tuple(r), sizes[1:]) for r in (np.asarray(pool) - x).tolist()]
        self.flat = None
        return pid

    def arrays(self) -> dict[str, np.ndarray]:
        if self.flat is None:
            x, thr, alias, child = (np.concatenate(a) for a in zip(*self.tables))
            m = np.array([len(t[0]) for t in self.tables], np.int64)
            base = np.cumsum(m) - m
            self.flat = {"m": m, "base": base, "x": x.astype(np.float64), "thr": thr,
                         "alias": alias + np.repeat(base, m), "child": child}
        return self.flat


#: One registry per number of options K (the outcomes of a registry are rows of K counts).
_PATTERNS: dict[int, _Patterns] = {}


def _registry(K: int) -> _Patterns:
    return _PATTERNS.setdefault(K, _Patterns())


def _table_draws(start: np.ndarray, pooled: np.ndarray, L: int, gen: np.random.Generator, b: int) -> np.ndarray:
    """``b`` tables per stratum, level by level, from the patterns ``start`` (S,): one uniform per stratum,
    draw and level (an alias-table draw among the level's outcomes); the last level takes what is left."""
    S, K = pooled.shape
    t = _registry(K).arrays()
    out = np.empty((b, S, L, K))
    pid = np.broadcast_to(start, (b, S))
    m, base = t["m"].take(start), t["base"].take(start)
    placed = np.zeros((b, S, K))
    for lv in range(L - 1):
        if lv:
            m, base = t["m"].take(pid), t["base"].take(pid)
        u = gen.random((b, S))
        u *= m
        j = u.astype(np.int64)
        u -= j
        o = base + j
        o = np.where(u < t["thr"].take(o), o, t["alias"].take(o))  # the outcome (a global index)
        x = t["x"].take(o, axis=0)
        out[:, :, lv] = x
        placed += x
        if lv < L - 2:
            pid = t["child"].take(o)
    np.subtract(pooled, placed, out=out[:, :, L - 1])
    return out


def _hypergeometric_draws(pooled: np.ndarray, sizes: np.ndarray, gen: np.random.Generator, b: int) -> np.ndarray:
    """``b`` tables per stratum, level by level and option by option: the count of option ``k`` in level
    ``l`` is Hypergeometric(good = its answers not yet placed, bad = the later options' answers not yet
    placed, sample = the level's slots still free). numpy's sampler is O(1) per draw for large counts (ratio
    of uniforms), so this is the path for many answers; forced outcomes (nothing to place, or one option
    left) come out of it without a uniform's worth of work, so every entry goes through one call per
    level and option, with no masks."""
    S, K = pooled.shape
    L = sizes.shape[1]
    out = np.empty((b, S, L, K))
    # (K, b, S) answers of each option not placed: option-major, so each option's counts are contiguous
    left = np.repeat(pooled.T[:, None, :].astype(np.int64), b, axis=1)
    pool = sizes[:, ::-1].cumsum(1)[:, ::-1].astype(np.int64)  # (S, L) answers not placed before level l
    for lv in range(L - 1):
        need = np.repeat(sizes[None, :, lv].astype(np.int64), b, axis=0)  # (b, S) slots of the level still free
        rest = pool[:, lv] - left[0]  # answers of the options after option 0
        for k in range(K - 1):
            good = left[k]
            x = gen.hypergeometric(good, rest, need)
            out[:, :, lv, k] = x
            need -= x
            good -= x
            rest -= left[k + 1]
        out[:, :, lv, K - 1] = need
        left[K - 1] -= need
    out[:, :, L - 1] = left.transpose(1, 2, 0)
    return out


class AnswerPermuter:
    """Random re-allocations of each stratum's answers among its levels, cell sizes kept (the exact
    conditional null of "the level does not matter": answers are exchangeable within a stratum).

    ``counts`` (S, L, K) answer counts per stratum and level. :meth:`draw` returns ``(b, S, L, K)``.

    A random permutation of a stratum's answers among its levels changes only how many answers of each
    option land in each level; that table (level sizes and option totals fixed) is multivariate
    hypergeometric, level by level: the answers of level ``l`` are ``n_l`` answers taken at random from
    those not placed in levels ``< l``. ``method="tables"`` draws these tables: with at most
    :data:`ALIAS_MAX_ANSWERS` answers per stratum it enumerates the outcomes of each level once per pattern
    and draws one uniform per stratum, draw and level (an alias table); with more, it draws option by option
    with numpy's hypergeometric sampler. Either way O(L x K) per stratum and draw, whatever the number of
    answers. ``method="sort"`` sorts a uniform key per answer (O(T log T) per stratum and draw), as earlier
    versions did.
    Both give the same distribution, not the same draws.
    """

    def __init__(self, counts: np.ndarray, method: str | None = None):
        method = NULL_DRAWS if method is None else method
        if method not in DRAW_METHODS:
            raise ValueError(f"`method` must be one of {list(DRAW_METHODS)}; got {method!r}.")
        S, L, K = counts.shape
        c = np.rint(counts).astype(np.int64)
        self.shape = (S, L, K)
        self.sizes = c.sum(-1)  # (S, L)
        self.pooled = c.sum(1)  # (S, K)
        self.start: np.ndarray | None = None
        self.method = method
        if method == "tables" and L >= 2 and S and int(self.sizes.sum(1).max()) <= ALIAS_MAX_ANSWERS:
            self.start = self._patterns()
        if self.method == "sort":
            self._init_sort()

    def _patterns(self) -> np.ndarray | None:
        """Each stratum's pattern in the process-wide registry; None (draw option by option instead) when
        there would be too many outcomes."""
        keys = [(tuple(c), tuple(n)) for c, n in zip(self.pooled.tolist(), self.sizes.tolist())]
        reg = _registry(self.shape[2])
        for _ in range(2):
            try:
                return np.array([reg.register(*k) for k in keys], np.int64)
            except OverflowError:
                reg.clear()  # forget other permuters' patterns, then try this one's alone
        return None

    def _init_sort(self) -> None:
        S, L, K = self.shape
        n, pooled = self.sizes, self.pooled
        tot = n.sum(1)
        self.T = int(tot.max()) if S else 0
        ans = np.full((S, self.T), -1, np.int64)
        slot_level = np.full((S, self.T), -1, np.int64)
        for s in range(S):
            a = np.repeat(np.arange(K), pooled[s])
            ans[s, :len(a)] = a
            slot_level[s, :tot[s]] = np.repeat(np.arange(L), n[s])
        self.ans = ans
        self.pad = ans < 0
        self.any_pad = bool(self.pad.any())
        # bin of each slot within one draw (stratum, level) x K; padding slots go to one spare bin at the end
        self.base = np.where(slot_level >= 0, (np.arange(S)[:, None] * L + slot_level) * K, -1)

    def draw(self, gen: np.random.Generator, b: int) -> np.ndarray:
        """``b`` random re-allocations, ``(b, S, L, K)`` answer counts (floats)."""
        S, L, K = self.shape
        if self.start is not None:
            return _table_draws(self.start, self.pooled, L, gen, b)
        if self.method == "tables":
            if L < 2 or not S:  # one level or no stratum: nothing to re-allocate
                return np.broadcast_to(self.pooled[:, None, :] * (L == 1), (b, S, L, K)).astype(float)
            return _hypergeometric_draws(self.pooled, self.sizes, gen, b)
        return self._draw_sort(gen, b)

    def _draw_sort(self, gen: np.random.Generator, b: int) -> np.ndarray:
        S, L, K = self.shape
        keys = gen.random((b, S, self.T))
        if self.any_pad:
            keys[:, self.pad] = np.inf  # padding stays at the end of every stratum
        order = np.argsort(keys, axis=2)
        del keys
        order += np.arange(S)[:, None] * self.T  # positions in the flattened (S, T) answers
        perm = self.ans.ravel()[order]
        size = S * L * K
        idx = np.where(self.base >= 0, self.base + perm, b * size)  # padding slots: the spare bin
        idx += np.arange(b)[:, None, None] * size * (self.base >= 0)
        return np.bincount(idx.ravel(), minlength=b * size + 1)[:-1].reshape(b, S, L, K).astype(float)


def item_sums(x: np.ndarray, item_of: np.ndarray, n_items: int) -> np.ndarray:
    """Sums of ``x`` (B, S, ...) over the strata of each item, adding strata in their order: (B, n_items, ...)."""
    if len(item_of) > 1 and (np.diff(item_of) < 0).any():
        order = np.argsort(item_of, kind="stable")
        x, item_of = x[:, order], item_of[order]
    present, starts = np.unique(item_of, return_index=True)
    out = np.zeros((x.shape[0], n_items, *x.shape[2:]))
    if len(present):
        out[:, present] = np.add.reduceat(x, starts, axis=1)
    return out


#: Cells (draws x strata x levels x options) of one chunk of draws in the answer nulls when no ``chunk`` is
#: given: enough that numpy's per-call overhead is small, few enough that a chunk's arrays stay within tens of MB.
CHUNK_CELLS = 1_000_000


def _chunk(chunk: int | None, shape: tuple[int, ...], n_draws: int) -> int:
    if chunk is not None:
        return max(1, int(chunk))
    return max(1, min(n_draws, CHUNK_CELLS // max(int(np.prod(shape, dtype=np.int64)), 1)))


def answer_permutation_nulls(counts: np.ndarray,
                             statistics: Sequence[tuple[np.ndarray | None, Callable[[np.ndarray], np.ndarray]]],
                             n_draws: int, gen: np.random.Generator, chunk: int | None = None,
                             method: str | None = None,
                             tick: Callable[[int, int], None] | None = None,
                             rule: SequentialRule | None = None,
                             observed: Sequence[float | None] | None = None) -> list[np.ndarray]:
    """Null values of several statistics from one set of draws of the same null: every stratum's answers
    re-allocated among its levels at random, cell sizes kept (:class:`AnswerPermuter`).

    ``counts`` (S, L, K). ``statistics`` are pairs ``(rows, stat)``: ``rows`` picks the strata the statistic
    reads (a boolean mask or indices over S; None: all) and ``stat`` maps their draws ``(b, S_rows, L, K)``
    to ``(b,)``. Strata are drawn independently, so the draws restricted to ``rows`` are draws of those
    strata alone: each statistic's null distribution is the one it has with draws of its own. Its null
    values are dependent across statistics, as the observed values are (the same data). Returns one
    ``(n_draws,)`` array per statistic. Draws are made ``chunk`` at a time (default: about
    :data:`CHUNK_CELLS` cells per chunk); ``tick(done, n_draws)`` is called after each chunk.

    Sequential (``rule``, a :class:`~robustalign.resampling.sequential.SequentialRule`, and ``observed``,
    one observed value per statistic, None for a statistic that must take every draw): chunks are at most
    ``rule.min_draws`` draws; at each look a statistic whose upper-tail p-value is decided stops (its
    statistic is no longer computed) and drawing stops when every statistic has. Each returned array then
    holds the draws its statistic used, the first draws of the same sequence (with a chunk of at most
    ``rule.min_draws``, the first draws of the fixed-count route).
    """
    perm = AnswerPermuter(counts, method)
    step = _chunk(chunk, perm.shape, n_draws)
    if rule is not None:
        step = min(step, rule.min_draws)
        if observed is None or len(observed) != len(statistics):
            raise ValueError("`observed` needs one value (or None) per statistic with `rule`.")
    outs = [np.empty(n_draws) for _ in statistics]
    used = [n_draws] * len(statistics)
    active = list(range(len(statistics)))
    for s0 in range(0, n_draws, step):
        draws = perm.draw(gen, min(step, n_draws - s0))
        done = s0 + len(draws)
        for i in active:
            rows, stat = statistics[i]
            outs[i][s0:done] = stat(draws if rows is None else draws[:, rows])
        if tick is not None:
            tick(done, n_draws)
        if rule is not None and observed is not None and rule.is_look(s0, done):
            for i in [i for i in active if observed[i] is not None and _decided(rule, outs[i][:done], observed[i])]:
                used[i] = done
                active.remove(i)
            if not active:
                break
    return [out[:n] for out, n in zip(outs, used)]


def _decided(rule: SequentialRule, null: np.ndarray, observed: float | None) -> bool:
    """Whether the upper-tail p-value of ``observed`` against ``null`` (finite draws, the tie rule of
    :func:`~robustalign.resampling.permutation_p_values`) is decided by ``rule``."""
    from robustalign.resampling.permutation import permutation_p_values

    null = null[np.isfinite(null)]
    if observed is None or not np.isfinite(observed) or not len(null):
        return False
    p = float(permutation_p_values(np.array([observed]), null[:, None], "greater")[0])
    b = int(round(p * (len(null) + 1))) - 1
    return bool(rule.decided(b, len(null)))


def _last_axis_max(x: np.ndarray) -> np.ndarray:
    """``x.max(-1)`` for a short last axis, one elementwise maximum per entry (a reduction over a few
    elements at a time is several times slower)."""
    out = x[..., 0].copy()
    for k in range(1, x.shape[-1]):
        np.maximum(out, x[..., k], out=out)
    return out


class ModalFlipStatistic:
    """The noise floor's statistic: for a batch of draws ``(b, S, L, K)``, the mean over items of the mean
    over level pairs of the modal flip (1 - Jaccard overlap of the modal sets, ties within 1e-9) between
    the item's level distributions, each the equal-weight mean over the item's strata of the cell
    distributions (cells without answers left out). ``(b,)``; :meth:`per_item` gives each item's mean
    flip over every draw seen so far.

    ``n`` (S, L): answers per cell (fixed by the null); ``item_of`` (S,): the item of each stratum.
    Which items and level pairs have answers depends only on ``n``, so it is worked out once.
    """

    def __init__(self, n: np.ndarray, item_of: np.ndarray, n_items: int) -> None:
        S, L = n.shape
        self.item_of, self.n_items = np.asarray(item_of), n_items
        ok = n > 0
        with np.errstate(divide="ignore"):
            self.w = np.where(ok, 1.0 / np.where(ok, n, 1.0), 0.0)[..., None]  # (S, L, 1): cells left out weigh 0
        cnt = np.stack([np.bincount(self.item_of[ok[:, lv]], minlength=n_items) for lv in range(L)], 1)  # (Q, L)
        self.inv_cnt = np.where(cnt > 0, 1.0 / np.maximum(cnt, 1), 0.0)[..., None]
        self.ia, self.ib = (np.array(x, np.int64) for x in zip(*[(a, b) for a in range(L) for b in range(a + 1, L)]))
        valid = (cnt[:, self.ia] > 0) & (cnt[:, self.ib] > 0)  # (Q, P) pairs with both levels present
        n_pairs = valid.sum(1)
        self.good = n_pairs > 0  # items with at least one pair
        self.pair_w = np.where(valid, 1.0 / np.maximum(n_pairs, 1)[:, None], 0.0)
        self.acc = np.zeros(n_items)
        self.n_seen = 0

    def __call__(self, draws: np.ndarray) -> np.ndarray:
        K = draws.shape[-1]
        pi = item_sums(draws * self.w, self.item_of, self.n_items)  # (b, Q, L, K) sums of cell shares
        pi *= self.inv_cnt  # equal-weight means (absent levels: all 0, and no pair reads them)
        top = pi >= _last_axis_max(pi)[..., None] - _TIE_TOL  # modal sets
        if K <= 64:  # each modal set as the bits of one integer
            bits = top.astype(np.uint64) @ (np.uint64(1) << np.arange(K, dtype=np.uint64))  # (b, Q, L)
            a, c = bits[:, :, self.ia], bits[:, :, self.ib]  # (b, Q, P)
            both, either = np.bitwise_count(a & c), np.bitwise_count(a | c)
        else:
            a, c = top[:, :, self.ia], top[:, :, self.ib]  # (b, Q, P, K)
            both, either = (a & c).sum(-1), (a | c).sum(-1)
        flip = 1.0 - both / either  # 1 - Jaccard overlap (a set is never empty: no 0 / 0)
        fq = np.einsum("bqp,qp->bq", flip, self.pair_w)  # (b, Q): mean over the item's level pairs
        self.acc += fq.sum(0)
        self.n_seen += len(draws)
        n_good = int(self.good.sum())
        if not n_good:
            return np.full(len(draws), np.nan)
        return fq[:, self.good].sum(1) / n_good

    def per_item(self) -> np.ndarray:
        """Each item's mean flip over the draws seen (NaN for items without a pair of levels)."""
        return np.where(self.good, self.acc / max(self.n_seen, 1), np.nan)


def modal_flip_null(counts: np.ndarray, n: np.ndarray, item_of: np.ndarray, n_items: int, n_draws: int,
                    gen: np.random.Generator, chunk: int | None = None,
                    method: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean modal flip rate over items under no effect, at the numbers of answers actually sampled.

    ``counts`` (S, L, K): answer counts per stratum (item x other cells) and level; ``n`` (S, L) their
    totals. Each draw re-allocates every stratum's answers among its levels at random, cell sizes kept
    (:class:`AnswerPermuter`), and takes :class:`ModalFlipStatistic`: the mean over items of the mean over
    level pairs of the modal flip of the item's level distributions (equal-weight means over its strata,
    as the observed statistic). Returns ``(n_draws,)`` and the per-item mean flip ``(n_items,)``.
    ``chunk`` and ``method`` as in :func:`answer_permutation_nulls`.
    """
    stat = ModalFlipStatistic(n, item_of, n_items)
    (out,) = answer_permutation_nulls(counts, [(None, stat)], n_draws, gen, chunk, method)
    return out, stat.per_item()


def interaction_null(counts: np.ndarray, stat: Callable[[np.ndarray], np.ndarray], n_draws: int,
                     gen: np.random.Generator, chunk: int | None = None, method: str | None = None) -> np.ndarray:
    """Null of an interaction statistic: every stratum's answers re-allocated among its levels at random
    (no level effect, no item x level interaction), cell sizes kept.

    ``stat(counts)`` maps a batch of draws ``(b, S, L, K)`` to ``(b,)`` values. Returns ``(n_draws,)``;
    ``chunk`` and ``method`` as in :func:`answer_permutation_nulls`.
    """
    (out,) = answer_permutation_nulls(counts, [(None, stat)], n_draws, gen, chunk, method)
    return out
