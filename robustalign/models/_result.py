"""The result of a Bayesian fit: posterior, gate verdict, provenance and the derived quantities."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
from scipy.special import expit, polygamma

from robustalign._result import Result
from robustalign._rng import RngLike
from robustalign._validation import resolve_level
from robustalign.models._design import Design, cell_predictor, flat_index
from robustalign.models._sampling import gate_message

if TYPE_CHECKING:
    from arviz import ELPDData
    from matplotlib.axes import Axes
    from xarray import DataTree


LOGISTIC_VAR = np.pi**2 / 3


#: Default level of every posterior interval: the same as the resampling intervals'.
LEVEL = 0.95


def _summarise(x: np.ndarray, level: float):
    """Posterior mean and equal-tailed interval over axis 0."""
    a = (1 - level) / 2
    return x.mean(0), np.quantile(x, a, axis=0), np.quantile(x, 1 - a, axis=0)


def _group_mean(x: np.ndarray, key: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of ``x`` (S, rows, ...) over the rows of each group ``key`` (S, n_groups, ...); NaN if empty."""
    order = np.argsort(key, kind="stable")
    ks = key[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    out = np.full((x.shape[0], n_groups, *x.shape[2:]), np.nan)
    sums = np.add.reduceat(x[:, order], starts, axis=1)
    cnt = np.diff(np.r_[starts, len(ks)])
    out[:, ks[starts]] = sums / cnt.reshape(-1, *([1] * (x.ndim - 2)))
    return out


def _rho_rows(factor: str, per: dict, sigma_country: np.ndarray, level: float) -> list[dict]:
    """Rows of ``factor_vs_human``: rho = factor SD / human between-group SD per draw, for each entry of ``per``."""
    rows = []
    for m, sdv in per.items():
        rho = sdv / sigma_country
        est, lo, hi = _summarise(rho, level)
        rows.append({"factor": factor, "model": m, "estimate": est, "conf_low": lo, "conf_high": hi,
                     "conf_level": level, "p_exceeds": float((rho > 1).mean()), "sd_factor": float(sdv.mean()),
                     "sigma_country": float(sigma_country.mean())})
    return rows


@dataclass
class BayesFit(Result):
    """A fitted response or score model.

    Attributes
    ----------
    idata : xarray.DataTree
        Posterior (and sample stats) as returned by the sampler; provenance in ``idata.attrs``.
    converged : bool
        Whether the fit passed the gate: R-hat <= 1.01 in every reported parameter and small variable,
        the table rule for large effect tables (docs/bayesian.md, section 3), min bulk and tail ESS >= 400,
        no divergences, E-BFMI >= 0.3 in every chain. Every table derived from the fit carries this flag in a ``converged`` column.
    diagnostics : DataFrame
        One row per posterior variable: ``n_scalars``, ``rule`` (``each`` or ``table``), ``max_r_hat``,
        ``min_ess_bulk``, ``min_ess_tail``, ``share_r_hat_above``, ``spread_r_hat``, ``passed``, plus the
        fit's ``divergences`` and ``converged``.
    gate : dict
        The overall extremes and the verdict.
    provenance : dict
        Package versions, seed record and sampler seed, sampler, backend, draws, tune, chains,
        target_accept, data hash, compile and sampling times.
    design : Design
        The cell design the model was fitted on.
    """

    idata: Any  # an xarray.DataTree
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
        if self.kind == "categorical":
            return self._categorical_components()
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

    def variance_shares(self, confidence_level: float | None = None, *, level: float | None = None) -> pd.DataFrame:
        """Share of the latent variance of each model's answers per component, with intervals.

        Components: ``item`` (shared item location), ``model_item`` (the model's own view of the item),
        each design factor (variance over its levels of the model's effects), ``item_x_<factor>``,
        ``residual`` (pi^2/3 for the cumulative logit; the logit-scale variance of a Beta variable
        at mean 1/2 for scores). Two summary rows per model: ``stability_index`` R_m, the content
        share (item + model_item), and ``presentation_share``, everything due to design factors.
        """
        level = resolve_level(confidence_level, level, LEVEL)
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
        assert d.human_n is not None  # a fit with group effects has human data
        asked = (d.human_n > 0)[None]
        th = np.where(asked, theta, np.nan)
        return np.nanmean(np.nanstd(th, axis=1), axis=1)

    def factor_vs_human(self, confidence_level: float | None = None, *, level: float | None = None) -> pd.DataFrame:
        """Each factor's effect size relative to the human between-country spread, on one scale.

        ``rho = SD over levels of the factor's effects / sigma_country``, where ``sigma_country`` is
        the SD of the human groups' latent locations on an item, averaged over items. Rows for the
        population effect (``model="all"``) and for each model's own effects; ``p_exceeds`` =
        P(rho > 1). Needs the joint human component (fit with a reference).
        """
        level = resolve_level(confidence_level, level, LEVEL)
        if self.kind == "categorical":
            return self._categorical_factor_vs_human(level)
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
            rows += _rho_rows(f, per, sc, level)
        return self._frame(pd.DataFrame(rows))

    # ------------------------------------------------------------------ categorical (nominal items)
    def _categorical_components(self) -> dict[str, np.ndarray]:
        """Variances per draw and model (S, models) of the softmax model, on the log-odds scale.

        ``model_item``: sd_model_item[m]^2; each factor f: sd_f[m]^2; ``residual``: pi^2/6 per option
        utility (a ZeroSumNormal(sigma) effect moves the log-odds of any two options with variance
        2 sigma^2 and the Gumbel errors with pi^2/3: the shares are those of the cumulative logit's scale).
        The items' baselines ``alpha`` are fixed effects shared by all models and not a component, so
        ``stability_index`` is the ``model_item`` share (METHODS 3.3's R_m).
        """
        from robustalign.models._categorical import RESIDUAL_VAR

        out = {"model_item": self._draws("sd_model_item") ** 2}
        for f in self.design.factors:
            out[f] = self._draws(f"sd_{f}") ** 2
        out["residual"] = np.full_like(out["model_item"], RESIDUAL_VAR)
        return out

    def _categorical_factor_vs_human(self, level: float) -> pd.DataFrame:
        """``rho = sd_f[m] / sd_group_item`` per model; ``model="all"`` uses the root mean square of sd_f over
        the models (the typical model's presentation effect). Both SDs are scales of zero-sum effects on the
        same option logits (over levels and options, over groups and options)."""
        d = self.design
        if not self._has("sd_group_item"):
            raise ValueError("factor_vs_human needs the joint human component: fit with `reference=`.")
        sc = self._draws("sd_group_item")
        rows = []
        for f in d.factors:
            sd = self._draws(f"sd_{f}")  # (S, M)
            per = {"all": np.sqrt((sd**2).mean(1)), **{m: sd[:, i] for i, m in enumerate(d.models)}}
            rows += _rho_rows(f, per, sc, level)
        return self._frame(pd.DataFrame(rows))

    def _categorical_probs(self):
        """Option probabilities per thinned draw: cells (S, cells, Kmax); humans (S, C, Q, Kmax) or None."""
        from robustalign.models._categorical import cell_coefficients, coefficient_tables, softmax_probs

        d = self.design
        kmax = d.counts.shape[1]
        tables = coefficient_tables(d, lambda n: self._draws(n, thin=True), self._has)
        p_cell = softmax_probs(cell_coefficients(d, tables), d.K_item[d.idx["item"]], kmax)
        p_h = softmax_probs(tables["theta"], d.K_item, kmax) if "theta" in tables else None
        return p_cell, p_h

    def _categorical_alignment(self, match: str | None = None) -> np.ndarray:
        """Alignment draws (S, models, groups) for nominal answers: 1 - mean over items of the JS distance
        (base 2) between the model's answer distribution on the item and the human one.

        The model's distribution on an item is softmax(eta) averaged over its cells (the presentations in
        the design; under level ``c`` of ``match`` for group ``c``); the human one is softmax(theta) from
        the joint fit, else the reference shares. Items a group was not asked are left out of its mean.
        """
        if ("categorical", match) in self._alignment_cache:
            return self._alignment_cache[("categorical", match)]
        from robustalign.metrics import js_distance

        d = self.design
        p_cell, p_h = self._categorical_probs()
        if p_h is not None:
            h = p_h
        elif d.human_counts is not None:
            assert d.human_n is not None  # set together with human_counts
            with np.errstate(invalid="ignore", divide="ignore"):
                h = (d.human_counts / d.human_n[..., None])[None]
        else:
            raise ValueError("alignment needs human reference data: fit with `reference=`.")
        assert d.human_n is not None  # human data are present past the check above
        h = np.where((d.human_n > 0)[None, :, :, None], h, np.nan)  # (S or 1, C, Q, K)
        M, Q = len(d.models), len(d.items)
        key = d.idx["model"] * Q + d.idx["item"]
        if match is None:
            mq = _group_mean(p_cell, key, M * Q).reshape(len(p_cell), M, 1, Q, -1)
        else:
            gl = self._match_levels(match)
            L = len(d.levels[match])
            mql = _group_mean(p_cell, key * L + d.idx[match], M * Q * L).reshape(len(p_cell), M, Q, L, -1)
            mq = np.moveaxis(mql[:, :, :, gl], 3, 2)  # (S, M, C, Q, K)
        dist = js_distance(mq, h[:, None], base=2, check=False)  # (S, M, C, Q)
        with np.errstate(invalid="ignore"):
            A = 1 - np.nanmean(dist, axis=-1)
        self._alignment_cache[("categorical", match)] = A
        return A

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
        assert d.K_item is not None  # set for every ordinal design
        K_cell = d.K_item[d.idx["item"]]
        for K in np.unique(K_cell):
            sel = K_cell == K
            tau = self._model_cutpoints(K)  # (S, K-1)
            e = eta[:, sel]
            out[:, sel] = (1 - expit(tau[:, None, :] - e[..., None])).sum(-1) / (K - 1)
        return out

    def _model_cutpoints(self, K: int) -> np.ndarray:
        """The models' cutpoints (their own spacing under ``cutpoints="offset"``), thinned draws."""
        name = f"model_cutpoints_K{K}" if self._has(f"model_cutpoints_K{K}") else f"cutpoints_K{K}"
        return self._draws(name, thin=True)

    def _human_mean(self) -> np.ndarray:
        d = self.design
        if d.kind == "ordinal" and d.human_counts is not None:
            theta = (self._draws("mu_group", thin=True)[:, :, None] + self._draws("group_item", thin=True)
                     + self._draws("item_effect", thin=True)[:, None, :])  # (S, C, Q)
            out = np.empty_like(theta)
            assert d.K_item is not None  # set for every ordinal design
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

    def _match_levels(self, match: str) -> list[int]:
        """Level code of ``match`` that belongs to each reference group."""
        d = self.design
        if match not in d.factors:
            raise ValueError(f"`match` must be a modelled design factor {d.factors}; got {match!r}.")
        lv = d.levels[match]
        missing = [g for g in d.groups if g not in lv]
        if missing:
            raise ValueError(f"reference groups {missing} are not levels of `{match}` ({lv}).")
        return [lv.index(g) for g in d.groups]

    def alignment_draws(self, match: str | None = None, scope: str = "evaluated", n_new_items: int = 1000,
                        rng: RngLike = None) -> np.ndarray:
        """Posterior draws of alignment, (S, models, groups): 1 - mean over items of |model - human|.

        The model's expected answer on an item (mean position on [0, 1], or expected score) is
        averaged over the presentations in the design; ``match`` names a design factor whose levels
        are the reference groups (e.g. ``"language"``), so that group ``c`` is compared with the
        answers given under level ``c`` only.

        ``scope="evaluated"`` averages over the items in the data (the conditional estimate);
        ``scope="population"`` over new items drawn from the fitted item population (``n_new_items``
        per draw, seeded by ``rng``), the estimand that generalises beyond the questions asked
        (METHODS 3.4; needs the joint human component).
        """
        if scope not in ("evaluated", "population"):
            raise ValueError(f"`scope` must be 'evaluated' or 'population'; got {scope!r}.")
        if scope == "population":
            # cached for an integer seed, so that the rank and flip tables of one call agree
            key = ("population", match, n_new_items, int(rng)) if isinstance(rng, (int, np.integer)) else None
            if key in self._alignment_cache:
                return self._alignment_cache[key]
            A = self._population_alignment(match, n_new_items, rng)
            if key is not None:
                self._alignment_cache[key] = A
            return A
        if self.kind == "categorical":  # nominal answers: JS similarity of answer distributions
            return self._categorical_alignment(match)
        if match in self._alignment_cache:
            return self._alignment_cache[match]
        d = self.design
        h = self._human_mean()  # (S or 1, C, Q); first: without humans it raises the clear error
        cm = self._cell_mean()  # (S, cells)
        S = len(cm)
        M, Q = len(d.models), len(d.items)
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
            gl = self._match_levels(match)
            L = len(d.levels[match])
            key = (d.idx["model"] * Q + d.idx["item"]) * L + d.idx[match]
            cnt = np.bincount(key, minlength=M * Q * L)
            sums = np.stack([np.bincount(key, weights=cm[s], minlength=M * Q * L) for s in range(S)])
            with np.errstate(invalid="ignore"):
                mql = (sums / cnt).reshape(S, M, Q, L)
            mq = np.moveaxis(mql[..., gl], -1, 2)  # (S, M, C, Q)
            dist = np.abs(mq - h[:, None, :, :])
        A = 1 - np.nanmean(dist, axis=-1)
        self._alignment_cache[match] = A
        return A

    def _population_alignment(self, match: str | None, n_new_items: int, rng) -> np.ndarray:
        """Alignment over new items drawn from the fitted population (METHODS 3.4), (S, models, groups).

        Per posterior draw, ``n_new_items`` new items get fresh item-level effects from their fitted
        distributions: item location ~ N(0, sd_item), each model's opinion ~ N(0, sd_model_item[m]),
        item x factor deviations ~ N(0, sd) centred over levels, each group's deviation ~
        N(0, sd_group_item) centred over groups, and a scale length drawn from the items' own. Model
        means and factor effects stay at their draws, and presentations are weighted as the model's
        cells in the design (under level ``c`` of ``match`` for group ``c``). The mean position
        difference is then averaged over the new items: an expectation over items the study did not ask.
        """
        from robustalign._rng import as_generator

        d = self.design
        if d.kind != "ordinal" or d.human_counts is None or not self._has("group_item"):
            raise ValueError(
                "population alignment needs the joint human component (an ordinal response model fitted "
                "with `reference=`): human answers on items nobody asked come from the fitted group effects. "
                "Use scope='evaluated' for the items in the data."
            )
        if not isinstance(n_new_items, (int, np.integer)) or n_new_items < 10:
            raise ValueError(f"`n_new_items` must be an integer >= 10; got {n_new_items!r}.")
        assert d.human_n is not None and d.K_item is not None  # an ordinal design with humans, checked above
        gen, _ = as_generator(rng)
        M, C, G = len(d.models), len(d.groups), d.n_combos
        combo = (np.ravel_multi_index([d.idx[f] for f in d.factors], d.shape(d.factors)) if d.factors
                 else np.zeros(d.n_cells, np.int64))
        if match is None:
            W = np.zeros((M, 1, G))
            np.add.at(W, (d.idx["model"], 0, combo), 1.0)  # type: ignore[arg-type]  # stubs lack tuple indices
        else:
            lv = self._match_levels(match)
            W = np.zeros((M, C, G))
            lvl = d.idx[match]
            for j, li in enumerate(lv):
                sel = lvl == li
                np.add.at(W, (d.idx["model"][sel], j, combo[sel]), 1.0)
        W /= W.sum(-1, keepdims=True)
        fixed = {t.name: t for t in d.terms if "item" not in t.axes}
        sd_item = self._draws("sd_item", thin=True)
        S = len(sd_item)
        tab = {n: self._draws(n, thin=True) for n in fixed}
        sd_mi = self._draws("sd_model_item", thin=True)
        ixf = {f: (self._draws(f"sd_item_x_{f}", thin=True) if self._has(f"sd_item_x_{f}") else np.ones(S))
               for f in d.factors if d.interactions[f]}
        mu_g, sd_gi = self._draws("mu_group", thin=True), self._draws("sd_group_item", thin=True)
        K_new = gen.choice(d.K_item, size=n_new_items)
        cuts = {K: (self._model_cutpoints(K), self._draws(f"cutpoints_K{K}", thin=True)) for K in np.unique(K_new)}
        codes = {f: d.combo_codes(f) for f in d.factors}
        # Zero-sum item-level tables make the model means, group means, factor effects and the item
        # location the averages over the EVALUATED items; the population averages differ from them by
        # N(0, sd^2 / n_items), which the posterior of those parameters does not carry. It is added back
        # per draw (without it, 22 of 30 population intervals covered the truth in the calibration test).
        # Centred opinions have a hierarchical model mean that already carries it.
        q_model = np.bincount(np.unique(flat_index(d, ("model", "item"))) // len(d.items), minlength=M)
        q_group = np.maximum((d.human_n > 0).sum(1), 1)
        model_mean_sd = (np.zeros_like(sd_mi) if self._has("model_opinion")
                         else sd_mi / np.sqrt(np.maximum(q_model, 1))[None, :])
        R = n_new_items
        A = np.empty((S, M, C))
        for s in range(S):
            base = gen.normal(0, 1, M)[:, None] * model_mean_sd[s][:, None] + np.zeros((M, G))
            for f, sd in ixf.items():
                z = gen.normal(0, sd[s] / np.sqrt(len(d.items)), len(d.levels[f]))
                base += (z - z.mean())[codes[f]][None, :]
            for name, t in fixed.items():
                x = tab[name][s]
                if t.axes == ("model",):
                    base += x[:, None]
                elif t.axes[0] == "model":
                    base += x[:, codes[t.axes[1]]]
                else:
                    base += x[codes[t.axes[0]]][None, :]
            item = gen.normal(0, sd_item[s], R) + gen.normal(0, sd_item[s] / np.sqrt(len(d.items)))
            eta = base[None] + item[:, None, None] + gen.normal(0, 1, (R, M))[:, :, None] * sd_mi[s][None, :, None]
            for f, sd in ixf.items():
                z = gen.normal(0, sd[s], (R, len(d.levels[f])))
                eta = eta + (z - z.mean(1, keepdims=True))[:, None, codes[f]]
            gi = gen.normal(0, sd_gi[s], (R, C))
            mu_c = mu_g[s] + gen.normal(0, 1, C) * sd_gi[s] / np.sqrt(q_group)
            theta = mu_c[None, :] + gi - gi.mean(1, keepdims=True) + item[:, None]  # (R, C)
            pos_m, pos_h = np.empty((R, M, G)), np.empty((R, C))
            for K, (tau_m, tau_h) in cuts.items():
                r = K_new == K
                pos_m[r] = expit(eta[r][..., None] - tau_m[s]).sum(-1) / (K - 1)
                pos_h[r] = expit(theta[r][..., None] - tau_h[s]).sum(-1) / (K - 1)
            model_pos = np.einsum("rmg,mcg->rmc", pos_m, W)  # (R, M, C or 1)
            A[s] = 1 - np.abs(model_pos - pos_h[:, None, :]).mean(0)
        return A

    def alignment(self, confidence_level: float | None = None, match: str | None = None, scope: str = "evaluated",
                  n_new_items: int = 1000, rng: RngLike = None, *, level: float | None = None) -> pd.DataFrame:
        """Alignment per model x group with intervals (see :meth:`alignment_draws` for the estimand).

        ``scope="population"`` generalises to new items (wider intervals); its seed record is in
        ``attrs["rng"]``.
        """
        level = resolve_level(confidence_level, level, LEVEL)
        record = None
        if scope == "population":
            from robustalign._rng import as_generator

            gen, record = as_generator(rng)
            if rng is None or isinstance(rng, (int, np.integer)):
                rng = int(cast(int, record.entropy))  # the recorded seed reproduces the draws (and keys the cache)
            else:
                rng = gen
        A = self.alignment_draws(match, scope=scope, n_new_items=n_new_items, rng=rng)
        est, lo, hi = _summarise(A, level)
        rows = [
            {"model": m, "group": g, "scope": scope, "estimate": est[i, j], "conf_low": lo[i, j],
             "conf_high": hi[i, j], "conf_level": level}
            for i, m in enumerate(self.design.models)
            for j, g in enumerate(self.design.groups)
        ]
        out = self._frame(pd.DataFrame(rows))
        if record is not None:
            out.attrs["rng"] = record.to_dict()
        return out

    def rank_probabilities(self, match: str | None = None, scope: str = "evaluated", rng: RngLike = None) -> pd.DataFrame:
        """P(model has rank r) among the models, per group (rank 1 = best aligned), and expected rank.

        ``scope`` and ``rng`` as in :meth:`alignment_draws`.
        """
        A = self.alignment_draws(match, scope=scope, rng=rng)
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

    def flip_probabilities(self, match: str | None = None, scope: str = "evaluated", rng: RngLike = None) -> pd.DataFrame:
        """For every pair of models and group: P(the pair is ordered against its more probable order).

        ``attrs["p_any_flip"]`` (and :meth:`any_flip_probability`) give, per group, the probability
        that the posterior-mean ranking of all models is wrong somewhere.
        """
        A = self.alignment_draws(match, scope=scope, rng=rng)
        d = self.design
        rows = []
        for j, g in enumerate(d.groups):
            for a in range(len(d.models)):
                for b in range(a + 1, len(d.models)):
                    p = float((A[:, a, j] > A[:, b, j]).mean())
                    rows.append({"group": g, "model_a": d.models[a], "model_b": d.models[b],
                                 "p_a_better": p, "p_flip": min(p, 1 - p)})
        out = self._frame(pd.DataFrame(rows))
        out.attrs["p_any_flip"] = self._any_flip(A).set_index("group")["p_any_flip"].to_dict()
        return out

    def any_flip_probability(self, match: str | None = None, scope: str = "evaluated", rng: RngLike = None) -> pd.DataFrame:
        """Per group, P(the posterior-mean ranking of the models is wrong somewhere)."""
        return self._any_flip(self.alignment_draws(match, scope=scope, rng=rng))

    def _any_flip(self, A: np.ndarray) -> pd.DataFrame:
        order = (-A.mean(0)).argsort(0).argsort(0)  # (M, C)
        ranks = (-A).argsort(1).argsort(1)
        p = (ranks != order[None]).any(1).mean(0)
        return self._frame(pd.DataFrame({"group": self.design.groups, "p_any_flip": p}))

    # ------------------------------------------------------------------ tables
    def _param_names(self) -> list[str]:
        keep = ("sd_", "beta_", "mu_model", "mu_group", "phi", "intercept", "cutpoints_", "model_cutpoints_",
                "cutpoint_offset_")
        return [v for v in self.idata["posterior"].data_vars if v.startswith(keep)]

    def to_frame(self, confidence_level: float | None = None, *, level: float | None = None) -> pd.DataFrame:
        """Posterior summary of the model's parameters (SDs, factor effects, means, cutpoints)."""
        import arviz as az

        level = resolve_level(confidence_level, level, LEVEL)
        s = pd.DataFrame(az.summary(self.idata, var_names=self._param_names(), ci_kind="eti", ci_prob=level,
                                    round_to="none"))
        lo, hi = [c for c in s.columns if c.startswith("eti")][:2]
        s = s.rename(columns={"mean": "estimate", lo: "conf_low", hi: "conf_high"})
        s.insert(3, "conf_level", level)
        s.index.name = "parameter"
        return self._frame(s.reset_index())

    def conf_int(self, confidence_level: float | None = None, method: str | None = None, *, level: float | None = None) -> pd.DataFrame:
        """Equal-tailed posterior intervals of the parameters (``parameter, estimate, conf_low, ...``);
        ``method`` may only be ``"equal-tailed"`` (the default)."""
        level = resolve_level(confidence_level, level, LEVEL)
        if method not in (None, "equal-tailed", "eti"):
            raise ValueError(f"`method` must be 'equal-tailed' for posterior intervals; got {method!r}.")
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
        label = {"ordinal": "response (cumulative logit)", "categorical": "response (categorical softmax)"}
        what = (f"{label.get(d.kind, 'score (Beta)')} model, "
                f"{len(d.models)} models x {len(d.items)} items, factors {d.factors}, {d.n_cells} cells from "
                f"{d.n_responses} responses")
        tables = (f" (parameters {g['max_r_hat_each']:.3f}; tables: largest share above 1.01 "
                  f"{g['max_share_r_hat_above']:.1%})" if np.isfinite(g.get("max_r_hat_table", np.nan)) else "")
        diag = (f"max R-hat {g['max_r_hat']:.3f}{tables}, min ESS bulk {g['min_ess_bulk']:.0f} / tail "
                f"{g['min_ess_tail']:.0f}, {g['divergences']} divergences, min E-BFMI {g.get('min_e_bfmi', np.nan):.2f}")
        ext = self.provenance.get("extension")
        if ext:  # the gate missed on R-hat alone with the first chains (docs/bayesian.md, section 3)
            diag += (f"; {self.provenance['chains']} chains: {ext['chains_added']} added after the first "
                     f"{self.provenance['chains'] - ext['chains_added']} missed the gate on R-hat alone "
                     f"(max R-hat {ext['first_gate']['max_r_hat']:.3f})")
        if not self.converged:
            return f"NOT CONVERGED -- DO NOT USE THESE NUMBERS: {what}; failed gate: {gate_message(g)} ({diag})."
        r = self.variance_shares().query("component == 'stability_index'")["estimate"]
        return f"converged: {what}; {diag}; stability index R_m {r.min():.2f}-{r.max():.2f}."

    # narrower than Result.plot's pass-through keywords on purpose: the options this figure has
    def plot(self, ax: Axes | None = None, *, confidence_level: float | None = None,  # type: ignore[override]
             level: float | None = None) -> Axes:
        """Variance shares per model (stacked bars) with the stability index and its interval; returns the
        Axes (``robustalign.plots.plot_variance_shares``)."""
        from robustalign.plots import plot_variance_shares

        return plot_variance_shares(self, ax=ax, confidence_level=resolve_level(confidence_level, level, LEVEL))

    # ------------------------------------------------------------------ model checks (ArviZ)
    def add_log_likelihood(self, *, humans: bool = False, max_values: int | None = None) -> DataTree:
        """Store the pointwise log-likelihood per design cell in ``idata`` so ``az.loo(fit.idata)`` works.

        Fits store it already when chains x draws x cells is at most ``AUTO_LOGLIK_VALUES``; call this
        for larger fits (draws are thinned evenly within chains beyond ``max_values``). See
        ``models/_checks.py`` for the pointwise unit (the cell) and the constants included.
        """
        from robustalign.models._checks import MAX_VALUES, add_log_likelihood

        return add_log_likelihood(self, humans=humans, max_values=MAX_VALUES if max_values is None else max_values)

    def loo(self, **kwargs: Any) -> ELPDData:
        """``az.loo`` over design cells (adds the log-likelihood first if it is not stored)."""
        import arviz as az

        if "log_likelihood" not in self.idata.children:
            self.add_log_likelihood()
        return az.loo(self.idata, var_name="y", **kwargs)

    def posterior_predictive(self, *, n_draws: int = 200, rng: RngLike = None) -> DataTree:
        """Replicated cell means from ``n_draws`` posterior draws per chain (``posterior_predictive`` and
        ``observed_data`` groups of ``idata``, variable ``y`` per cell); ``rng`` is recorded in
        ``idata["posterior_predictive"].attrs``."""
        from robustalign._rng import as_generator
        from robustalign.models._checks import add_posterior_predictive

        gen, record = as_generator(rng)
        add_posterior_predictive(self, gen=gen, n_draws=n_draws)
        self.idata["posterior_predictive"].attrs["rng"] = str(record)
        return self.idata

    def plot_ppc(self, ax: Axes | None = None, *, n_draws: int = 200, rng: RngLike = None) -> Axes:
        """Observed vs replicated distribution of cell means (draws the replicates if none are stored)."""
        from robustalign.plots.ppc import plot_ppc

        if "posterior_predictive" not in self.idata.children:
            self.posterior_predictive(n_draws=n_draws, rng=rng)
        return plot_ppc(self, ax=ax)

    def __repr__(self) -> str:
        return f"BayesFit({self.summary()})"
