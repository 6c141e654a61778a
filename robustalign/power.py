"""Power and minimum detectable effects (METHODS 3.11).

Closed forms where they exist, simulation otherwise. Every report includes an MDE line such as "with
n = 77 items and 1 sample per format, the MDE for a direction effect at 80% power is 0.06 (mean
position on [0, 1])".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from robustalign._result import Result
from robustalign._rng import RngLike, as_generator
from robustalign._validation import check_confidence_level

if TYPE_CHECKING:
    import pandas as pd

    from robustalign.scaleout import ExecutorLike

__all__ = [
    "PowerResult",
    "ZERO_EFFECT_RTOL",
    "design_effect",
    "mde_paired",
    "mde_proportion",
    "n_for_equivalence",
    "n_for_mde",
    "simulate_power",
]


def z_alpha_power(alpha: float, power: float, two_sided: bool) -> float:
    alpha = check_confidence_level(alpha, "alpha")
    power = check_confidence_level(power, "power")
    return stats.norm.ppf(1 - alpha / (2 if two_sided else 1)) + stats.norm.ppf(power)


def mde_paired(
    n: int | np.ndarray,
    *,
    omega2: float | np.ndarray,
    sigma2_a: float = 0.0,
    k_a: int = 1,
    sigma2_b: float = 0.0,
    k_b: int = 1,
    deff: float = 1.0,
    alpha: float = 0.05,
    power: float = 0.8,
    two_sided: bool = True,
) -> np.ndarray:
    """Minimum detectable paired difference of mean alignment over ``n`` independent items.

    ``MDE = (z_{1-a/2} + z_{1-b}) sqrt(deff (omega^2 + sigma_A^2/K_A + sigma_B^2/K_B) / n)`` (Miller 2024):
    ``omega2`` is the across-item variance of the true difference, ``sigma2_*`` the within-item
    resampling variance and ``k_*`` the samples per item, ``deff`` the design effect of clustered items.
    """
    n = np.asarray(n, float)
    if (n < 2).any():
        raise ValueError(f"`n` must be at least 2 items; got {n.min():g}.")
    var = deff * (np.asarray(omega2, float) + sigma2_a / k_a + sigma2_b / k_b)
    return z_alpha_power(alpha, power, two_sided) * np.sqrt(var / n)


#: An effect below this fraction of the per-item SD is zero to floating-point precision (estimates of a zero
#: effect come out as rounding residues such as 2.8e-17): it would need more than 1e16 items.
ZERO_EFFECT_RTOL = 1e-8


def n_for_mde(mde: float, *, sd: float, alpha: float = 0.05, power: float = 0.8,
              two_sided: bool = True) -> int | float:
    """Items needed to detect a paired difference ``mde`` when the per-item differences have SD ``sd``.

    ``n = ((z_{1-a/2} + z_{1-b}) sd / mde)^2``, rounded up. A zero effect cannot be detected with any
    number of items: for ``mde`` of 0 or below :data:`ZERO_EFFECT_RTOL` ``* sd`` (a rounding residue of
    zero) the result is ``math.inf`` ("not estimable"), never an integer beyond the range numpy handles.
    """
    if not (np.isfinite(mde) and np.isfinite(sd)) or mde < 0 or sd <= 0:
        raise ValueError(f"`mde` must be finite and >= 0 and `sd` must be positive; got mde={mde}, sd={sd}.")
    z = z_alpha_power(alpha, power, two_sided)
    if mde <= ZERO_EFFECT_RTOL * sd:
        return math.inf
    return int(np.ceil((z * sd / mde) ** 2))


def design_effect(mean_cluster_size: float, icc: float) -> float:
    """Kish design effect ``1 + (m - 1) ICC`` for items clustered in blocks."""
    if mean_cluster_size < 1:
        raise ValueError(f"`mean_cluster_size` must be >= 1; got {mean_cluster_size}.")
    return 1.0 + (mean_cluster_size - 1.0) * icc


def n_for_equivalence(sd_d: float, margin: float, *, theta: float = 0.0, alpha: float = 0.05,
                      power: float = 0.8) -> int:
    """Items needed so a TOST at level ``alpha`` (a 1 - 2 alpha interval) shows ``|effect| < margin``.

    ``n = (z_{1-alpha} + z_{1-beta/2})^2 sd_d^2 / (margin - |theta|)^2`` (METHODS 3.11), with ``theta`` the
    expected true effect and ``margin`` the equivalence bound (e.g. the human between-country SD).
    """
    alpha = check_confidence_level(alpha, "alpha")
    power = check_confidence_level(power, "power")
    if margin <= abs(theta):
        raise ValueError(
            f"`margin` ({margin}) must exceed |theta| ({abs(theta)}): an effect at or beyond the margin cannot be "
            "shown to be inside it."
        )
    z = stats.norm.ppf(1 - alpha) + stats.norm.ppf(1 - (1 - power) / 2)
    return int(np.ceil((z * sd_d / (margin - abs(theta))) ** 2))


def mde_proportion(n: int, p0: float, *, alpha: float = 0.05, power: float = 0.8, two_sided: bool = True) -> float:
    """Smallest difference from a rate ``p0`` detectable with ``n`` independent binary answers (normal
    approximation with the variance at ``p0``); e.g. for a flip rate against a noise floor."""
    if not 0 < p0 < 1:
        raise ValueError(f"`p0` must be in (0, 1); got {p0}.")
    return float(z_alpha_power(alpha, power, two_sided) * np.sqrt(p0 * (1 - p0) / n))


@dataclass(frozen=True)
class PowerResult(Result):
    """Simulated power with a Wilson interval for the Monte Carlo error."""

    power: float
    conf_low: float
    conf_high: float
    n_simulations: int
    n_rejected: int
    alpha: float
    seed: object

    def to_frame(self, confidence_level: float | None = None) -> pd.DataFrame:
        """One row: ``estimate`` (power), its Wilson interval at ``confidence_level`` (default 0.95; the
        interval is the Monte Carlo error of the simulated power), ``n_simulations``, ``n_rejected``,
        ``alpha``."""
        import pandas as pd

        level = check_confidence_level(0.95 if confidence_level is None else confidence_level)
        lo, hi = self.conf_low, self.conf_high
        if level != 0.95:
            from statsmodels.stats.proportion import proportion_confint

            lo, hi = (float(x) for x in proportion_confint(self.n_rejected, self.n_simulations, alpha=1 - level,
                                                            method="wilson"))
        return pd.DataFrame([{"estimate": self.power, "conf_low": lo, "conf_high": hi, "conf_level": level,
                              "method": "wilson", "n_simulations": self.n_simulations,
                              "n_rejected": self.n_rejected, "alpha": self.alpha}])

    def summary(self) -> str:
        return (f"power {self.power:.1%} (95% Monte Carlo interval {self.conf_low:.1%} to {self.conf_high:.1%}, "
                f"{self.n_simulations} simulations, alpha = {self.alpha})")


def simulate_power(
    simulate_pvalue: Callable[[np.random.Generator], float],
    *,
    n_simulations: int = 500,
    alpha: float = 0.05,
    rng: RngLike = None,
    executor: ExecutorLike = None,
) -> PowerResult:
    """Power by simulation: ``simulate_pvalue(rng)`` draws one data set and returns its test's p-value.

    Each simulation gets an independent child generator (``SeedSequence.spawn``), so the result is the
    same whether the simulations run serially or on an ``executor`` (any ``concurrent.futures.Executor``).
    """
    if n_simulations < 1:
        raise ValueError(f"`n_simulations` must be >= 1; got {n_simulations}.")
    gen, record = as_generator(rng)
    children = gen.spawn(n_simulations)
    from robustalign._progress import progress_bar

    with progress_bar(n_simulations, "power simulations") as bar:
        if executor is None:
            p = np.empty(n_simulations)
            for i, c in enumerate(children):  # one simulated study per step: a block, not a draw
                p[i] = simulate_pvalue(c)
                bar.advance()
        else:
            p = np.array(list(executor.map(simulate_pvalue, children)), float)
            bar.advance(n_simulations)
    k = int(np.sum(p <= alpha))
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n_simulations, method="wilson")
    return PowerResult(k / n_simulations, float(lo), float(hi), n_simulations, k, alpha, record.to_dict())
