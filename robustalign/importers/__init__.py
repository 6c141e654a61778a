"""Importers from the files that evaluation tools write into the data contract.

Each responses importer comes as a pair:

* ``read_<source>(files, reference=None, ...) -> DataFrame``: the raw responses table of the contract
  (``model``, ``item``, design factors, ``option_order``, one answer column), ready for
  :func:`robustalign.make_responses`. ``df.attrs["exclusions"]`` counts what was dropped on reading.
* ``from_<source>(files, reference, ...) -> Responses``: the same, validated against the reference, with
  the reading exclusions merged into the result's exclusion log.

================================ =============================================================== =============
function                         reads                                                           needs
================================ =============================================================== =============
:func:`read_inspect` /           Inspect ``.eval`` / ``.json`` logs (multiple-choice samples,    ``inspect-ai``
:func:`from_inspect`             epochs, metadata, shuffled choices)
:func:`read_lm_eval` /           lm-evaluation-harness ``samples_<task>_<date>.jsonl``           nothing extra
:func:`from_lm_eval`             (multiple-choice log-likelihoods -> option probabilities)
:func:`read_wide_csv` /          the documented wide CSV: one row per model x item x design      nothing extra
:func:`from_wide_csv`            cell, one column per option (counts or probabilities)
:func:`from_goqa`                GlobalOpinionQA-style reference data -> :class:`Reference`       nothing extra
:func:`read_goqa_questions`      the questions and options of such a file, with the same ids     nothing extra
================================ =============================================================== =============

Third-party packages are imported inside the functions that need them, so importing this module
stays light. Install them with ``pip install 'robustalign[importers]'``.
"""

from __future__ import annotations

from robustalign.importers.goqa import from_goqa, read_goqa_questions
from robustalign.importers.inspect_log import from_inspect, read_inspect
from robustalign.importers.lm_eval import from_lm_eval, read_lm_eval
from robustalign.importers.wide_csv import from_wide_csv, read_wide_csv

__all__ = [
    "from_goqa",
    "from_inspect",
    "from_lm_eval",
    "from_wide_csv",
    "read_goqa_questions",
    "read_inspect",
    "read_lm_eval",
    "read_wide_csv",
]
