r"""Bayesian Bradley-Terry model of forced choices, with a position effect and the convergence gate.

For the pair :math:`\{i, j\}` with :math:`i` shown first (:math:`s = +1`) or second (:math:`s = -1`),

.. math::

    k_{ijs} \sim \operatorname{Binomial}\bigl(n_{ijs},\ \operatorname{logit}^{-1}(u_i - u_j + \gamma s)\bigr),
    \qquad u \sim \operatorname{ZeroSumNormal}(\sigma_u), \quad \sigma_u \sim \operatorname{HalfNormal}(2),
    \quad \gamma \sim \operatorname{Normal}(0, 2),

fitted on counts per pair and order (decisive choices; neutral answers are left out, as in
:func:`robustalign.claims.preferences.fit_bradley_terry`). The utilities are on the same centred
log-odds scale as the maximum-likelihood fit. PyMC is imported only when a model is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from robustalign._result import Result
from robustalign._rng import RngLike
from robustalign._validation import resolve_level
from robustalign.models._sampling import (
    attach_provenance,
    check_args,
    diagnose,
    resolve_backend,
    sample,
    warn_if_failed,
)

__all__ = ["BradleyTerryFit", "fit_bradley_terry_model"]


@dataclass
class BradleyTerryFit(Result):
    """Posterior of the Bradley-Terry model and its gate verdict (``converged``, ``diagnostics``)."""

    idata: Any = field(repr=False)  # an arviz DataTree (arviz is imported only when a model is fitted)
    outcomes: list
    diagnostics: pd.DataFrame = field(repr=False)
    overall: dict
    provenance: dict = field(repr=False)

    @property
    def converged(self) -> bool:
        return bool(self.overall["converged"])

    def draws(self, name: str) -> np.ndarray:
        """Posterior draws of ``name`` (``"u"``, ``"gamma"``, ``"sigma_u"``), chains stacked first."""
        a = np.asarray(self.idata["posterior"][name].values, float)
        return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])

    def to_frame(self, confidence_level: float | None = None, *, level: float | None = None) -> pd.DataFrame:
        """Posterior mean (median for ranks) and equal-tailed interval (default 95%) of each utility, of the
        position effect and of each outcome's rank (1 = most preferred); ``converged`` on every row."""
        level = resolve_level(confidence_level, level, 0.95)
        a = (1 - level) / 2
        u, g = self.draws("u"), self.draws("gamma")
        ranks = (-u).argsort(axis=1).argsort(axis=1) + 1.0
        rows = []
        for name, x, outs in (("utility", u, self.outcomes), ("rank", ranks, self.outcomes),
                              ("position_effect", g[:, None], [None])):
            lo, hi = np.quantile(x, [a, 1 - a], axis=0)
            for k, o in enumerate(outs):
                centre = np.median(x[:, k]) if name == "rank" else x[:, k].mean()
                rows.append({"quantity": name, "outcome": o, "estimate": float(centre),
                             "conf_low": float(lo[k]), "conf_high": float(hi[k]), "conf_level": level,
                             "method": "posterior-eti", "converged": self.converged})
        return pd.DataFrame(rows)

    def summary(self) -> str:
        """The gate verdict, the position effect and the top-ranked outcomes, in words."""
        f = self.to_frame()
        g = f[f["quantity"] == "position_effect"].iloc[0]
        top = f[f["quantity"] == "utility"].sort_values("estimate", ascending=False).head(3)
        head = ("converged" if self.converged else "NOT CONVERGED -- DO NOT USE THESE NUMBERS") + (
            f": Bradley-Terry model of {len(self.outcomes)} outcomes; position effect {g['estimate']:.2f} "
            f"[{g['conf_low']:.2f}, {g['conf_high']:.2f}] log-odds (95% posterior interval)")
        return head + "; most preferred: " + ", ".join(
            f"{r.outcome} ({r.estimate:.2f})" for r in top.itertuples()) + "."

    def prefer_probability(self, a: str, b: str) -> float:
        """Posterior probability that ``u_a > u_b``."""
        ia, ib = self.outcomes.index(a), self.outcomes.index(b)
        u = self.draws("u")
        return float((u[:, ia] > u[:, ib]).mean())


def build_bradley_terry_model(cells, K: int):
    """The PyMC model for counts per pair and order: ``cells = (ci, cj, cs, n, k)``."""
    import pymc as pm

    ci, cj, cs, n, k = (np.asarray(c) for c in cells)
    with pm.Model(coords={"outcome": np.arange(K)}) as model:
        sigma_u = pm.HalfNormal("sigma_u", 2.0)
        u = pm.ZeroSumNormal("u", sigma=sigma_u, dims="outcome")
        gamma = pm.Normal("gamma", 0.0, 2.0)
        pm.Binomial("k", n=n.astype("int64"), logit_p=u[ci] - u[cj] + gamma * cs, observed=k.astype("int64"))
    return model


def fit_bradley_terry_model(data: Any, *, model: str | None = None, draws: int = 1000, tune: int = 1000,
                            chains: int = 4, rng: RngLike = None, sampler: str = "nutpie", target_accept: float = 0.9,
                            backend: str = "auto", cores: int | None = None) -> BradleyTerryFit:
    """Fit the Bayesian Bradley-Terry model to one model's forced choices.

    ``data`` is a path, DataFrame or :class:`~robustalign.claims.preferences.PairwiseChoices` (see
    :func:`~robustalign.claims.preferences.load_pairwise`). The fit is judged by the convergence gate
    (:data:`robustalign.models.GATE`); a fit that fails it warns (``ConvergenceWarning``) and is marked
    ``converged=False`` on every row of :meth:`BradleyTerryFit.to_frame`.
    """
    from robustalign.claims import preferences as P

    pc = data if isinstance(data, P.PairwiseChoices) else P.load_pairwise(data)
    df = P.one_model(pc, model)
    d = P.pair_design(df)
    check_args(draws, tune, chains, sampler, target_accept)
    ci, cj, cs, n, k, _ = d.cells
    counts = np.round(k).astype(np.int64)
    idata, prov, _ = sample(lambda: build_bradley_terry_model((ci, cj, cs, n, counts), len(d.outcomes)),
                            draws=draws, tune=tune, chains=chains, rng=rng, sampler=sampler,
                            target_accept=target_accept, backend=resolve_backend(backend), cores=cores)
    diag, overall = diagnose(idata, var_names=["u", "gamma", "sigma_u"])
    prov.update({"converged": overall["converged"], "n_choices": int(d.y.size), "n_pairs": d.n_pairs})
    attach_provenance(idata, prov)
    warn_if_failed(overall, "The Bradley-Terry fit", stacklevel=3)
    return BradleyTerryFit(idata, list(d.outcomes), diag, overall, prov)
