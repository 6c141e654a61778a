"""The stability nulls draw each stratum's level x option table directly (multivariate hypergeometric,
``AnswerPermuter(method="tables")``) instead of permuting its answers. The two must agree in distribution.

References written here, independently of the code under test:

* the row permutation from the rules: the stratum's answers in a list, ``Generator.permutation``, the first
  ``n_1`` go to level 1, the next ``n_2`` to level 2, ...;
* the exact probability of a table with level sizes ``n_l`` and option totals ``c_k``:
  ``prod_l n_l! prod_k c_k! / (T! prod_lk x_lk!)`` (Fisher's formula for an L x K table with fixed margins);
* the hypergeometric moments of a cell (also for strata with many answers, where numpy's sampler takes
  the place of the enumerated tables): mean ``n_l c_k / T``, variance
  ``n_l (c_k / T)(1 - c_k / T)(T - n_l) / (T - 1)``, and the covariance of two options in one level
  ``-n_l c_k c_j (T - n_l) / (T^2 (T - 1))``.

Every comparison uses fixed seeds and thresholds far from the Monte Carlo error (p > 1e-3, 6 standard
errors), so the outcome is the same on every run and machine.
"""

from __future__ import annotations

import itertools
from math import factorial, prod

import numpy as np
import pytest
from scipy import stats

from robustalign.resampling import stability_nulls as sn
from robustalign.resampling.stability_nulls import AnswerPermuter, interaction_null, modal_flip_null


def _row_permutation_tables(counts, gen, b):
    """Tables of ``b`` row permutations of each stratum's answers, written from the rules."""
    S, L, K = counts.shape
    out = np.zeros((b, S, L, K))
    for s in range(S):
        answers = np.repeat(np.arange(K), counts[s].sum(0).astype(int))
        levels = np.repeat(np.arange(L), counts[s].sum(1).astype(int))
        for d in range(b):
            np.add.at(out[d, s], (levels, gen.permutation(answers)), 1)
    return out


def _exact_pmf(n, c):
    """All L x K tables with row sums ``n`` and column sums ``c``, and their probabilities."""
    T = sum(n)
    tables, probs = [], []
    rows = [[x for x in itertools.product(*(range(ck + 1) for ck in c)) if sum(x) == nl] for nl in n]
    for t in itertools.product(*rows):
        x = np.array(t)
        if (x.sum(0) == c).all():
            tables.append(x)
            probs.append(prod(map(factorial, n)) * prod(map(factorial, c))
                         / (factorial(T) * prod(factorial(int(v)) for v in x.ravel())))
    return tables, np.array(probs)


def _frequencies(draws, tables):
    index = {x.astype(int).tobytes(): i for i, x in enumerate(tables)}
    f = np.zeros(len(tables))
    for d in draws.astype(int):
        f[index[d.tobytes()]] += 1
    return f


@pytest.fixture(params=["alias", "hypergeometric"])
def path(request, monkeypatch):
    """Both ways of drawing tables: alias tables of enumerated outcomes (few answers per stratum) and numpy's
    hypergeometric sampler option by option (many answers)."""
    if request.param == "hypergeometric":
        monkeypatch.setattr(sn, "ALIAS_MAX_ANSWERS", 0)
    return request.param


def _stratum(n, c):
    """counts (1, L, K) of one stratum with level sizes ``n`` and option totals ``c`` (a valid table)."""
    return _exact_pmf(n, c)[0][0][None].astype(float)


@pytest.mark.parametrize(("n", "c"), [((2, 3, 1), (3, 2, 1)), ((4, 4), (1, 3, 0, 4)), ((1, 2, 2, 1), (2, 2, 2))])
def test_tables_follow_the_exact_distribution_of_a_row_permutation(n, c, path):
    counts = _stratum(n, c)
    tables, p = _exact_pmf(n, c)
    assert np.isclose(p.sum(), 1.0)
    B = 12_000
    perm = AnswerPermuter(counts, "tables")
    assert (perm.start is not None) == (path == "alias")
    got = _frequencies(perm.draw(np.random.default_rng(11), B)[:, 0], tables)
    rows = _frequencies(_row_permutation_tables(counts, np.random.default_rng(12), B)[:, 0], tables)
    # goodness of fit against the closed form, and the two samplers against each other
    assert stats.chisquare(got, B * p).pvalue > 1e-3
    assert stats.chisquare(rows, B * p).pvalue > 1e-3  # the reference itself is right
    assert stats.chi2_contingency(np.vstack([got, rows])[:, (got + rows) > 0]).pvalue > 1e-3
    assert (got > 0).sum() == len(tables)  # every table is reachable


def test_cell_moments_are_hypergeometric_for_many_strata_at_once(path):
    rng = np.random.default_rng(3)
    S, L = 60, 3
    counts = rng.multinomial(6, [0.4, 0.3, 0.2, 0.1, 0.0], size=(S, L)).astype(float)
    counts[::4, 2] = 0  # a level without answers in some strata
    if path == "hypergeometric":  # many answers (alias tables are for few): large hypergeometric draws
        counts[2] = rng.multinomial(30, [0.4, 0.3, 0.2, 0.1, 0.0], size=L)
    counts[1, 0] = [4, 0, 0, 0, 0]
    B = 10_000
    perm = AnswerPermuter(counts, "tables")
    assert (perm.start is not None) == (path == "alias")
    draws = perm.draw(np.random.default_rng(4), B)
    n = counts.sum(-1)[:, :, None]  # (S, L, 1)
    c = counts.sum(1)[:, None, :]  # (S, 1, K)
    T = n.sum(1, keepdims=True)
    mean = n * c / T
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(T > 1, n * (c / T) * (1 - c / T) * (T - n) / (T - 1), 0.0)
    assert (draws.sum(2) == counts.sum(1)).all() and (draws.sum(3) == counts.sum(2)).all()  # margins kept
    se_mean = np.sqrt(var / B)
    assert (np.abs(draws.mean(0) - mean) <= 6 * se_mean + 1e-12).all()
    fourth = ((draws - mean) ** 4).mean(0)
    se_var = np.sqrt(np.maximum(fourth - var**2, 0) / B)
    # the sample variance also carries -(mean - true mean)^2, about var / B (it is all there is when the cell
    # takes two values with probability 1/2 each, where the spread of (x - mean)^2 is 0)
    assert (np.abs(draws.var(0) - var) <= 6 * se_var + 40 * var / B + 1e-12).all()
    # covariance of options 0 and 1 within level 0
    x0, x1 = draws[:, :, 0, 0], draws[:, :, 0, 1]
    cov = ((x0 - x0.mean(0)) * (x1 - x1.mean(0))).mean(0)
    want = -n[:, 0, 0] * c[:, 0, 0] * c[:, 0, 1] * (T[:, 0, 0] - n[:, 0, 0]) / (T[:, 0, 0] ** 2 * (T[:, 0, 0] - 1))
    se_cov = np.sqrt(((x0 - x0.mean(0)) ** 2 * (x1 - x1.mean(0)) ** 2).mean(0) / B)
    assert (np.abs(cov - want) <= 6 * se_cov + 1e-12).all()


def test_strata_are_drawn_independently(path):
    counts = np.tile(np.array([[[2.0, 1, 1], [1, 2, 1]]]), (2, 1, 1))  # two identical strata
    draws = AnswerPermuter(counts, "tables").draw(np.random.default_rng(8), 20_000)
    r = stats.pearsonr(draws[:, 0, 0, 0], draws[:, 1, 0, 0])
    assert abs(r.statistic) < 6 / np.sqrt(20_000)


def test_too_many_outcomes_draw_option_by_option(monkeypatch):
    monkeypatch.setattr(sn, "MAX_OUTCOMES", 3)
    monkeypatch.setattr(sn, "_PATTERNS", {})
    counts = _stratum((2, 3, 1), (3, 2, 1))
    perm = AnswerPermuter(counts)
    assert perm.method == "tables" and perm.start is None
    d = perm.draw(np.random.default_rng(0), 50)
    assert (d.sum(2) == counts.sum(1)).all() and (d.sum(3) == counts.sum(2)).all()


def test_bad_method_is_refused():
    with pytest.raises(ValueError, match="method"):
        AnswerPermuter(np.ones((2, 2, 2)), "shuffle")


def _design(seed):
    rng = np.random.default_rng(seed)
    S, L = 24, 3
    counts = rng.multinomial(5, [0.5, 0.3, 0.15, 0.05], size=(S, L)).astype(float)
    return counts, np.repeat(np.arange(6), 4)


def test_modal_flip_null_has_the_same_distribution_with_either_draw(path):
    counts, item_of = _design(5)
    n = counts.sum(-1)
    a, a_items = modal_flip_null(counts, n, item_of, 6, 4000, np.random.default_rng(1), method="tables")
    b, b_items = modal_flip_null(counts, n, item_of, 6, 4000, np.random.default_rng(2), method="sort")
    assert stats.ks_2samp(a, b).pvalue > 1e-3
    se = np.sqrt(a.var() / 4000 + b.var() / 4000)
    assert abs(a.mean() - b.mean()) < 6 * se


def test_interaction_null_has_the_same_distribution_with_either_draw():
    counts, _ = _design(6)

    def stat(c):  # a statistic of every cell: the spread of level-0 shares of option 0 across strata
        with np.errstate(invalid="ignore", divide="ignore"):
            share = c[..., 0] / c.sum(-1)
        return np.nanstd(share[:, :, 0] - share[:, :, 1], axis=1)

    a = interaction_null(counts, stat, 4000, np.random.default_rng(1), method="tables")
    b = interaction_null(counts, stat, 4000, np.random.default_rng(2), method="sort")
    assert stats.ks_2samp(a, b).pvalue > 1e-3


def _code(tables):
    """One number per table (b, L, K) of small counts, for frequencies."""
    L, K = tables.shape[-2:]
    return (tables.reshape(len(tables), L * K) * 10.0 ** np.arange(L * K)).sum(1)


def test_shared_draws_keep_each_statistics_exact_null(path):
    """One set of draws for two statistics (the noise floor and the item-level null share draws this way):
    each statistic, reading its own strata, still sees the exact table distribution of a row permutation,
    and the strata stay independent."""
    (n_a, c_a), (n_b, c_b) = ((2, 3, 1), (3, 2, 1)), ((1, 1, 2), (2, 1, 1))
    counts = np.concatenate([_stratum(n_a, c_a), _stratum(n_b, c_b)])
    seen = {}

    def stat_a(d):  # reads stratum 0 only
        assert d.shape[1:] == (1, 3, 3)
        seen.setdefault("a", []).append(_code(d[:, 0]))
        return d[:, 0, 0, 0]

    def stat_b(d):  # reads every stratum, uses stratum 1
        seen.setdefault("b", []).append(_code(d[:, 1]))
        return d[:, 1, 0, 0]

    B = 12_000
    a, b = sn.answer_permutation_nulls(counts, [(np.array([True, False]), stat_a), (None, stat_b)], B,
                                       np.random.default_rng(21), chunk=1000)
    for key, (n, c) in (("a", (n_a, c_a)), ("b", (n_b, c_b))):
        tables, p = _exact_pmf(n, c)
        codes = np.concatenate(seen[key])
        f = np.array([(codes == _code(t[None])[0]).sum() for t in tables])
        assert f.sum() == B and stats.chisquare(f, B * p).pvalue > 1e-3, key
    assert abs(stats.pearsonr(a, b).statistic) < 6 / np.sqrt(B)  # strata drawn independently


def test_shared_draws_report_progress_after_each_chunk():
    calls = []
    counts = _stratum((2, 3, 1), (3, 2, 1))
    sn.answer_permutation_nulls(counts, [(None, lambda d: d[:, 0, 0, 0])], 25, np.random.default_rng(0),
                                chunk=10, tick=lambda done, total: calls.append((done, total)))
    assert calls == [(10, 25), (20, 25), (25, 25)]
