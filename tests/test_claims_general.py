"""General claims (contrast, trend, equivalent, correlation): the five claim kinds are shorthands of the
general contrast (same numbers), estimates match computations written here with pandas / numpy / scipy,
and each form keeps its size at a null (equivalence: at its margin), judged with binomial tests.

The data of the size tests come from a simulator written here (answers drawn from known per-item
probabilities), not from robustalign.simulate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from robustalign.claims.multiverse import Claim, audit_claim
from robustalign.schema import Scale, make_reference, make_responses
from robustalign.simulate import simulate

K4 = Scale(("1", "2", "3", "4"), ("SD", "D", "A", "SA"), ordinal=True)
K2 = Scale(("1", "2"), ("no", "yes"), ordinal=True)


# --------------------------------------------------------------------------------------------------
# a simulator with known truth, independent of the code under test
# --------------------------------------------------------------------------------------------------
def _responses(rng, cells: dict, n_answers: int, scale: Scale = K4):
    """``cells``: {(model, language): (items, K) answer probabilities}; ``n_answers`` answers per item."""
    rows = []
    for (model, lang), P in cells.items():
        for q, p in enumerate(P):
            ans = rng.choice(len(p), size=n_answers, p=p) + 1
            rows += [dict(model=model, item=f"q{q}", language=lang, sample=s, answer=str(a)) for s, a in enumerate(ans)]
    n_items = next(iter(cells.values())).shape[0]
    return make_responses(pd.DataFrame(rows), scales={f"q{q}": scale for q in range(n_items)},
                          factors=["language", "sample"])


def _reference(groups: dict):
    """``groups``: {group: (items, K) shares} -> a Reference (shares taken as exact: no respondent counts)."""
    rows = [dict(item=f"q{q}", group=g, option=str(k + 1), share=float(s))
            for g, H in groups.items() for q, h in enumerate(H) for k, s in enumerate(h)]
    n_items = next(iter(groups.values())).shape[0]
    return make_reference(pd.DataFrame(rows), scales={f"q{q}": K4 for q in range(n_items)})


def _dirichlet(rng, n_items, alpha=2.0):
    return rng.dirichlet(np.full(4, alpha), size=n_items)


def _size_ok(k: int, n: int, level: float = 0.05) -> bool:
    """The rejection rate is not above ``level`` (binomial test, one-sided, at 0.01)."""
    return k / n <= level or stats.binomtest(k, n, level, alternative="greater").pvalue > 0.01


FAST = dict(n_resamples=99, n_permutations=199)


# --------------------------------------------------------------------------------------------------
# shorthands = their general spelling
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim():
    s = simulate(n_models=3, n_items=30, n_groups=3, factors={"format": 2}, n_orders=2, n_steer=2, rng=7)
    return s.load()


SPELLINGS = [
    (Claim.closer("model_1", than="model_2", group="C02"),
     Claim.contrast({"model": "model_1"}, {"model": "model_2"}, group="C02",
                    text="model_1 is closer to C02 than model_2")),
    (Claim.steering_raises("model_2", target="C01"),
     Claim.contrast({"model": "model_2", "steer_target": "C01"}, {"model": "model_2", "steer_target": "none"},
                    group="C01", text="steering model_2 toward C01 raises its alignment with C01")),
    (Claim.closest_group("model_1", group="C01"),
     Claim.contrast({"model": "model_1", "group": "C01"}, {"model": "model_1", "group": "*"},
                    text="model_1's closest group is C01")),
    (Claim.human_proxy("C02", target="C01", model="model_3"),
     Claim.contrast({"human": "C02"}, {"model": "model_3"}, group="C01",
                    text="humans of C02 are a closer proxy for C01 than model_3")),
    (Claim.higher_position("model_3", than="model_1"),
     Claim.contrast({"model": "model_3"}, {"model": "model_1"}, metric="position",
                    text="model_3's mean answer position is higher than model_1's")),
]


@pytest.mark.parametrize("short, general", SPELLINGS, ids=[s.kind for s, _ in SPELLINGS])
def test_shorthand_gives_the_numbers_of_its_general_spelling(sim, short, general):
    r, ref = sim
    assert short.kind != general.kind == "contrast" and short.cells == general.cells
    kw = dict(factors=["format"], metrics=None if short.metric == "position" else ["js", "tv"], rng=11, **FAST)
    a = audit_claim(r, ref if short.needs_reference else None, short, **kw)
    b = audit_claim(r, ref if general.needs_reference else None, general, **kw)
    pd.testing.assert_frame_equal(a.to_frame(), b.to_frame(), check_exact=True)
    pd.testing.assert_frame_equal(a.verdicts, b.verdicts, check_exact=True)
    assert len(a.to_frame()) >= 3


# --------------------------------------------------------------------------------------------------
# estimates against independent computations (mean answer positions with pandas)
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def four_models():
    rng = np.random.default_rng(3)
    cells = {(f"m{j}", lang): _dirichlet(rng, 12) for j in range(4) for lang in ("hi", "en")}
    r = _responses(rng, cells, n_answers=6)
    d = r.data.assign(pos=lambda x: (x["option"].astype(int) - 1) / 3)
    pos = d.groupby(["model", "language", "item"], observed=True)["pos"].mean()
    return r, pos


def test_language_contrast_estimate_is_the_mean_position_difference(four_models):
    r, pos = four_models
    claim = Claim.contrast({"model": "m1", "language": "hi"}, {"model": "m1", "language": "en"}, metric="position")
    f = audit_claim(r, None, claim, rng=0, **FAST).to_frame().set_index("aggregation")
    assert "language" not in f.columns  # the factor the claim names is not a specification choice
    diff = pos.loc[("m1", "hi")] - pos.loc[("m1", "en")]
    assert f.loc["mean", "estimate"] == pytest.approx(diff.mean(), abs=1e-12)
    assert f.loc["median", "estimate"] == pytest.approx(diff.median(), abs=1e-12)


def test_trend_estimate_is_the_mean_of_per_item_least_squares_slopes(four_models):
    r, pos = four_models
    x = {"m0": 1.0, "m1": 3.0, "m2": 7.0, "m3": 13.0}
    claim = Claim.trend(x, metric="position")
    f = audit_claim(r, None, claim, factors=["language"], include_pooled=False, aggregations=["mean"],
                    rng=0, **FAST).to_frame().set_index("language")
    for lang in ("hi", "en"):
        Y = np.array([pos.loc[(m, lang)].sort_index().to_numpy() for m in x]).T  # items x models
        slopes = [np.polyfit(list(x.values()), y, 1)[0] for y in Y]
        assert f.loc[lang, "estimate"] == pytest.approx(np.mean(slopes), abs=1e-12)
    down = audit_claim(r, None, Claim.trend(x, metric="position", decreasing=True), factors=["language"],
                       include_pooled=False, aggregations=["mean"], rng=0, **FAST).to_frame().set_index("language")
    assert down.loc["hi", "estimate"] == pytest.approx(-f.loc["hi", "estimate"], abs=1e-12)


def test_equivalence_estimate_is_margin_minus_the_largest_pairwise_difference(four_models):
    r, pos = four_models
    claim = Claim.equivalent([{"model": m, "language": "hi"} for m in ("m0", "m1", "m2")], margin=0.2,
                             metric="position")
    f = audit_claim(r, None, claim, aggregations=["mean"], rng=0, **FAST).to_frame()
    means = [pos.loc[(m, "hi")].mean() for m in ("m0", "m1", "m2")]
    worst = max(abs(a - b) for i, a in enumerate(means) for b in means[i + 1:])
    assert f["estimate"].iloc[0] == pytest.approx(0.2 - worst, abs=1e-12)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_correlation_estimate_matches_scipy(four_models, method):
    r, pos = four_models
    y = {"m0": 0.3, "m1": -1.0, "m2": 2.0, "m3": 0.5}
    claim = Claim.correlation(y, metric="position", method=method, negative=True)
    f = audit_claim(r, None, claim, factors=["language"], include_pooled=False, aggregations=["mean"],
                    rng=0, **FAST).to_frame().set_index("language")
    for lang in ("hi", "en"):
        a = [pos.loc[(m, lang)].mean() for m in y]
        ref = getattr(stats, f"{method}r")(a, list(y.values()))[0]
        # model_profiles rounds mean positions to 12 decimals (ties stay ties): agreement to 1e-9
        assert f.loc[lang, "estimate"] == pytest.approx(-ref, abs=1e-9)  # negative: claimed direction flipped
        assert f.loc[lang, "conf_low"] <= f.loc[lang, "conf_high"]


def test_correlation_with_per_item_values_uses_their_item_means(four_models):
    r, pos = four_models
    items = sorted(r.items)
    table = pd.DataFrame({m: np.arange(len(items)) * (j + 1) % 5 for j, m in enumerate(["m0", "m1", "m2", "m3"])},
                         index=items, dtype=float)
    claim = Claim.correlation(item_values=table, metric="position")
    f = audit_claim(r, None, claim, factors=["language"], include_pooled=False, aggregations=["mean"],
                    rng=0, **FAST).to_frame().set_index("language")
    a = [pos.loc[(m, "en")].mean() for m in table.columns]
    assert f.loc["en", "estimate"] == pytest.approx(stats.pearsonr(a, table.mean().to_numpy())[0], abs=1e-9)


def test_correlation_interval_carries_the_other_quantitys_standard_errors(four_models):
    r, _ = four_models
    y = {"m0": 0.3, "m1": -1.0, "m2": 2.0, "m3": 0.5}
    kw = dict(factors=[], aggregations=["mean"], rng=4, **FAST)
    width = {}
    for s in (0.0, 1.0):
        f = audit_claim(r, None, Claim.correlation(y, se={m: s for m in y}, metric="position"), **kw).to_frame()
        width[s] = float(f["conf_high"].iloc[0] - f["conf_low"].iloc[0])
        assert (f["method"].iloc[0], f["method_note"].iloc[0]) == ("percentile", "two-stage bootstrap")
    assert width[1.0] > width[0.0] > 0


def test_general_claims_give_the_serial_numbers_on_an_executor(four_models):
    from concurrent.futures import ThreadPoolExecutor

    r, _ = four_models
    claims = [Claim.trend({"m0": 1, "m1": 2, "m2": 3}, metric="position"),
              Claim.correlation({"m0": 1, "m1": 2, "m2": 3, "m3": 0}, se={"m0": 1, "m1": 1, "m2": 1, "m3": 1},
                                metric="position")]
    for claim in claims:
        a = audit_claim(r, None, claim, rng=2, **FAST)
        with ThreadPoolExecutor(2) as ex:
            b = audit_claim(r, None, claim, rng=2, executor=ex, **FAST)
        pd.testing.assert_frame_equal(a.to_frame(), b.to_frame())


def test_bad_general_claims_are_refused(four_models):
    r, _ = four_models
    with pytest.raises(ValueError, match="names no 'model'"):
        Claim.contrast({"language": "hi"}, {"model": "m1"})
    with pytest.raises(ValueError, match="at least 3 cells"):
        Claim.trend({"m0": 1, "m1": 2})
    with pytest.raises(ValueError, match="not all equal"):
        Claim.trend({"m0": 1, "m1": 1, "m2": 1})
    with pytest.raises(ValueError, match="`margin` must be a positive number"):
        Claim.equivalent(model="m0", groups=["A", "B"], margin=0)
    with pytest.raises(ValueError, match="not both or neither"):
        Claim.correlation()
    with pytest.raises(ValueError, match="lists in the order of the cells"):
        Claim.correlation({"m0": 1, "m1": 2, "m2": 3}, cells=[{"model": "m2"}, {"model": "m1"}, {"model": "m0"}])
    with pytest.raises(ValueError, match="not both"):
        Claim.trend({"m0": 1, "m1": 2, "m2": 3}, x=[1, 2, 3])
    with pytest.raises(ValueError, match="levels \\['fr'\\] of 'language' are not in the responses"):
        audit_claim(r, None, Claim.contrast({"model": "m1", "language": "fr"}, {"model": "m1", "language": "en"},
                                            metric="position"), **FAST)
    with pytest.raises(ValueError, match="factor 'lang' is not a column of the responses"):
        audit_claim(r, None, Claim.contrast({"model": "m1", "lang": "hi"}, {"model": "m1"}, metric="position"),
                    **FAST)


# --------------------------------------------------------------------------------------------------
# size at the null (binomial tests); fast versions here, long ones marked slow
# --------------------------------------------------------------------------------------------------
def _language_null(seed: int):
    """Model M answers in hi and en from the same per-item distribution: no language effect on any metric."""
    rng = np.random.default_rng(seed)
    P = _dirichlet(rng, 20)
    r = _responses(rng, {("M", "hi"): P, ("M", "en"): P, ("N", "hi"): _dirichlet(rng, 20)}, n_answers=10)
    ref = _reference({"IN": _dirichlet(rng, 20), "US": _dirichlet(rng, 20)})
    claim = Claim.contrast({"model": "M", "language": "hi"}, {"model": "M", "language": "en"}, group="IN")
    return audit_claim(r, ref, claim, metrics=["js", "tv"], rng=seed, **FAST)


def _trend_null(seed: int):
    """Four models with the same answer distribution: no trend in their covariate."""
    rng = np.random.default_rng(seed)
    P = _dirichlet(rng, 20)
    r = _responses(rng, {(m, "en"): P for m in ("a", "b", "c", "d")}, n_answers=10)  # JS needs 10
    ref = _reference({"IN": _dirichlet(rng, 20)})
    claim = Claim.trend({"a": 1.0, "b": 3.0, "c": 7.0, "d": 13.0}, group="IN", metric="js")
    return audit_claim(r, ref, claim, rng=seed, **FAST)


def _correlation_null(seed: int):
    """Six models whose alignment differs, and another quantity drawn independently of it."""
    rng = np.random.default_rng(seed)
    models = [f"m{j}" for j in range(6)]
    r = _responses(rng, {(m, "en"): _dirichlet(rng, 15, alpha=1.0) for m in models}, n_answers=10)
    ref = _reference({"IN": _dirichlet(rng, 15)})
    y = dict(zip(models, rng.normal(size=6)))
    claim = Claim.correlation(y, se={m: 0.2 for m in models}, group="IN", metric="js")
    return audit_claim(r, ref, claim, rng=seed, n_resamples=99, n_permutations=720)


def _equivalence_at_margin(seed: int, shift: float, n_items: int = 40, margin: float = 0.1):
    """Mean answer position of M in hi minus en: per item ``shift`` + uniform(-0.05, 0.05), so the true
    mean difference over items is ``shift`` (answers 1/2 on a two-option scale: position = share of 2)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.2, 0.6, n_items)
    d = shift + rng.uniform(-0.05, 0.05, n_items)
    cells = {("M", "hi"): np.c_[1 - p - d, p + d], ("M", "en"): np.c_[1 - p, p]}
    r = _responses(rng, cells, n_answers=20, scale=K2)
    claim = Claim.equivalent([{"model": "M", "language": "hi"}, {"model": "M", "language": "en"}],
                             margin=margin, metric="position")
    return audit_claim(r, None, claim, aggregations=["mean"], rng=seed, n_resamples=400, n_permutations=10)


def _rejections(run, seeds) -> tuple[int, int]:
    """Data sets judged "supported", and those whose joint (or equivalence) p-value is below 0.05."""
    sup = joint = 0
    for s in seeds:
        res = run(s)
        sup += res.verdicts["verdict"].iloc[0] == "supported"
        j = res.evidence["joint"]
        joint += (j["p_median_greater"] if "p_median_greater" in j else np.nanmedian(j["p_spec"])) < 0.05
    return sup, joint


NULLS = {"language_contrast": _language_null, "trend": _trend_null, "correlation": _correlation_null}


@pytest.mark.parametrize("name", list(NULLS))
def test_null_size_fast(name):
    n = 20
    sup, joint = _rejections(NULLS[name], range(n))
    assert _size_ok(sup, n) and _size_ok(joint, n), (sup, joint)


def test_equivalence_size_at_the_margin_fast_and_power_inside_it():
    n = 30
    sup, _ = _rejections(lambda s: _equivalence_at_margin(s, shift=0.1), range(n))
    assert _size_ok(sup, n), sup
    inside, _ = _rejections(lambda s: _equivalence_at_margin(1000 + s, shift=0.0), range(10))
    assert inside >= 8, inside  # truly equal: shown equivalent nearly always (SE of the difference ~0.02)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NULLS))
def test_null_size_slow(name):
    n = 200
    sup, joint = _rejections(NULLS[name], range(10_000, 10_000 + n))
    assert _size_ok(sup, n) and _size_ok(joint, n), (sup, joint)


@pytest.mark.slow
def test_equivalence_size_at_the_margin_slow():
    n = 200
    sup, _ = _rejections(lambda s: _equivalence_at_margin(20_000 + s, shift=0.1), range(n))
    assert _size_ok(sup, n), sup


# --------------------------------------------------------------------------------------------------
# design-file syntax
# --------------------------------------------------------------------------------------------------
DESIGN = '''
[[claims]]
kind = "contrast"
a = { model = "M", language = "hi" }
b = { model = "M", language = "en" }
group = "IN"
metric = "js"

[[claims]]
kind = "trend"
models = { a = 1, b = 3, c = 7 }
group = "IN"
decreasing = true

[[claims]]
kind = "equivalent"
model = "M"
groups = ["IN", "US"]
margin = 0.05

[[claims]]
kind = "correlation"
values = { a = 0.1, b = 0.3, c = 0.2 }
se = { a = 0.01, b = 0.02, c = 0.01 }
group = "IN"
negative = true
method = "spearman"
text = "cultural fit is traded against safety"
'''


def test_design_file_builds_the_same_general_claims_as_python():
    import tomllib
    from dataclasses import replace

    from robustalign.report.design import AuditDesign

    got = AuditDesign.from_dict(tomllib.loads(DESIGN), source="design.toml").claim_objects()
    want = [
        Claim.contrast({"model": "M", "language": "hi"}, {"model": "M", "language": "en"}, group="IN", metric="js"),
        Claim.trend({"a": 1, "b": 3, "c": 7}, group="IN", decreasing=True),
        Claim.equivalent(model="M", groups=["IN", "US"], margin=0.05),
        replace(Claim.correlation({"a": 0.1, "b": 0.3, "c": 0.2}, se={"a": 0.01, "b": 0.02, "c": 0.01}, group="IN",
                                  negative=True, method="spearman"), text="cultural fit is traded against safety"),
    ]
    assert got == want


@pytest.mark.parametrize("body, words", [
    ('kind = "contrast"\na = "M"\nb = { model = "N" }', r"claim 1 `a` must be a table naming a model"),
    ('kind = "contrast"\na = { model = "M" }', r"claim 1 \(contrast\) needs keys \['b'\]"),
    ('kind = "trend"\ncells = [{ model = "a" }, { model = "b" }, { model = "c" }]',
     r"claim 1 \(trend\) needs models = .*or cells = \[...\] with x"),
    ('kind = "trend"\ncells = [{ model = "a" }, { model = "b" }, { model = "c" }]\nx = [1, 2]',
     r"3 cells but 2 positions `x`"),
    ('kind = "equivalent"\nmodel = "M"\ngroups = ["A", "B"]\nmargin = "0.1"', r"claim 1 `margin` must be a number"),
    ('kind = "equivalent"\nmodel = "M"\ngroups = ["A"]\nmargin = 0.1', r"needs at least 2 cells.*Fix the claim"),
    ('kind = "correlation"\nvalues = { a = 1, b = 2, c = 3 }\nse = { a = 1 }', r"`se` must name the same models"),
    ('kind = "correlation"\nvalues = { a = 1, b = 2, c = 3 }\nmetric = "cosine"', r"claim 1 `metric` must be one of"),
])
def test_design_file_errors_name_the_claim_key_and_fix(body, words):
    import tomllib

    from robustalign._errors import RobustAlignError
    from robustalign.report.design import AuditDesign

    with pytest.raises(RobustAlignError, match=words):
        AuditDesign.from_dict(tomllib.loads("[[claims]]\n" + body), source="design.toml")


def test_a_cell_with_no_valid_answer_is_not_estimable_not_a_crash():
    """A model that refuses every item under one prompt leaves that cell with rows but no valid answer
    (the PCT audit's forcing levels): its specifications score NaN and the claim is judged on the others."""
    from robustalign.schema import Scale

    rng = np.random.default_rng(11)
    scales = {f"q{i}": Scale(("1", "2", "3", "4"), ("A", "B", "C", "D"), True) for i in range(30)}
    rows = []
    for m, shift in (("hi", 1), ("lo", 0)):
        for i in range(30):
            for prompt in ("p1", "p2"):
                for s in range(3):
                    refuse = m == "lo" and prompt == "p2"
                    text = "I cannot answer that." if refuse else "ABCD"[min(3, rng.integers(0, 3) + shift)]
                    rows.append({"model": m, "item": f"q{i}", "prompt": prompt, "sample": s, "raw_text": text})
    resp = make_responses(pd.DataFrame(rows), scales=scales)
    assert resp.distributions(["model", "item"])[1].shape[0] == 60
    only_refusals = resp.subset(models=["lo"], prompt="p2")
    keys, P = only_refusals.distributions(["model", "item"])
    assert len(keys) == 0 and P.shape[0] == 0
    res = audit_claim(resp, None, Claim.higher_position("hi", than="lo"), factors=["prompt"], n_resamples=200,
                      n_permutations=200, rng=3)
    per_spec = res.to_frame()
    p2 = per_spec[per_spec["prompt"].astype(str) == "p2"] if "prompt" in per_spec else per_spec.iloc[:0]
    assert len(p2) == 0 or p2["estimate"].isna().all()
    assert np.isfinite(per_spec["estimate"]).any()
