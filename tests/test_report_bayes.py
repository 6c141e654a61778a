"""The audit's Bayesian section: both alignment scopes, the sensitivity fit and the gate's verdicts.

The data are the cutpoint-offset study of tests/test_models_fit.py (``sim_offset`` in conftest.py), and
``make test`` runs this module in the same process as that one: the audit's sensitivity fit then samples
the offset model compiled there instead of compiling it again (same data, same model options).
"""

import numpy as np
import pytest

from robustalign._errors import RobustAlignError
from robustalign.report import AuditDesign, run_audit

pytestmark = pytest.mark.bayes


def test_audit_bayes_section_reports_both_alignment_scopes_and_the_gate(sim_offset):
    resp, ref = sim_offset.load()
    design = AuditDesign.from_dict({"bayes": {"fit": True, "draws": 300, "tune": 300, "chains": 2,
                                              "sensitivity": True}})
    rep = run_audit(resp, ref, design=design, n_resamples=100, n_permutations=100, rng=0)
    sec = rep.section("bayes")
    fit = sec.results["fit"]
    al = sec.tables["bayes_alignment"]
    assert al.groupby("scope").size().to_dict() == {"evaluated": 12, "population": 12}  # 3 models x 4 groups
    np.testing.assert_allclose(al.query("scope == 'evaluated'")["estimate"], fit.alignment()["estimate"])
    assert al["converged"].eq(fit.converged).all()
    # the sensitivity fit lets the models' cutpoint spacing differ; its rho sits beside the shared one
    alt = sec.results["sensitivity_fit"]
    assert alt.provenance["cutpoints"] == "offset" and alt.provenance["draws"] == 300
    assert fit.provenance["cutpoints"] == "shared"
    sens = sec.tables["bayes_sensitivity"]
    np.testing.assert_allclose(sens.query("cutpoints == 'offset'")["estimate"], alt.factor_vs_human()["estimate"])
    np.testing.assert_allclose(sens.query("cutpoints == 'shared'")["estimate"], fit.factor_vs_human()["estimate"])
    # a fit that fails the gate becomes an inconclusive verdict; one that passes adds none
    flagged = rep.verdicts["reason"].str.contains("Bayesian|cutpoints='offset'", na=False)
    assert flagged.sum() == (not fit.converged) + (not alt.converged)
    with pytest.raises(RobustAlignError, match="`sensitivity` must be true or false"):
        AuditDesign.from_dict({"bayes": {"sensitivity": "yes"}})
