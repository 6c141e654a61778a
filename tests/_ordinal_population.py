"""Shared by the near-identity coverage tests: ordinal answer distributions drawn from a population of items.

Each model is (sharpness, location offset from the human group, SD of its model x item location); the humans
are (1, 0, 0). Written independently of the code under test (numpy and scipy only).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

TAU = np.array([-1.2, 0.0, 1.2])
OPTS = ["1", "2", "3", "4"]


def probs(loc, sharp):
    """Cumulative-logit option probabilities (..., 4) at locations ``loc``."""
    cdf = expit(sharp * (TAU - np.asarray(loc)[..., None]))
    lead = cdf.shape[:-1]
    return np.diff(np.concatenate([np.zeros((*lead, 1)), cdf, np.ones((*lead, 1))], -1), axis=-1)


def population(rng, n_items, models, table):
    """Answer distributions of ``models`` (names in ``table``) and of the humans on ``n_items`` new items."""
    b = rng.normal(0.0, 1.0, n_items)
    out = {}
    for m in models:
        sharp, offset, sd = table[m]
        out[m] = probs(b + offset + rng.normal(0.0, sd, n_items), sharp)
    return out, probs(b, 1.0)
