"""A fused, vectorised likelihood kernel for the cumulative logit on the dense grid, as a PyTensor Op.

The response model's cost is the cutpoint-dependent part of the cells' log-likelihood (see
``_graph.ordinal_data``)::

    L = -sum_{m,q,j,g} N[m,q,j,g] * softplus(tau[q,j] - a[m,q] - c[m,g] - e[q,g])

with ``eta = a + c + e`` the dense predictor. PyTensor evaluates it as a chain of whole-grid passes
whose ``log1p`` is a scalar libm call per element; this kernel makes one pass over the grid and is
written so that LLVM vectorises the innermost loop (over factor combinations ``g``):

* ``exp(-eta)`` is the product of ``exp`` of the three small tables (no exponential per cell), and
  ``exp(tau - eta)`` its product with ``exp(tau)``; ``softplus(x) = max(x, 0) + log1p(y)`` with
  ``y = exp(-|x|)`` taken from the same products (one of the two is <= 1);
* ``log1p`` on [0, 1] is fdlibm's ``log`` core (range reduction by a select, no bit tricks), accurate
  to about 1 ulp and vectorisable, its polynomial in explicit fused multiply-adds (:func:`fma`);
  ``logistic(x) = 1 / (1 + y)`` or ``y / (1 + y)``;
* cutpoints are taken three at a time: a block reads the predictor once and writes its terms to one
  small array, and the running sums add them in cutpoint order, as one cutpoint at a time would;
* ``error_model="numpy"`` drops numba's division-by-zero branch, which otherwise stops vectorisation;
* no value-changing fast-math (no reassociation, no contraction into FMA): every sum runs in a fixed
  order and every FMA is written in the source, so a result does not depend on how a compilation
  vectorised the loops, nor on whether the processor has FMA instructions (bit-identical draws for a
  seed, from a fresh or a cached build; tested against a build for a generic x86-64 processor);
* the grid pass is compiled with one fast-math flag, ``nnan`` (no NaN operands), and no other: it lets LLVM
  lower the selects and comparisons without NaN handling and changes no rounding, so its results are
  bit-identical to the same code without it (tested). It took a fifth to a quarter off the earlier loop (one
  cutpoint at a time); with cutpoint blocks it no longer pays (0.96-0.98x the time without it, measured by
  ``bench/bench_models.py``), and it stays only because it changes no bit.

``nnan`` makes a NaN inside the pass undefined, so the pass runs only when none can arise: when
``max|a| + max|c| + max|e| + max|tau| < 700`` every exponential and product in it is finite and nonzero.
Beyond that (never met in sampling from these priors) the cell grid is computed with the per-cell
scalar formula. The gradient with respect to the four tables comes out of the same pass. Measured in
docs/bayesian.md (section 6).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba as nb
import numpy as np
import pytensor.tensor as pt
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_and_cache_key

# fdlibm e_log.c: log(1 + f) = f - hfsq + s * (hfsq + R(s^2)) for f in [sqrt(2)/2 - 1, sqrt(2) - 1]
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SQRT2_M1 = 0.41421356237309504880

# No value-changing fast-math flags: with reassociation or contraction (FMA) the rounding would depend on how LLVM
# vectorised a loop, which differs between compilations of the same source (a cached and a fresh build
# gave different sampler trajectories for one seed). Sums run in a fixed order over _LANES lanes
# instead, which vectorises without changing a bit.
_LANES = 8


@nb.njit(inline="always", error_model="numpy", cache=True)
def _lane_sum(x, n, lanes):
    """sum(x[:n]) in a fixed order: n // 8 rounds of eight lane-wise additions, then a fixed tree."""
    for k in range(_LANES):
        lanes[k] = 0.0
    top = n - n % _LANES
    for g0 in range(0, top, _LANES):
        for k in range(_LANES):
            lanes[k] += x[g0 + k]
    for g in range(top, n):
        lanes[g - top] += x[g]
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))


@intrinsic
def fma(typingctx, x, y, z):
    """``x * y + z`` rounded once (LLVM's ``llvm.fma.f64``): IEEE fixes its result, so it is the same
    whether LLVM emits a vector or a scalar FMA instruction, or (on a processor without FMA) a call to the
    C library's correctly rounded ``fma``. Unlike fast-math contraction, the program says where it fuses."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.DoubleType(), [ir.DoubleType()] * 3)
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fma.f64")
        return builder.call(fn, [context.cast(builder, v, t, types.float64)
                                 for v, t in zip(args, signature.args, strict=True)])

    return sig, codegen


@nb.njit(inline="always", error_model="numpy", cache=True)
def log1p_unit(y):
    """log(1 + y) for y in [0, 1], branch-free (fdlibm's log core after one select; the polynomial in
    fused multiply-adds)."""
    big = y > _SQRT2_M1
    f = (y - 1.0) * 0.5 if big else y  # 1 + y > sqrt(2): log(1 + y) = log 2 + log(1 + (y - 1) / 2)
    k = 1.0 if big else 0.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = fma(z, fma(w, fma(w, fma(w, _LG7, _LG5), _LG3), _LG1), w * fma(w, fma(w, _LG6, _LG4), _LG2))
    hfsq = 0.5 * f * f
    return fma(k, _LN2_HI, -((hfsq - fma(s, hfsq + r, k * _LN2_LO)) - f))


@nb.njit(inline="always", error_model="numpy", cache=True)
def _term(n, tj, t, ti, eta, w, wi):
    """One cell x cutpoint: ``n * softplus(x)`` and ``n * logistic(x)`` for ``x = tj - eta``, from
    ``t = exp(tj)``, ``ti = 1 / t``, ``w = exp(-eta)`` and ``wi = 1 / w``."""
    x = tj - eta
    pos = x > 0.0
    y = ti * wi if pos else t * w  # exp(-|x|)
    r = 1.0 / (1.0 + y)
    return n * (log1p_unit(y) + (x if pos else 0.0)), n * (r if pos else y * r)


@nb.njit(error_model="numpy", cache=True)
def log1p_unit_array(y):
    """:func:`log1p_unit` over an array (for tests and benchmarks)."""
    out = np.empty_like(y)
    for i in range(y.size):
        out.flat[i] = log1p_unit(y.flat[i])
    return out


#: ``max|a| + max|c| + max|e| + max|tau|`` below which no exponential or product in ``_fast`` over- or
#: underflows (exp(700) is about 1e304), so the pass never meets a NaN or an infinity
FAST_BOUND = 700.0


# nnan only: it changes no rounding (results bit-identical without it), unlike contraction or reassociation
@nb.njit(error_model="numpy", fastmath={"nnan"}, cache=True)
def _fast(a, c, e, tau, N):
    M, Q = a.shape
    G = c.shape[1]
    J = tau.shape[1]
    Ea = np.exp(-a)
    Ec = np.exp(-c)
    Ee = np.exp(-e)
    Et = np.exp(tau)
    Eai, Eci, Eei, Eti = 1.0 / Ea, 1.0 / Ec, 1.0 / Ee, 1.0 / Et
    ga = np.zeros((M, Q))
    gc = np.zeros((M, G))
    ge = np.zeros((Q, G))
    gt = np.zeros((Q, J))
    s_eta = np.zeros(G)  # dL / d eta
    # running sums per element (element-wise additions vectorise without changing the order), reduced
    # once at the end: -L per combination, -dL/dtau per item x cutpoint x combination
    l_acc = np.zeros(G)
    t_acc = np.zeros((Q, J, G))
    part = np.empty((6, G))  # one block's terms: n * logistic, then n * softplus, per cutpoint
    lanes = np.empty(_LANES)
    for m in range(M):
        for q in range(Q):
            amq, ea, eai = a[m, q], Ea[m, q], Eai[m, q]
            # cutpoints in blocks of three, then one at a time. Every sum per combination g still adds its
            # terms in cutpoint order, so the result is the same for any blocking; a block reads the
            # predictor once for three cutpoints, and its loop writes one small array only (so it vectorises)
            j = 0
            while j < J:
                b = 3 if J - j >= 3 else 1
                t0, ti0, tj0 = Et[q, j], Eti[q, j], tau[q, j]
                if b == 3:
                    t1, ti1, tj1 = Et[q, j + 1], Eti[q, j + 1], tau[q, j + 1]
                    t2, ti2, tj2 = Et[q, j + 2], Eti[q, j + 2], tau[q, j + 2]
                    for g in range(G):
                        w = ea * Ec[m, g] * Ee[q, g]  # exp(-eta)
                        wi = eai * Eci[m, g] * Eei[q, g]  # exp(eta)
                        eta = amq + c[m, g] + e[q, g]
                        part[3, g], part[0, g] = _term(N[m, q, j, g], tj0, t0, ti0, eta, w, wi)
                        part[4, g], part[1, g] = _term(N[m, q, j + 1, g], tj1, t1, ti1, eta, w, wi)
                        part[5, g], part[2, g] = _term(N[m, q, j + 2, g], tj2, t2, ti2, eta, w, wi)
                else:
                    for g in range(G):
                        w = ea * Ec[m, g] * Ee[q, g]
                        wi = eai * Eci[m, g] * Eei[q, g]
                        eta = amq + c[m, g] + e[q, g]
                        part[3, g], part[0, g] = _term(N[m, q, j, g], tj0, t0, ti0, eta, w, wi)
                for i in range(b):
                    for g in range(G):
                        l_acc[g] += part[3 + i, g]
                        s_eta[g] += part[i, g]
                        t_acc[q, j + i, g] += part[i, g]
                j += b
            for g in range(G):
                gc[m, g] += s_eta[g]
                ge[q, g] += s_eta[g]
            ga[m, q] = _lane_sum(s_eta, G, lanes)
            s_eta[:] = 0.0
    for q in range(Q):
        for j in range(J):
            gt[q, j] = -_lane_sum(t_acc[q, j], G, lanes)
    return -_lane_sum(l_acc, G, lanes), ga, gc, ge, gt


@nb.njit(error_model="numpy", cache=True)
def _safe(a, c, e, tau, N):
    """The same sums with one stable softplus and logistic per cell (the overflow fallback)."""
    M, Q = a.shape
    G = c.shape[1]
    J = tau.shape[1]
    ga = np.zeros((M, Q))
    gc = np.zeros((M, G))
    ge = np.zeros((Q, G))
    gt = np.zeros((Q, J))
    L = 0.0
    for m in range(M):
        for q in range(Q):
            for g in range(G):
                eta = a[m, q] + c[m, g] + e[q, g]
                s_eta = 0.0
                for j in range(J):
                    x = tau[q, j] - eta
                    y = np.exp(-abs(x))
                    n = N[m, q, j, g]
                    L -= n * (max(x, 0.0) + np.log1p(y))
                    s = n * (1.0 / (1.0 + y) if x > 0.0 else y / (1.0 + y))
                    s_eta += s
                    gt[q, j] -= s
                ga[m, q] += s_eta
                gc[m, g] += s_eta
                ge[q, g] += s_eta
    return L, ga, gc, ge, gt


@nb.njit(cache=True)
def dense_softplus_loglik(a, c, e, tau, N):
    """``L = -sum N[m,q,j,g] softplus(tau[q,j] - a[m,q] - c[m,g] - e[q,g])`` and dL/d(a, c, e, tau).

    Shapes: ``a`` (M, Q), ``c`` (M, G), ``e`` (Q, G), ``tau`` (Q, J), ``N`` (M, Q, J, G).
    """
    a = np.ascontiguousarray(a)
    c = np.ascontiguousarray(c)
    e = np.ascontiguousarray(e)
    tau = np.ascontiguousarray(tau)
    N = np.ascontiguousarray(N)
    bound = np.abs(a).max() + np.abs(c).max() + np.abs(e).max() + np.abs(tau).max()
    if bound < FAST_BOUND:  # False for a NaN anywhere in the tables too
        return _fast(a, c, e, tau, N)
    return _safe(a, c, e, tau, N)


class DenseOrdinalSoftplus(Op):
    """Outputs ``(L, dL/da, dL/dc, dL/de, dL/dtau)`` of :func:`dense_softplus_loglik`; ``N`` is data."""

    __props__ = ()

    def make_node(self, a, c, e, tau, N):
        ins = [pt.as_tensor_variable(x).astype("float64") for x in (a, c, e, tau, N)]
        for x, nd, name in zip(ins, (2, 2, 2, 2, 4), ("a", "c", "e", "tau", "N"), strict=True):
            if x.ndim != nd:
                raise TypeError(f"DenseOrdinalSoftplus: `{name}` must have {nd} dimensions, not {x.ndim}.")
        return Apply(self, ins, [pt.dscalar()] + [pt.dmatrix() for _ in range(4)])

    def perform(self, node, inputs, output_storage):
        res = dense_softplus_loglik(*inputs)
        output_storage[0][0] = np.asarray(res[0], dtype=np.float64)
        for k in range(1, 5):
            output_storage[k][0] = res[k]

    def connection_pattern(self, node):
        return [[True] * 5] * 4 + [[False] * 5]

    def pullback(self, inputs, outputs, cotangents):
        # the gradient outputs of the same node: PyTensor evaluates the kernel once for logp and dlogp
        if any(not isinstance(g.type, DisconnectedType) for g in cotangents[1:]):
            raise NotImplementedError("DenseOrdinalSoftplus has no second derivatives.")
        return [cotangents[0] * o for o in outputs[1:]] + [DisconnectedType()()]

    def infer_shape(self, node, shapes):
        return [(), shapes[0], shapes[1], shapes[2], shapes[3]]


# PyTensor caches compiled numba graphs on disk under this key: the hash of this file, so an edit of
# the kernel can never be served from a stale cache
_CACHE_KEY = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


@register_funcify_and_cache_key(DenseOrdinalSoftplus)
def _numba_funcify(op, node=None, **kwargs):
    @numba_njit
    def f(a, c, e, tau, N):
        L, ga, gc, ge, gt = dense_softplus_loglik(a, c, e, tau, N)
        return np.asarray(L), ga, gc, ge, gt

    return f, _CACHE_KEY


dense_softplus = DenseOrdinalSoftplus()
