"""The audit report: run every assessment the data's design allows and write it as HTML, Markdown,
CSV tables and figures (``robustalign audit``).

``from robustalign.report import run_audit`` stays light; matplotlib is imported only when the report
is written, and PyMC only when the design asks for a Bayesian fit.
"""

from __future__ import annotations

from robustalign.report.audit import AuditPart, AuditReport, FigureSpec, Section, run_audit, run_example_audit
from robustalign.report.design import AuditDesign, load_design

__all__ = ["AuditDesign", "AuditPart", "AuditReport", "FigureSpec", "Section", "load_design", "run_audit",
           "run_example_audit"]
