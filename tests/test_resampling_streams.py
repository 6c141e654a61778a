"""Keyed streams: the same seed and key give the same draws; other keys and seeds give independent ones."""

import numpy as np
from scipy import stats

from robustalign.resampling import keyed_stream
from robustalign.resampling.streams import key_words


def test_same_seed_and_key_same_draws_whatever_was_drawn_before():
    g = np.random.default_rng(7)
    first = keyed_stream(g, "boot", "m1").random(5)
    g.random(1000)  # drawing from the parent does not move a keyed stream
    assert np.array_equal(keyed_stream(g, "boot", "m1").random(5), first)
    assert np.array_equal(keyed_stream(7, "boot", "m1").random(5), first)


def test_unit_stream_does_not_depend_on_other_units():
    units_all = ["a", "b", "c"]
    with_all = {u: keyed_stream(3, "stab", u).integers(0, 100, 20) for u in units_all}
    without_a = {u: keyed_stream(3, "stab", u).integers(0, 100, 20) for u in ["c", "b"]}
    for u in ["b", "c"]:
        assert np.array_equal(with_all[u], without_a[u])


def test_keys_are_typed_and_nested():
    assert key_words("x", 1) != key_words("x", "1")
    assert key_words(("a", "b")) != key_words("a", "b")
    assert key_words("a|b") != key_words("a", "b")


def test_different_keys_are_independent_streams():
    # 200 pairs of streams: correlation of their uniforms should look like independent draws
    r = [np.corrcoef(keyed_stream(11, "k", i).random(500), keyed_stream(11, "k", i + 1000).random(500))[0, 1]
         for i in range(200)]
    # under independence sqrt(n) r ~ N(0, 1): a KS test must not reject at 1%
    assert stats.kstest(np.sqrt(500) * np.asarray(r), "norm").pvalue > 0.01


def test_different_seeds_differ():
    assert not np.array_equal(keyed_stream(1, "k").random(4), keyed_stream(2, "k").random(4))
