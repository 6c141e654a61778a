"""The adjusted Rand index from pair counts, written from its definition (Hubert and Arabie 1985), as an
independent reference for ``robustalign.claims.clustering.adjusted_rand_index``."""

from itertools import combinations


def pair_count_ari(a, b) -> float:
    """ARI from pair counts: 2 (n11 n00 - n01 n10) / ((n11 + n01)(n01 + n00) + (n11 + n10)(n10 + n00))."""
    n11 = n00 = n01 = n10 = 0
    for i, j in combinations(range(len(a)), 2):
        sa, sb = a[i] == a[j], b[i] == b[j]
        n11 += sa and sb
        n00 += (not sa) and (not sb)
        n10 += sa and not sb
        n01 += sb and not sa
    return 2.0 * (n11 * n00 - n01 * n10) / ((n11 + n01) * (n01 + n00) + (n11 + n10) * (n10 + n00))
