"""Coverage check of the item-bootstrap intervals used throughout the report (for the calibration figure).

Items are drawn from a known population of per-item alignment scores (by default the bundled data's
per-item JS similarities, so the population has the skew of real scores); each simulated study
computes the mean over ``n_items`` items with a cluster-bootstrap interval; coverage is the share of
studies whose interval contains the population mean, with a Wilson interval for the Monte Carlo error.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from robustalign._rng import RngLike

__all__ = ["bootstrap_coverage"]


def _population() -> np.ndarray:
    from robustalign.datasets import load_multicultural_alignment
    from robustalign.scoring import item_scores

    d = load_multicultural_alignment()
    s = item_scores(d.responses, d.reference_language, metric="js", against="language", estimand="plug-in")
    return s["score"].to_numpy(float)


def bootstrap_coverage(*, population: ArrayLike | None = None, n_items: int = 32, n_studies: int = 400,
                       levels: Sequence[float] = (0.5, 0.8, 0.9, 0.95, 0.99),
                       methods: Sequence[str] = ("percentile", "bca"),
                       n_resamples: int = 1000, rng: RngLike = None) -> pd.DataFrame:
    """Empirical coverage of cluster-bootstrap intervals of a mean over items, per nominal level.

    Returns one row per method x nominal level: ``method, nominal, n_items, n_studies, n_covered,
    estimate`` (empirical coverage), ``conf_low, conf_high, conf_level`` (95% Wilson interval of the
    coverage).
    """
    from statsmodels.stats.proportion import proportion_confint

    from robustalign._rng import as_generator
    from robustalign.resampling import cluster_bootstrap, keyed_stream
    from robustalign.resampling.draws import sample_with_replacement

    gen, _ = as_generator(rng)
    pop = _population() if population is None else np.asarray(population, float)
    truth = float(pop.mean())
    X = sample_with_replacement(keyed_stream(gen, "calibration.studies"), pop, (n_items, n_studies))  # items x studies
    res = cluster_bootstrap(X, n_resamples=n_resamples, rng=keyed_stream(gen, "calibration.bootstrap"))
    rows = []
    for m in methods:
        for lv in levels:
            ci = res.conf_int(lv, m)
            cov = (ci["conf_low"].to_numpy() <= truth) & (truth <= ci["conf_high"].to_numpy())
            k = int(cov.sum())
            lo, hi = proportion_confint(k, n_studies, alpha=0.05, method="wilson")
            rows.append({"method": m, "nominal": lv, "n_items": n_items, "n_studies": n_studies, "n_covered": k,
                         "estimate": k / n_studies, "conf_low": lo, "conf_high": hi, "conf_level": 0.95})
    return pd.DataFrame(rows)
