"""Sampling with explicit settings, provenance, and the convergence gate."""

from __future__ import annotations

import json
import os
import time
import warnings
from collections import OrderedDict
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustalign._errors import ConvergenceWarning
from robustalign._rng import as_generator
from robustalign.models._compile import compile_nutpie

#: The gate every fit must pass before its numbers may be read as posterior summaries.
#: ``max_r_hat`` applies to every scalar of the reported parameters and of variables with at most
#: ``table_min_size`` scalars; larger tables of effects are judged by ``table_max_share`` (the share of
#: their entries above ``max_r_hat``), ``table_max_r_hat`` (every entry) and the R-hat of their spread
#: (docs/bayesian.md, section 3: why, and a simulation showing what it catches).
GATE: dict[str, float] = {"max_r_hat": 1.01, "min_ess_bulk": 400.0, "min_ess_tail": 400.0, "max_divergences": 0, "min_e_bfmi": 0.3,
                          "table_min_size": 100, "table_max_share": 0.01, "table_max_r_hat": 1.05}

SAMPLERS = ("nutpie", "pymc")
BACKENDS = ("numba", "jax", "auto")


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}; got {backend!r}.")
    if backend != "auto":
        if backend == "jax" and _version("jax") is None:
            raise ImportError("`backend='jax'` needs jax: pip install 'robustalign[jax]'.")
        return backend
    # measured (docs/bayesian.md, section 6): before the fused likelihood kernel, JAX beat numba above
    # about 50,000 cells; the fused kernel (numba only) is faster than either at every size measured
    return "numba"


def check_args(draws, tune, chains, sampler, target_accept):
    for name, v, lo in (("draws", draws, 1), ("tune", tune, 1), ("chains", chains, 1)):
        if not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"`{name}` must be an integer >= {lo}; got {v!r}.")
    if sampler not in SAMPLERS:
        raise ValueError(f"`sampler` must be one of {SAMPLERS}; got {sampler!r}.")
    if not 0 < target_accept < 1:
        raise ValueError(f"`target_accept` must be in (0, 1); got {target_accept!r}.")


def compile_cache_dirs() -> dict[str, str]:
    """Where compiled models are cached on disk, for reuse by later processes (docs/bayesian.md, section 3).

    ``numba``: machine code of the log density and its gradient (PyTensor's numba cache, which also holds
    the fused likelihood kernel); ``pytensor``: PyTensor's compile directory for this platform. Both are
    under ``pytensor.config.base_compiledir`` (``~/.pytensor`` unless ``PYTENSOR_FLAGS=base_compiledir=...``
    moves it). Deleting them is safe (the next fit compiles again). A new process loads a model structure
    compiled before from there (``_compile``); within a process the compiled model is reused
    (:func:`compiled_for`).
    """
    import pytensor

    base = Path(pytensor.config.base_compiledir)
    return {"numba": str(base / "numba"), "pytensor": str(pytensor.config.compiledir)}


#: Compiled nutpie models of this process, newest last, keyed by what determines the graph (see _run).
_COMPILED: OrderedDict = OrderedDict()
_COMPILED_MAX = 4


def compiled_for(key, build):
    """The compiled nutpie model for ``key``, compiled by ``build()`` on first use.

    A second fit of the same data and model options in one process (a refit with more draws, another
    seed) samples the same compiled function instead of compiling it again (20-50 s per structure);
    the draws are the same as from a fresh compile (tested). At most ``_COMPILED_MAX`` are kept.
    """
    if key in _COMPILED:
        _COMPILED.move_to_end(key)
        return _COMPILED[key], True
    compiled = build()
    _COMPILED[key] = compiled
    while len(_COMPILED) > _COMPILED_MAX:
        _COMPILED.popitem(last=False)
    return compiled, False


def sample(model, *, draws, tune, chains, rng, sampler, target_accept, backend, cores=None, compiled=None,
           adaptation="diag", cache_key=None):
    """Sample ``model``; return (DataTree, provenance dict, compiled model or None).

    ``model`` is a PyMC model or a function that builds one (called only when it must be compiled).
    With ``cache_key`` (nutpie only) the compiled model is kept for later fits with the same key.
    """
    def get_model():
        return model() if callable(model) else model

    from robustalign._progress import ACTIVE, enabled, phase

    gen, record = as_generator(rng)
    seed = int(gen.integers(0, 2**31 - 1))
    timings = {}
    # the samplers' own bars show the tune and draw phases with an ETA; inside another display (an audit
    # step) only that display's spinner, as a terminal holds one live display at a time
    show = enabled() and not ACTIVE
    if sampler == "nutpie":
        import nutpie

        t0 = time.perf_counter()
        reused = compiled is not None
        with phase("compiling the model (once per data structure)", progress=enabled() and compiled is None):
            if compiled is None and cache_key is not None:
                compiled, reused = compiled_for((cache_key, backend),
                                                lambda: compile_nutpie(get_model(), backend))
            elif compiled is None:
                compiled = compile_nutpie(get_model(), backend)
        timings["compile_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        idata = nutpie.sample(
            compiled, draws=draws, tune=tune, chains=chains, cores=cores, seed=seed,
            target_accept=target_accept, progress_bar=show, save_warmup=False, adaptation=adaptation,
        )
        timings["sample_s"] = time.perf_counter() - t0
    else:
        import pymc as pm

        t0 = time.perf_counter()
        with get_model():
            idata = pm.sample(
                draws, tune=tune, chains=chains, cores=cores, random_seed=seed, nuts_sampler="pymc",
                nuts={"target_accept": target_accept}, progressbar=show, compute_convergence_checks=False,
            )
        timings["sample_s"] = time.perf_counter() - t0  # includes the C/numba compile
        timings["compile_s"] = float("nan")
    prov = {
        "robustalign": _version("robustalign"),
        "pymc": _version("pymc"),
        "pytensor": _version("pytensor"),
        "arviz": _version("arviz"),
        "nutpie": _version("nutpie"),
        "numpy": _version("numpy"),
        "seed": record.to_dict(),
        "sampler_seed": seed,
        "sampler": sampler,
        "backend": backend if sampler == "nutpie" else "pymc-default",
        "draws": int(draws),
        "tune": int(tune),
        "chains": int(chains),
        "target_accept": float(target_accept),
        "adaptation": adaptation if sampler == "nutpie" else "pymc-default",
        **{k: round(v, 3) for k, v in timings.items()},
    }
    if sampler == "nutpie":
        prov["compiled_reused"] = bool(reused)
    return idata, prov, compiled


def e_bfmi(energy) -> np.ndarray:
    """Energy Bayesian fraction of missing information per chain (Betancourt 2016), ``energy`` (chains, draws).

    ``sum(diff(E)^2) / sum((E - mean E)^2)``: small when the momentum resampling moves the energy little compared
    with its spread over the posterior, so the sampler explores the tails slowly (heavy tails, funnels).
    Below 0.3 is the usual warning level (Stan, ArviZ).
    """
    e = np.asarray(energy, float)
    return np.square(np.diff(e, axis=1)).sum(axis=1) / np.square(e - e.mean(axis=1, keepdims=True)).sum(axis=1)


#: Variables judged scalar by scalar whatever their size: the reported parameters (``BayesFit.to_frame``).
REPORTED_PREFIXES = ("sd_", "beta_", "mu_model", "mu_group", "phi", "intercept", "cutpoints_", "model_cutpoints_",
                     "cutpoint_offset_", "log_gaps_", "p_cut_")


def _judged_as_table(name: str, n_scalars: int) -> bool:
    """Whether a variable's R-hat is judged as a table (docs/bayesian.md, section 3)."""
    return n_scalars > GATE["table_min_size"] and not name.startswith(REPORTED_PREFIXES)


def _spread_r_hat(arr: np.ndarray) -> float:
    """Rank-normalised R-hat of a table's spread: the SD over its entries, per draw."""
    from robustalign.models._diagnostics import rhat_rank

    flat = arr.reshape(arr.shape[0], arr.shape[1], -1)
    return float(rhat_rank(flat.std(axis=2)))


def _gate_row(v: str, arr: np.ndarray) -> dict:
    """R-hat and ESS of one variable, reduced over its non-constant entries, and its verdict."""
    from robustalign.models._diagnostics import diagnostics

    # constant entries (e.g. padded options of short scales) give 0/0 in R-hat; they are left out
    const = np.ptp(arr.reshape(arr.shape[0] * arr.shape[1], -1), axis=0) == 0
    d = diagnostics(arr)

    def vals(k: str) -> np.ndarray:
        a = np.asarray(d[k], float).ravel()
        return a[~const.ravel()] if a.size == const.size else a

    r = vals("r_hat") if arr.shape[0] > 1 else np.array([np.nan])
    b, t = vals("ess_bulk"), vals("ess_tail")
    n = int((~const).sum())
    row: dict[str, Any] = {"variable": v, "n_scalars": n, "rule": "table" if _judged_as_table(v, n) else "each",
           "max_r_hat": float(r.max()) if r.size else float("nan"),
           "min_ess_bulk": float(b.min()) if b.size else np.inf, "min_ess_tail": float(t.min()) if t.size else np.inf,
           "share_r_hat_above": float(np.mean(~(r <= GATE["max_r_hat"]))) if r.size else 0.0,
           "spread_r_hat": float("nan")}
    ess_ok = row["min_ess_bulk"] >= GATE["min_ess_bulk"] and row["min_ess_tail"] >= GATE["min_ess_tail"]
    if row["rule"] == "table":
        row["spread_r_hat"] = _spread_r_hat(arr[..., ~const.reshape(arr.shape[2:])] if const.any() else arr)
    row["passed"] = bool(_r_hat_passed(row) and ess_ok)
    return row


def _gate_rows(names: list[str], draws: Any, sizes: list[int], workers: int | None) -> list[dict]:
    """``_gate_row`` of every variable (``draws(name)``: its ``(chain, draw, ...)`` array, fetched when it is
    judged), in threads: numpy's sorts, FFTs and element-wise loops release the GIL, so two threads take
    about 40% less time on two cores. Largest variables first; rows in the order of ``names``."""
    from concurrent.futures import ThreadPoolExecutor

    def row(i: int) -> dict:
        with np.errstate(invalid="ignore", divide="ignore"):  # numpy's error state is per thread
            return _gate_row(names[i], draws(names[i]))

    n = min(len(names), workers if workers is not None else (os.cpu_count() or 1))
    if n <= 1:
        return [row(i) for i in range(len(names))]
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = {i: pool.submit(row, i) for i in sorted(range(len(names)), key=lambda i: -sizes[i])}
        return [futures[i].result() for i in range(len(names))]


def diagnose(idata, var_names=None, *, workers: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Per-variable R-hat / ESS and the overall gate verdict (docs/bayesian.md, section 3).

    Returns a frame with one row per variable (``n_scalars``, ``rule``, ``max_r_hat``, ``min_ess_bulk``,
    ``min_ess_tail``, ``share_r_hat_above``, ``spread_r_hat``, ``passed``) and a dict with the overall
    extremes, divergences and ``converged``. The reported parameters, and every variable of at most
    ``GATE["table_min_size"]`` scalars, need R-hat <= ``GATE["max_r_hat"]`` in every scalar. A larger table
    of effects (``rule == "table"``) needs at most ``GATE["table_max_share"]`` of its entries above that, none
    above ``GATE["table_max_r_hat"]``, and R-hat <= ``GATE["max_r_hat"]`` for its spread (the SD over its
    entries, per draw). Every scalar needs the ESS thresholds.

    The variables are judged in ``workers`` threads (default: one per core); each variable's numbers are
    computed by the same code whatever the number of threads, so they do not depend on it.
    """
    post = idata["posterior"].to_dataset()
    names = [v for v in (var_names or list(post.data_vars))]
    diag = pd.DataFrame(_gate_rows(names, lambda v: np.asarray(post[v].transpose("chain", "draw", ...).values),
                                   [int(post[v].size) for v in names], workers))
    ss = idata["sample_stats"]
    div = int(np.asarray(ss["diverging"]).sum()) if "diverging" in ss else 0
    # a sampler that records no energy cannot be judged on it: NaN, reported, and not a failure
    bfmi = float(np.min(e_bfmi(ss["energy"].values))) if "energy" in ss else float("nan")
    each, table = diag[diag["rule"] == "each"], diag[diag["rule"] == "table"]
    overall = {
        "max_r_hat": float(diag["max_r_hat"].max()),
        "max_r_hat_each": float(each["max_r_hat"].max()) if len(each) else float("nan"),
        "max_r_hat_table": float(table["max_r_hat"].max()) if len(table) else float("nan"),
        "max_share_r_hat_above": float(table["share_r_hat_above"].max()) if len(table) else 0.0,
        "max_spread_r_hat": float(table["spread_r_hat"].max()) if len(table) else float("nan"),
        "min_ess_bulk": float(diag["min_ess_bulk"].min()),
        "min_ess_tail": float(diag["min_ess_tail"].min()),
        "divergences": div,
        "min_e_bfmi": bfmi,
        "n_draws": int(post.sizes["chain"] * post.sizes["draw"]),
        "rhat_passed": bool(all(_r_hat_passed(r) for r in diag.to_dict("records"))),
    }
    overall["converged"] = bool(diag["passed"].all() and div <= GATE["max_divergences"]
                                and not bfmi < GATE["min_e_bfmi"])
    diag["divergences"] = div
    diag["converged"] = overall["converged"]
    return diag, overall


def _r_hat_passed(row: dict) -> bool:
    """The R-hat part of a variable's verdict, by its rule; NaN (one chain, constant) fails."""
    if row["rule"] == "each":
        return bool(row["max_r_hat"] <= GATE["max_r_hat"])
    return bool(row["share_r_hat_above"] <= GATE["table_max_share"] and row["max_r_hat"] <= GATE["table_max_r_hat"]
                and row["spread_r_hat"] <= GATE["max_r_hat"])


def gate_message(overall: dict) -> str:
    fails = []
    if not overall.get("rhat_passed", overall["max_r_hat"] <= GATE["max_r_hat"]):
        fails.append(_r_hat_message(overall))
    if not overall["min_ess_bulk"] >= GATE["min_ess_bulk"]:
        fails.append(f"min bulk ESS {overall['min_ess_bulk']:.0f} < {GATE['min_ess_bulk']:.0f}")
    if not overall["min_ess_tail"] >= GATE["min_ess_tail"]:
        fails.append(f"min tail ESS {overall['min_ess_tail']:.0f} < {GATE['min_ess_tail']:.0f}")
    if overall["divergences"] > GATE["max_divergences"]:
        fails.append(f"{overall['divergences']} divergent transitions")
    if overall.get("min_e_bfmi", float("nan")) < GATE["min_e_bfmi"]:
        fails.append(f"min E-BFMI {overall['min_e_bfmi']:.2f} < {GATE['min_e_bfmi']}")
    return "; ".join(fails)


def _r_hat_message(overall: dict) -> str:
    if "max_r_hat_each" not in overall:
        return f"max R-hat {overall['max_r_hat']:.3f} > {GATE['max_r_hat']}"
    parts = []
    if not overall["max_r_hat_each"] <= GATE["max_r_hat"]:
        parts.append(f"max R-hat of the parameters {overall['max_r_hat_each']:.3f} > {GATE['max_r_hat']}")
    if overall["max_share_r_hat_above"] > GATE["table_max_share"]:
        parts.append(f"{overall['max_share_r_hat_above']:.1%} of a table's entries have R-hat > {GATE['max_r_hat']} "
                     f"(at most {GATE['table_max_share']:.0%})")
    if overall["max_r_hat_table"] > GATE["table_max_r_hat"]:
        parts.append(f"max R-hat of a table entry {overall['max_r_hat_table']:.3f} > {GATE['table_max_r_hat']}")
    if overall["max_spread_r_hat"] > GATE["max_r_hat"]:
        parts.append(f"R-hat of a table's spread {overall['max_spread_r_hat']:.3f} > {GATE['max_r_hat']}")
    return "; ".join(parts) or f"max R-hat {overall['max_r_hat']:.3f}"


def near_miss(overall: dict) -> bool:
    """Whether a fit missed the gate on R-hat alone, by a margin that more chains can settle.

    True when every other part of the gate passed (bulk and tail ESS, divergences, E-BFMI) and no R-hat
    is above ``GATE["table_max_r_hat"]`` (1.05). A persistent disagreement between chains large enough to
    matter cannot pass the ESS rule (an entry whose chains disagree by a relative between-chain variance
    b has a bulk ESS of at most about 8 / b with 4 chains), so what is left above 1.01 is mostly the
    sampling noise of R-hat itself; more chains shrink that noise and leave a real disagreement in place
    (docs/bayesian.md, section 3, with a simulation).
    """
    return bool(not overall["converged"] and not overall.get("rhat_passed", overall["max_r_hat"] <= GATE["max_r_hat"])
                and overall["min_ess_bulk"] >= GATE["min_ess_bulk"]
                and overall["min_ess_tail"] >= GATE["min_ess_tail"]
                and overall["divergences"] <= GATE["max_divergences"]
                and not overall.get("min_e_bfmi", float("nan")) < GATE["min_e_bfmi"]
                and overall["max_r_hat"] <= GATE["table_max_r_hat"])


def concat_chains(first, second):
    """One DataTree with the chains of ``second`` after those of ``first`` (renumbered), in every group
    that has a ``chain`` dimension; other groups and the attributes come from ``first``."""
    import xarray as xr

    groups = {}
    for name, node in first.children.items():
        ds = node.to_dataset()
        if "chain" in ds.dims and name in second.children:
            other = second[name].to_dataset()
            other = other.assign_coords(chain=np.arange(ds.sizes["chain"], ds.sizes["chain"] + other.sizes["chain"]))
            ds = xr.concat([ds, other], dim="chain", data_vars="all", coords="minimal", compat="override",
                           combine_attrs="override")
        groups[name] = ds
    out = xr.DataTree.from_dict(groups)
    out.attrs.update(first.attrs)
    return out


def warn_if_failed(overall: dict, what: str, stacklevel: int = 3) -> None:
    if not overall["converged"]:
        warnings.warn(
            f"{what} did NOT pass the convergence gate ({gate_message(overall)}). Its numbers are marked "
            "converged=False everywhere; do not report them. Run longer (more `tune`/`draws`), raise "
            "`target_accept`, or simplify the model.",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )


def attach_provenance(idata, prov: dict) -> None:
    idata.attrs["robustalign_provenance"] = json.dumps(prov, default=str)
    for k in ("sampler", "sampler_seed", "draws", "tune", "chains", "data_hash", "converged"):
        if k in prov:
            v = prov[k]
            idata.attrs[f"robustalign_{k}"] = int(v) if isinstance(v, bool) else v
