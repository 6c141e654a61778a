"""`[stability] sequential` in the design file reaches assess_stability, and is type-checked."""

from __future__ import annotations

import pytest

import robustalign.claims as claims
from robustalign.report import AuditDesign, run_audit
from robustalign.simulate import simulate


@pytest.mark.parametrize(("stability", "expected"), [({}, False), ({"sequential": True}, True)])
def test_the_design_key_reaches_assess_stability(monkeypatch, stability, expected):
    seen = {}
    real = claims.assess_stability

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(claims, "assess_stability", spy)
    monkeypatch.setenv("ROBUSTALIGN_WORKERS", "1")   # the spy sees calls made in this process only
    resp, ref = simulate(n_models=2, n_items=8, n_groups=2, factors={"format": 2}, n_orders=1, n_samples=3,
                         rng=1).load()
    design = AuditDesign.from_dict({"stability": stability, "metrics": ["js"], "steering": {"baseline": "none"}})
    run_audit(resp, ref, design=design, n_resamples=30, n_permutations=60, rng=0)
    assert seen["sequential"] is expected


def test_a_non_boolean_value_is_refused_with_the_key_named():
    from robustalign._errors import RobustAlignError

    with pytest.raises(RobustAlignError, match=r"\[stability\] `sequential` must be true or false"):
        AuditDesign.from_dict({"stability": {"sequential": "yes"}})
