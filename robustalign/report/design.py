"""The audit design file (``design.toml``): what the data's factors mean and which claims to audit.

Every key is optional; a missing file means "decide from the data". The schema (all keys)::

    title = "My audit"                 # heading of the report
    seed = 0                           # random seed (recorded)
    n_resamples = 2000                 # bootstrap resamples for every interval
    n_permutations = 2000              # permutations / sign flips for every p-value
    confidence_level = 0.95
    metrics = ["spearman", "js"]       # alignment metrics of the alignment table

    [alignment]
    against = "language"               # responses column naming each cell's own human group
    group_map = { da = "DK" }          # values of `against` -> reference group names

    [stability]
    enabled = true                     # default: on when a design factor has >= 2 levels
    factors = ["format", "template"]   # default: every factor with >= 2 levels except sample/steering
    skip = ["agreement"]               # optional parts to leave out (default: the slow "agreement")
    margin = 0.05                      # equivalence margin in mean-position units (default: human SD)
    flip_margin = 0.10                 # allowed modal flip rate above the noise floor (no reference)
    sequential = true                  # answer nulls stop drawing once a p-value is clearly decided (default false)

    [orders]                           # orders shown, given as labels (a column of the responses)
    column = "order"
    map = { original = "identity", reversed = "reverse" }   # or label = { 4 = [4, 3, 2, 1], 5 = [...] }

    [steering]
    column = "steer_target"            # the steering factor (default: "steer_target" when present)
    baseline = "none"                  # its unsteered level; omit when there is none
    by = ["model", "language"]         # cells judged separately (default ["model"])
    metric = "js"
    group_map = { Denmark = "DK" }
    compare = ["congruent", "congruent", "incongruent"]   # optional paired comparison (column, a, b)
    compare_metric = "spearman"

    [domains]                          # items -> domains, for extrapolability (one of):
    prefix = 1                         # the first N characters of the item key (WVS blocks)
    map = { F121 = "F", D054 = "D" }   # an explicit map
    column = "domain"                  # a column of the scales/item table

    [cluster_agreement]                # E4: does the clustering on some dimensions carry over to others?
    evaluated = ["E", "F"]             # dimensions (the [domains] names) the units are clustered on ...
    held_out = ["D"]                   # ... and the disjoint dimensions they are clustered on again
    k = 3                              # clusters, fixed before seeing the data (both clusterings)
    units = ["human", "models"]        # what to cluster: the reference's groups and/or the models (default:
                                       #   each with >= 2k units; never pooled)
    models_by = ["language"]           # optional: cluster model x factor cells instead of models
    reference = "human"                # optional: the units every other kind's ARI is compared with
    reverse = ["F118"]                 # optional: items scored against their dimension (1 - position)
    min_ari = 0.2                      # "not supported" when the ARI interval lies below it
    enabled = true

    [association]                      # cultural fit vs a per-model measure, correlated across models
    file = "refusals.csv"              # model, item, value (relative to the design file's folder)
    group = "US"                       # the human group fit is measured against (default: against / only)
    expect = "positive"                # the claimed sign: positive | negative (default: either)

    [bayes]
    fit = false                        # fit the hierarchical Bayesian model (slow; off by default)
    draws = 500
    tune = 500
    chains = 2
    sensitivity = false                # also fit the models' own cutpoint spacing (measurement invariance)

    [persona]                          # a persona experiment (responses name a respondent in `persona`)
    reference_respondents = "people.csv"   # respondent-level answers (relative to the design file's folder)
    by = ["language"]                  # design factors that separate persona cells
    statistic = "expected"             # expected | majority (the published majority-of-samples statistic)
    baseline = "group"                 # what "the persona helps" is judged against: group | no_persona
    respondent_col = "respondent"      # column names in the respondent file
    group_col = "country"
    attributes = ["age_group"]         # demographic columns (default: every other non-item column)
    missing_codes = [-99, "DK"]        # answer codes meaning "no answer" (dropped and counted)

    [[claims]]                         # any number of claims, audited over every specification
    kind = "closer"                    # closer | closest_group | steering_raises | human_proxy | higher_position
    model = "gpt-4o"                   #   | contrast | trend | equivalent | correlation (general claims, below)
    than = "gemma-2-27b-it"            # closer, higher_position
    group = "en"                       # closer, closest_group, human_proxy (the proxy group); the group of
                                       #   every cell of a general claim that names none
    target = "DK"                      # steering_raises, human_proxy
    text = "..."                       # optional wording used in the report
    metric = "js"                      # general claims: fix the metric (default: every admissible metric)

    # general claims; a cell is a table naming a model and factor levels (and optionally a group)
    a = { model = "M", language = "hi" }          # contrast: cell a is closer to `group` than cell b
    b = { model = "M", language = "en" }
    models = { M-7b = 7, M-13b = 13, M-70b = 70 } # trend over a covariate of models (or cells = [...], x = [...])
    decreasing = false                            # trend: claim a fall instead of a rise
    groups = ["DK", "NL", "PT"]                   # equivalent: `model` equally aligned with these groups ...
    margin = 0.05                                 # ... within this margin (metric units), or cells = [...]
    values = { M1 = 0.12, M2 = 0.30, M3 = 0.21 }  # correlation: another quantity per model ...
    se = { M1 = 0.02, M2 = 0.03, M3 = 0.02 }      # ... with its standard errors (optional)
    negative = false                              # correlation: claim a negative correlation
    method = "pearson"                            # correlation: pearson | spearman
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from robustalign._errors import RobustAlignError

if TYPE_CHECKING:
    from robustalign.schema import Reference, Responses

__all__ = ["AuditDesign", "load_design"]

_TOP = {"title", "seed", "n_resamples", "n_permutations", "confidence_level", "metrics", "alignment",
        "stability", "steering", "domains", "bayes", "claims", "extrapolability", "orders", "persona",
        "cluster_agreement", "association"}
_SECTIONS = {
    "alignment": {"against", "group_map"},
    "stability": {"enabled", "factors", "skip", "margin", "flip_margin", "sequential"},
    "orders": {"column", "map"},
    "steering": {"enabled", "column", "baseline", "by", "metric", "group_map", "compare", "compare_metric"},
    "domains": {"prefix", "map", "column"},
    "extrapolability": {"enabled", "min_domain_items"},
    "bayes": {"fit", "draws", "tune", "chains", "model", "sensitivity"},
    "persona": {"reference_respondents", "by", "statistic", "baseline", "respondent_col", "group_col", "attributes",
                "missing_codes"},
    "cluster_agreement": {"enabled", "evaluated", "held_out", "k", "units", "models_by", "reference", "reverse",
                          "min_ari"},
    "association": {"file", "group", "expect"},
}
_CLAIM_KEYS = {"kind", "model", "than", "group", "target", "text", "steer", "baseline", "metric", "a", "b", "cells",
               "x", "models", "decreasing", "groups", "margin", "values", "se", "negative", "method"}
# the type of every key (keys not listed here are checked where they are read)
_TYPES: dict[str, str | dict[str, str]] = {
    "title": "str", "seed": "int", "n_resamples": "int", "n_permutations": "int", "confidence_level": "number",
    "metrics": "strs",
    "alignment": {"against": "str", "group_map": "map"},
    "stability": {"enabled": "bool", "factors": "strs", "skip": "strs", "margin": "number", "flip_margin": "number",
                  "sequential": "bool"},
    "orders": {"column": "str"},
    "steering": {"enabled": "bool", "column": "str", "baseline": "level", "by": "strs", "metric": "str",
                 "group_map": "map", "compare": "strs", "compare_metric": "str"},
    "domains": {"prefix": "int", "map": "map", "column": "str"},
    "extrapolability": {"enabled": "bool", "min_domain_items": "int"},
    "bayes": {"fit": "bool", "draws": "int", "tune": "int", "chains": "int", "model": "str", "sensitivity": "bool"},
    "persona": {"reference_respondents": "str", "by": "strs", "statistic": "str", "baseline": "str",
                "respondent_col": "str", "group_col": "str", "attributes": "strs", "missing_codes": "levels"},
    "cluster_agreement": {"enabled": "bool", "evaluated": "strs", "held_out": "strs", "k": "int", "units": "strs",
                          "models_by": "strs", "reference": "str", "reverse": "strs", "min_ari": "number"},
    "association": {"file": "str", "group": "str", "expect": "str"},
}
_CLAIM_TYPES = {"kind": "str", "model": "str", "than": "str", "group": "str", "target": "str", "text": "str",
                "steer": "str", "baseline": "level", "metric": "str", "a": "cell", "b": "cell", "cells": "cells",
                "x": "numbers", "models": "numbermap", "decreasing": "bool", "groups": "strs", "margin": "number",
                "values": "numbermap", "se": "numbermap", "negative": "bool", "method": "str"}
_TYPE_WORDS = {
    "str": ("a text in quotes", 'e.g. {k} = "..."'),
    "int": ("a whole number", "e.g. {k} = 2000"),
    "number": ("a number", "e.g. {k} = 0.95"),
    "bool": ("true or false (TOML booleans, without quotes)", "e.g. {k} = false"),
    "strs": ("a text or a list of texts", 'e.g. {k} = ["format", "template"]'),
    "level": ("a text or a number", 'e.g. {k} = "none"'),
    "levels": ("a list of texts or numbers", 'e.g. {k} = [-99, "DK"]'),
    "map": ("a table of names to names", 'e.g. {k} = {{ da = "DK", en = "US" }}'),
    "cell": ("a table naming a model and factor levels", 'e.g. {k} = {{ model = "M", language = "hi" }}'),
    "cells": ("a list of cells (tables naming a model and factor levels)",
              'e.g. {k} = [{{ model = "M", language = "hi" }}, {{ model = "M", language = "en" }}]'),
    "numbers": ("a list of numbers", "e.g. {k} = [1, 2, 3]"),
    "numbermap": ("a table of names to numbers", "e.g. {k} = {{ M1 = 0.12, M2 = 0.30 }}"),
}


def _type_ok(v, kind: str) -> bool:
    scalar = isinstance(v, (str, int, float)) and not isinstance(v, bool)
    return {
        "str": isinstance(v, str),
        "int": isinstance(v, int) and not isinstance(v, bool),
        "number": isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": isinstance(v, bool),
        "strs": isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
        "level": scalar,
        "levels": isinstance(v, list) and all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in v),
        "map": isinstance(v, dict) and all(isinstance(x, (str, int, float)) and not isinstance(x, bool)
                                           for x in v.values()),
        "cell": _is_cell(v),
        "cells": isinstance(v, list) and len(v) > 0 and all(_is_cell(c) for c in v),
        "numbers": isinstance(v, list) and all(_is_number(x) for x in v),
        "numbermap": isinstance(v, dict) and all(_is_number(x) for x in v.values()),
    }[kind]


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_cell(v) -> bool:
    return (isinstance(v, dict) and ("model" in v or "human" in v)
            and all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in v.values()))


_EXAMPLES = {"`metrics`": '["spearman", "js"]', "[stability] `skip`": '["agreement"]',
             "[cluster_agreement] `evaluated`": '["E", "F"]', "[cluster_agreement] `held_out`": '["D"]',
             "[cluster_agreement] `units`": '["human", "models"]', "[cluster_agreement] `k`": "3",
             "[association] `file`": '"refusals.csv"',
             "[steering] `by`": '["model"]', "[steering] `compare`": '["congruent", "congruent", "incongruent"]'}


def _check_type(v, kind: str, name: str, where: str) -> None:
    if not _type_ok(v, kind):
        what, example = _TYPE_WORDS[kind]
        bare = name.rsplit(" ", 1)[-1].strip("`")
        example = f"e.g. {bare} = {_EXAMPLES[name]}" if name in _EXAMPLES else example.format(k=bare)
        raise RobustAlignError(f"{where}: {name} must be {what} ({example}); got {v!r} "
                               f"({type(v).__name__}). Fix the value in the design file.")


def _check_types(d: dict, where: str) -> None:
    """Every known design key has the type the schema says (a quoted "no" is not false)."""
    for key, kind in _TYPES.items():
        if key not in d:
            continue
        if isinstance(kind, dict):
            if isinstance(d[key], dict):
                for sub, k in kind.items():
                    if sub in d[key]:
                        _check_type(d[key][sub], k, f"[{key}] `{sub}`", where)
        else:
            _check_type(d[key], kind, f"`{key}`", where)
    claims = d.get("claims", [])
    for i, c in enumerate(claims if isinstance(claims, list) else [], 1):
        for sub, k in (_CLAIM_TYPES.items() if isinstance(c, dict) else ()):
            if sub in c:
                _check_type(c[sub], k, f"claim {i} `{sub}`", where)


_CLAIM_NEEDS = {
    "closer": ("model", "than", "group"),
    "closest_group": ("model", "group"),
    "steering_raises": ("model", "target"),
    "human_proxy": ("group", "target", "model"),
    "higher_position": ("model", "than"),
    "contrast": ("a", "b"),
    "trend": (),  # `models`, or `cells` and `x`
    "equivalent": ("margin",),  # and `model` with `groups`, or `cells`
    "correlation": ("values",),
}
#: Keys of a general claim that need one another: (kind, the keys one of which must be there, words).
_CLAIM_EITHER = {
    "trend": ((("models",), ("cells", "x")), 'models = { M1 = 7, M2 = 13, M3 = 70 }, or cells = [...] with x = [...]'),
    "equivalent": ((("model", "groups"), ("cells",)), 'model = "M" with groups = ["A", "B"], or cells = [...]'),
}


def _check_claim(c: dict, i: int, where: str) -> None:
    """A claim's kind-specific keys are present (and fit together)."""
    kind = c.get("kind")
    if kind not in _CLAIM_NEEDS:
        raise RobustAlignError(f"{where}: claim {i} `kind` must be one of {sorted(_CLAIM_NEEDS)}; got {kind!r}.")
    missing = [k for k in _CLAIM_NEEDS[kind] if k not in c]
    if missing:
        raise RobustAlignError(f"{where}: claim {i} ({kind}) needs keys {missing}.")
    if kind in _CLAIM_EITHER:
        options, words = _CLAIM_EITHER[kind]
        if not any(all(k in c for k in opt) for opt in options):
            raise RobustAlignError(f"{where}: claim {i} ({kind}) needs {words}. Add them to the design file.")
    if kind == "trend" and "cells" in c and len(c["cells"]) != len(c["x"]):
        raise RobustAlignError(f"{where}: claim {i} (trend) has {len(c['cells'])} cells but {len(c['x'])} positions "
                               "`x`; give one position per cell.")
    if kind == "correlation" and "se" in c and set(c["se"]) != set(c["values"]):
        raise RobustAlignError(f"{where}: claim {i} (correlation) `se` must name the same models as `values`; "
                               f"got {sorted(c['se'])} and {sorted(c['values'])}.")
    if kind == "equivalent" and not c["margin"] > 0:
        raise RobustAlignError(f"{where}: claim {i} (equivalent) `margin` must be positive (the largest difference "
                               f"that counts as equal, in the metric's units); got {c['margin']!r}.")
    from robustalign.metrics import METRICS

    if "metric" in c and c["metric"] not in METRICS and c["metric"] != "position":
        raise RobustAlignError(f"{where}: claim {i} `metric` must be one of {sorted(METRICS)} or 'position' (the mean "
                               f"answer position, no reference); got {c['metric']!r}. Fix the value in the design file.")
    if kind in _CLAIM_EITHER or kind in ("contrast", "correlation"):
        from robustalign.claims.multiverse import Claim

        try:
            _general_claim(Claim, c, "steer_target")
        except ValueError as e:
            raise RobustAlignError(f"{where}: claim {i} ({kind}): {e} Fix the claim in the design file.") from None


@dataclass
class AuditDesign:
    """A parsed design file (see the module docstring for the schema). Defaults decide from the data."""

    title: str | None = None
    seed: int = 0
    n_resamples: int = 2000
    n_permutations: int = 2000
    confidence_level: float = 0.95
    metrics: tuple[str, ...] = ("spearman", "js")
    against: str | None = None
    group_map: dict | None = None
    stability: dict = field(default_factory=dict)
    orders: dict = field(default_factory=dict)
    steering: dict = field(default_factory=dict)
    domains: dict = field(default_factory=dict)
    extrapolability: dict = field(default_factory=dict)
    bayes: dict = field(default_factory=dict)
    claims: list[dict] = field(default_factory=list)
    persona: dict = field(default_factory=dict)
    cluster_agreement: dict = field(default_factory=dict)
    association: dict = field(default_factory=dict)
    source: str | None = None

    @classmethod
    def coerce(cls, design: AuditDesign | dict | None) -> AuditDesign:
        """``design`` as an :class:`AuditDesign`: the defaults for None, a parsed TOML dict validated."""
        if design is None:
            return cls()
        return cls.from_dict(design) if isinstance(design, dict) else design

    @classmethod
    def from_dict(cls, d: dict, *, source: str | None = None) -> AuditDesign:
        """Validate a design given as a dict (the parsed TOML); unknown keys are errors, not ignored."""
        where = f"design file {source!r}" if source else "design"
        if not isinstance(d, dict):
            raise RobustAlignError(f"{where}: must be a table of keys; got {type(d).__name__}.")
        unknown = sorted(set(d) - _TOP)
        if unknown:
            raise RobustAlignError(f"{where}: unknown keys {unknown}; known keys are {sorted(_TOP)}.")
        for sec, keys in _SECTIONS.items():
            if sec in d:
                if not isinstance(d[sec], dict):
                    raise RobustAlignError(f"{where}: [{sec}] must be a table; got {d[sec]!r}.")
                bad = sorted(set(d[sec]) - keys)
                if bad:
                    raise RobustAlignError(f"{where}: unknown keys {bad} in [{sec}]; known keys are {sorted(keys)}.")
        _check_types(d, where)
        out = cls(source=source)
        out.title = d.get("title")
        out.seed = _int(d.get("seed", 0), "seed", where, 0)
        out.n_resamples = _int(d.get("n_resamples", 2000), "n_resamples", where, 10)
        out.n_permutations = _int(d.get("n_permutations", 2000), "n_permutations", where, 10)
        lvl = d.get("confidence_level", 0.95)
        if isinstance(lvl, bool) or not isinstance(lvl, (int, float)) or not 0 < lvl < 1:
            raise RobustAlignError(f"{where}: `confidence_level` must be in (0, 1); got {lvl!r}.")
        out.confidence_level = float(lvl)
        metrics = d.get("metrics", ["spearman", "js"])
        if isinstance(metrics, str):
            metrics = [metrics]
        from robustalign.metrics import METRICS

        bad = [m for m in metrics if m != "spearman" and m not in METRICS]
        if bad or not metrics:
            raise RobustAlignError(f"{where}: `metrics` must be drawn from {['spearman', *sorted(METRICS)]}; "
                                   f"got {metrics!r}.")
        out.metrics = tuple(metrics)
        al = d.get("alignment", {})
        out.against = al.get("against")
        out.group_map = {str(k): str(v) for k, v in al.get("group_map", {}).items()} or None
        out.stability = dict(d.get("stability", {}))
        for k in ("factors", "skip"):  # one name is a list of one
            if isinstance(out.stability.get(k), str):
                out.stability[k] = [out.stability[k]]
        _check_stability(out.stability, where)
        out.orders = _check_orders(dict(d.get("orders", {})), where)
        out.steering = dict(d.get("steering", {}))
        if "compare" in out.steering:
            c = out.steering["compare"]
            if not (isinstance(c, list) and len(c) == 3 and all(isinstance(x, str) for x in c)):
                raise RobustAlignError(f"{where}: [steering] `compare` must be three strings [column, level_a, "
                                       f"level_b]; got {c!r}.")
        if isinstance(out.steering.get("by"), str):
            out.steering["by"] = [out.steering["by"]]
        out.domains = dict(d.get("domains", {}))
        if len(out.domains) > 1:
            raise RobustAlignError(f"{where}: [domains] takes one of `prefix`, `map` or `column`; got "
                                   f"{sorted(out.domains)}.")
        if "prefix" in out.domains:
            _int(out.domains["prefix"], "[domains] prefix", where, 1)
        out.extrapolability = dict(d.get("extrapolability", {}))
        out.bayes = _check_bayes(dict(d.get("bayes", {})), where)
        from robustalign.persona import check_design_persona

        out.persona = check_design_persona(dict(d.get("persona", {})), where)
        out.claims = _check_claims(d.get("claims", []), where)
        out.cluster_agreement = _check_cluster_agreement(dict(d.get("cluster_agreement", {})), where)
        out.association = _check_association(dict(d.get("association", {})), where)
        if out.cluster_agreement.get("enabled", True) and out.cluster_agreement and not out.domains:
            raise RobustAlignError(f"{where}: [cluster_agreement] names dimensions, but no item is mapped to one. "
                                   "Fix: add [domains] (prefix, map or column) giving each item its dimension.")
        return out

    def check_data(self, responses: Responses, reference: Reference | None) -> None:
        """Names in the design (columns, models, groups, metrics) exist in the data; checked before the audit.

        Raises :class:`~robustalign.RobustAlignError` naming the design file, the key, the value and
        what the data has.
        """
        from robustalign.metrics import METRICS

        where = f"design file {self.source!r}" if self.source else "design"
        cols, models = list(responses.data.columns), responses.models
        groups = list(reference.groups) if reference is not None else []

        def fail(key, value, have, what):
            raise RobustAlignError(f"{where}: {key} = {value!r} is not {what}; the data have {have}. Fix the name in "
                                   "the design file.")

        if self.against is not None and self.against not in cols:
            fail("[alignment] against", self.against, list(responses.factors), "a column of the responses")
        for g in (self.group_map or {}).values():
            if g not in groups:
                fail("[alignment] group_map value", g, groups, "a group of the reference")
        for f in self.stability.get("factors") or []:
            if f not in responses.factors:
                fail("[stability] factors entry", f, list(responses.factors), "a design factor of the responses")
        st = self.steering
        if "column" in st and st.get("enabled", True) and st["column"] not in cols:
            fail("[steering] column", st["column"], list(responses.factors), "a column of the responses")
        for f in st.get("by") or []:
            if f not in cols:
                fail("[steering] by entry", f, ["model", *responses.factors], "a column of the responses")
        if "compare" in st and st["compare"][0] not in cols:
            fail("[steering] compare column", st["compare"][0], list(responses.factors), "a column of the responses")
        for key in ("metric", "compare_metric"):
            if key in st and st[key] not in METRICS and st[key] != "spearman":
                fail(f"[steering] {key}", st[key], ["spearman", *sorted(METRICS)], "a metric")
        for f in (st.get("group_map") or {}).values():
            if f not in groups:
                fail("[steering] group_map value", f, groups, "a group of the reference")
        for f in self.persona.get("by") or []:
            if f not in responses.factors:
                fail("[persona] by entry", f, list(responses.factors), "a design factor of the responses")
        ca = self.cluster_agreement
        for f in ca.get("models_by") or []:
            if f not in responses.factors:
                fail("[cluster_agreement] models_by entry", f, list(responses.factors), "a design factor of the responses")
        items = set(map(str, responses.items))
        for it in ca.get("reverse") or []:
            if it not in items:
                fail("[cluster_agreement] reverse entry", it, f"{len(items)} items, e.g. {sorted(items)[:5]}",
                     "an item of the responses")
        if "group" in self.association and reference is not None and self.association["group"] not in groups:
            fail("[association] group", self.association["group"], groups, "a group of the reference")
        known_groups = {*groups, *(self.group_map or {}), *(st.get("group_map") or {})}
        for i, c in enumerate(self.claims, 1):
            for key in ("model", "than"):
                if key in c and c[key] not in models:
                    fail(f"claim {i} {key}", c[key], models, "a model of the responses")
            if "group" in c and c["group"] not in known_groups:
                fail(f"claim {i} group", c["group"], groups, "a group of the reference")
            for key in ("models", "values", "se"):
                for m in c.get(key, {}):
                    if m not in models:
                        fail(f"claim {i} {key} entry", m, models, "a model of the responses")
            for g in c.get("groups", []):
                if g not in known_groups:
                    fail(f"claim {i} groups entry", g, groups, "a group of the reference")
            for key, cell in [("a", c.get("a")), ("b", c.get("b"))] + [("cells", x) for x in c.get("cells", [])]:
                for k, v in (cell or {}).items():
                    if k == "model" and v not in models:
                        fail(f"claim {i} {key} model", v, models, "a model of the responses")
                    elif k in ("group", "human") and v not in known_groups:
                        fail(f"claim {i} {key} {k}", v, groups, "a group of the reference")
                    elif k not in ("model", "group", "human") and k not in cols:
                        fail(f"claim {i} {key} factor", k, list(responses.factors), "a column of the responses")

    def claim_objects(self) -> list:
        """The claims as :class:`robustalign.claims.multiverse.Claim` objects."""
        from robustalign.claims.multiverse import Claim

        out = []
        for c in self.claims:
            k = c["kind"]
            if k == "closer":
                cl = Claim.closer(c["model"], than=c["than"], group=c["group"])
            elif k == "closest_group":
                cl = Claim.closest_group(c["model"], group=c["group"])
            elif k == "steering_raises":
                cl = Claim.steering_raises(c["model"], target=c["target"],
                                           steer=c.get("steer", self.steering.get("column", "steer_target")),
                                           baseline=c.get("baseline", self.steering.get("baseline", "none")),
                                           group=c.get("group"))
            elif k == "human_proxy":
                cl = Claim.human_proxy(c["group"], target=c["target"], model=c["model"])
            elif k == "higher_position":
                cl = Claim.higher_position(c["model"], than=c["than"])
            else:
                cl = _general_claim(Claim, c, self.steering.get("column", "steer_target"))
            if c.get("text"):
                from dataclasses import replace

                cl = replace(cl, text=c["text"])
            out.append(cl)
        return out


def _general_claim(Claim, c: dict, steer: str):
    """A contrast, trend, equivalent or correlation claim from its design-file table."""
    common = {"group": c.get("group"), "metric": c.get("metric"), "steer": c.get("steer", steer)}
    k = c["kind"]
    if k == "contrast":
        return Claim.contrast(c["a"], c["b"], **common)
    if k == "trend":
        cells = c["models"] if "models" in c else c["cells"]
        return Claim.trend(cells, x=c.get("x"), decreasing=c.get("decreasing", False), **common)
    if k == "equivalent":
        groups = [c["groups"]] if isinstance(c.get("groups"), str) else c.get("groups")
        return Claim.equivalent(c.get("cells"), model=c.get("model"), groups=groups, margin=c["margin"], **common)
    return Claim.correlation(c["values"], se=c.get("se"), negative=c.get("negative", False),
                             method=c.get("method", "pearson"), **common)


def _check_stability(st: dict, where: str) -> None:
    """Types of the [stability] keys this module reads (margin, flip_margin)."""
    for k, hi in (("margin", None), ("flip_margin", 1.0)):
        if k in st:
            v = st[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v or (hi and v > hi):
                raise RobustAlignError(f"{where}: [stability] `{k}` must be a number > 0"
                                       f"{' and <= 1' if hi else ''}; got {v!r}.")
            st[k] = float(v)


def _check_orders(od: dict, where: str) -> dict:
    """[orders]: ``column`` (str) and ``map`` (label -> 'identity' | 'reverse' | {K: permutation})."""
    if not od:
        return od
    if set(od) != {"column", "map"}:
        raise RobustAlignError(f"{where}: [orders] needs both `column` (the column of order labels) and `map` "
                               f"(label -> order shown); got {sorted(od)}.")
    if not isinstance(od["column"], str):
        raise RobustAlignError(f"{where}: [orders] `column` must be a string; got {od['column']!r}.")
    if not isinstance(od["map"], dict) or not od["map"]:
        raise RobustAlignError(f"{where}: [orders] `map` must be a table label -> 'identity', 'reverse' or "
                               f"{{K = [permutation]}}; got {od['map']!r}.")
    for lab, spec in od["map"].items():
        ok = spec in ("identity", "reverse") or (isinstance(spec, dict) and all(
            str(k).isdigit() and isinstance(v, list) and all(isinstance(x, int) for x in v) for k, v in spec.items()))
        if not ok:
            raise RobustAlignError(f"{where}: [orders] map entry {lab!r} must be 'identity', 'reverse' or a table "
                                   f"{{K = [permutation of 1..K]}}; got {spec!r}.")
    return od


def _int(v, name, where, minimum) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise RobustAlignError(f"{where}: `{name}` must be an integer >= {minimum}; got {v!r}.")
    return int(v)


def load_design(path: str | Path | None) -> AuditDesign:
    """Read and validate a ``design.toml`` (``None`` gives the defaults)."""
    if path is None:
        return AuditDesign()
    p = Path(path)
    if not p.is_file():
        raise RobustAlignError(f"design file {str(p)!r} does not exist.")
    try:
        d = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise RobustAlignError(f"design file {str(p)!r} is not valid TOML: {e}. Fix the syntax at that place "
                               "(strings in double quotes, lists in [ ], tables as [name]).") from None
    try:
        design = AuditDesign.from_dict(d, source=p.name)
    except RobustAlignError as e:
        msg = str(e)
        if "Fix" not in msg:  # every message ends with what to do
            msg += " Fix the design file (its keys are described in the README and robustalign.report.design)."
        raise RobustAlignError(msg) from None
    rr = design.persona.get("reference_respondents")
    if rr is not None and not Path(rr).is_absolute():  # paths in a design file are relative to its folder
        design.persona["reference_respondents"] = str(p.parent / rr)
    af = design.association.get("file")
    if af is not None and not Path(af).is_absolute():
        design.association["file"] = str(p.parent / af)
    return design


def _check_bayes(bayes: dict, where: str) -> dict:
    """The ``[bayes]`` table's values (keys and types are checked by :func:`_check_types`)."""
    if bayes.get("model", "auto") not in ("auto", "score", "response"):
        raise RobustAlignError(f"{where}: [bayes] `model` must be 'auto', 'score' or 'response'; got "
                               f"{bayes['model']!r}.")
    for k in ("draws", "tune", "chains"):
        if k in bayes:
            _int(bayes[k], f"[bayes] {k}", where, 1)
    for k in ("fit", "sensitivity"):
        if not isinstance(bayes.get(k, False), bool):
            raise RobustAlignError(f"{where}: [bayes] `{k}` must be true or false; got {bayes[k]!r}.")
    return bayes


def _check_claims(claims: object, where: str) -> list[dict]:
    """The ``[[claims]]`` array: each a table with known keys, checked by :func:`_check_claim`."""
    if not isinstance(claims, list):
        raise RobustAlignError(f"{where}: `claims` must be an array of tables ([[claims]]); got {claims!r}.")
    for i, c in enumerate(claims, 1):
        if not isinstance(c, dict):
            raise RobustAlignError(f"{where}: claim {i} must be a table; got {c!r}.")
        bad = sorted(set(c) - _CLAIM_KEYS)
        if bad:
            raise RobustAlignError(f"{where}: claim {i} has unknown keys {bad}; known keys are "
                                   f"{sorted(_CLAIM_KEYS)}.")
        _check_claim(c, i, where)
    return [dict(c) for c in claims]


#: What ``[cluster_agreement] units`` may name: the human reference's groups (e.g. countries) and the models.
CLUSTER_UNITS = ("human", "models")


def _as_list(v: object) -> object:
    return [v] if isinstance(v, str) else v


def _check_cluster_agreement(ca: dict, where: str) -> dict:
    """``[cluster_agreement]`` (E4): the split of dimensions and ``k`` fixed a priori; the units to cluster.

    Types are checked by :func:`_check_types`; here the values and how they fit together.
    """
    if not ca:
        return ca
    for k in ("evaluated", "held_out", "units", "models_by", "reverse"):  # one name is a list of one
        if k in ca:
            ca[k] = _as_list(ca[k])
    sec = "[cluster_agreement]"
    missing = [k for k in ("evaluated", "held_out", "k") if k not in ca]
    if missing and ca.get("enabled", True):
        raise RobustAlignError(f"{where}: {sec} needs keys {missing}: the evaluated and held-out dimensions and the "
                               'number of clusters are fixed before the data are seen. Fix: add e.g. evaluated = '
                               '["E", "F"], held_out = ["D"], k = 3 (dimension names as [domains] gives them), or '
                               "set enabled = false.")
    if "k" in ca:
        _int(ca["k"], f"{sec} k", where, 2)
    ev, ho = ca.get("evaluated", []), ca.get("held_out", [])
    for name, dims in (("evaluated", ev), ("held_out", ho)):
        if "k" in ca and not dims:
            raise RobustAlignError(f"{where}: {sec} `{name}` must name at least one dimension; got {dims!r}. Fix the "
                                   "value in the design file.")
    both = sorted(set(ev) & set(ho))
    if both:
        raise RobustAlignError(f"{where}: {sec} dimensions {both} are both evaluated and held out; a held-out "
                               "dimension that is also evaluated makes part of the agreement mechanical. Fix: make "
                               "`evaluated` and `held_out` disjoint.")
    units = ca.get("units", list(CLUSTER_UNITS))
    bad = [u for u in units if u not in CLUSTER_UNITS]
    if bad or not units:
        raise RobustAlignError(f"{where}: {sec} `units` must be drawn from {list(CLUSTER_UNITS)} (the human "
                               f"reference's groups, the models); got {units!r}. Fix the value in the design file.")
    ref = ca.get("reference")
    if ref is not None and (ref not in CLUSTER_UNITS or ("units" in ca and ref not in units)):
        raise RobustAlignError(f"{where}: {sec} `reference` must be one of the units clustered "
                               f"({[u for u in CLUSTER_UNITS if u in units]}); got {ref!r}. Fix the value in the "
                               "design file, or leave it out.")
    if "model" in ca.get("models_by", []):
        raise RobustAlignError(f"{where}: {sec} `models_by` names the factors that split each model into cells "
                               "(e.g. [\"language\"]); 'model' is always one. Fix: leave 'model' out.")
    if "min_ari" in ca and not -1 < ca["min_ari"] <= 1:
        raise RobustAlignError(f"{where}: {sec} `min_ari` must be in (-1, 1] (an adjusted Rand index); got "
                               f"{ca['min_ari']!r}. Fix the value in the design file.")
    return ca


def _check_association(a: dict, where: str) -> dict:
    """``[association]``: the per-model measure file (read with the other inputs), its group and sign."""
    if not a:
        return a
    if "file" not in a:
        raise RobustAlignError(f"{where}: [association] needs `file` (the per-model measure: model, item, value), "
                               'e.g. file = "refusals.csv" (relative to the design file). Fix: add it, or remove '
                               "[association].")
    if a.get("expect", "positive") not in ("positive", "negative"):
        raise RobustAlignError(f"{where}: [association] `expect` must be 'positive' or 'negative' (the claimed sign "
                               f"of the correlation), or left out for either sign; got {a['expect']!r}. Fix the value "
                               "in the design file.")
    return a
