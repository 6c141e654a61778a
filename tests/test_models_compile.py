"""The cached compile route for nutpie (``models._compile``): same density, same draws, parallel chains."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from robustalign.simulate import simulate

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def small_model():
    from robustalign.models._design import ordinal_design
    from robustalign.models._graph import build_ordinal

    resp, _ = simulate(n_models=2, n_items=12, n_groups=3, factors={"format": 3}, n_samples=5, rng=4).load()
    return build_ordinal(ordinal_design(resp))


@pytest.fixture(scope="module")
def cached(small_model):
    from robustalign.models._compile import compile_cached_numba

    return compile_cached_numba(small_model)


def test_density_and_gradient_equal_pymc_at_random_points(small_model, cached):
    """The reference is PyMC's own log density and gradient (PyTensor's default C/Python backend)."""
    ip = small_model.initial_point()
    logp = small_model.compile_logp(jacobian=True, mode="FAST_COMPILE")
    dlogp = small_model.compile_dlogp(jacobian=True, mode="FAST_COMPILE")
    names = [small_model.rvs_to_values[v].name for v in small_model.free_RVs]
    sizes = [int(np.size(ip[n])) for n in names]
    assert cached.n_dim == sum(sizes)
    gen = np.random.default_rng(3)
    for _ in range(3):
        x = gen.normal(0.0, 0.5, cached.n_dim)
        parts = np.split(x, np.cumsum(sizes)[:-1])
        point = {n: p.reshape(np.shape(ip[n])) for n, p in zip(names, parts, strict=True)}
        val, grad = cached.logp_func(x)
        assert val == pytest.approx(float(logp(point)), rel=1e-10, abs=1e-8)
        # PyMC's gradient comes in the order of its value variables, the same order as the flat point
        ref = dlogp(point)
        assert np.allclose(grad, ref, rtol=1e-9, atol=1e-8)


def test_entry_functions_release_the_gil(cached):
    """Chains run in nutpie's threads and call the density from Python: it must not hold the GIL."""
    assert cached.logp_entry.targetoptions.get("nogil") is True


def test_new_data_change_the_density(cached, small_model):
    """``with_data`` (used by simulation-based calibration) swaps the counts the density reads."""
    x = np.asarray(cached.initial_point_func(0))
    N = cached._shared_data["N"]
    swapped = cached.with_data(N=np.ascontiguousarray(N[..., ::-1]))
    a, b = cached.logp_func(x)[0], swapped.logp_func(x)[0]
    assert np.isfinite(a) and np.isfinite(b) and a != b
    assert cached.logp_func(x)[0] == a  # the original is untouched


def test_same_draws_as_nutpies_own_route_and_fallback_warns(small_model, cached, monkeypatch):
    """nutpie's own compile route is the reference: same seed, same draws, bit for bit. Both routes compile the
    same PyTensor graph with the same linker in this process, without value-changing fast-math flags, so the
    equality holds on any processor. The fallback to that route (a nutpie or PyTensor whose internals
    changed) says so."""
    import nutpie

    from robustalign.models import _compile

    def broken(model):
        raise AttributeError("nutpie.compile_pymc has no attribute '_make_functions'")

    monkeypatch.setattr(_compile, "compile_cached_numba", broken)
    with pytest.warns(RuntimeWarning, match="could not compile the model for nutpie through its cached route"):
        own = _compile.compile_nutpie(small_model, "numba")
    assert not hasattr(own, "logp_fn")
    draws = []
    for compiled in (cached, own):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = nutpie.sample(compiled, draws=40, tune=40, chains=2, cores=2, seed=5, progress_bar=False)
        post = idata["posterior"]
        draws.append({v: np.asarray(post[v]) for v in post.data_vars})
    assert draws[0].keys() == draws[1].keys() and len(draws[0]) > 5
    for v in draws[0]:
        assert np.array_equal(draws[0][v], draws[1][v]), v
    assert np.std(draws[0]["sd_item"]) > 0  # the chains moved
