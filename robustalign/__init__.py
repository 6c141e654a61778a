"""robustalign: honest error bars on claims about the cultural alignment of language models.

``import robustalign`` stays light: numpy, scipy and pandas only. PyMC, PyTensor, ArviZ and
matplotlib are imported inside the functions that fit a model or draw a figure.
"""

from __future__ import annotations

from importlib import import_module

from robustalign._errors import (
    ConvergenceWarning,
    DegenerateResampleWarning,
    RobustAlignError,
    RobustAlignWarning,
    SchemaError,
)
from robustalign.io import load_reference, load_responses, read_table
from robustalign.schema import ExclusionLog, Reference, Responses, Scale, make_reference, make_responses

__version__ = "0.1.0"

# Public names that live in submodules; resolved on first use so that importing the package stays light.
_LAZY = {
    "parse_answer": "robustalign.parsing",
    "parse_answers": "robustalign.parsing",
    "PARSER_VERSION": "robustalign.parsing",
    "metrics": "robustalign.metrics",
    "datasets": "robustalign.datasets",
    "simulate": "robustalign.simulate",
    "alignment": "robustalign.scoring",
    "item_scores": "robustalign.scoring",
    "model_profiles": "robustalign.scoring",
    "validity_rates": "robustalign.validity",
    "persona": "robustalign.persona",
    "assess_persona": "robustalign.persona",
    "make_respondent_reference": "robustalign.persona",
    "load_respondent_reference": "robustalign.persona",
    "RespondentReference": "robustalign.persona",
    "persona_scores": "robustalign.persona",
    "simulate_persona": "robustalign.simulate",
    "assess_stability": "robustalign.claims",
    "assess_steerability": "robustalign.claims",
    "assess_extrapolability": "robustalign.claims",
    "audit_claim": "robustalign.claims",
    "assess_accuracy": "robustalign.claims",
    "load_correctness": "robustalign.claims",
    "assess_cluster_agreement": "robustalign.claims",
    "audit_correlation": "robustalign.claims",
    "audit_tradeoff": "robustalign.claims",
    "assess_preferences": "robustalign.claims",
    "load_pairwise": "robustalign.claims",
    "Claim": "robustalign.claims",
    "cluster_bootstrap": "robustalign.resampling",
    "paired_bootstrap": "robustalign.resampling",
    "two_way_bootstrap": "robustalign.resampling",
    "dirichlet_reference": "robustalign.resampling",
    "stratified_permutation_test": "robustalign.resampling",
    "sign_flip_test": "robustalign.resampling",
    "item_aggregates": "robustalign.resampling",
    "BootstrapResult": "robustalign.resampling",
    "PermutationResult": "robustalign.resampling",
    "read_inspect": "robustalign.importers",
    "from_inspect": "robustalign.importers",
    "read_lm_eval": "robustalign.importers",
    "from_lm_eval": "robustalign.importers",
    "read_wide_csv": "robustalign.importers",
    "from_wide_csv": "robustalign.importers",
    "from_goqa": "robustalign.importers",
    "read_goqa_questions": "robustalign.importers",
}


def __getattr__(name):
    if name in _LAZY:
        mod = import_module(_LAZY[name])
        return mod if _LAZY[name].endswith("." + name) else getattr(mod, name)
    raise AttributeError(f"module 'robustalign' has no attribute {name!r}")


__all__ = [
    "ConvergenceWarning",
    "DegenerateResampleWarning",
    "ExclusionLog",
    "Reference",
    "Responses",
    "RobustAlignError",
    "RobustAlignWarning",
    "Scale",
    "SchemaError",
    "load_reference",
    "load_responses",
    "make_reference",
    "make_responses",
    "read_table",
    *_LAZY,
]


def __dir__():
    return sorted({*globals(), *__all__})
