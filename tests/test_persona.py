"""Persona experiments: respondent-level reference, scores, two-way intervals, the persona-helps verdict.

The calibration tests use their own simulator (written here, not robustalign.simulate): respondents in two
countries with a type (-1, 0, 1) that moves their answers and an attention level (some answer at random
part of the time), items drawn from a population, and a model that uses part of the persona. The truth is
the population mean over items (a large fixed item sample) and respondents (an exact mixture over types
and attention levels), so it does not come from the code under test.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from robustalign import SchemaError, make_responses
from robustalign.persona import assess_persona, loo_influence, make_respondent_reference, persona_scores
from robustalign.resampling.twoway import twoway_mean

K = 4
TYPES = np.array([-1.0, 0.0, 1.0])
ATTENTION = np.array([0.0, 0.9])  # share of answers given at random
SD_TYPE, SD_GROUP_ITEM, SD_MODEL_ITEM = 1.5, 0.6, 0.5
W = 0.3  # how much of the persona (the type) the model uses
N_ITEMS, N_PEOPLE, N_SAMPLES = 40, 15, 4  # per country: the respondent variance matters at this size
MU = np.array([-0.4, 0.4])
CUTS = np.log(np.arange(1, K) / (K - np.arange(1, K)))


def _cat(eta, loc):
    """Cumulative-logit category probabilities at latent ``eta`` for items at ``loc`` (broadcast)."""
    c = 1 / (1 + np.exp(-(CUTS - loc[..., None] - eta[..., None])))
    c = np.concatenate([np.zeros(c.shape[:-1] + (1,)), c, np.ones(c.shape[:-1] + (1,))], -1)
    return np.diff(c, axis=-1)


def _human(eta, loc, t, att):
    return (1 - att)[..., None] * _cat(eta + SD_TYPE * t, loc) + att[..., None] / K


@cache
def _truth(w: float, null: bool) -> tuple[np.ndarray, np.ndarray]:
    """(model agreement, group-baseline agreement) per country over the populations of items and people."""
    g = np.random.default_rng(20261203)
    n = 100_000
    loc = g.normal(0, 1, n)
    theta = MU[:, None] + g.normal(0, SD_GROUP_ITEM, (2, n))
    e = g.normal(0, SD_MODEL_ITEM, n)
    tt, aa = np.meshgrid(TYPES, ATTENTION, indexing="ij")
    tt, aa = tt.ravel()[:, None, None], aa.ravel()[:, None, None]  # 6 kinds of people, equally likely
    h = _human(theta[None], loc[None, None], tt, aa)  # (6, 2, n, K)
    hbar = h.mean(0)
    m = hbar[None] if null else _cat(theta[None] + w * SD_TYPE * tt + e, loc[None, None])
    return (m * h).sum(-1).mean(axis=(0, 2)), (hbar**2).sum(-1).mean(-1)


def _dataset(gen, n_items=N_ITEMS, n_people=N_PEOPLE, k=N_SAMPLES, w=W, null=False):
    """Raw respondent table (wide) and responses (long) for one simulated persona experiment."""
    loc = gen.normal(0, 1, n_items)
    theta = MU[:, None] + gen.normal(0, SD_GROUP_ITEM, (2, n_items))
    e = gen.normal(0, SD_MODEL_ITEM, n_items)
    grp = np.repeat([0, 1], n_people)
    t = TYPES[gen.integers(0, 3, 2 * n_people)][:, None]
    att = ATTENTION[gen.integers(0, 2, 2 * n_people)][:, None]
    h = _human(theta[grp], loc[None], t, att)  # (R, Q, K)
    ans = (gen.random(h.shape[:2])[..., None] > np.cumsum(h, -1)[..., :-1]).sum(-1)
    if null:
        tt, aa = np.meshgrid(TYPES, ATTENTION, indexing="ij")
        p = _human(theta[None], loc[None, None], tt.ravel()[:, None, None], aa.ravel()[:, None, None]).mean(0)
        p = p[grp]
    else:
        p = _cat(theta[grp] + w * SD_TYPE * t + e[None], loc[None])
    draws = (gen.random((*p.shape[:2], k))[..., None] > np.cumsum(p, -1)[:, :, None, :-1]).sum(-1)
    items = [f"i{j}" for j in range(n_items)]
    people = [f"p{r}" for r in range(2 * n_people)]
    wide = pd.DataFrame(ans + 1, columns=items)
    wide.insert(0, "country", np.array(["A", "B"])[grp])
    wide.insert(0, "respondent", people)
    r, q, s = np.meshgrid(np.arange(2 * n_people), np.arange(n_items), np.arange(k), indexing="ij")
    resp = pd.DataFrame({"model": "m", "item": np.array(items)[q.ravel()], "persona": np.array(people)[r.ravel()],
                         "sample": s.ravel(), "answer": draws.ravel() + 1})
    return wide, resp


SCALES = pd.DataFrame({"item": [f"i{j}" for j in range(40)], "options": "1|2|3|4", "ordinal": True})


def _direct_scores(wide, raw, null):
    """(respondents, items) agreement with the model and with the leave-one-out group, from the raw tables."""
    ans = wide[[f"i{j}" for j in range(N_ITEMS)]].to_numpy()
    draws = raw["answer"].to_numpy().reshape(len(ans), N_ITEMS, N_SAMPLES)
    y = (draws == ans[..., None]).mean(-1)
    grp = wide["country"].to_numpy()
    same = (ans[:, None, :] == ans[None, :, :]) & (grp[:, None] == grp[None, :])[..., None]
    n_others = (grp[:, None] == grp[None, :]).sum(1) - 1
    base = (same.sum(1) - 1) / n_others[:, None]
    return y, base


def _gain_tests(wide, y, b, m):
    """(p-value, std. error) of the persona gain (model minus leave-one-out group baseline) over the respondents
    in ``m``: linearised for the baseline's dependence between respondents, then with plain rows."""
    d = np.where(m[:, None], y - b, np.nan)
    ans = wide[[f"i{j}" for j in range(N_ITEMS)]].to_numpy() - 1
    inf_b = loo_influence(ans, wide["country"].to_numpy(), np.isfinite(d), np.broadcast_to(np.eye(K), (N_ITEMS, K, K)))
    ym = np.where(np.isfinite(d), y, np.nan)
    inf = np.where(np.isfinite(d), ym - np.nanmean(ym), 0.0) - np.nan_to_num(inf_b)
    lin = twoway_mean(d.T, influence=np.where(np.isfinite(inf_b) | np.isfinite(d), inf, np.nan).T)
    plain = twoway_mean(d.T)
    return lin.p_value, plain.p_value, lin.std_error, plain.std_error


def _calibration(seed: int, n: int, null: bool = False, api: bool = False, n_people: int = N_PEOPLE) -> np.ndarray:
    """Per data set and country: (two-way covers, items-only covers), or at the null :func:`_gain_tests`.

    Scores come from the raw tables by their definition (share of the model's answers equal to the
    respondent's); with ``api=True`` through the public route instead (slow tests).
    """
    gen = np.random.default_rng(seed)
    truth, _ = _truth(W, null)
    out = []
    for _ in range(n):
        wide, raw = _dataset(gen, n_people=n_people, null=null)
        if api:
            rr = make_respondent_reference(wide, SCALES, group_col="country")
            sc = persona_scores(make_responses(raw, scales=rr.scales), rr)
            y = sc.pivot(index="respondent", columns="item", values="agreement").loc[wide["respondent"]].to_numpy()
            b = sc.pivot(index="respondent", columns="item", values="agreement_group").loc[wide["respondent"]]
            b = b.to_numpy()
        else:
            y, b = _direct_scores(wide, raw, null)
        for c, grp in enumerate(["A", "B"]):
            m = (wide["country"] == grp).to_numpy()
            if null:
                out.append(_gain_tests(wide, y, b, m))
                continue
            two, one = twoway_mean(y[m].T), twoway_mean(y[m].T, clusters="items")
            out.append((two.conf_low <= truth[c] <= two.conf_high, one.conf_low <= truth[c] <= one.conf_high))
    return np.array(out, dtype=float)


# --------------------------------------------------------------------------------------------------
# the two-way variance against statsmodels
# --------------------------------------------------------------------------------------------------
def test_twoway_variance_equals_statsmodels_two_way_cluster_robust():
    sm = pytest.importorskip("statsmodels.api")
    from statsmodels.stats.sandwich_covariance import cov_cluster, cov_cluster_2groups

    g = np.random.default_rng(3)
    y = g.normal(size=(12, 1)) + g.normal(size=(1, 30)) + g.normal(size=(12, 30))
    y[0, :5] = np.nan
    y[4, 9] = np.nan
    q, r = np.nonzero(~np.isnan(y))
    fit = sm.OLS(y[q, r], np.ones((len(q), 1))).fit()
    assert twoway_mean(y).estimate == pytest.approx(fit.params[0], rel=1e-12)
    assert twoway_mean(y).std_error ** 2 == pytest.approx(cov_cluster_2groups(fit, q, r)[0][0, 0], rel=1e-10)
    assert twoway_mean(y, clusters="items").std_error ** 2 == pytest.approx(cov_cluster(fit, q)[0, 0], rel=1e-10)
    assert twoway_mean(y, clusters="respondents").std_error ** 2 == pytest.approx(cov_cluster(fit, r)[0, 0],
                                                                                 rel=1e-10)
    t = twoway_mean(y)
    assert t.df == 11 and t.conf_high - t.estimate == pytest.approx(stats.t.ppf(0.975, 11) * t.std_error)
    with pytest.raises(ValueError, match="clusters"):
        twoway_mean(y, clusters="both")


# --------------------------------------------------------------------------------------------------
# scores by hand
# --------------------------------------------------------------------------------------------------
def _tiny():
    people = pd.DataFrame({"respondent": ["a", "b", "c", "d"], "group": ["G", "G", "G", "H"],
                           "age": ["young", "old", "old", "young"], "q1": [1, 1, 3, 2], "q2": ["x", "y", "y", "x"]})
    scales = pd.DataFrame({"item": ["q1", "q2"], "options": ["1|2|3", "x|y"], "ordinal": [True, False]})
    resp = pd.DataFrame({"model": "m", "item": ["q1"] * 4 + ["q1", "q1"] + ["q2"] * 2,
                         "persona": ["a"] * 4 + ["b", "b"] + ["a", "a"],
                         "sample": [0, 1, 2, 3, 0, 1, 0, 1], "answer": [1, 1, 2, 3, 1, 2, "x", "x"]})
    return people, scales, resp


def test_agreement_distance_baseline_and_majority_by_hand():
    people, scales, resp = _tiny()
    rr = make_respondent_reference(people, scales)
    r = make_responses(resp, scales=rr.scales)
    s = persona_scores(r, rr).set_index(["respondent", "item"])
    # a answered 1; the model's answers 1, 1, 2, 3: agreement 2/4; distance 0.5*0 + 0.25*0.5 + 0.25*1
    assert s.loc[("a", "q1"), "agreement"] == pytest.approx(0.5)
    assert s.loc[("a", "q1"), "distance"] == pytest.approx(0.375)
    # the group's other members (b: 1, c: 3) predict a: share of 1 = 1/2; distance 0.5*0 + 0.5*1
    assert s.loc[("a", "q1"), "agreement_group"] == pytest.approx(0.5)
    assert s.loc[("a", "q1"), "distance_group"] == pytest.approx(0.5)
    # b answered 1; others in G (a: 1, c: 3); the model answered 1 and 2
    assert s.loc[("b", "q1"), "agreement_group"] == pytest.approx(0.5)
    assert s.loc[("b", "q1"), "agreement"] == pytest.approx(0.5)
    # nominal item: agreement, no distance
    assert s.loc[("a", "q2"), "agreement"] == 1.0 and np.isnan(s.loc[("a", "q2"), "distance"])
    assert len(s) == 3  # only pairs the model role-played are scored
    m = persona_scores(r, rr, statistic="majority").set_index(["respondent", "item"])
    assert m.loc[("a", "q1"), "agreement"] == 1.0  # mode 1 of (1, 1, 2, 3)
    assert m.loc[("b", "q1"), "agreement"] == 0.5  # tie between 1 and 2: half credit
    assert m.loc[("a", "q1"), "agreement_group"] == 0.5  # others' answers 1 and 3 tie


def test_group_reference_is_built_from_the_same_respondents():
    people, scales, _ = _tiny()
    rr = make_respondent_reference(people, scales)
    ref = rr.to_reference()
    sh = ref.shares.set_index(["item", "group", "option"])["share"]
    want = people.groupby("group")["q1"].value_counts(normalize=True)
    for (grp, opt), v in want.items():
        assert sh[("q1", grp, str(opt))] == pytest.approx(v)
    assert sh[("q1", "G", "2")] == 0.0
    assert ref.n[("q1", "G")] == 3 and ref.n[("q2", "H")] == 1
    long = people.melt(id_vars=["respondent", "group", "age"], var_name="item", value_name="answer")
    rl = make_respondent_reference(long, scales)
    pd.testing.assert_frame_equal(rl.answers.sort_values(["respondent", "item"]).reset_index(drop=True),
                                  rr.answers.sort_values(["respondent", "item"]).reset_index(drop=True))
    assert rr.attributes == ("age",) and rl.attributes == ("age",)


# --------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------
def test_bad_respondent_tables_name_the_rows_and_the_fix():
    people, scales, _ = _tiny()
    dup = pd.concat([people, people.iloc[[1]]], ignore_index=True)
    with pytest.raises(SchemaError, match=r"repeat the same respondent x item.*rows \[1, 4\]"):
        make_respondent_reference(dup, scales)
    nog = people.assign(group=["G", None, "G", "H"])
    with pytest.raises(SchemaError, match=r"respondents without a group: \['b'\].*Give every respondent its group"):
        make_respondent_reference(nog, scales)
    off = people.assign(q1=[1, 9, 3, 2])
    with pytest.raises(SchemaError, match=r"off the item's scale at rows \[1\].*answer '9'.*missing_codes"):
        make_respondent_reference(off, scales)
    rr = make_respondent_reference(off, scales, missing_codes=[9])
    log = rr.exclusions.to_frame()
    assert log["n_rows"].sum() == 1 and "no answer" in log["reason"].iloc[0]
    with pytest.raises(SchemaError, match=r"respondents\.csv: no column 'respondent'"):
        make_respondent_reference(people.drop(columns="respondent"), scales, source="respondents.csv")
    long = people.melt(id_vars=["respondent", "group", "age"], var_name="item", value_name="answer")
    long.loc[0, "group"] = "H"
    with pytest.raises(SchemaError, match=r"`group` differs between rows of one respondent: \['a'\]"):
        make_respondent_reference(long, scales)


def test_personas_key_cells_and_unknown_personas_are_named():
    people, scales, resp = _tiny()
    rr = make_respondent_reference(people, scales)
    r = make_responses(resp.drop(columns="sample").assign(sample=[0, 1, 2, 3, 0, 1, 0, 1]), scales=rr.scales)
    assert "persona" not in r.factors and r.factors == ("sample",)
    # repeated cells across personas are not duplicates; the same persona twice in one cell is
    with pytest.raises(SchemaError, match="repeat the same model x item x design cell"):
        make_responses(resp.drop(columns="sample"), scales=rr.scales)
    bad = make_responses(resp.assign(persona=["a"] * 4 + ["zz", "zz", "a", "a"]), scales=rr.scales)
    with pytest.raises(SchemaError, match=r"not in respondents: \['zz'\] \(rows \[4, 5\]\)"):
        persona_scores(bad, rr)


# --------------------------------------------------------------------------------------------------
# calibration (own simulator, population truth)
# --------------------------------------------------------------------------------------------------
def test_public_route_scores_and_intervals_match_the_definition():
    wide, raw = _dataset(np.random.default_rng(5))
    rr = make_respondent_reference(wide, SCALES, group_col="country")
    resp = make_responses(raw, scales=rr.scales)
    res = assess_persona(resp, rr)
    y, b = _direct_scores(wide, raw, False)
    sc = res.scores()
    got = sc.pivot(index="respondent", columns="item", values="agreement").loc[wide["respondent"]]
    np.testing.assert_allclose(got[[f"i{j}" for j in range(N_ITEMS)]].to_numpy(), y, atol=1e-12)
    f = res.to_frame().set_index(["level", "group", "quantity"])
    m = (wide["country"] == "A").to_numpy()
    row = f.loc[("group", "A", "persona_gain_agreement")]
    p, _, se, _ = _gain_tests(wide, y, b, m)
    assert row["estimate"] == pytest.approx(np.mean(y[m] - b[m]))
    assert row["std_error"] == pytest.approx(se) and row["p_value"] == pytest.approx(p)
    t = twoway_mean(y[m].T)
    row = f.loc[("group", "A", "agreement")]
    assert row["estimate"] == pytest.approx(t.estimate) and row["conf_low"] == pytest.approx(t.conf_low)
    assert res.to_frame(0.5).eval("conf_high - conf_low").lt(res.to_frame().eval("conf_high - conf_low")).all()
    assert set(res.verdicts["verdict"]) <= {"supported", "not supported", "inconclusive"}
    assert len(res.verdicts) == 3 and res.verdicts["reason"].str.contains("gain in agreement").all()


def test_two_way_intervals_cover_and_items_only_intervals_do_not_fast():
    cov = _calibration(seed=11, n=150)
    k_two, k_one, n = int(cov[:, 0].sum()), int(cov[:, 1].sum()), len(cov)
    # 300 intervals; at a true rate of 0.95 a rate below 0.88 has probability < 1e-5. The items-only
    # interval misses the respondent variance (attention, type): about 0.79 at this size
    assert k_two / n >= 0.88, k_two / n
    assert stats.binomtest(k_one, n, 0.95, alternative="less").pvalue < 1e-3, k_one / n
    assert k_two - k_one >= 0.05 * n, (k_two, k_one)


def test_persona_helps_keeps_its_size_at_the_null_fast():
    # the model ignores the persona and answers from its group's distribution: the true gain is 0.
    # 40 respondents per country (at 15 the test runs slightly liberal: 0.063 in 600 tests)
    r = _calibration(seed=12, n=100, null=True, n_people=40)
    p, p_plain, se, se_plain = r.T
    assert stats.binomtest(int((p < 0.05).sum()), len(p), 0.05, alternative="greater").pvalue > 1e-3, p
    # clustering the plain rows on respondents ignores that each respondent also predicts the others:
    # its standard errors are too small (rejects about 0.10 at a nominal 0.05 here)
    assert np.median(se / se_plain) > 1.05, np.median(se / se_plain)


@pytest.mark.slow
def test_two_way_intervals_cover_at_the_nominal_rate_slow():
    cov = _calibration(seed=21, n=300, api=True)[:, 0]
    k, n = int(cov.sum()), len(cov)
    assert stats.binomtest(k, n, 0.93, alternative="less").pvalue > 0.01, k / n
    assert stats.binomtest(k, n, 0.97, alternative="greater").pvalue > 0.01, k / n


@pytest.mark.slow
def test_persona_helps_verdict_keeps_its_size_at_the_null_slow():
    gen = np.random.default_rng(22)
    supported = []
    for _ in range(200):
        wide, raw = _dataset(gen, n_people=40, null=True)
        rr = make_respondent_reference(wide, SCALES, group_col="country")
        res = assess_persona(make_responses(raw, scales=rr.scales), rr)
        supported.append((res.verdicts["verdict"] == "supported").any())
    s = np.array(supported)
    assert stats.binomtest(int(s.sum()), len(s), 0.05, alternative="greater").pvalue > 0.01, s.mean()


# --------------------------------------------------------------------------------------------------
# the shipped example and the command line
# --------------------------------------------------------------------------------------------------
def test_simulated_persona_example_recovers_its_truth():
    import robustalign as ra

    sim = ra.simulate_persona(n_respondents=(100, 100), n_items=60, n_samples=2, persona_use={"m": 0.6},
                              no_persona=False, rng=4)
    people = make_respondent_reference(sim.reference, sim.scales)
    res = assess_persona(make_responses(sim.responses, people.to_reference()), people, by=["language"])
    f = res.to_frame().set_index(["language", "level", "group", "quantity"])
    for lang in ("english", "native"):
        for c, grp in enumerate(["C1", "C2"]):
            for q, truth in (("agreement", sim.truth["agreement"][("m", lang)][c]),
                             ("persona_gain_agreement", sim.truth["gain"][("m", lang)][c])):
                row = f.loc[(lang, "group", grp, q)]
                assert abs(row["estimate"] - truth) < 5 * row["std_error"], (lang, grp, q, row["estimate"], truth)
    assert (res.verdicts["verdict"] == "supported").all()  # a true gain of about 0.04 at 60 items x 100 people


def test_command_line_route_prints_persona_verdicts(capsys, tmp_path):
    import robustalign as ra
    from robustalign.cli import main

    sim = ra.simulate_persona(n_respondents=(12, 12), n_items=8, n_samples=2, persona_use={"m": 0.6}, rng=6,
                              n_truth_items=10)
    sim.responses.to_csv(tmp_path / "r.csv", index=False)
    sim.reference.to_csv(tmp_path / "people.csv", index=False)
    sim.scales.to_csv(tmp_path / "s.csv", index=False)
    args = ["audit", str(tmp_path / "r.csv"), "--reference-respondents", str(tmp_path / "people.csv"),
            "--persona-by", "language", "--n-resamples", "20", "--n-permutations", "20", "--quiet"]
    assert main([*args, "--scales", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    assert "persona helps: model=m language=native, C1" in out and "gain in agreement" in out
    assert main(args) == 2
    assert "give --scales" in capsys.readouterr().err
