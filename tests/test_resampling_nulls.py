"""resampling.nulls: the draws claims/ hands its statistics to. Distributions checked against their
definition (binomial and chi-square tests), exact enumeration against a loop, streams keyed by unit and
stable under blocking and executors, p-values against the formula written out."""

from concurrent.futures import ThreadPoolExecutor
from itertools import permutations

import numpy as np
import pytest
from scipy import stats

from robustalign.resampling.nulls import (
    BLOCK_SIZE,
    item_bootstrap,
    label_permutations,
    p_values,
    sign_flips,
    within_item_permutations,
)


def _identity(x):
    return x.reshape(len(x), -1).astype(float)


def test_item_bootstrap_draws_items_uniformly_with_replacement():
    idx = item_bootstrap(_identity, 5, n_resamples=2000, rng=1, key=("test.boot",))
    assert idx.shape == (2000, 5) and set(np.unique(idx)) == {0, 1, 2, 3, 4}
    counts = np.bincount(idx.astype(int).ravel(), minlength=5)
    assert stats.chisquare(counts).pvalue > 1e-3
    # every resample is n draws with replacement: the number of distinct items has the known mean
    distinct = np.array([len(set(r)) for r in idx.astype(int)])
    expected = 5 * (1 - (4 / 5) ** 5)
    assert abs(distinct.mean() - expected) < 4 * distinct.std() / np.sqrt(len(distinct))


def test_sign_flips_are_fair_coins():
    s = sign_flips(_identity, 7, n_permutations=1000, rng=2, key=("test.flip",))
    assert set(np.unique(s)) == {-1.0, 1.0}
    assert stats.binomtest(int((s > 0).sum()), s.size, 0.5).pvalue > 1e-3


def test_within_item_permutations_are_uniform_and_independent_across_items():
    perm = within_item_permutations(lambda p: p.reshape(len(p), -1), 2, 3, n_permutations=3000, rng=3,
                                    key=("test.perm",)).astype(int).reshape(-1, 2, 3)
    assert (np.sort(perm, axis=-1) == np.arange(3)).all()
    orders = {o: k for k, o in enumerate(permutations(range(3)))}
    code = np.array([[orders[tuple(r)] for r in p] for p in perm])  # (rows, items)
    table = np.zeros((6, 6))
    np.add.at(table, (code[:, 0], code[:, 1]), 1)
    assert stats.chisquare(table.sum(1)).pvalue > 1e-3  # uniform over the 3! orders
    assert stats.chi2_contingency(table).pvalue > 1e-3  # item 2's order does not depend on item 1's


def test_streams_are_keyed_block_stable_and_executor_independent():
    a = sign_flips(_identity, 4, n_permutations=2 * BLOCK_SIZE + 10, rng=5, key=("test", "unit_a"))
    assert (sign_flips(_identity, 4, n_permutations=BLOCK_SIZE, rng=5, key=("test", "unit_a")) == a[:BLOCK_SIZE]).all()
    with ThreadPoolExecutor(2) as ex:
        assert (sign_flips(_identity, 4, n_permutations=len(a), rng=5, key=("test", "unit_a"), executor=ex) == a).all()
    b = sign_flips(_identity, 4, n_permutations=len(a), rng=5, key=("test", "unit_b"))
    assert not (a == b).all()
    # a Generator contributes its seed, not its state
    g = np.random.default_rng(5)
    g.random(10)
    assert (sign_flips(_identity, 4, n_permutations=len(a), rng=g, key=("test", "unit_a")) == a).all()
    with pytest.raises(ValueError, match="purpose"):
        sign_flips(_identity, 4, n_permutations=10, rng=5, key=())


def test_exact_label_permutations_give_the_exact_p_value():
    rng = np.random.default_rng(8)
    w = rng.normal(size=4)

    def stat(perms):
        return (w[perms] * np.arange(4)).sum(-1)

    null, exact = label_permutations(stat, 4, n_permutations=1000, rng=0, key=("test.labels",))
    assert exact and len(null) == 23
    obs = float((w * np.arange(4)).sum())
    loop = np.mean([(w[list(p)] * np.arange(4)).sum() >= obs - 1e-12 for p in permutations(range(4))])
    assert p_values(obs, null, "greater")[0] == pytest.approx(loop)
    mc, exact = label_permutations(stat, 4, n_permutations=20, rng=0, key=("test.labels",))
    assert not exact and len(mc) == 20


def test_p_values_formula_nan_columns_and_centre():
    null = np.array([[0.1, 0.6, np.nan], [0.5, 0.4, 0.2], [0.9, np.nan, 0.3], [0.3, 0.55, np.nan]])
    obs = np.array([0.5, 0.5, 0.25])
    p = p_values(obs, null, "greater")
    assert p[0] == pytest.approx((1 + 2) / (1 + 4))  # 0.5 (a tie) and 0.9
    assert p[1] == pytest.approx((1 + 2) / (1 + 3))  # the NaN permutation is left out of b and B
    assert p[2] == pytest.approx((1 + 1) / (1 + 2))
    two = p_values([0.8], np.array([[0.5], [0.2], [0.8], [0.45]]), "two-sided", centre=0.5)
    assert two[0] == pytest.approx((1 + 2) / (1 + 4))  # distances from 1/2: 0.3 for 0.2 and 0.8
    assert p_values([0.8], np.array([[0.5], [0.2], [0.8], [0.45]]), "two-sided")[0] == pytest.approx(2 / 5)  # centre 0: only 0.8
    assert np.isnan(p_values([np.nan], null[:, :1], "greater")[0])


def test_claims_modules_moved_here_draw_nothing_and_write_no_p_value_formula():
    import ast
    from pathlib import Path

    import robustalign

    draws = {"random", "integers", "choice", "permutation", "permuted", "shuffle", "normal", "uniform", "binomial",
             "multinomial", "dirichlet"}

    def one_plus(node):  # 1 + something: the numerator of (1 + b) / (1 + B)
        return (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and isinstance(node.left, ast.Constant)
                and node.left.value == 1)

    root = Path(robustalign.__file__).parent / "claims"
    for name in ("steerability.py", "multiverse.py"):
        tree = ast.parse((root / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr not in draws, (name, node.lineno, node.func.attr)
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                assert not (one_plus(node.left) and one_plus(node.right)), (name, node.lineno)
