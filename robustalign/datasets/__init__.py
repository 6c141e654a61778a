"""The bundled real data sets, each in the robustalign data contract.

===================================== =====================================================
loader                                data (licence)
===================================== =====================================================
:func:`load_multicultural_alignment` Rystrøm et al. 2025, model pro-scores, human ground
                                      truth per language and country, a steering
                                      experiment (MIT)
:func:`load_llm_values_pct`           Röttger et al. 2024, raw completions to 62 Political
                                      Compass propositions, 10 paraphrased templates and 5
                                      forcing levels, parsed by robustalign (CC-BY-4.0)
:func:`load_menavalues`               MENAValues 2025, human answer shares for 16 MENA
                                      countries x 864 items (MIT)
===================================== =====================================================

Each folder keeps its upstream LICENSE and a CITATION.md.
"""

from __future__ import annotations

from importlib import import_module

__all__ = ["load_llm_values_pct", "load_menavalues", "load_multicultural_alignment"]

_WHERE = {
    "load_multicultural_alignment": "robustalign.datasets.multicultural",
    "load_menavalues": "robustalign.datasets.menavalues",
    "load_llm_values_pct": "robustalign.datasets.pct",
}


def __getattr__(name):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'robustalign.datasets' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
