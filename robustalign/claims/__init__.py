"""The three properties and the multiverse audit of a claim.

``assess_stability``, ``assess_extrapolability``, ``assess_steerability`` and ``audit_claim`` each take
the data and return an :class:`~robustalign.claims._base.AssessmentResult`: verdicts in words, tidy
estimates with intervals (``to_frame()``), the evidence behind them, and ``plot()``.
"""

from __future__ import annotations

from importlib import import_module

from robustalign.claims._base import VERDICTS, AssessmentResult

__all__ = ["VERDICTS", "AssessmentResult", "Claim", "assess_accuracy", "assess_cluster_agreement",
           "assess_dimension_prediction", "assess_extrapolability", "assess_preferences", "assess_stability",
           "assess_steerability", "audit_claim", "audit_correlation", "audit_tradeoff", "load_correctness",
           "load_pairwise"]

_WHERE = {
    "assess_stability": "robustalign.claims.stability",
    "assess_extrapolability": "robustalign.claims.extrapolability",
    "assess_steerability": "robustalign.claims.steerability",
    "audit_claim": "robustalign.claims.multiverse",
    "Claim": "robustalign.claims.multiverse",
    "assess_dimension_prediction": "robustalign.claims.extrapolability",
    "assess_accuracy": "robustalign.claims.accuracy",
    "load_correctness": "robustalign.claims.accuracy",
    "assess_cluster_agreement": "robustalign.claims.clustering",
    "audit_correlation": "robustalign.claims.association",
    "audit_tradeoff": "robustalign.claims.association",
    "assess_preferences": "robustalign.claims.preferences",
    "load_pairwise": "robustalign.claims.preferences",
}


def __getattr__(name):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'robustalign.claims' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
