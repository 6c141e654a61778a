"""The result of a Bayesian fit: posterior, gate verdict, provenance and the derived quantities."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.special import expit, polygamma

from robustalign.models._design import Design, cell_predictor
from robustalign.models._sampling import GATE, gate_message

LOGISTIC_VAR = np.pi**2 / 3


def _check_level(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"`level` must be in (0, 1); got {level!r}.")
    return float(level)


def _summarise(x: np.ndarray, level: float):
    """Posterior mean and equal-tailed interval over axis 0."""
    a = (1 - level) / 2
    return x.mean(0), np.quantile(x, a, axis=0), np.quantile(x, 1 - a, axis=0)


@dataclass
class BayesFit:
    """A fitted response or score model.

    Attributes
    ----------
    idata : xarray.DataTree
        Posterior (and sample stats) as returned by the sampler; provenance in ``idata.attrs``.
    converged : bool
        Whether the fit passed the gate: max R-hat <= 1.01, min bulk and tail ESS >= 400, no
        divergences. Every table derived from the fit carries this flag in a ``converged`` column.
    diagnostics : DataFrame
        One row per posterior variable: ``max_r_hat``, ``min_ess_bulk``, ``min_ess_tail``, ``passed``,
        plus the fit's ``divergences`` and ``converged``.
    gate : dict
        The overall extremes and the verdict.
    provenance : dict
        Package versions, seed record and sampler seed, sampler, backend, draws, tune, chains,
        target_accept, data hash, compile and sampling times.
    design : Design
        The cell design the model was fitted on.
    """

    idata: object
    design: Design = field(repr=False)
    diagnostics: pd.DataFrame = field(repr=False)
    gate: dict = field(repr=False)
    provenance: dict = field(repr=False)
    max_draws: int = 1000

    @property
    def converged(self) -> bool:
        return bool(self.gate["converged"])

    @property
    def kind(self) -> str:
        return self.design.kind

    # ------------------------------------------------------------------ posterior access
    def _draws(self, name: str, thin: bool = False) -> np.ndarray:
        da = self.idata["posterior"][name]
        x = np.asarray(da.values, float)
        x = x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])
        if thin and len(x) > self.max_draws:
            x = x[np.linspace(0, len(x) - 1, self.max_draws).round().astype(int)]
        return x

    def _has(self, name: str) -> bool:
        return name in self.idata["posterior"].data_vars

    def _frame(self, df: pd.DataFrame) -> pd.DataFrame:
        df["converged"] = self.converged
        df.attrs["converged"] = self.converged
        if not self.converged:
            df.attrs["warning"] = "NOT CONVERGED: " + gate_message(self.gate)
        return df

    # ------------------------------------------------------------------ variance shares
    def _components(self) -> dict[str, np.ndarray]:
        """Variance of each component per draw, shape (S, models) (latent logit scale)."""
        d = self.design
        M = len(d.models)
        out = {}
        if self._has("sd_item"):
            out["item"] = np.repeat(self._draws("sd_item")[:, None] ** 2, M, 1)
        out["model_item"] = self._draws("sd_model_item") ** 2
        for f in d.factors:
            beta = self._draws(f"beta_{f}")[:, None, :]  # (S, 1, L)
            if d.interactions[f]:
                beta = beta + self._draws(f"model_x_{f}")  # (S, M, L)
            out[f] = np.broadcast_to(beta.var(-1), (len(beta), M)).copy()
            if d.interactions[f]:
                v = self._draws(f"item_x_{f}").var(-1).mean(-1)  # over levels, averaged over items
                out[f"item_x_{f}"] = np.repeat(v[:, None], M, 1)
        if d.kind == "ordinal":
            out["residual"] = np.full_like(out["model_item"], LOGISTIC_VAR)
        else:
            phi = self._draws("phi")
            out["residual"] = np.repeat((2 * polygamma(1, phi / 2))[:, None], M, 1)
        return out

    def variance_shares(self, level: float = 0.9) -> pd.DataFrame:
        """Share of the latent variance of each model's answers per component, with intervals.

        Components: ``item`` (shared item location), ``model_item`` (the model's own view of the item),
        each design factor (variance over its levels of the model's effects), ``item_x_<factor>``,
        ``residual`` (pi^2/3 for the cumulative logit; the logit-scale variance of a Beta variable
        at mean 1/2 for scores). Two summary rows per model: ``stability_index`` R_m, the content
        share (item + model_item), and ``presentation_share``, everything due to design factors.
        """
        level = _check_level(level)
        comps = self._components()
        total = sum(comps.values())
        shares = {k: v / total for k, v in comps.items()}
        shares["stability_index"] = shares.get("item", 0) + shares["model_item"]
        shares["presentation_share"] = sum(
            v for k, v in shares.items() if k in self.design.factors or k.startswith("item_x_")
        ) + 0 * total
        rows = []
        for k, v in shares.items():
            est, lo, hi = _summarise(v, level)
            for m, model in enumerate(self.design.models):
                rows.append({"model": model, "component": k, "estimate": est[m], "conf_low": lo[m],
                             "conf_high": hi[m], "conf_level": level})
        return self._frame(pd.DataFrame(rows))

    # ------------------------------------------------------------------ factors vs humans
    def _sigma_country(self) -> np.ndarray:
        d = self.design
        theta = self._draws("mu_group")[:, :, None] + self._draws("group_item")  # (S, C, Q)
        asked = (d.human_n > 0)[None]
        th = np.where(asked, theta, np.nan)
        return np.nanmean(np.nanstd(th, axis=1), axis=1)

    def factor_vs_human(self, level: float = 0.9) -> pd.DataFrame:
        """Each factor's effect size relative to the human between-country spread, on one scale.

        ``rho = SD over levels of the factor's effects / sigma_country``, where ``sigma_country`` is
        the SD of the human groups' latent locations on an item, averaged over items. Rows for the
        population effect (``model="all"``) and for each model's own effects; ``p_exceeds`` =
        P(rho > 1). Needs the joint human component (fit with a reference).
        """
        level = _check_level(level)
        d = self.design
        if d.human_counts is None:
            raise ValueError("factor_vs_human needs the joint human component: fit with `reference=`.")
        sc = self._sigma_country()
        rows = []
        for f in d.factors:
            beta = self._draws(f"beta_{f}")
            per = {"all": beta.std(-1)}
            if d.interactions[f]:
                bm = beta[:, None, :] + self._draws(f"model_x_{f}")
                per.update({m: bm[:, i].std(-1) for i, m in enumerate(d.models)})
            for m, sdv in per.items():
                rho = sdv / sc
                est, lo, hi = _summarise(rho, level)
                rows.append({"factor": f, "model": m, "estimate": est, "conf_low": lo, "conf_high": hi,
                             "conf_level": level, "p_exceeds": float((rho > 1).mean()),
                             "sd_factor": float(sdv.mean()), "sigma_country": float(sc.mean())})
        return self._frame(pd.DataFrame(rows))

    # ------------------------------------------------------------------ alignment
    def _eta(self, S_idx=None) -> np.ndarray:
        """Linear predictor per thinned draw and cell, (S, cells), recomputed from the stored tables."""
        d = self.design
        eta = cell_predictor(d, {t.name: self._draws(t.name, thin=True) for t in d.terms}, lead=1)
        if d.kind == "score":
            eta = eta + self._draws("intercept", thin=True)[:, None]
        return eta

    def _cell_mean(self) -> np.ndarray:
        """Expected answer per thinned draw and cell: mean position on [0, 1] or expected score."""
        d = self.design
        eta = self._eta()
        if d.kind == "score":
            return expit(eta)
        out = np.empty_like(eta)
        K_cell = d.K_item[d.idx["item"]]
        for K in np.unique(K_cell):
            sel = K_cell == K
            tau = self._draws(f"cutpoints_K{K}", thin=True)  # (S, K-1)
            e = eta[:, sel]
            out[:, sel] = (1 - expit(tau[:, None, :] - e[..., None])).sum(-1) / (K - 1)
        return out

    def _human_mean(self) -> np.ndarray:
        d = self.design
        if d.kind == "ordinal" and d.human_counts is not None:
            theta = (self._draws("mu_group", thin=True)[:, :, None] + self._draws("group_item", thin=True)
                     + self._draws("item_effect", thin=True)[:, None, :])  # (S, C, Q)
            out = np.empty_like(theta)
            for K in np.unique(d.K_item):
                sel = d.K_item == K
                tau = self._draws(f"cutpoints_K{K}", thin=True)
                out[:, :, sel] = (1 - expit(tau[:, None, None, :] - theta[:, :, sel, None])).sum(-1) / (K - 1)
            out[:, d.human_n == 0] = np.nan
            return out
        if d.human_mean is None:
            raise ValueError("alignment needs human reference data: fit with `reference=`.")
        return np.broadcast_to(d.human_mean, (1, *d.human_mean.shape))

    @cached_property
    def _alignment_cache(self) -> dict:
        return {}

    def alignment_draws(self, match: str | None = None) -> np.ndarray:
        """Posterior draws of alignment, (S, models, groups): 1 - mean over items of |model - human|.

        The model's expected answer on an item (mean position on [0, 1], or expected score) is
        averaged over the presentations in the design; ``match`` names a design factor whose levels
        are the reference groups (e.g. ``"language"``), so that group ``c`` is compared with the
        answers given under level ``c`` only.
        """
        if match in self._alignment_cache:
            return self._alignment_cache[match]
        d = self.design
        cm = self._cell_mean()  # (S, cells)
        S = len(cm)
        M, Q = len(d.models), len(d.items)
        h = self._human_mean()  # (S or 1, C, Q)
        if match is None:
            key = d.idx["model"] * Q + d.idx["item"]
            sums = np.zeros((S, M * Q))
            cnt = np.bincount(key, minlength=M * Q)
            for s in range(S):
                sums[s] = np.bincount(key, weights=cm[s], minlength=M * Q)
            with np.errstate(invalid="ignore"):
                mq = (sums / cnt).reshape(S, M, Q)
            dist = np.abs(mq[:, :, None, :] - h[:, None, :, :])  # (S, M, C, Q)
        else:
            if match not in d.factors:
                raise ValueError(f"`match` must be a modelled design factor {d.factors}; got {match!r}.")
            lv = d.levels[match]
            missing = [g for g in d.groups if g not in lv]
            if missing:
                raise ValueError(f"reference groups {missing} are not levels of `{match}` ({lv}).")
            L = len(lv)
            key = (d.idx["model"] * Q + d.idx["item"]) * L + d.idx[match]
            cnt = np.bincount(key, minlength=M * Q * L)
            sums = np.stack([np.bincount(key, weights=cm[s], minlength=M * Q * L) for s in range(S)])
            with np.errstate(invalid="ignore"):
                mql = (sums / cnt).reshape(S, M, Q, L)
            gl = [lv.index(g) for g in d.groups]
            mq = np.moveaxis(mql[..., gl], -1, 2)  # (S, M, C, Q)
            dist = np.abs(mq - h[:, None, :, :])
        A = 1 - np.nanmean(dist, axis=-1)
        self._alignment_cache[match] = A
        return A

    def alignment(self, level: float = 0.9, match: str | None = None) -> pd.DataFrame:
        """Alignment per model x group with intervals (see :meth:`alignment_draws` for the estimand)."""
        level = _check_level(level)
        A = self.alignment_draws(match)
        est, lo, hi = _summarise(A, level)
        rows = [
            {"model": m, "group": g, "estimate": est[i, j], "conf_low": lo[i, j], "conf_high": hi[i, j],
             "conf_level": level}
            for i, m in enumerate(self.design.models)
            for j, g in enumerate(self.design.groups)
        ]
        return self._frame(pd.DataFrame(rows))

    def rank_probabilities(self, match: str | None = None) -> pd.DataFrame:
        """P(model has rank r) among the models, per group (rank 1 = best aligned), and expected rank."""
        A = self.alignment_draws(match)
        ranks = (-A).argsort(1).argsort(1) + 1  # (S, M, C)
        d = self.design
        rows = []
        for i, m in enumerate(d.models):
            for j, g in enumerate(d.groups):
                r = ranks[:, i, j]
                for k in range(1, len(d.models) + 1):
                    rows.append({"group": g, "model": m, "rank": k, "probability": float((r == k).mean()),
                                 "expected_rank": float(r.mean())})
        return self._frame(pd.DataFrame(rows))

    def flip_probabilities(self, match: str | None = None) -> pd.DataFrame:
        """For every pair of models and group: P(the pair is ordered against its more probable order).

        ``attrs["p_any_flip"]`` (and :meth:`any_flip_probability`) give, per group, the probability
        that the posterior-mean ranking of all models is wrong somewhere.
        """
        A = self.alignment_draws(match)
        d = self.design
        rows = []
        for j, g in enumerate(d.groups):
            for a in range(len(d.models)):
                for b in range(a + 1, len(d.models)):
                    p = float((A[:, a, j] > A[:, b, j]).mean())
                    rows.append({"group": g, "model_a": d.models[a], "model_b": d.models[b],
                                 "p_a_better": p, "p_flip": min(p, 1 - p)})
        out = self._frame(pd.DataFrame(rows))
        out.attrs["p_any_flip"] = self.any_flip_probability(match).set_index("group")["p_any_flip"].to_dict()
        return out

    def any_flip_probability(self, match: str | None = None) -> pd.DataFrame:
        A = self.alignment_draws(match)
        order = (-A.mean(0)).argsort(0).argsort(0)  # (M, C)
        ranks = (-A).argsort(1).argsort(1)
        p = (ranks != order[None]).any(1).mean(0)
        return self._frame(pd.DataFrame({"group": self.design.groups, "p_any_flip": p}))

    # ------------------------------------------------------------------ tables
    def _param_names(self) -> list[str]:
        keep = ("sd_", "beta_", "mu_model", "mu_group", "phi", "intercept", "cutpoints_")
        return [v for v in self.idata["posterior"].data_vars if v.startswith(keep)]

    def to_frame(self, level: float = 0.9) -> pd.DataFrame:
        """Posterior summary of the model's parameters (SDs, factor effects, means, cutpoints)."""
        import arviz as az

        level = _check_level(level)
        s = pd.DataFrame(az.summary(self.idata, var_names=self._param_names(), ci_kind="eti", ci_prob=level,
                                    round_to="none"))
        lo, hi = [c for c in s.columns if c.startswith("eti")][:2]
        s = s.rename(columns={"mean": "estimate", lo: "conf_low", hi: "conf_high"})
        s.insert(3, "conf_level", level)
        s.index.name = "parameter"
        return self._frame(s.reset_index())

    def conf_int(self, level: float = 0.9) -> pd.DataFrame:
        """Equal-tailed posterior intervals of the parameters (``parameter, estimate, conf_low, ...``)."""
        level = _check_level(level)
        rows = []
        post = self.idata["posterior"]
        for v in self._param_names():
            x = self._draws(v)
            flat = x.reshape(len(x), -1)
            dims = [d for d in post[v].dims if d not in ("chain", "draw")]
            labels = (
                [v] if not dims else
                [f"{v}[{','.join(map(str, k))}]" for k in np.ndindex(*x.shape[1:])]
                if len(dims) > 1 else [f"{v}[{c}]" for c in post[v][dims[0]].values]
            )
            est, lo, hi = _summarise(flat, level)
            for i, lab in enumerate(labels):
                rows.append({"parameter": lab, "estimate": est[i], "conf_low": lo[i], "conf_high": hi[i],
                             "conf_level": level})
        return self._frame(pd.DataFrame(rows))

    def summary(self) -> str:
        """One-line verdict; says NOT CONVERGED loudly when the gate fails."""
        d, g = self.design, self.gate
        what = (f"{'response (cumulative logit)' if d.kind == 'ordinal' else 'score (Beta)'} model, "
                f"{len(d.models)} models x {len(d.items)} items, factors {d.factors}, {d.n_cells} cells from "
                f"{d.n_responses} responses")
        diag = (f"max R-hat {g['max_r_hat']:.3f}, min ESS bulk {g['min_ess_bulk']:.0f} / tail "
                f"{g['min_ess_tail']:.0f}, {g['divergences']} divergences")
        if not self.converged:
            return f"NOT CONVERGED -- DO NOT USE THESE NUMBERS: {what}; failed gate: {gate_message(g)} ({diag})."
        r = self.variance_shares().query("component == 'stability_index'")["estimate"]
        return f"converged: {what}; {diag}; stability index R_m {r.min():.2f}-{r.max():.2f}."

    def plot(self, ax=None, level: float = 0.9):
        """Variance shares per model (stacked bars) with the stability index and its interval."""
        import matplotlib.pyplot as plt

        vs = self.variance_shares(level)
        fig = ax.figure if ax is not None else plt.figure(figsize=(7, 0.4 * len(self.design.models) + 2))
        ax = ax if ax is not None else fig.add_subplot()
        comps = [c for c in vs["component"].unique() if c not in ("stability_index", "presentation_share")]
        wide = vs.pivot(index="model", columns="component", values="estimate")[comps]
        left = np.zeros(len(wide))
        for c in comps:
            ax.barh(wide.index, wide[c], left=left, label=c)
            left += wide[c].to_numpy()
        ri = vs[vs["component"] == "stability_index"].set_index("model").loc[wide.index]
        ax.errorbar(ri["estimate"], np.arange(len(ri)), xerr=[ri["estimate"] - ri["conf_low"],
                    ri["conf_high"] - ri["estimate"]], fmt="k|", capsize=3, label=f"R_m ({level:.0%} interval)")
        ax.set_xlabel("share of latent variance")
        ax.set_xlim(0, 1)
        ax.legend(fontsize=7, loc="lower right")
        if not self.converged:
            ax.set_title("NOT CONVERGED -- do not use", color="red")
        return fig

    def __repr__(self) -> str:
        return f"BayesFit({self.summary()})"


def gate_thresholds() -> dict:
    return dict(GATE)
