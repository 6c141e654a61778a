"""Compiling a PyMC model for nutpie so that a new process loads it from disk instead of compiling it.

nutpie's own numba route (``nutpie.compile_pymc_model``) wraps PyTensor's compiled log density in a
``numba.cfunc`` that closes over the model's data. numba cannot cache that wrapper, so every new process
compiled it again: 23-31 s of a warm fit's 29-49 s of compile time at 720,000 responses (docs/bayesian.md,
section 3). Here the same two PyTensor graphs (the log density with its gradient, and the map from the
unconstrained point to the stored variables) are compiled by PyTensor's numba linker as functions that
release the GIL, cached on disk under PyTensor's own keys, and handed to nutpie as Python callables
(``nutpie.compiled_pyfunc.from_pyfunc``). The sampler's threads then spend the gradient's time outside
the GIL, so chains still run in parallel.

The functions are the same graphs compiled by the same linker, so a seed gives the same draws as
nutpie's own route, bit for bit (tested). The route uses functions that nutpie and PyTensor do not
export; if they change, :func:`compile_nutpie` warns and falls back to ``nutpie.compile_pymc_model``
(same draws, slower compile).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

#: suffix of PyTensor's numba cache key for the GIL-releasing entry functions (kept apart from the
#: entries PyTensor itself compiles with the GIL held)
_NOGIL_SALT = "robustalign_nogil1"


def _nogil_numba_mode():
    """PyTensor's NUMBA mode whose entry functions release the GIL, cached under their own keys."""
    import pytensor
    from pytensor.compile.mode import Mode, get_mode
    from pytensor.link.numba.cache import compile_numba_function_src
    from pytensor.link.numba.dispatch.basic import numba_njit
    from pytensor.link.numba.linker import NumbaLinker

    class NogilNumbaLinker(NumbaLinker):
        def jit_compile(self, fn_and_cache):
            fn, cache_key = fn_and_cache
            if cache_key is None:  # a graph PyTensor cannot cache: compiled in this process only
                return numba_njit(fn.py_func, final_function=True, nogil=True)
            # a one-line entry function around PyTensor's compiled graph, registered under a key of its own
            # (numba's cache index does not record `nogil`, so PyTensor's key would serve a GIL-holding entry)
            fastmath = int(bool(pytensor.config.numba__fastmath))
            entry = compile_numba_function_src(
                "def nogil_fgraph(*args):\n    return graph(*args)\n", "nogil_fgraph",
                global_env=globals() | {"graph": fn},
                cache_key=f"{cache_key}_fastmath{fastmath}_{_NOGIL_SALT}",
            )
            return numba_njit(entry, final_function=True, cache=True, nogil=True)

    return Mode(linker=NogilNumbaLinker(), optimizer=get_mode("NUMBA").provided_optimizer)


def _pyfunc_model_class():
    from nutpie.compiled_pyfunc import PyFuncModel

    @dataclasses.dataclass(frozen=True)
    class CachedNumbaModel(PyFuncModel):
        """nutpie's Python-callable model, with the log density and initial points at hand (benchmarks)."""

        logp_fn: Any = None
        initial_point_func: Any = None
        logp_entry: Any = None  # the numba entry function the density calls (it releases the GIL)

        def logp_func(self, x):
            """``(log density, gradient)`` at the unconstrained point ``x`` with this model's data."""
            return self.logp_fn(np.ascontiguousarray(x, dtype=np.float64), **self._shared_data)

    return CachedNumbaModel


def compile_cached_numba(model) -> Any:
    """nutpie's model for ``model`` from GIL-releasing numba functions cached on disk (see module docs).

    Initial points and stored variables are those of ``nutpie.compile_pymc_model(model)``: the same
    jittered support points, the same names, shapes and dims. Both functions are called once here, so
    their compilation (or loading from disk) is part of the compile time and not of the sampling.
    """
    import pytensor
    from nutpie.compile_pymc import _make_functions, _prepare_dims_and_coords, _wrap_with_lock
    from nutpie.compiled_pyfunc import from_pyfunc
    from pymc.initial_point import make_initial_point_fn

    pymc_init = _wrap_with_lock(make_initial_point_fn(
        model=model, overrides=None, default_strategy="support_point", jitter_rvs=set(model.free_RVs),
        return_transformed=True))
    with pytensor.config.change_flags(numba__fastmath=False):
        n_dim, _, logp_pt, expand_pt, init_fn, shape_info, reparam = _make_functions(
            model, mode=_nogil_numba_mode(), compute_grad=True, join_expanded=True, pymc_initial_point_fn=pymc_init)
    logp_jit, expand_jit = logp_pt.vm.jit_fn, expand_pt.vm.jit_fn
    shared: dict[str, Any] = {}
    for var in [*logp_pt.get_shared(), *expand_pt.get_shared()]:
        if not var.name or (var.name in shared and shared[var.name] is not var):
            raise ValueError(f"shared variable {var.name!r} is unnamed or not unique")
        shared[var.name] = var
    logp_names = [v.name for v in logp_pt.get_shared()]
    expand_names = [v.name for v in expand_pt.get_shared()]
    data = {k: np.array(v.get_value(), order="C", copy=True) for k, v in shared.items()}
    names, slices, shapes = shape_info

    def logp(x, **kw):
        val, grad = logp_jit(x, *[kw[k] for k in logp_names])
        return float(val), grad

    def make_logp():
        return logp

    def make_expand(seed1, seed2, chain):
        def expand(x, **kw):
            (flat,) = expand_jit(x, *[kw[k] for k in expand_names])
            return {n: flat[s].reshape(sh) for n, s, sh in zip(names, slices, shapes, strict=True)}

        return expand

    # load (or compile) both functions now
    x0 = np.asarray(init_fn(0), dtype=np.float64)
    logp(x0, **data)
    make_expand(0, 0, 0)(x0, **data)

    dims, coords = _prepare_dims_and_coords(model, shape_info, reparam)
    base = from_pyfunc(n_dim, make_logp, make_expand, [np.dtype("float64")] * len(names),
                       [tuple(int(n) for n in s) for s in shapes], list(names), coords=coords, dims=dims,
                       shared_data=data, make_initial_point_fn=init_fn, reparameterized_names=reparam)
    cls = _pyfunc_model_class()
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    return cls(**fields, logp_fn=logp, initial_point_func=init_fn, logp_entry=logp_jit)


def compile_nutpie(model, backend: str):
    """nutpie's compiled model, built without PyTensor's fast-math flags.

    With them (PyTensor's default) the rounding of the generated loops depends on how each compilation
    vectorised them, and a freshly compiled and a cached graph gave different draws for one seed; without
    them a seed gives the same draws from any build (tested). The numba backend uses
    :func:`compile_cached_numba` (same draws as nutpie's own route, loaded from disk in a new process).
    """
    import nutpie
    import pytensor

    if backend == "numba":
        try:
            return compile_cached_numba(model)
        except (ImportError, AttributeError, TypeError, ValueError) as err:
            warnings.warn(
                f"robustalign could not compile the model for nutpie through its cached route ({err!r}); "
                "using nutpie.compile_pymc_model instead: the same draws, but its wrapper is compiled again in "
                "every process. This points to a nutpie or PyTensor version robustalign was not tested with.",
                RuntimeWarning, stacklevel=2)
    with pytensor.config.change_flags(numba__fastmath=False):
        return nutpie.compile_pymc_model(model, backend=backend)
