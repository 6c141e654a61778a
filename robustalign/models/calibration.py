"""Simulation-based calibration (SBC; Talts et al. 2018) of the response model.

Draw every parameter from the prior, simulate answer counts on a fixed design, fit, and record the
rank of the true value among (thinned) posterior draws. If the sampler and the model code are right,
each rank is uniform on ``0..L``. The model is compiled once per process; each simulation only swaps
the data.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from robustalign._rng import RngLike, as_generator
from robustalign.models._design import Design, cell_predictor

if TYPE_CHECKING:
    from robustalign.scaleout import ExecutorLike

__all__ = ["SBCResult", "sbc_design", "sbc_response_model"]


@dataclass
class SBCResult:
    """Ranks of the true values among ``n_draws`` posterior draws, one row per simulation.

    ``uniformity()`` tests each quantity's ranks with a chi-square test on ``bins`` equal bins.
    """

    ranks: pd.DataFrame
    n_draws: int
    divergences: np.ndarray
    seconds: float
    centred_tables: list[str] | None = None  # effect tables sampled directly (centred) in this run

    def uniformity(self, bins: int = 10) -> pd.DataFrame:
        rows = []
        edges = np.linspace(0, self.n_draws + 1, bins + 1)
        for q in self.ranks.columns:
            obs, _ = np.histogram(self.ranks[q], bins=edges)
            chi = stats.chisquare(obs)
            rows.append({"quantity": q, "chi2": chi.statistic, "p_value": chi.pvalue, "n_sims": len(self.ranks),
                         "bins": bins, "min_bin": int(obs.min()), "max_bin": int(obs.max())})
        return pd.DataFrame(rows)


def sbc_design(n_models: int = 3, n_items: int = 8, n_levels: int = 3, K: int = 3, n_samples: int = 5,
               centred: bool = False) -> Design:
    """A fully crossed model x item x format design (no humans) with ``n_samples`` answers per cell.

    The graph chooses centred or non-centred tables from the data it is built on, and SBC builds it
    once, on placeholder counts: ``centred=False`` spreads them evenly (no spread, every table
    non-centred), ``centred=True`` puts them all on the first option (an unbounded signal-to-noise
    ratio, so the model-item opinions and the learned-scale interactions are centred).
    """
    models = [f"m{i}" for i in range(n_models)]
    items = [f"q{i}" for i in range(n_items)]
    levels = {"format": [f"f{i}" for i in range(n_levels)]}
    g = np.meshgrid(np.arange(n_models), np.arange(n_items), np.arange(n_levels), indexing="ij")
    idx = {"model": g[0].ravel(), "item": g[1].ravel(), "format": g[2].ravel()}
    n = len(idx["model"])
    counts = np.zeros((n, K))  # placeholder that fixes the parametrisation; replaced per simulation
    if centred:
        counts[:, 0] = n_samples
    else:
        counts[:] = n_samples / K
    return Design(kind="ordinal", models=models, items=items, factors=["format"], levels=levels, idx=idx,
                  n_cells=n, n_responses=n * n_samples, counts=counts, K_item=np.full(n_items, K),
                  interactions={"format": True},
                  data_hash="sbc")


# compiled models per process, keyed by design: a worker compiles once and reuses it for every task
_COMPILED: dict = {}


def design_key(d: Design) -> tuple:
    """What the compiled graph depends on: labels, sizes and the counts it was built on (the counts choose
    the centred or non-centred tables, so two designs that differ only there compile different models)."""
    import hashlib

    assert d.K_item is not None  # set for every ordinal design
    counts = hashlib.sha1(np.ascontiguousarray(d.counts, dtype=float).tobytes()).hexdigest()
    return (tuple(d.models), tuple(d.items), tuple(d.factors), tuple(map(tuple, d.levels.values())),
            tuple(int(k) for k in d.K_item), d.n_cells, counts)


def _compiled(d: Design):
    from robustalign.models._graph import build_ordinal
    from robustalign.models._sampling import compile_nutpie

    key = design_key(d)
    if key not in _COMPILED:
        _COMPILED[key] = compile_nutpie(build_ordinal(d), "numba")
    return _COMPILED[key]


def _sbc_one(task) -> tuple[dict, int]:
    """One simulation: draw counts from the prior draw ``truth``, fit, and rank the truth (picklable task)."""
    import copy

    import nutpie

    from robustalign.models._graph import ordinal_data

    design, truth, names, K, draws, tune, chains, n_keep, target_accept, seed = task
    gen = np.random.default_rng(seed)
    d = copy.copy(design)
    eta = cell_predictor(d, truth)
    tau = truth[f"cutpoints_K{K}"]
    cdf = expit(tau[None, :] - eta[:, None])
    p = np.diff(np.concatenate([np.zeros((len(eta), 1)), cdf, np.ones((len(eta), 1))], 1), axis=1)
    p = np.clip(p, 0, None)
    p /= p.sum(1, keepdims=True)
    n_per_cell = d.n_responses // d.n_cells
    d.counts = np.stack([gen.multinomial(n_per_cell, pi) for pi in p]).astype(float)
    data = ordinal_data(d)
    cm = _compiled(d).with_data(**data)  # every likelihood datum of the graph (no humans in SBC designs)
    idata = nutpie.sample(cm, draws=draws, tune=tune, chains=chains, seed=int(gen.integers(2**31 - 1)),
                          target_accept=target_accept, progress_bar=False, save_warmup=False)
    post = idata["posterior"]
    keep = np.linspace(0, chains * draws - 1, n_keep).round().astype(int)

    def flat(v):
        x = np.asarray(post[v].values)
        return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])[keep]

    row = {v: int((flat(v) < truth[v]).sum()) for v in names}
    for m in range(len(d.models)):
        row[f"sd_model_item[{m}]"] = int((flat("sd_model_item")[:, m] < truth["sd_model_item"][m]).sum())
    row["beta_format[0]"] = int((flat("beta_format")[:, 0] < truth["beta_format"][0]).sum())
    row["cutpoint[0]"] = int((flat(f"cutpoints_K{K}")[:, 0] < tau[0]).sum())
    return row, int(np.asarray(idata["sample_stats"]["diverging"]).sum())


def sbc_response_model(
    n_sims: int = 100,
    *,
    design: Design | None = None,
    n_samples: int = 5,
    centred: bool = False,
    draws: int = 300,
    tune: int = 300,
    chains: int = 2,
    n_keep: int = 99,
    rng: RngLike = None,
    target_accept: float = 0.9,
    executor: ExecutorLike = None,
    progress: bool | None = None,
) -> SBCResult:
    """Run SBC of the cumulative-logit response model on a small design.

    Returns the ranks of the variance components (``sd_*``), a population format effect and the
    first cutpoint among ``n_keep`` evenly thinned posterior draws. ``centred`` chooses the
    parametrisation under test (:func:`sbc_design`); ``SBCResult.centred_tables`` records it.

    Each simulation draws its answers and its sampler seed from its own child of ``rng``
    (``SeedSequence.spawn``), so the ranks are the same whether the simulations run here or on an
    ``executor`` (any ``concurrent.futures.Executor``, e.g. a Dask client's ``get_executor()``); each
    worker process compiles the model once and reuses it. ``progress`` shows a bar with an ETA over the
    simulations (None: in a terminal or notebook, not in CI or tests; see :mod:`robustalign._progress`).
    """
    import time

    import pymc as pm

    from robustalign.models._graph import build_ordinal
    from robustalign.scaleout import map_tasks

    gen, _ = as_generator(rng)
    d = design if design is not None else sbc_design(n_samples=n_samples, centred=centred)
    model = build_ordinal(d)
    assert d.K_item is not None  # set for every ordinal design
    K = int(d.K_item[0])
    names = ["sd_item", "sd_model_x_format", "sd_item_x_format"]
    tables = sorted({t.name for t in d.terms} | set(names) | {"sd_model_item", f"cutpoints_K{K}", "beta_format"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "potentials are ignored in prior predictive" is the point here
        prior = pm.sample_prior_predictive(draws=n_sims, model=model, var_names=tables,
                                           random_seed=int(gen.integers(2**31 - 1)))
    pr = {v: np.asarray(prior["prior"][v].values)[0] for v in tables}
    t0 = time.perf_counter()
    children = cast(np.random.SeedSequence, gen.bit_generator.seed_seq).spawn(n_sims)
    tasks = [(d, {v: pr[v][s] for v in tables}, names, K, draws, tune, chains, n_keep, target_accept, children[s])
             for s in range(n_sims)]
    from robustalign._progress import progress_bar

    with progress_bar(n_sims, f"SBC: {n_sims} simulated studies", progress=progress) as bar:
        if executor is None:  # one simulation at a time, so the bar moves with each
            out = []
            for t in tasks:
                out.append(_sbc_one(t))
                bar.advance(1)
        else:
            out = map_tasks(_sbc_one, tasks, executor=executor)
            bar.advance(n_sims)
    rows = [r for r, _ in out]
    divs = [v for _, v in out]
    random = {"model_opinion", "item_effect", *(t.name for t in d.terms if "_x_" in t.name)}
    centred_tables = sorted(v.name for v in model.free_RVs if v.name in random)
    return SBCResult(pd.DataFrame(rows), n_keep, np.array(divs), time.perf_counter() - t0, centred_tables)
