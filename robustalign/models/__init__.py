"""Hierarchical Bayesian models of responses under perturbation, with a convergence gate.

The only subpackage that imports PyMC, PyTensor and ArviZ, and only when a model is built or fitted:
``from robustalign.models import fit_response_model`` stays light.

* :func:`fit_response_model` -- cumulative-logit model of answer counts per design cell with
  crossed item, model and design-factor effects, model x factor and item x factor interactions,
  and (with a reference) human answers on the same cutpoints. When every item is nominal it fits the
  categorical (softmax) model instead: zero-sum option logits per item, per-model item deviations and
  model x item x level presentation effects, human answers on the same item baselines.
* :func:`fit_score_model` -- Beta model of scores in [0, 1] with the same crossed effects.
* :class:`BayesFit` -- posterior (``idata``), the gate verdict (``converged``, ``diagnostics``),
  variance shares and the stability index, factor effects relative to human between-group spread,
  alignment per model x group, rank and flip probabilities, provenance.
* :func:`sbc_response_model` -- simulation-based calibration of the response model.
* :func:`fit_bradley_terry_model` -- Bradley-Terry model of forced choices with a position effect.
"""

from __future__ import annotations

from importlib import import_module

__all__ = [
    "GATE",
    "BayesFit",
    "BradleyTerryFit",
    "build_response_model",
    "build_score_model",
    "compile_cache_dirs",
    "fit_bradley_terry_model",
    "fit_response_model",
    "fit_score_model",
    "sbc_response_model",
]

_WHERE = {
    "fit_response_model": "robustalign.models._fit",
    "fit_score_model": "robustalign.models._fit",
    "build_response_model": "robustalign.models._fit",
    "build_score_model": "robustalign.models._fit",
    "BayesFit": "robustalign.models._result",
    "GATE": "robustalign.models._sampling",
    "compile_cache_dirs": "robustalign.models._sampling",
    "sbc_response_model": "robustalign.models.calibration",
    "fit_bradley_terry_model": "robustalign.models.bradley_terry",
    "BradleyTerryFit": "robustalign.models.bradley_terry",
}


def __getattr__(name):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'robustalign.models' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
