"""Exports: CSV and Parquet read back equal to_frame(); the LaTeX table is structurally sound, one row per
estimate, with LaTeX's special characters escaped; a posterior DataTree survives a zarr round trip."""

import re

import numpy as np
import pandas as pd
import pytest

from robustalign.claims.multiverse import Claim, audit_claim
from robustalign.export import latex_escape, posterior_to_zarr, to_csv, to_latex, to_parquet
from robustalign.power import simulate_power
from robustalign.resampling import cluster_bootstrap
from robustalign.simulate import simulate


@pytest.fixture(scope="module")
def audit():
    s = simulate(n_models=3, n_items=25, n_groups=3, factors={"format": 2}, n_orders=2, n_samples=10, rng=3)
    r, ref = s.load()
    return audit_claim(r, ref, Claim.closer("model_1", than="model_2", group="C01"), metrics=["js", "w1"],
                       n_resamples=200, n_permutations=300, rng=0)


@pytest.fixture(scope="module")
def boot():
    a = np.random.default_rng(0).normal(0.6, 0.1, size=(80, 3))
    labels = pd.DataFrame({"model": ["a_1", "b&c", "50% d"], "cond": ["x", "y", "z"]})
    return cluster_bootstrap(a, labels=labels, n_resamples=300, rng=0)


def _pval(gen):
    return float(gen.random())


@pytest.mark.parametrize("which", ["audit", "boot", "power"])
def test_csv_and_parquet_read_back_equal_to_frame(which, audit, boot, tmp_path):
    result = {"audit": audit, "boot": boot,
              "power": simulate_power(_pval, n_simulations=40, rng=1) if which == "power" else None}[which]
    want = result.to_frame()
    p = to_csv(result, tmp_path / "r.csv")
    # CSV has no types (a str column may come back as object, an int column as float where NaN): values only
    pd.testing.assert_frame_equal(pd.read_csv(p), want, check_dtype=False, check_exact=True)
    q = to_parquet(result, tmp_path / "r.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(q), want, check_exact=True)


def test_export_at_another_level_rereads_the_resamples(audit, tmp_path):
    got = pd.read_parquet(to_parquet(audit, tmp_path / "a.parquet", level=0.8))
    pd.testing.assert_frame_equal(got, audit.to_frame(0.8), check_exact=True)
    assert (got["conf_level"] == 0.8).all()
    power = simulate_power(_pval, n_simulations=40, rng=1)
    got = pd.read_csv(to_csv(power, tmp_path / "p.csv", level=0.9))
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(power.n_rejected, 40, alpha=0.1, method="wilson")
    assert got["conf_level"].tolist() == [0.9] and np.allclose(got[["conf_low", "conf_high"]], [[lo, hi]])
    with pytest.raises(TypeError, match="to_frame"):
        to_csv(object(), tmp_path / "x.csv")


def _check_structure(tex: str) -> list[str]:
    begins = re.findall(r"\\begin\{(\w+)\}", tex)
    ends = re.findall(r"\\end\{(\w+)\}", tex)
    assert begins == ends[::-1], (begins, ends)  # properly nested
    body = tex.split("\\midrule\n")[1].split("\\bottomrule")[0]
    rows = [ln for ln in body.splitlines() if ln.strip()]
    assert all(ln.endswith(r" \\") for ln in rows)
    n_cols = len(re.search(r"\\begin\{tabular\}\{(\w+)\}", tex).group(1))
    header = tex.split("\\toprule\n")[1].split("\n")[0]
    for ln in [header, *rows]:  # every row has as many cells as the column spec (no unescaped &)
        assert len(re.split(r"(?<!\\)&", ln)) == n_cols, ln
    return rows


def test_latex_table_of_an_audit_has_one_row_per_specification(audit):
    tex = to_latex(audit, caption="Claim: model_1 closer to C01 (95% CI)", label="tab:claim")
    rows = _check_structure(tex)
    f = audit.to_frame()
    assert len(rows) == len(f)
    assert tex.count(r"\toprule") == tex.count(r"\midrule") == tex.count(r"\bottomrule") == 1
    assert r"\caption{Claim: model\_1 closer to C01 (95\% CI)}" in tex and r"\label{tab:claim}" in tex
    assert r"Estimate [95\% CI]" in tex and "$p$" in tex
    # every estimate and its interval, rounded to 3 decimals, in specification order
    for ln, (_, r) in zip(rows, f.iterrows()):
        cell = f"{r['estimate']:.3f} [{r['conf_low']:.3f}, {r['conf_high']:.3f}]".replace("-", "$-$")
        assert cell.replace("$-$0.000", "0.000") in ln
        assert ln.startswith(" & ".join(str(r[c]).replace("_", r"\_") for c in ("format", "option_order", "metric",
                                                                                 "aggregation")))


def test_latex_escapes_specials_and_chooses_columns(boot, tmp_path):
    tex = to_latex(boot, tmp_path / "t.tex", columns=["model"], digits=2)
    assert (tmp_path / "t.tex").read_text() == tex
    rows = _check_structure(tex)
    assert [ln.split(" & ")[0] for ln in rows] == [r"a\_1", r"b\&c", r"50\% d"]
    assert r"\begin{table}" not in tex  # no float without a caption or label
    assert latex_escape("a_b%c&d$e#f{g}h~i^j\\") == (r"a\_b\%c\&d\$e\#f\{g\}h\textasciitilde{}i"
                                                     r"\textasciicircum{}j\textbackslash{}")
    with pytest.raises(ValueError, match="not columns"):
        to_latex(boot, columns=["nope"])
    with pytest.raises(ValueError, match="no p-values"):
        to_latex(boot, p_values=True)


def test_posterior_datatree_round_trips_through_zarr(tmp_path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("zarr")
    rng = np.random.default_rng(0)
    post = xr.Dataset(
        {"mu": (("chain", "draw", "model"), rng.normal(size=(2, 50, 3))),
         "sigma": (("chain", "draw"), rng.gamma(2.0, size=(2, 50)))},
        coords={"chain": [0, 1], "draw": np.arange(50), "model": ["m_1", "m_2", "m_3"]},
    )
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((2, 50), bool))},
                       coords={"chain": [0, 1], "draw": np.arange(50)})
    tree = xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})
    tree.attrs["robustalign"] = {"rng": {"entropy": 1, "spawn_key": []}, "n_items": 8}  # not plain zarr attrs

    class Fit:  # a fit holding its posterior in .idata, as robustalign's Bayesian fits do
        idata = tree

    path = posterior_to_zarr(Fit(), tmp_path / "post.zarr")
    back = xr.open_datatree(path, engine="zarr")
    xr.testing.assert_identical(back["posterior"].to_dataset(), post)
    xr.testing.assert_identical(back["sample_stats"].to_dataset(), stats)
    assert back.attrs["robustalign"] in ({"rng": {"entropy": 1, "spawn_key": []}, "n_items": 8},
                                         '{"rng": {"entropy": 1, "spawn_key": []}, "n_items": 8}')
    with pytest.raises(Exception):  # noqa: B017 - zarr's own error: the store exists and mode is "w-"
        posterior_to_zarr(tree, path)
    posterior_to_zarr(tree, path, mode="w")
    with pytest.raises(TypeError, match="DataTree"):
        posterior_to_zarr(post, tmp_path / "x.zarr")
