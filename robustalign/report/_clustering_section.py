"""E4 in the audit report: does the clustering of units on evaluated dimensions carry over to held-out ones?

The design file's ``[cluster_agreement]`` fixes the split of dimensions (``evaluated``, ``held_out``: the
names ``[domains]`` gives the items) and the number of clusters ``k`` before the data are seen, and names
what to cluster (``units``): the human reference's groups (e.g. countries), the models (or model x factor
cells with ``models_by``), or both, never pooled. Each unit's score on an item is its mean answer position
on the item's scale rescaled to [0, 1] (``reverse`` items: 1 minus it); a dimension score is the mean of
its items. The statistics are :func:`robustalign.claims.clustering.assess_cluster_agreement`'s; this module
only builds its input table and arranges its result as a report section.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from robustalign._errors import RobustAlignError, SchemaError, preview
from robustalign._rng import RngLike

if TYPE_CHECKING:
    from robustalign.report.audit import Section
    from robustalign.report.design import AuditDesign
    from robustalign.schema import Reference, Responses

__all__ = ["cluster_agreement_section", "cluster_table", "run_cluster_agreement"]

KEY = "cluster_agreement"
TITLE = "E4: cluster agreement on evaluated vs held-out dimensions"
ASSESSMENT = "cluster agreement (E4)"
_WORDS = {"human": "the human reference's groups", "models": "the models"}


def _positions(P: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Mean answer position rescaled to [0, 1]: ``sum_k p_k k / (K - 1)`` over canonical options 0..K-1."""
    k = np.arange(P.shape[-1])
    w = np.where(k[None, :] < K[:, None], k[None, :] / np.maximum(K[:, None] - 1, 1), 0.0)
    return (P * (w[:, None, :] if P.ndim == 3 else w)).sum(-1)


def _scorable(items: Sequence[str], scales: dict, kind: str) -> tuple[list[str], list[str]]:
    """Items with a mean position (ordinal scales, two-option items, scores) and the nominal ones left out."""
    if kind == "score":
        return list(items), []
    ok = [i for i in items if scales[i].ordinal or scales[i].K == 2]
    return ok, [i for i in items if i not in ok]


def cluster_table(responses: Responses | None, reference: Reference | None, domains: dict[str, str], *,
                  units: Sequence[str], dimensions: Sequence[str], models_by: Sequence[str] = (),
                  reverse: Sequence[str] = ()) -> tuple[pd.DataFrame, list[str]]:
    """The long table E4 clusters: ``source`` (human / models), ``unit``, ``dimension``, ``item``, ``value``.

    Items are those mapped to one of ``dimensions`` (in both the responses and the reference when both
    kinds of unit are clustered, so that the two ARIs are on the same items); nominal items with more
    than two options have no mean position and are left out (listed in the returned notes).
    """
    dims = set(dimensions)
    sources = [s for s in (responses, reference if "human" in units else None) if s is not None]
    items = sorted(set.intersection(*(set(map(str, s.items)) for s in sources)) if sources else set())
    items = [i for i in items if domains.get(i) in dims]
    own = responses if responses is not None and "models" in units else reference
    scales = own.scales if own is not None else {}
    kind = responses.kind if own is responses and responses is not None else "choice"
    items, nominal = _scorable(items, scales, kind)
    notes = [f"{len(nominal)} nominal item(s) without a mean position were left out of E4: {preview(nominal)}."] \
        if nominal else []
    frames = []
    if "models" in units and responses is not None and items:
        by = ["model", *models_by]
        keys, P = responses.subset(items=items).distributions([*by, "item"])
        K = np.full(len(keys), 2) if kind == "score" else np.array([scales[i].K for i in keys["item"]])
        unit = keys[by].astype(str).agg(" / ".join, axis=1)
        frames.append(pd.DataFrame({"source": "models", "unit": unit.to_numpy(), "item": keys["item"].astype(str),
                                    "value": _positions(P, K)}))
    if "human" in units and reference is not None and items:
        groups = list(reference.groups)
        V = _positions(reference.array(items, groups), reference.K(items))  # (items, groups)
        ii, gg = np.meshgrid(np.arange(len(items)), np.arange(len(groups)), indexing="ij")
        ok = np.isfinite(V)
        frames.append(pd.DataFrame({"source": "human", "unit": np.array(groups, dtype=object)[gg[ok]],
                                    "item": np.array(items, dtype=object)[ii[ok]], "value": V[ok]}))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["source", "unit", "item", "value"])
    rev = out["item"].isin(set(reverse)).to_numpy()
    out.loc[rev, "value"] = 1.0 - out.loc[rev, "value"]
    if len(reverse):
        notes.append(f"Scored against their dimension (1 - position): {preview(sorted(reverse))}.")
    out["dimension"] = out["item"].map(domains)
    return out[["source", "unit", "dimension", "item", "value"]], notes


def _units_to_cluster(ca: dict, table: pd.DataFrame, k: int, where: str) -> tuple[list[str], list[str]]:
    """The kinds of unit clustered (each with >= 2k units) and notes on those left out; a kind the design
    names explicitly with too few units is an error."""
    counts = table.groupby("source")["unit"].nunique().to_dict()
    asked = ca.get("units")
    kinds = list(asked) if asked else [u for u in ("human", "models") if u in counts]
    short = [u for u in kinds if counts.get(u, 0) < 2 * k]
    if asked and short:
        u = short[0]
        raise RobustAlignError(f"{where}: [cluster_agreement] units = {asked!r}: {_WORDS[u]} give "
                               f"{counts.get(u, 0)} units on the split's items, and k = {k} clusters need at least "
                               f"{2 * k}. Fix: lower k, add units, or leave {u!r} out of `units`.")
    notes = [f"{_WORDS[u]} ({counts.get(u, 0)} units) were not clustered: k = {k} clusters need at least {2 * k}."
             for u in short]
    return [u for u in kinds if u not in short], notes


def _prepare(responses: Responses | None, reference: Reference | None, design: AuditDesign,
             domains: dict[str, str]) -> tuple:
    """Check the declared dimensions and units against the data; the E4 input table and the kinds of unit
    with enough units to cluster (cheap: run when the audit is planned, and again inside the step)."""
    ca = design.cluster_agreement
    where = f"design file {design.source!r}" if design.source else "design"
    ev, ho, k = [str(d) for d in ca["evaluated"]], [str(d) for d in ca["held_out"]], int(ca["k"])
    have = sorted(set(domains.values()))
    unknown = [d for d in (*ev, *ho) if d not in have]
    if unknown:
        raise RobustAlignError(f"{where}: [cluster_agreement] dimensions {unknown} are not dimensions of the items; "
                               f"[domains] gives {preview(have, 12)}. Fix the names in `evaluated` / `held_out`.")
    asked = ca.get("units") or (["human", "models"] if reference is not None else ["models"])
    if "human" in asked and reference is None:
        raise RobustAlignError(f"{where}: [cluster_agreement] units includes 'human', which needs a human "
                               "reference; give --reference, or set units = [\"models\"].")
    table, notes = cluster_table(responses, reference, domains, units=asked, dimensions=[*ev, *ho],
                                 models_by=ca.get("models_by", ()), reverse=ca.get("reverse", ()))
    kinds, short = _units_to_cluster(ca, table, k, where)
    return where, ev, ho, k, table, notes, kinds, short


def cluster_agreement_section(responses: Responses | None, reference: Reference | None, design: AuditDesign,
                              domains: dict[str, str], rng: RngLike, *, part: str, n_resamples: int,
                              n_permutations: int, level: float) -> Section | None:
    """The E4 section (None when no kind of unit has the 2k units ``k`` clusters need; see the notes)."""
    from robustalign.claims.clustering import assess_cluster_agreement
    from robustalign.report.audit import Section, headline, verdict_rows

    ca = design.cluster_agreement
    where, ev, ho, k, table, notes, kinds, short = _prepare(responses, reference, design, domains)
    if not kinds:
        return None
    ref = ca.get("reference", "human") if len(kinds) > 1 else None
    try:
        res = assess_cluster_agreement(table[table["source"].isin(kinds)], evaluated=ev, held_out=ho, k=k,
                                       unit="unit", by="source", reference=ref if ref in kinds else None,
                                       n_resamples=n_resamples, n_permutations=n_permutations,
                                       min_ari=float(ca.get("min_ari", 0.2)), confidence_level=level, rng=rng,
                                       source=f"{where}: [cluster_agreement]")
    except SchemaError as e:  # a unit without any item of a dimension: say what to change in the design
        raise SchemaError(f"{str(e).split(' Fix:')[0]} Fix: choose evaluated / held-out dimensions every unit has "
                          "items on, or leave that kind of unit out of [cluster_agreement] `units`.") from None
    f = res.to_frame().rename(columns={"group": "clustered"})
    main = f[f["quantity"].str.startswith("ARI evaluated")]
    nums = ["clustered", "estimate", "conf_low", "conf_high", "conf_level", "p_value", "p_adjusted"]
    v = res.verdicts.rename(columns={"group": "clustered"}).merge(main[nums], on="clustered", how="left")
    clusters = res.evidence["clusters"].rename(columns={"group": "clustered"})
    extra = ["p_value", "p_adjusted", "silhouette_evaluated", "silhouette_held_out", "n_units", "n_items"]
    disp = [("Adjusted Rand index, evaluated vs held-out clustering",
             headline(f, ["clustered", "reference", "quantity"], extra)),
            ("Clusters of each unit", clusters)]
    intro = (f"Does the clustering of {' and, separately, '.join(_WORDS[u] for u in kinds)} on the evaluated "
             f"dimensions {ev} carry over to the held-out dimensions {ho}? Ward clusters (k = {k}, fixed in the "
             "design) of z-scored dimension scores (mean answer position, rescaled to [0, 1]), compared by the "
             "adjusted Rand index (ARI); the null gives each unit another unit's held-out profile "
             f"({n_permutations} permutations). The interval is for the expected ARI at these item counts "
             "(units fixed): estimate +- z SE with the half-sample (delete-d jackknife) SE of items within "
             "dimensions (docs/claims.md, E4).")
    return Section(KEY, TITLE, intro, verdict_rows(part, ASSESSMENT, v, ["clustered"]),
                   {KEY: f, f"{KEY}_clusters": clusters}, disp, notes=[*notes, *short], results={KEY: res})


def run_cluster_agreement(run: Any, item_table: pd.DataFrame | None) -> None:
    """The audit step: the E4 section when ``[cluster_agreement]`` is declared, else why it did not run."""
    from robustalign.report.audit import item_domains, with_notes
    from robustalign.resampling import keyed_stream

    ca = run.design.cluster_agreement
    if not ca or not ca.get("enabled", True):
        if run.design.domains:  # the data have dimensions: say what E4 needs
            run.not_run.append((ASSESSMENT, "turned off in the design file" if ca else
                                "not declared: [cluster_agreement] evaluated, held_out and k (fixed before the "
                                "data are seen) in the design file"))
        return
    domains = item_domains(run.design, run.responses, run.reference, item_table)
    kinds = _prepare(run.responses, run.reference, run.design, domains)[6]
    if not kinds:
        run.not_run.append((ASSESSMENT, f"no kind of unit has the {2 * int(ca['k'])} units k = {ca['k']} clusters "
                                        "need"))
        return
    run.add(KEY, f"E4 cluster agreement: {run.nres} item-bootstrap resamples, {run.nperm} permutations",
            partial(with_notes, cluster_agreement_section, run.responses, run.reference, run.design, domains,
                    keyed_stream(run.gen, KEY), **run.common))
