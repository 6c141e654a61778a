"""The fused likelihood kernel against scipy and finite differences, and the reproducibility of fits."""

import numpy as np
import pytest
from scipy import optimize
from scipy.special import expit, log_expit

from robustalign.simulate import simulate

pytestmark = pytest.mark.bayes
EPS = np.finfo(float).eps


def test_log1p_on_the_unit_interval_is_within_two_ulp_of_numpy():
    from robustalign.models._kernel import log1p_unit_array

    rng = np.random.default_rng(0)
    sqrt2m1 = np.sqrt(2.0) - 1.0
    y = np.concatenate([rng.uniform(0, 1, 200_000), np.logspace(-300, 0, 2_000), rng.uniform(0.4, 0.43, 10_000),
                        [0.0, 1.0, 5e-324, sqrt2m1, np.nextafter(sqrt2m1, 0), np.nextafter(sqrt2m1, 1)]])
    got, ref = log1p_unit_array(y), np.log1p(y)
    assert got[y == 0.0] == 0.0
    nz = ref > 0
    assert np.max(np.abs(got[nz] - ref[nz]) / ref[nz]) <= 2 * EPS


def _tables(rng, M=3, Q=4, G=5, J=3, scale=1.0):
    a = rng.normal(0, scale, (M, Q))
    c = rng.normal(0, scale, (M, G))
    e = rng.normal(0, scale, (Q, G))
    tau = np.sort(rng.normal(0, 1.5, (Q, J)), 1)
    N = rng.integers(0, 7, (M, Q, J, G)).astype(float)
    return a, c, e, tau, N


def _reference(a, c, e, tau, N):
    """L and its gradient from scipy's log_expit / expit on the full grid (softplus(x) = -log_expit(-x))."""
    x = tau[None, :, :, None] - (a[:, :, None] + c[:, None, :] + e[None])[:, :, None, :]
    L = float((N * log_expit(-x)).sum())
    s = (N * expit(x)).sum(2)  # dL / d eta, (M, Q, G)
    return L, s.sum(2), s.sum(1), s.sum(0), -(N * expit(x)).sum((0, 3))


@pytest.mark.parametrize("scale", [0.1, 1.0, 8.0, 40.0])
def test_kernel_equals_scipy(scale):
    from robustalign.models._kernel import dense_softplus_loglik

    rng = np.random.default_rng(int(scale * 10))
    args = _tables(rng, scale=scale)
    got, ref = dense_softplus_loglik(*args), _reference(*args)
    assert got[0] == pytest.approx(ref[0], rel=1e-13)
    for g, r in zip(got[1:], ref[1:], strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12 * np.abs(r).max())


def test_kernel_gradient_equals_finite_differences():
    from robustalign.models._kernel import dense_softplus_loglik

    rng = np.random.default_rng(5)
    a, c, e, tau, N = _tables(rng, M=2, Q=3, G=4, J=2)
    shapes = [x.shape for x in (a, c, e, tau)]
    cuts = np.cumsum([0] + [int(np.prod(s)) for s in shapes])

    def unpack(v):
        return [v[cuts[i]:cuts[i + 1]].reshape(s) for i, s in enumerate(shapes)]

    def f(v):
        return dense_softplus_loglik(*unpack(v), N)[0]

    v0 = np.concatenate([x.ravel() for x in (a, c, e, tau)])
    numeric = optimize.approx_fprime(v0, f, 1e-6)
    analytic = np.concatenate([g.ravel() for g in dense_softplus_loglik(a, c, e, tau, N)[1:]])
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-4)


def test_overflowing_tables_fall_back_to_the_per_cell_formula():
    """exp(+-800) overflows in the table products (inf * 0 = NaN); the fallback gives scipy's values."""
    from robustalign.models._kernel import dense_softplus_loglik

    rng = np.random.default_rng(2)
    a, c, e, tau, N = _tables(rng)
    a[0, 0], c[0, :] = 800.0, -800.0  # eta of model 0, item 0 is moderate; its parts are not
    got, ref = dense_softplus_loglik(a, c, e, tau, N), _reference(a, c, e, tau, N)
    assert np.isfinite(got[0]) and got[0] == pytest.approx(ref[0], rel=1e-12)
    for g, r in zip(got[1:], ref[1:], strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10 * np.abs(r).max())


def test_tables_just_inside_the_fast_bound_stay_on_the_fast_pass_and_equal_scipy():
    """Entries whose absolute maxima sum to 699 (products up to exp(699), about 1e303): the fast pass
    is the one chosen (the result has its bits, which the per-cell formula's do not share) and it
    still equals scipy's values."""
    from robustalign.models._kernel import FAST_BOUND, _fast, dense_softplus_loglik

    rng = np.random.default_rng(4)
    a, c, e, tau, N = _tables(rng)
    a[0, 0], c[0, 1], e[2, 3] = 300.0, -250.0, 146.0
    tau[:] = np.sort(rng.uniform(-3.0, 3.0, tau.shape), 1)
    tau[0, 0] = -3.0
    bound = sum(np.abs(x).max() for x in (a, c, e, tau))
    assert 690 < bound < FAST_BOUND
    got, ref = dense_softplus_loglik(a, c, e, tau, N), _reference(a, c, e, tau, N)
    assert all(np.array_equal(x, y) for x, y in zip(got, _fast(a, c, e, tau, N), strict=True))
    assert got[0] == pytest.approx(ref[0], rel=1e-13)
    for g, r in zip(got[1:], ref[1:], strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12 * np.abs(r).max())


def test_the_nnan_flag_changes_no_bit_and_lanes_do_not_matter():
    """The grid pass compiled with ``nnan`` against the same source compiled with no fast-math flag:
    bit-identical outputs (both compiled here, for this processor). And the per-combination sums are
    exactly permutation-equivariant over the combinations: a value does not depend on whether it was
    computed in a vector lane or in the scalar remainder (G = 13 is no multiple of the vector width)."""
    import numba as nb

    from robustalign.models._kernel import _fast

    plain = nb.njit(error_model="numpy")(_fast.py_func)
    rng = np.random.default_rng(8)
    a, c, e, tau, N = _tables(rng, M=4, Q=6, G=13, J=3, scale=2.0)
    got = _fast(a, c, e, tau, N)
    assert all(np.array_equal(x, y) for x, y in zip(got, plain(a, c, e, tau, N), strict=True))
    perm = rng.permutation(13)
    moved = _fast(a, c[:, perm], e[:, perm], tau, np.ascontiguousarray(N[..., perm]))
    np.testing.assert_array_equal(moved[2], got[2][:, perm])  # d/dc: one fixed-order sum per (m, g)
    np.testing.assert_array_equal(moved[3], got[3][:, perm])  # d/de: one per (q, g)
    assert moved[0] == pytest.approx(got[0], rel=1e-14)  # sums over g: other order, same value


def _one_cutpoint_at_a_time():
    """The grid pass without blocks: one loop over the combinations per cutpoint, each sum per
    combination taken in cutpoint order (the kernel's order, written the plain way)."""
    import numba as nb

    from robustalign.models._kernel import _lane_sum, _term

    @nb.njit(error_model="numpy")
    def plain(a, c, e, tau, N):
        M, Q = a.shape
        G, J = c.shape[1], tau.shape[1]
        Ea, Ec, Ee, Et = np.exp(-a), np.exp(-c), np.exp(-e), np.exp(tau)
        ga, gc, ge, gt = np.zeros((M, Q)), np.zeros((M, G)), np.zeros((Q, G)), np.zeros((Q, J))
        l_acc, t_acc, lanes = np.zeros(G), np.zeros((Q, J, G)), np.empty(8)
        for m in range(M):
            for q in range(Q):
                s_eta = np.zeros(G)
                for j in range(J):
                    for g in range(G):
                        w = Ea[m, q] * Ec[m, g] * Ee[q, g]
                        wi = (1.0 / Ea[m, q]) * (1.0 / Ec[m, g]) * (1.0 / Ee[q, g])
                        eta = a[m, q] + c[m, g] + e[q, g]
                        lt, st = _term(N[m, q, j, g], tau[q, j], Et[q, j], 1.0 / Et[q, j], eta, w, wi)
                        l_acc[g] += lt
                        s_eta[g] += st
                        t_acc[q, j, g] += st
                for g in range(G):
                    gc[m, g] += s_eta[g]
                    ge[q, g] += s_eta[g]
                ga[m, q] = _lane_sum(s_eta, G, lanes)
        for q in range(Q):
            for j in range(J):
                gt[q, j] = -_lane_sum(t_acc[q, j], G, lanes)
        return -_lane_sum(l_acc, G, lanes), ga, gc, ge, gt

    return plain


@pytest.mark.parametrize("J", [1, 2, 3, 4, 6, 7])
def test_cutpoints_in_blocks_give_the_bits_of_one_at_a_time(J):
    """The pass takes cutpoints three at a time (one read of the predictor per block); as every sum per
    combination keeps cutpoint order, its outputs are bit-identical to the plain loop for any number of
    cutpoints (blocks of three, the rest one by one), and equal to scipy's."""
    from robustalign.models._kernel import _fast

    rng = np.random.default_rng(20 + J)
    args = _tables(rng, M=3, Q=5, G=11, J=J, scale=1.5)
    got = _fast(*args)
    assert all(np.array_equal(x, y) for x, y in zip(got, _one_cutpoint_at_a_time()(*args), strict=True))
    ref = _reference(*args)
    assert got[0] == pytest.approx(ref[0], rel=1e-13)
    np.testing.assert_allclose(got[4], ref[4], rtol=1e-12, atol=1e-12 * np.abs(ref[4]).max())


_GENERIC_SCRIPT = """
import sys, numpy as np
from robustalign.models._kernel import _fast, log1p_unit_array
rng = np.random.default_rng(3)
y = np.concatenate([rng.uniform(0, 1, 100_000), np.logspace(-300, 0, 1_000)])
M, Q, G, J = 3, 4, 13, 4
args = (rng.normal(0, 2, (M, Q)), rng.normal(0, 2, (M, G)), rng.normal(0, 2, (Q, G)),
        np.sort(rng.normal(0, 1.5, (Q, J)), 1), rng.integers(0, 7, (M, Q, J, G)).astype(float))
np.savez(sys.argv[1], log1p=log1p_unit_array(y), *_fast(*args))
"""


def test_the_kernel_has_the_same_bits_on_a_processor_without_fma(tmp_path):
    """The kernel fuses multiply-adds where its source says so (``_kernel.fma``), never by contraction.
    Compiled for a generic x86-64 processor (no FMA instructions: LLVM then calls the C library's
    correctly rounded ``fma``) in a new process with its own numba cache, its outputs must be the same
    bits as this process's build for this processor (with FMA instructions where it has them)."""
    import os
    import platform
    import subprocess
    import sys

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the generic build compared here is x86-64's")
    env = {**os.environ, "NUMBA_CPU_NAME": "generic", "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    subprocess.run([sys.executable, "-c", _GENERIC_SCRIPT, str(tmp_path / "generic.npz")], env=env, check=True)
    host = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba_host")}
    host.pop("NUMBA_CPU_NAME", None)
    subprocess.run([sys.executable, "-c", _GENERIC_SCRIPT, str(tmp_path / "host.npz")], env=host, check=True)
    generic, here = np.load(tmp_path / "generic.npz"), np.load(tmp_path / "host.npz")
    assert sorted(generic.files) == sorted(here.files) and len(here.files) == 6
    for k in here.files:
        np.testing.assert_array_equal(generic[k], here[k], err_msg=k)


def test_fused_graph_gradient_equals_finite_differences_under_numba():
    """The model's log density and gradient as a fit compiles them (numba, one pt.grad of the logp,
    with the joint human component): one kernel call, and a gradient equal to central differences."""
    import pytensor
    import pytensor.tensor as pt

    from robustalign.models._design import ordinal_design
    from robustalign.models._graph import build_ordinal

    resp, ref = simulate(n_models=2, n_items=5, n_groups=3, factors={"format": 3}, n_samples=4, rng=3).load()
    d = ordinal_design(resp, ref)
    assert d.dense
    m = build_ordinal(d, fused=True)
    logp = m.logp()
    with pytensor.config.change_flags(numba__fastmath=False):
        f = pytensor.function(m.value_vars, [logp, *pt.grad(logp, m.value_vars)], mode="NUMBA")
    assert sum("DenseOrdinalSoftplus" in str(nd.op) for nd in f.maker.fgraph.toposort()) == 1
    ip = m.initial_point()
    point = np.random.default_rng(1)
    vals = [ip[v.name] + point.normal(0, 0.4, np.shape(ip[v.name])) for v in m.value_vars]
    shapes = [np.shape(v) for v in vals]
    cuts = np.cumsum([0] + [int(np.prod(s)) for s in shapes])
    x0 = np.concatenate([np.ravel(v) for v in vals])

    def unpack(x):
        return [x[cuts[i]:cuts[i + 1]].reshape(s) for i, s in enumerate(shapes)]

    grad = np.concatenate([np.ravel(g) for g in f(*vals)[1:]])
    h = 1e-5
    for i in point.choice(x0.size, size=min(60, x0.size), replace=False):
        up, dn = x0.copy(), x0.copy()
        up[i] += h
        dn[i] -= h
        fd = (f(*unpack(up))[0] - f(*unpack(dn))[0]) / (2 * h)
        assert fd == pytest.approx(grad[i], rel=1e-5, abs=1e-4)


_DRAWS_SCRIPT = """
import hashlib, warnings, numpy as np
from robustalign.simulate import simulate
from robustalign.models import fit_response_model
resp, _ = simulate(n_models=2, n_items=12, n_groups=3, factors={"format": 3}, n_samples=5, rng=4).load()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fit = fit_response_model(resp, draws=300, tune=300, chains=2, cores=1, rng=11)
post = fit.idata["posterior"].to_dataset()
print(hashlib.sha256(b"".join(np.ascontiguousarray(post[v].values).tobytes() for v in sorted(post.data_vars))).hexdigest())
"""


@pytest.mark.slow
def test_a_seed_gives_the_same_draws_from_a_fresh_and_a_cached_build(tmp_path, request):
    """Two processes on this machine, the first compiling into empty PyTensor and numba caches, the
    second loading them: the draws must be bit-identical (with PyTensor's fast-math flags they were
    not). This is the one-machine promise of README "Same seed, same numbers"; it compares floats
    across processes bit for bit, which holds on one processor and installation only, so it is a slow
    check (``make test-slow``, about 2.5 minutes with empty caches), not part of ``make test``."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("two fresh compiles in subprocesses: run with -m slow")
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={tmp_path / 'pytensor'}",
           "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    runs = [subprocess.run([sys.executable, "-c", _DRAWS_SCRIPT], env=env, capture_output=True, text=True,
                           check=True).stdout.split()[-1] for _ in range(2)]
    assert (tmp_path / "pytensor" / "numba").exists()  # the second run had a cache to load
    # the entry functions nutpie calls were cached too (models._compile), so the second run loaded them
    assert list((tmp_path / "pytensor" / "numba").glob("*nogil_fgraph*robustalign_nogil*.nbi"))
    assert runs[0] == runs[1]
