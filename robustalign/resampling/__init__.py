"""Resampling engine: cluster, paired, two-way and human-reference bootstraps; stratified permutation tests.

Every interval robustalign reports that is not a posterior comes from here. Statistics built from
per-item aggregates (means, differences, ratios, ranks) are computed for all resamples at once as a
``(resamples x items) @ (items x cells)`` product in memory-bounded chunks; anything else goes through
a vectorised general path. ``rng=`` is keyword-only everywhere and its seed is recorded in the result.

Public names
------------
cluster_bootstrap, paired_bootstrap, two_way_bootstrap, dirichlet_reference
    Bootstrap designs (METHODS 3.6).
stratified_permutation_test, sign_flip_test
    Permutation tests within strata, ``p = (1 + b) / (1 + B)``.
keyed_stream
    The one stream scheme: an independent generator per ``(seed, purpose, unit)``, so a unit's
    numbers do not depend on which other units are in the data.
maxt_p_values
    Westfall-Young single-step max-T adjusted p-values from a joint null, with the same tie rule.
permutation_p_values
    That p-value for any observed statistics and null matrix (near-ties count as extreme).
item_aggregates
    Long table -> per-item aggregates (the fast-path input).
BootstrapResult, PermutationResult, ReferenceDraws, ItemAggregates
    Result and input objects.
percentile_interval, bca_interval
    Interval functions on any replicate matrix.
"""

from robustalign.resampling._aggregate import ItemAggregates, item_aggregates
from robustalign.resampling.bootstrap import (
    ReferenceDraws,
    cluster_bootstrap,
    dirichlet_reference,
    paired_bootstrap,
    two_way_bootstrap,
)
from robustalign.resampling.intervals import bca_interval, percentile_interval
from robustalign.resampling.permutation import (
    maxt_p_values,
    permutation_p_values,
    sign_flip_test,
    stratified_permutation_test,
)
from robustalign.resampling.results import BootstrapResult, PermutationResult
from robustalign.resampling.streams import keyed_stream

__all__ = [
    "BootstrapResult",
    "ItemAggregates",
    "PermutationResult",
    "ReferenceDraws",
    "bca_interval",
    "cluster_bootstrap",
    "dirichlet_reference",
    "item_aggregates",
    "keyed_stream",
    "maxt_p_values",
    "paired_bootstrap",
    "percentile_interval",
    "permutation_p_values",
    "sign_flip_test",
    "stratified_permutation_test",
    "two_way_bootstrap",
]
