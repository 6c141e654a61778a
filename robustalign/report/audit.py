"""Run every assessment the data's design allows, and collect the results into an :class:`AuditReport`.

What runs (decided from the data and the design file, :mod:`robustalign.report.design`):

* **alignment** always: per model (x the ``against`` column) x human group, for each metric, with
  cluster-bootstrap intervals over items; ranks with rank intervals and pairwise flip probabilities
  within each group. Verdict per group: is the closest model identified?
* **stability** when a design factor other than ``sample`` and the steering factor has at least 2
  levels (the slow inter-rater agreement part is skipped unless the design asks for it);
* **steerability** when a steering factor exists (``[steering] column``, default ``steer_target``);
  a paired comparison of two kinds of steering when ``[steering] compare`` is given;
* **extrapolability** when items are mapped to domains (``[domains]``);
* **validity** when answers were parsed from raw text (a ``status`` column);
* **claims**: each ``[[claims]]`` entry is audited over every admissible specification;
* **Bayesian fit** only when ``[bayes] fit = true`` (compiling and sampling takes minutes; the report's
  diagnostics say whether it ran and whether it converged).

Nothing here computes a statistic: every number comes from the statistics modules' result objects,
and the report only arranges them.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from robustalign._errors import RobustAlignError
from robustalign._rng import RngLike
from robustalign.report.design import AuditDesign

if TYPE_CHECKING:
    from robustalign.claims.preferences import PairwiseChoices
    from robustalign.schema import Reference, Responses

__all__ = ["AuditPart", "AuditReport", "FigureSpec", "Section", "run_audit", "run_example_audit"]

_METRIC_LABEL = {"spearman": "Spearman alignment", "js": "JS similarity", "tv": "TV similarity",
                 "w1": "W1 similarity", "mean_position": "mean-position similarity", "plurality": "plurality agreement"}
#: ``mc_error``: True when the verdict is within Monte Carlo error of a threshold (it could change with
#: another seed; see robustalign.resampling.mcerror), False when not, None when the assessment does not check.
#: ``estimate, conf_low, conf_high, conf_level, p_value, p_adjusted``: the verdict's key number (what the
#: summary grid shows), NaN where the assessment has none; ``grid_row``/``grid_column``: its cell in the grid.
VERDICT_COLUMNS = ["part", "assessment", "unit", "verdict", "reason", "estimate", "conf_low", "conf_high",
                   "conf_level", "p_value", "p_adjusted", "n_needed", "mc_error", "grid_row", "grid_column"]
NUMBER_COLUMNS = ["estimate", "conf_low", "conf_high", "conf_level", "p_value", "p_adjusted"]


@dataclass
class FigureSpec:
    """A figure of the report: ``draw()`` returns a matplotlib Figure, Axes or array of Axes."""

    name: str
    caption: str
    draw: Callable[[], object] = field(repr=False)
    #: The files drawn while the audit ran (``run_audit(figure_formats=...)``): ``{"files": {format:
    #: bytes}, "seconds", "error"}``; None until then. Writing the report uses them instead of drawing again.
    drawn: dict | None = field(default=None, repr=False)


@dataclass
class Section:
    """One assessment in the report: verdicts in words, tables of estimates, figures, raw results."""

    key: str
    title: str
    intro: str = ""
    verdicts: pd.DataFrame | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    display: list[tuple[str, pd.DataFrame]] = field(default_factory=list, repr=False)
    figures: list[FigureSpec] = field(default_factory=list, repr=False)
    results: dict = field(default_factory=dict, repr=False)
    notes: list[str] = field(default_factory=list)


@dataclass
class AuditPart:
    """The audit of one data set (responses + reference + design)."""

    title: str
    description: str
    sections: list[Section]
    exclusions: pd.DataFrame
    hashes: dict
    settings: dict
    not_run: list[tuple[str, str]]
    fits: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    prefix: str = ""

    @property
    def verdicts(self) -> pd.DataFrame:
        frames = [s.verdicts for s in self.sections if s.verdicts is not None and len(s.verdicts)]
        if not frames:
            return pd.DataFrame(columns=VERDICT_COLUMNS)
        return pd.concat(frames, ignore_index=True)[VERDICT_COLUMNS]


@dataclass
class AuditReport:
    """Result of :func:`run_audit`: parts (one per data set), each with sections; ``write()`` renders it.

    Attributes
    ----------
    title : str
    parts : list of AuditPart
    provenance : dict
        Package versions, seeds, settings.
    """

    title: str
    parts: list[AuditPart]
    provenance: dict = field(default_factory=dict, repr=False)

    @property
    def verdicts(self) -> pd.DataFrame:
        """Every verdict of every part: ``part, assessment, unit, verdict, reason, n_needed, mc_error``."""
        frames = [p.verdicts for p in self.parts]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=VERDICT_COLUMNS)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table of estimates, keyed by its CSV name (without ``.csv``)."""
        out = {}
        for p in self.parts:
            for s in p.sections:
                for name, t in s.tables.items():
                    out[p.prefix + name] = t
        return out

    def section(self, key: str, part: int = 0) -> Section:
        for s in self.parts[part].sections:
            if s.key == key:
                return s
        raise KeyError(f"no section {key!r} in part {part}; sections are {[s.key for s in self.parts[part].sections]}.")

    def combine(self, other: AuditReport, *, title: str | None = None) -> AuditReport:
        """One report with the parts of both (e.g. a main experiment and a steering experiment)."""
        prov = dict(self.provenance)
        prov.setdefault("parts", []).extend(other.provenance.get("parts", []))
        return AuditReport(title or self.title, self.parts + other.parts, prov)

    def summary(self) -> str:
        """The verdicts in words, one per line."""
        from robustalign.report.render import verdict_lines

        return "\n".join(verdict_lines(self))

    def write(self, out_dir: str | os.PathLike[str], *, force: bool = False,
              progress: Callable[[str], None] | None = None, figure_formats: Sequence[str] | None = None) -> Path:
        """Write ``report.html`` (self-contained), ``report.md``, one CSV per table, figures as PNG
        (vector copies with ``figure_formats=("png", "svg")``, and ``"pdf"``).

        An existing non-empty directory is refused unless ``force=True``. Returns the directory path.
        """
        from robustalign.report.render import write_report

        return write_report(self, out_dir, force=force, progress=progress, figure_formats=figure_formats)

    def _repr_html_(self) -> str:
        from robustalign.report.render import summary_html

        return summary_html(self)

    def __repr__(self) -> str:
        v = self.verdicts["verdict"].value_counts().to_dict()
        return f"AuditReport({self.title!r}, {len(self.parts)} part(s), verdicts={v})"


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def ci(est, lo, hi, d: int = 3, reason: str = "") -> str:
    """``est [lo, hi]`` with ``d`` decimals (display only); never ``nan`` (see words.fmt_interval)."""
    from robustalign.report.words import fmt_interval

    return fmt_interval(est, lo, hi, d, reason)


def verdict_rows(part: str, assessment: str, frame: pd.DataFrame | None, unit_cols: Sequence[str],
                 column_keys: Sequence[str] = ()) -> pd.DataFrame:
    """Verdict rows in the report's shape from a result's ``verdicts`` frame.

    The frame's ``estimate, conf_low, ...`` columns (:data:`NUMBER_COLUMNS`), where present, are the
    verdict's key number. In the summary grid the row is the unit without ``column_keys``, the column the
    assessment with them (e.g. row = model, column = "stability (language)"). Internal: shared with the
    persona and preferences sections.
    """
    from robustalign.report.words import plain

    if frame is None or not len(frame):
        return pd.DataFrame(columns=VERDICT_COLUMNS)
    cols = [c for c in unit_cols if c in frame.columns]
    unit = frame[cols].astype(str).agg(" / ".join, axis=1) if cols else pd.Series([""] * len(frame))
    rcols = [c for c in cols if c not in column_keys] or cols
    ccols = [c for c in cols if c in column_keys]
    row = frame[rcols].astype(str).agg(" / ".join, axis=1).to_numpy() if rcols else unit.to_numpy()
    col = [assessment + (f" ({' / '.join(map(str, v))})" if ccols else "")
           for v in (frame[ccols].itertuples(index=False) if ccols else [()] * len(frame))]
    out = pd.DataFrame({
        "part": part, "assessment": assessment, "unit": unit.to_numpy(),
        "verdict": frame["verdict"].to_numpy(), "reason": [plain(x) for x in frame["reason"].astype(str)],
        **{c: pd.to_numeric(frame[c], errors="coerce").to_numpy(float) if c in frame else np.nan
           for c in NUMBER_COLUMNS},
        "n_needed": frame["n_needed"].to_numpy(float) if "n_needed" in frame else np.nan,
        "mc_error": frame["mc_error"].astype(object).to_numpy() if "mc_error" in frame else None,
        "grid_row": row, "grid_column": col,
    })
    return out[VERDICT_COLUMNS]


def _key_numbers(verdicts: pd.DataFrame, frame: pd.DataFrame, keys: list[str], quantity) -> pd.DataFrame:
    """``verdicts`` with the estimate, interval and p-values of ``quantity`` (rows of ``frame`` with that
    quantity, matched on ``keys``; where several match, the one with a p-value)."""
    if verdicts is None or not len(verdicts) or frame is None or "quantity" not in frame:
        return verdicts
    qs = [quantity] if isinstance(quantity, str) else list(quantity)
    sub = frame[frame["quantity"].isin(qs)]
    if "p_value" in sub and sub["p_value"].notna().any():
        sub = sub[sub["p_value"].notna()] if sub.groupby(keys, dropna=False).size().max() > 1 else sub
    keys = [k for k in keys if k in sub and k in verdicts]
    take = [c for c in NUMBER_COLUMNS if c in sub]
    sub = sub.drop_duplicates(keys)[keys + take]
    v = verdicts.drop(columns=[c for c in take if c in verdicts and c not in ("estimate", "conf_low", "conf_high")])
    if {"estimate", "conf_low", "conf_high"} <= set(verdicts.columns):  # the verdict's own interval wins
        sub = sub.drop(columns=["estimate", "conf_low", "conf_high"])
    return v.merge(sub, on=keys, how="left") if keys else v


def headline(frame: pd.DataFrame, keys: list[str], extra: Sequence[str] = ()) -> pd.DataFrame:
    """Display table: keys, ``estimate [interval]`` and any extra columns (rounded for reading only).

    Internal: shared with the persona and preferences sections."""
    if frame is None or not len(frame):
        return pd.DataFrame()
    keys = [k for k in keys if k in frame.columns]
    lvl = frame["conf_level"].dropna()
    name = f"estimate [{lvl.iloc[0]:.0%} interval]" if len(lvl) else "estimate [interval]"
    out = frame[keys].astype(object).where(frame[keys].notna(), "").astype(str).copy()
    out[name] = [ci(e, lo, hi) for e, lo, hi in zip(frame["estimate"], frame["conf_low"], frame["conf_high"])]
    for c in extra:
        if c in frame.columns:
            v = frame[c]
            out[c] = [("" if not np.isfinite(x) else f"{x:.3g}") for x in v] if v.dtype.kind == "f" else v.astype(str)
    return out.reset_index(drop=True)


def _captured(fn, *args, **kwargs):
    """Run ``fn``; return its value and the messages of the warnings it raised (they go into the report)."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    msgs = list(dict.fromkeys(str(x.message) for x in w if not issubclass(x.category, DeprecationWarning)))
    return out, msgs


def with_notes(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a section builder; attach the warnings raised while it ran to its notes."""
    out, msgs = _captured(fn, *args, **kwargs)
    secs = out if isinstance(out, list) else [out[0]] if isinstance(out, tuple) else [out]
    for sec in secs:
        sec.notes.extend(f"Warning: {m}" for m in msgs)
    return out


class _Progress:
    """Times every step; calls ``progress`` with a line per step; shows a spinner with the elapsed time
    while a step runs (in a terminal or notebook; quiet in CI and tests, see robustalign._progress)."""

    def __init__(self, progress):
        self.fn = progress
        self.timings = {}
        self._cur = None
        self._t = None
        self._spin = None

    def say(self, msg: str) -> None:
        """A progress line from inside a step (bound here, so a worker process can redirect it)."""
        if self.fn is not None:
            self.fn(msg)

    def step(self, name: str, msg: str):
        from robustalign._progress import phase

        self.done()
        self._cur, self._t = name, time.time()
        if self.fn is not None:
            self.fn(msg)
        self._spin = phase(name)
        self._spin.__enter__()

    def done(self):
        if self._spin is not None:
            self._spin.__exit__(None, None, None)
            self._spin = None
        if self._cur is not None:
            self.timings[self._cur] = round(time.time() - self._t, 2)
            self._cur = None


def package_versions(bayes: bool) -> dict[str, str]:
    """Versions of Python, the platform and the packages behind the numbers. Internal: for provenance."""
    import platform
    import sys
    from importlib.metadata import PackageNotFoundError, version

    names = ["robustalign", "numpy", "scipy", "pandas", "statsmodels", "pingouin", "matplotlib"]
    if bayes:
        names += ["pymc", "arviz", "nutpie", "pytensor"]
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            out[n] = "not installed"
    return out


# --------------------------------------------------------------------------------------------------
# the audit
# --------------------------------------------------------------------------------------------------
def run_audit(
    responses: Responses | PairwiseChoices,
    reference: Reference | None,
    *,
    design: AuditDesign | dict | None = None,
    rng: RngLike = None,
    n_resamples: int | None = None,
    n_permutations: int | None = None,
    progress: Callable[[str], None] | None = None,
    title: str | None = None,
    part: str | None = None,
    prefix: str = "",
    item_table: pd.DataFrame | None = None,
    persona: tuple | None = None,
    workers: int | None = None,
    figure_formats: Sequence[str] | None = None,
) -> AuditReport:
    """Audit stored responses against human references: every assessment the design allows.

    Parameters
    ----------
    responses : Responses
        Validated responses (:func:`robustalign.load_responses`).
    reference : Reference or None
        Human reference (:func:`robustalign.load_reference`). Without it only the assessments that need
        no human data run (stability with position bias and flip rates against their noise floor; give
        ``[stability] margin`` or ``flip_margin`` for verdicts); the others are listed as not run.
    design : AuditDesign, dict or None
        Parsed design file (:func:`robustalign.report.load_design`), a dict in the same schema, or
        None to decide everything from the data.
    rng : int, Generator or None
        Seed; default the design's ``seed``. Every assessment gets its own child stream.
    n_resamples, n_permutations : int, optional
        Override the design's values.
    progress : callable, optional
        Called with a line of text at the start of every step.
    title, part, prefix
        Report title, this part's heading and a prefix for its CSV and figure names.
    item_table : DataFrame, optional
        Item table with an ``item`` column, for ``[domains] column``.
    persona : (RespondentReference, by), optional
        Respondent-level human answers and the design factors that separate cells: adds the persona
        section (:func:`robustalign.persona.persona_section`; responses need a ``persona`` column).
    workers : int, optional
        1: every step one after the other in this process. 2: the independent steps in two forked worker
        processes (same streams, so the same numbers). Default: the ``ROBUSTALIGN_WORKERS`` environment
        variable, else 2 where forking is possible and safe (see :mod:`robustalign.report._steps`).
    figure_formats : sequence of str, optional
        Draw each section's figures right after its step, in the same process, in these formats (e.g.
        ``("png", "svg")``); :meth:`AuditReport.write` then writes them without drawing again.

    Returns
    -------
    AuditReport
    """
    from robustalign.claims.preferences import PairwiseChoices, preference_report
    from robustalign.report._steps import execute

    if isinstance(responses, PairwiseChoices):  # forced-choice data: the preferences section (docs/claims.md)
        return preference_report(responses, design=design, rng=rng, n_resamples=n_resamples,
                                 n_permutations=n_permutations, title=title, part=part, prefix=prefix)
    run = _plan_audit(responses, reference, design=design, rng=rng, n_resamples=n_resamples,
                      n_permutations=n_permutations, progress=progress, title=title, part=part, prefix=prefix,
                      item_table=item_table, persona=persona)
    info = execute([run], workers=workers, figure_formats=figure_formats)
    rep = run.finish()
    rep.provenance["execution"] = info
    return rep


def _plan_audit(responses: Responses, reference: Reference | None, *, design: AuditDesign | dict | None,
                rng: RngLike, n_resamples: int | None, n_permutations: int | None,
                progress: Callable[[str], None] | None, title: str | None, part: str | None, prefix: str,
                item_table: pd.DataFrame | None, persona: tuple | None) -> AuditRun:
    """The steps of one part's audit, not yet run (``execute`` runs them; ``run.finish()`` assembles)."""
    from robustalign._rng import as_generator

    _check_audit_inputs(responses, reference)
    if design is None:
        design = AuditDesign()
    elif isinstance(design, dict):
        design = AuditDesign.from_dict(design)
    nres = int(n_resamples or design.n_resamples)
    nperm = int(n_permutations or design.n_permutations)
    level = design.confidence_level
    seed = design.seed if rng is None else rng
    gen, record = as_generator(seed)
    streams = dict(zip(["alignment", "stability", "steerability", "extrapolability", "claims", "bayes"],
                       gen.spawn(6)))
    part_name = part or title or design.title or "Audit"
    run = AuditRun(responses, reference, design, gen, streams, _Progress(progress),
                    dict(part=part_name, n_resamples=nres, n_permutations=nperm, level=level))
    against = design.against
    if against is not None and against not in responses.data.columns:
        raise RobustAlignError(f"[alignment] against = {against!r} is not a column of the responses; columns are "
                               f"{list(responses.data.columns)}.")
    if len(responses.items) < 2 and reference is not None:  # intervals resample items: one item has none
        run.add("alignment", "alignment on one item: point estimates only",
                partial(with_notes, _one_item_section, responses, reference, design, against,
                        streams["alignment"], **run.common))
        run.not_run += [(a, ONE_ITEM) for a in ("stability", "steerability", "extrapolability", "validity", "claims",
                                                "Bayesian model")]
    else:
        _run_assessments(run, item_table, persona)
    run.finish = lambda: _assemble(responses, reference, design, record, run.sections, run.not_run, run.fits, run.pr,
                                   part_name, title, prefix, nres, nperm, level, against)
    return run


def _check_audit_inputs(responses: Any, reference: Any) -> None:
    from robustalign.schema import Reference, Responses

    if not isinstance(responses, Responses):
        raise TypeError(f"`responses` must be a Responses object; got {type(responses).__name__}.")
    if reference is not None and not isinstance(reference, Reference):
        raise TypeError(f"`reference` must be a Reference object or None; got {type(reference).__name__}.")


@dataclass
class AuditRun:
    """One part's audit while it runs: the inputs, the streams, and the sections collected so far."""

    responses: Responses
    reference: Reference | None
    design: AuditDesign
    gen: np.random.Generator
    streams: dict[str, np.random.Generator]
    pr: _Progress
    common: dict[str, Any]  # part, n_resamples, n_permutations, level: every section builder's keywords
    sections: list[Section] = field(default_factory=list)
    not_run: list[tuple[str, str]] = field(default_factory=list)
    fits: list[dict] = field(default_factory=list)
    #: (name, progress message, builder) of each step, in the report's order; ``execute`` runs them
    steps: list[tuple[str, str, Callable[[], Any]]] = field(default_factory=list)
    finish: Callable[[], AuditReport] = field(default=lambda: AuditReport("", []))

    def add(self, name: str, msg: str, build: Callable[[], Any]) -> None:
        """A step: ``build()`` returns a Section, a list of Sections or (Section, fit info)."""
        self.steps.append((name, msg, build))

    @property
    def nres(self) -> int:
        return int(self.common["n_resamples"])

    @property
    def nperm(self) -> int:
        return int(self.common["n_permutations"])


def _run_assessments(run: AuditRun, item_table: pd.DataFrame | None, persona: tuple | None) -> None:
    """Every assessment the design allows, in the report's order; the others are listed as not run."""
    responses, reference, design = run.responses, run.reference, run.design
    if reference is None:
        run.not_run.append(("alignment", "no human reference given"))
    else:
        run.add("alignment", f"alignment: {len(responses.models)} models x {len(responses.items)} items, "
                             f"metrics {list(design.metrics)}, {run.nres} item-bootstrap resamples",
                partial(with_notes, _alignment_section, responses, reference, design, design.against,
                        run.streams["alignment"], **run.common))
    factors = _run_stability(run)
    _run_steerability(run)
    _run_extrapolability(run, item_table)
    from robustalign.report._clustering_section import run_cluster_agreement

    run_cluster_agreement(run, item_table)  # E4, when [cluster_agreement] is declared
    data = responses.data
    if "status" in data.columns and (data["status"] != "valid").any():
        run.add("validity", "validity of parsed answers",
                partial(with_notes, _validity_section, responses, factors, **run.common))
    else:
        run.not_run.append(("validity", "answers were not parsed from raw text (no invalid answers to count)"))
    _run_accuracy(run)
    _run_claims(run)
    if persona is not None or run.design.persona:  # respondent-level reference: `persona=` or [persona]
        from robustalign.persona import persona_section

        run.add("persona", "persona: respondent-level alignment of the role-played respondents",
                partial(with_notes, persona_section, responses, persona, design=run.design, **run.common))
    _run_bayes(run, factors)


def _run_stability(run: AuditRun) -> list[str]:
    """The stability section (when a factor other than sample and steering varies); returns the factors."""
    data, design = run.responses.data, run.design
    steer_col = design.steering.get("column", "steer_target")
    factors = [f for f in run.responses.factors if f not in ("sample", steer_col)
               and data[f].nunique() >= 2]
    if design.stability.get("factors") is not None:
        factors = list(design.stability["factors"])
    if not design.stability.get("enabled", True):
        run.not_run.append(("stability", "turned off in the design file"))
    elif not factors:
        run.not_run.append(("stability", "no design factor (other than sample and the steering factor) has two or "
                                         "more levels"))
    else:
        run.add("stability", f"stability across {factors}: {run.nres} resamples, {run.nperm} permutations",
                partial(with_notes, _stability_section, run.responses, run.reference, design, factors,
                        run.streams["stability"], progress=run.pr.say if run.pr.fn else None, **run.common))
    return factors


def _run_steerability(run: AuditRun) -> None:
    design = run.design
    steer_col = design.steering.get("column", "steer_target")
    has_steer = steer_col in run.responses.data.columns and design.steering.get("enabled", True)
    if run.reference is None:
        run.not_run.append(("steerability", "no human reference given"))
    elif has_steer:
        _steering_steps(run, steer_col)
    else:
        run.not_run.append(("steerability", f"no steering factor (column {steer_col!r} is not in the responses)"))


def _run_extrapolability(run: AuditRun, item_table: pd.DataFrame | None) -> None:
    reference, design = run.reference, run.design
    domains = None if reference is None else item_domains(design, run.responses, reference, item_table)
    if reference is None:
        run.not_run.append(("extrapolability", "no human reference given"))
    elif domains is not None and design.extrapolability.get("enabled", True):
        run.add("extrapolability", f"extrapolability over {len(set(domains.values()))} domains",
                partial(with_notes, _extrapolability_section, run.responses, reference, design, domains,
                        design.against, run.streams["extrapolability"], **run.common))
    else:
        run.not_run.append(("extrapolability", "no item domains given ([domains] in the design file)"
                            if domains is None else "turned off in the design file"))


def _run_accuracy(run: AuditRun) -> None:
    """Accuracy against a gold answer per culture (scored responses: a 0/1 ``correct`` column)."""
    from robustalign.resampling import keyed_stream

    data = run.responses.data
    cult = next((c for c in ("culture", "country") if c in data.columns), None)
    if "correct" in data.columns and cult is not None:
        from robustalign.claims.accuracy import accuracy_report

        def build() -> Section:
            acc, acc_v = accuracy_report(data, culture=cult, sample="sample" if "sample" in data.columns else None,
                                         rng=keyed_stream(run.gen, "accuracy"), n_resamples=run.nres,
                                         n_permutations=run.nperm, confidence_level=run.common["level"])
            return Section("accuracy", "Accuracy against a gold answer per culture", "",
                           verdict_rows(run.common["part"], "accuracy", acc_v, ["claim", "model", "model_b"]),
                           {"accuracy": acc}, [("Accuracy", headline(acc, ["quantity", "model", "culture"]))])

        run.add("accuracy", f"accuracy per {cult}: {run.nres} item-bootstrap resamples", build)


def _run_claims(run: AuditRun) -> None:
    """Each declared claim over every admissible specification (one keyed stream per claim text)."""
    from robustalign.resampling import keyed_stream

    claims = run.design.claim_objects()
    if any(cl.needs_reference for cl in claims) and run.reference is None:  # metric "position" claims need none
        raise RobustAlignError(f"the design declares {sum(cl.needs_reference for cl in claims)} claims, which are "
                               "judged against a human reference; give --reference (or remove the [[claims]]).")
    if not claims:
        run.not_run.append(("claims", "no claims declared ([[claims]] in the design file)"))
        return
    cg = [keyed_stream(run.streams["claims"], "claim", cl.text) for cl in claims]  # not by position
    for i, (cl, g) in enumerate(zip(claims, cg), 1):
        run.add(f"claim_{i}", f"claim {i} of {len(claims)}: '{cl.text}' over every specification",
                partial(with_notes, _claim_section, run.responses, run.reference, cl, i, g, **run.common))


def _run_bayes(run: AuditRun, factors: list[str]) -> None:
    design = run.design
    if design.bayes.get("fit", False) and run.reference is None:
        raise RobustAlignError("[bayes] fit = true needs a human reference; give --reference or set fit = false.")
    if design.bayes.get("fit", False):
        run.add("bayes", "Bayesian model: compiling and sampling (this takes minutes)",
                partial(with_notes, _bayes_section, run.responses, run.reference, design, factors,
                        run.streams["bayes"], **run.common))
    else:
        run.not_run.append(("Bayesian model", "not requested (set [bayes] fit = true in the design file); every "
                                              "interval in this report is from resampling"))


def _assemble(responses, reference, design, record, sections, not_run, fits, pr, part_name, title, prefix, nres,
              nperm, level, against) -> AuditReport:
    """The report of one part: its sections, exclusions, settings, hashes and step times."""
    data = responses.data
    excl = (responses.exclusions if reference is None else responses.exclusions.merged(reference.exclusions)).to_frame()
    desc = (f"{len(data):,} stored answers ({responses.kind}) of {len(responses.models)} models to "
            f"{len(responses.items)} items; design factors {list(responses.factors)}; "
            + ("no human reference." if reference is None else
               f"human reference with {len(reference.groups)} groups ({', '.join(map(str, reference.groups[:12]))}"
               f"{', ...' if len(reference.groups) > 12 else ''})."))
    settings = {"seed": record.to_dict(), "n_resamples": nres, "n_permutations": nperm, "confidence_level": level,
                "metrics": list(design.metrics), "against": against, "design_file": design.source}
    hashes = {"responses": responses.data_hash(), "reference": None if reference is None else reference.data_hash()}
    p = AuditPart(part_name, desc, sections, excl, hashes, settings, not_run, fits, pr.timings, prefix)
    prov = {"versions": package_versions(bool(fits)), "parts": [{"title": part_name, **settings, "data_hash": hashes}]}
    return AuditReport(title or design.title or part_name, [p], prov)


# --------------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------------
ONE_ITEM = ("only one item: every interval and test in robustalign resamples items (the sampled units), so "
            "one item gives no interval, no p-value and no verdict; audit at least 2 items (better 30 or more)")


def _one_item_section(responses, reference, design, against, gen, *, part, n_resamples, n_permutations, level):
    """Alignment of a one-item audit: the point estimates, and why there is no interval or verdict."""
    from robustalign.scoring import alignment

    frames, skipped = [], []
    for m in design.metrics:
        try:
            with warnings.catch_warnings():  # the resamples of one item are that item: nothing to warn about
                warnings.simplefilter("ignore")
                res = alignment(responses, reference, metric=m, against=against, group_map=design.group_map,
                                n_resamples=2, confidence_level=level, rng=gen, estimand="plug-in")
        except (ValueError, IndexError, RobustAlignError) as e:  # e.g. Spearman on a nominal item
            skipped.append(f"{m}: {e}")
            continue
        f = res.to_frame(method="percentile")
        f[["std_error", "conf_low", "conf_high", "conf_low_mcse", "conf_high_mcse"]] = np.nan
        f.insert(0, "metric", m)
        frames.append(f)
    tab = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    keys = [c for c in ["metric", "model", against, "group"] if c and c in tab]
    disp = [("Alignment on the one item (point estimates)", pd.DataFrame({
        **{k: tab[k].astype(str) for k in keys},
        "estimate": [ci(e, np.nan, np.nan, reason="one item") for e in tab.get("estimate", [])]}))] if len(tab) \
        else []
    return Section("alignment", "Alignment (one item: no interval possible)", f"No interval: {ONE_ITEM}.", None,
                   {"alignment": tab} if len(tab) else {}, disp, [],
                   notes=[f"No interval is possible: {ONE_ITEM}."]
                   + [f"No point estimate for metric {x}" for x in skipped])


def _alignment_section(responses: Responses, reference: Reference, design: AuditDesign, against: str | None,
                       gen: np.random.Generator, *, part: str, n_resamples: int, n_permutations: int,
                       level: float) -> Section:
    """Alignment of every model with every group, ranks and pairwise flips; the closest-model verdicts
    come from :func:`robustalign.claims.ranking.closest_model_verdicts`."""
    from robustalign.claims.ranking import closest_model_verdicts

    asked = [m for m in design.metrics if not (m == "spearman" and responses.kind != "score" and not all(
        reference.scales[i].ordinal for i in responses.items))]
    results, tables, not_estimable = _alignment_results(responses, reference, design, against, gen, asked,
                                                        n_resamples=n_resamples, level=level)
    substituted = [m for m in results if m not in asked]
    metrics = list(results)
    tab = tables["alignment"]
    m0 = metrics[0]  # verdicts: is the closest model identified, per group (first metric)?
    rows = closest_model_verdicts(results[m0], tables["alignment_ranks"].query("metric == @m0"),
                                  tab[tab["metric"] == m0], metric=m0, n_items=len(responses.items),
                                  confidence_level=level)
    verdicts = verdict_rows(part, "closest model", rows, ["group"])
    key_cols = [c for c in ["model", against, "group"] if c]
    display = [(f"Alignment ({m}) per model x group", headline(tab[tab["metric"] == m], key_cols))
               for m in metrics]
    display.append(_rank_display(tables["alignment_ranks"], m0))
    figs = _alignment_figures(responses, results, against, level, pairs="alignment_pairwise" in tables)
    intro = (f"Alignment of each model's answers with the human answers, per {'prompt ' + against if against else 'group'}"
             f"; {', '.join(metrics)}; items are resampled as a sample of possible items ({n_resamples} resamples). "
             "Each score estimates the alignment of the model's answer distribution (what it would answer given "
             "unlimited samples), corrected for the number of answers per cell"
             + (" (Spearman of means is not corrected: attenuated toward 0)" if "spearman" in metrics else "")
             + "."
             + "".join(f" Not reported: metric {m!r} is not estimable for the answer distribution (too few "
                       "answers per cell)." for m in not_estimable)
             + "".join(f" Reported instead: {m!r}, which is estimable from these answers ("
                       + ("exactly unbiased from 2 answers per cell" if m == "brier" else "linear, unbiased from one")
                       + ")." for m in substituted))
    return Section("alignment", "Alignment and ranking of models", intro, verdicts, tables, display, figs,
                   results=results)


def _alignment_results(responses: Responses, reference: Reference, design: AuditDesign, against: str | None,
                       gen: np.random.Generator, metrics: list[str], *, n_resamples: int,
                       level: float) -> tuple[dict[str, Any], dict[str, pd.DataFrame], dict[str, str]]:
    """The alignment result of each estimable metric (one keyed stream each), the section's tables, and
    the metrics that are not estimable with the reason. With none of the asked metrics estimable, the
    first estimable fallback (Brier, agreement) is reported instead."""
    from robustalign.resampling import keyed_stream
    from robustalign.scoring import alignment

    seeds = [keyed_stream(gen, "alignment", m) for m in metrics]  # a metric's numbers do not depend on the others
    results: dict[str, Any] = {}
    frames: list[pd.DataFrame] = []
    ranks: list[pd.DataFrame] = []
    pairs: list[pd.DataFrame] = []
    not_estimable: dict[str, str] = {}
    todo = list(zip(metrics, seeds))
    fallback = [m for m in ("brier", "agreement") if m not in metrics]  # unbiased from 2 and from 1 answer
    for m, g in todo:  # `todo` grows by one fallback metric when none of the asked ones is estimable
        try:  # the answer-distribution estimand (metrics corrected for the answers per cell)
            res = alignment(responses, reference, metric=m, against=against, group_map=design.group_map,
                            n_resamples=n_resamples, confidence_level=level, rng=g)
        except ValueError as e:
            if "not estimable" not in str(e):
                raise
            not_estimable[m] = str(e)  # said in the section's introduction, never a biased number
            if m == todo[-1][0] and not results and fallback:
                todo.append((fallback[0], keyed_stream(gen, "alignment", fallback[0])))
                fallback.pop(0)
            continue
        results[m] = res
        f, rk, pf = _metric_tables(res, m, pairwise=responses.data["model"].nunique() >= 2)
        frames.append(f)
        ranks.append(rk)
        if pf is not None:
            pairs.append(pf)
    if not results:  # no metric estimable: the first metric's message says why and what to do
        raise ValueError(next(iter(not_estimable.values())))
    tables = {"alignment": pd.concat(frames, ignore_index=True), "alignment_ranks": pd.concat(ranks, ignore_index=True)}
    if pairs:
        tables["alignment_pairwise"] = pd.concat(pairs, ignore_index=True)
    return results, tables, not_estimable


def _metric_tables(res: Any, m: str, *, pairwise: bool,
                   within: str = "group") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """One metric's rows of the alignment, rank and pairwise tables (pairwise only with 2+ models)."""
    f = res.to_frame()
    f.insert(0, "metric", m)
    rk = res.ranks(within=within)  # same row order as to_frame(): both follow the result's labels
    rk.insert(0, "metric", m)
    rk.insert(rk.columns.get_loc("estimate") + 1, "conf_low", f["conf_low"].to_numpy())
    rk.insert(rk.columns.get_loc("conf_low") + 1, "conf_high", f["conf_high"].to_numpy())
    rk = rk.rename(columns={"conf_level": "rank_conf_level"})
    rk["conf_level"] = f["conf_level"].to_numpy()
    if not pairwise:
        return f, rk, None
    pw = res.pairwise("model", within=within)
    pf = pw.to_frame()
    pf.insert(0, "metric", m)
    pf["p_flip"] = pw.flip_probability()["p_flip"].to_numpy()
    return f, rk, pf


def _rank_display(ranks: pd.DataFrame, m0: str) -> tuple[str, pd.DataFrame]:
    """The rank table of the first metric, for reading: rank [interval] and P(rank 1)."""
    from robustalign.claims.ranking import int_or_na

    rkd = ranks.query("metric == @m0").copy()
    rkd["rank [interval]"] = [f"{int_or_na(a)} [{int_or_na(b)}, {int_or_na(c)}]" for a, b, c in
                              zip(rkd["rank"], rkd["rank_low"], rkd["rank_high"])]
    rkd["P(rank 1)"] = rkd["p_top"].map(lambda x: f"{x:.2f}")
    rkd = rkd.sort_values(["group", "rank", "rank_low"], kind="stable")  # numeric order, not 1, 10, 11, 2, ...
    return (f"Ranks ({m0}) within each group", rkd[["group", "model", "rank [interval]", "P(rank 1)"]]
            .reset_index(drop=True))


def _alignment_figures(responses: Responses, results: dict[str, Any], against: str | None, level: float, *,
                       pairs: bool, within: str = "group") -> list[FigureSpec]:
    """Forest plot per metric; rank caterpillar and flip heatmaps of the first metric (2+ models)."""
    figs = []
    one_model = responses.data["model"].nunique() < 2
    row = against if one_model and against else "model"
    for m in results:
        figs.append(FigureSpec(f"alignment_forest_{m}", f"Alignment ({m}) of each {row} with "
                               f"{'its' if against else 'each'} human group, {level:.0%} cluster-bootstrap "
                               "intervals over items.",
                               partial(_forest_figure, results[m], row, _METRIC_LABEL.get(m, m))))
    m0 = next(iter(results))
    res0 = results[m0]
    if not one_model:
        figs.append(FigureSpec(f"alignment_ranks_{m0}", f"Rank of each model within each group ({m0}), with "
                               f"{level:.0%} bootstrap rank intervals.",
                               partial(_rank_figure, res0, within)))
    if pairs:
        figs.append(FigureSpec(f"alignment_flip_{m0}", "Probability that the order of two models flips under "
                               f"resampling of items ({m0}), per group.",
                               partial(_flip_grid, res0, within)))
    return figs


def _forest_figure(res: Any, row: str, xlabel: str) -> Any:
    return _plots().plot_alignment_forest(res, row=row, xlabel=xlabel)


def _rank_figure(res: Any, within: str) -> Any:
    return _plots().plot_rank_caterpillar(res, within=within)


def _flip_grid(res, within):
    import matplotlib.pyplot as plt

    from robustalign.plots._style import DOUBLE_COLUMN, RC

    groups = list(dict.fromkeys(res.labels[within]))
    f = res.to_frame()
    order = list(f.groupby("model", sort=False)["estimate"].mean().sort_values(ascending=False).index)
    n = len(groups)
    ncol = min(n, 2)
    nrow = int(np.ceil(n / ncol))
    import matplotlib as mpl

    with mpl.rc_context(RC):
        fig, axes = plt.subplots(nrow, ncol, figsize=(DOUBLE_COLUMN, 3.3 * nrow), layout="constrained",
                                 squeeze=False)
    for ax, g in zip(axes.ravel(), groups):
        _plots().plot_flip_heatmap(res, ax=ax, **{within: g}, colorbar=False, order=order)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    im = axes.ravel()[0].images[0] if axes.ravel()[0].images else None
    if im is not None:
        cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6)
        cb.set_label("P(order flips)", fontsize=7)
        cb.ax.tick_params(labelsize=6)
    return fig


def _wide_axes(height: float):
    """Axes of a double-column figure in the house style (for figures with many labelled columns)."""
    from robustalign.plots._style import DOUBLE_COLUMN, new_axes

    return new_axes(None, width=DOUBLE_COLUMN * 0.8, height=height)[1]


def _plots():
    import robustalign.plots as p

    return p


def margin_source(design, reference) -> str | None:
    """Where the stability margin comes from, in words (None: no margin)."""
    return ("the margin given in the design file" if design.stability.get("margin") is not None else
            "the human between-group SD" if reference is not None else None)


def _stability_words(v: pd.DataFrame, margin_src: str | None, alpha: float) -> pd.DataFrame:
    """A stable verdict whose effect is nonetheless significant says so: a real but small effect."""
    if v is None or not len(v) or "p_adjusted" not in v:
        return v
    v = v.copy()
    spread = ("the human between-group spread" if margin_src == "the human between-group SD" else
              "the margin given in the design file")
    p = pd.to_numeric(v["p_adjusted"], errors="coerce")
    small = (v["verdict"] == "supported") & (p < alpha)
    v.loc[small, "reason"] = v.loc[small, "reason"].str.replace(
        ": stable:", f": stable - a real but small effect: smaller than {spread}:", n=1, regex=False)
    return v


def _stability_section(responses, reference, design, factors, gen, *, part, n_resamples, n_permutations, level,
                       progress=None):
    from robustalign.claims import assess_stability

    skip = design.stability.get("skip", ["agreement"])
    res = assess_stability(responses, reference, factors=factors, n_resamples=n_resamples,
                           n_permutations=n_permutations, confidence_level=level, skip=skip, rng=gen,
                           margin=design.stability.get("margin"), flip_margin=design.stability.get("flip_margin"),
                           sequential=design.stability.get("sequential", False), progress=progress)  # a line per unit x factor: no long silence on big data
    f = res.to_frame()
    by = res.provenance["by"]
    verdicts = verdict_rows(part, "stability", _stability_words(_key_numbers(res.verdicts, f, [by, "factor"],
                                                                       "factor_effect"), margin_source(design, reference),
                                                        1 - level),
                      [by, "factor"], column_keys=["factor"])
    margin_src = margin_source(design, reference)
    disp = [(f"Factor effects (average) and item-level effects{' against ' + margin_src if margin_src else ''}",
             headline(f[f["quantity"].isin(["factor_effect", "item_level_sd", "human_between_group_sd"])],
                       [by, "factor", "quantity"], ["p_adjusted"])),
            ("Modal flip rates between levels against their noise floor (expected flip rate under no effect at "
             "the sampled answers per cell)",
             headline(f[f["quantity"].isin(["flip_rate_mean", "flip_noise_floor", "retest_flip_rate"])],
                       [by, "factor", "quantity"], ["p_value"]))]
    figs = [FigureSpec("stability_factor_effects", "Each model's factor effect with its interval against the "
                       "margin (grey: ± the margin for a difference of two levels, [0, margin] for an SD across "
                       "levels).", lambda: _plots().plot_factor_effects(res)),
            FigureSpec("stability_flip_rates", "Share of items whose modal answer flips between levels, with "
                       "intervals, against the noise floor of the same statistic at the same number of answers "
                       "per cell (grey bar: 2.5-97.5% of the flip rate under no effect); open markers: "
                       "single-answer test-retest flips.", lambda: _plots().plot_flip_rates(res))]
    pb = f[f["quantity"] == "position_bias"]
    if len(pb):
        disp.insert(1, ("Position bias (change in an option's share when it is shown first / last rather than "
                        "elsewhere) - not the same as the content-order effect above (shift of mean canonical "
                        "position)", headline(pb, [by, "factor", "position"], ["p_value"])))
        figs.append(FigureSpec("stability_position_bias", "Position bias (first shown option) beside the "
                               "content-order effect (shift of mean canonical position), per model.",
                               lambda: _plots().plot_position_bias(res)))
    rule = (f"by equivalence tests (TOST) against {margin_src}, for the average effect and the item-level effect"
            if margin_src else
            f"from the modal flip rate against its noise floor + flip_margin = "
            f"{design.stability['flip_margin']}" if design.stability.get("flip_margin") is not None else
            "without a margin: a detectable change is 'not supported', no detectable change is 'inconclusive' "
            "(set [stability] margin or flip_margin for equivalence verdicts)")
    intro = f"Do the answers stay put when only {', '.join(factors)} changes? Verdicts {rule}."
    notes = []
    if skip:
        notes.append(f"Left out for speed: {', '.join(skip)} (set [stability] skip = [] to include).")
    return Section("stability", "Stability across the design factors", intro, verdicts, {"stability": f}, disp,
                   figs, results={"stability": res}, notes=notes)


def _steering_steps(run: AuditRun, steer_col: str) -> None:
    """Steerability as steps: the full assessment, and each metric of the paired comparison on its own
    (the comparison's streams are keyed by metric, so splitting changes no number)."""
    msg = f"steerability ({steer_col}): {run.nres} resamples, {run.nperm} permutations"
    g_full, g_cmp = run.streams["steerability"].spawn(2)
    args = (run.responses, run.reference, run.design, steer_col)
    run.add("steerability", msg, partial(with_notes, _steering_sections, *args, g_full, compare_metrics=[],
                                         **run.common))
    for m in _compare_metrics(run.design.steering):
        run.add(f"steering_comparison_{m}", f"steering comparison ({m}): {run.nres} resamples",
                partial(with_notes, _steering_sections, *args, g_cmp, full=False, compare_metrics=[m],
                        **run.common))


def _compare_metrics(st: dict) -> list[str]:
    if not st.get("compare"):
        return []
    metric = st.get("metric", "js")
    mets = [st.get("compare_metric", metric)]
    return mets + ([metric] if metric not in mets else [])


def _steering_sections(responses, reference, design, steer, gen, *, part, n_resamples, n_permutations, level,
                       full=True, compare_metrics=None):
    """The steerability section (``full``; ``gen`` is its stream) or the paired comparison's sections
    of ``compare_metrics`` (``gen`` is the comparison's stream, keyed by metric)."""
    from robustalign.claims import assess_steerability
    from robustalign.resampling import keyed_stream

    st = design.steering
    by = list(st.get("by", ["model"]))
    baseline = st.get("baseline")
    metric = st.get("metric", "js")
    out = []
    g_full = g_cmp = gen
    targets = [v for v in responses.levels(steer) if str(v) != str(baseline)] if full else []
    res = None
    if len(targets) >= 2:
        try:
            res = assess_steerability(responses, reference, steer=steer, baseline=baseline, by=by, metric=metric,
                                      group_map=st.get("group_map"), confidence_level=level,
                                      n_resamples=n_resamples, n_permutations=n_permutations, rng=g_full)
        except ValueError as e:
            if "not estimable" not in str(e):
                raise
            res = None
            out.append(_not_estimable_section("steerability", "Steerability", part, by, e,
                                              '[steering] metric = "agreement"'))
    if len(targets) >= 2 and res is not None:
        f = res.to_frame()
        q = ["gain_mean", "specificity_mean", "identification_auc", "exaggeration_slope_pooled",
             "structure_mantel_r"]
        disp = [("Steering: headline quantities", headline(f[f["quantity"].isin(q)], [*by, "quantity"],
                                                             ["p_adjusted"]))]
        cells = res.verdicts[by].drop_duplicates().to_dict("records")
        figs = [FigureSpec(f"steering_matrix_{i + 1}", "Steering matrix of " + ", ".join(f"{k} = {v}" for k, v in
                           c.items()) + ": mean similarity of the answers under each steering prompt (rows) to "
                           "each human group (columns); the diagonal outlined; specificity with its interval "
                           "on the axis above each column.",
                           lambda c=c, r=res: _plots().plot_steering_matrix(r, ax=_wide_axes(3.4), **c))
                for i, c in enumerate(cells[:8])]
        if res.provenance.get("gain_available"):
            figs.append(FigureSpec("steering_gains", "Gain in alignment over the unsteered prompt per target, "
                                   "with intervals.", lambda r=res: _plots().plot_steering_gains(r)))
        intro = (f"Does a steering prompt ({steer}) move the answers toward the named group, and only that group? "
                 + ("Gains are over the unsteered prompt." if res.provenance.get("gain_available") else
                    "There is no unsteered prompt, so gains are undefined; specificity compares the target's prompt "
                    "with other targets' prompts."))
        out.append(Section("steerability", "Steerability", intro, verdict_rows(part, "steerability",
                           _key_numbers(res.verdicts, f, by, "specificity_mean"), by),
                           {"steerability": f}, disp, figs, results={"steerability": res}))
    if st.get("compare"):
        col, a, b = st["compare"]
        mets = _compare_metrics(st) if compare_metrics is None else compare_metrics
        for m, g in [(m, keyed_stream(g_cmp, "steering comparison", m)) for m in mets]:
            res = assess_steerability(responses, reference, steer=steer, baseline=baseline, by=by, metric=m,
                                      group_map=st.get("group_map"), compare=(col, a, b), confidence_level=level,
                                      n_resamples=n_resamples, n_permutations=n_permutations, rng=g)
            f = res.to_frame()
            name = f"steering_comparison_{m}"
            disp = [(f"{a} vs {b} steering ({m})", headline(f, [*by, "quantity"], ["p_value", "p_adjusted"]))]
            figs = [FigureSpec(name, f"Alignment under {a} minus {b} steering ({m}) per cell, with intervals.",
                               lambda r=res: _plots().plot_steering_gains(r))]
            intro = (f"Paired comparison: does steering toward {a} targets align better than toward {b} targets "
                     f"({col}), item by item, on {m}?")
            out.append(Section(name, f"Steering: {a} vs {b} ({m})", intro,
                               verdict_rows(part, f"{a} vs {b} steering ({m})",
                                      _key_numbers(res.verdicts, f, by, [q for q in f["quantity"].unique()
                                                                         if str(q).endswith("difference")]), by), {name: f}, disp, figs,
                               results={name: res}))
    return out


def _not_estimable_section(key, title, part, by, err, fix) -> Section:
    """A section that says why its assessment was not run (a nonlinear metric from too few answers per cell)
    instead of reporting a number biased by the number of answers."""
    return Section(key, title, f"Not estimated: {err} In the design file, {fix} gives a metric that is.",
                   verdict_rows(part, title, None, by), notes=[str(err)])


def item_domains(design: Any, responses: Any, reference: Any, item_table: pd.DataFrame | None) -> Any:
    d = design.domains
    if not d:
        return None
    items = list(responses.items)
    if "prefix" in d:
        n = int(d["prefix"])
        return {i: i[:n] for i in items}
    if "map" in d:
        return {str(k): str(v) for k, v in d["map"].items()}
    table = item_table if item_table is not None else getattr(reference, "items_info", None)
    col = d["column"]
    if table is None or col not in table:
        raise RobustAlignError(f"[domains] column = {col!r}: no item table with that column (give the scales file "
                               "with a domain column, or use [domains] prefix/map).")
    return {str(k): str(v) for k, v in zip(table["item"], table[col]) if pd.notna(v)}


def _transfer_numbers(verdicts, f, by):
    """The verdict's key number: the transfer gap to humans over all domain pairs, with the transfer test's p."""
    allp = f[f["domain_a"].astype(str) == "all pairs"] if "domain_a" in f else f
    v = _key_numbers(verdicts, allp, by, "transfer_delta")
    return _key_numbers(v, allp, by, "transfer_r")


def _extrapolability_section(responses, reference, design, domains, against, gen, *, part, n_resamples,
                             n_permutations, level):
    from robustalign.claims import assess_extrapolability

    kw = {}
    if "min_domain_items" in design.extrapolability:
        kw["min_domain_items"] = int(design.extrapolability["min_domain_items"])
    res = assess_extrapolability(responses, reference, domains=domains, confidence_level=level,
                                 n_resamples=n_resamples, n_permutations=n_permutations, rng=gen,
                                 n_splits=200, **kw)
    f = res.to_frame()
    by = res.provenance.get("by", ["model"]) if isinstance(res.provenance.get("by"), list) else ["model"]
    sel = f[f["quantity"].isin(["transfer_delta", "split_half_reliability", "reliability_delta"])]
    keys = [c for c in [*by, "subject", "domain_a", "domain_b", "quantity"] if c in f.columns]
    disp = [("Transfer and reliability against humans", headline(sel, keys, ["p_adjusted"]))]
    figs = []
    if res.plotter is not None:
        figs.append(FigureSpec("extrapolability", "Transfer of alignment across held-out domains and split-half "
                               "reliability, models against the humans-as-models benchmark.", lambda: res.plot()))
    ndom = len(set(domains.values()))
    intro = (f"Does alignment measured on one domain of items carry over to held-out domains ({ndom} domains), "
             "as it does for human groups?")
    return Section("extrapolability", "Extrapolability to held-out items", intro,
                   verdict_rows(part, "extrapolability", _transfer_numbers(res.verdicts, f, by), by), {"extrapolability": f}, disp, figs,
                   results={"extrapolability": res})


def _validity_section(responses, factors, *, part, n_resamples, n_permutations, level):
    from robustalign.validity import validity_rates

    cond = factors[0] if factors else None
    res = validity_rates(responses, by=("model",), condition=cond, confidence_level=level)
    f = res.to_frame()
    disp = [("Valid-answer rate per cell", headline(f, ["model", *([cond] if cond else [])], ["n"]))]
    figs = [FigureSpec("validity", "Share of answers the parser could read as exactly one option, with Wilson "
                       "intervals.", lambda: _plots().plot_rates(res))]
    notes = [res.summary()]
    tables = {"validity": f}
    if len(res.tests):
        tables["validity_tests"] = res.tests
    return Section("validity", "Validity of the parsed answers", "Refusals, unparseable and ambiguous answers are "
                   "counted, never imputed.", None, tables, disp, figs, results={"validity": res}, notes=notes)


def _claim_section(responses, reference, claim, i, gen, *, part, n_resamples, n_permutations, level):
    from robustalign.claims import audit_claim

    res = audit_claim(responses, reference, claim, confidence_level=level, n_resamples=n_resamples,
                      n_permutations=n_permutations, rng=gen)
    f = res.to_frame()
    v = res.verdicts.copy()
    v["claim"] = claim.text
    joint = res.evidence.get("joint", {})
    v["estimate"] = joint.get("median_effect", np.nan)  # median margin across specifications
    v["p_value"] = joint.get("p_median_greater", np.nan)  # the joint test in the claimed direction
    verdicts = verdict_rows(part, f"claim {i}", v, ["claim"])
    keys = [c for c in f.columns if c in res.evidence["specifications"].columns]
    best = f.sort_values("estimate")
    disp = [(f"Claim {i}: the specifications with the lowest and highest margins",
             headline(pd.concat([best.head(3), best.tail(3)]), keys, ["p_adjusted"]))]
    name = f"claim_{i}"
    figs = [FigureSpec(f"{name}_specification_curve", f"Specification curve of claim {i} ('{claim.text}'): the "
                       "claim's margin with its interval under every admissible specification, sorted; the choices "
                       "below.", lambda: res.plot())]
    return Section(name, f"Claim {i}: {claim.text}", f"The claim '{claim.text}' evaluated under every admissible "
                   "specification (factor levels, pooling, metric, aggregation), with a joint test across them.",
                   verdicts, {f"{name}_specifications": f}, disp, figs, results={name: res})


def association_section(result, *, part: str = "", key: str = "correlation") -> Section:
    """A report section from an ``audit_correlation`` / ``audit_tradeoff`` result (estimates, units, verdict)."""
    from robustalign.claims.association import report_rows

    disp, verdicts = report_rows(result, part=part, assessment=key)
    units = result.evidence["units"]
    claim = result.verdicts["claim"].iloc[0]
    return Section(key, f"Correlation across units: {claim}", "The correlation of the units' true scores, "
                   "corrected for each unit's measurement error, with a permutation test and the units needed.",
                   verdicts, {f"{key}_estimates": result.to_frame(), f"{key}_units": units,
                              f"{key}_power": result.evidence["power"]},
                   [("Correlation estimates", headline(disp, ["quantity", "method"], ["p_value"])),
                    ("Both quantities per unit", units.round(3))], results={key: result})


def _bayes_section(responses, reference, design, factors, gen, *, part, n_resamples, n_permutations, level):
    from robustalign.models import fit_response_model, fit_score_model

    b = design.bayes
    kind = b.get("model", "auto")
    if kind == "auto":
        kind = "score" if responses.kind == "score" else "response"
    fitter = fit_score_model if kind == "score" else fit_response_model
    kw = dict(draws=int(b.get("draws", 500)), tune=int(b.get("tune", 500)), chains=int(b.get("chains", 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fitter(responses, reference, factors=factors or None, rng=gen, **kw)
    vs = fit.variance_shares(level)
    tables = {"bayes_variance_shares": vs, "bayes_parameters": fit.to_frame(level),
              "bayes_diagnostics": fit.diagnostics}
    if fit.design.groups:
        # the evaluated items, and (with the joint human model) new items from the fitted population
        al = [fit.alignment(level)]
        if fit.kind == "ordinal" and fit.design.human_counts is not None:
            al.append(fit.alignment(level, scope="population", rng=gen))
        tables["bayes_alignment"] = pd.concat(al, ignore_index=True)
    rows = []
    if not fit.converged:
        rows.append({"unit": "Bayesian model", "verdict": "inconclusive", "n_needed": np.nan,
                     "reason": f"Bayesian {kind} model: {fit.summary()} Its numbers are not used for any verdict."})
    notes, results = [fit.summary()], {"fit": fit}
    if b.get("sensitivity", False):
        if kind == "response" and fit.kind == "ordinal" and fit.design.human_counts is not None:
            # METHODS 3.3: do the factor-vs-human ratios survive letting the models use the scale differently?
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                alt = fitter(responses, reference, factors=factors or None, rng=gen, cutpoints="offset", **kw)
            fvh = [fit.factor_vs_human(level).assign(cutpoints="shared"),
                   alt.factor_vs_human(level).assign(cutpoints="offset")]
            tables["bayes_sensitivity"] = pd.concat(fvh, ignore_index=True)
            notes.append(f"Sensitivity fit (models' own cutpoint spacing): {alt.summary()}")
            results["sensitivity_fit"] = alt
            if not alt.converged:
                rows.append({"unit": "Bayesian sensitivity model", "verdict": "inconclusive", "n_needed": np.nan,
                             "reason": f"cutpoints='offset' fit: {alt.summary()} Its numbers are not used."})
        else:
            notes.append("Sensitivity fit not run: it needs the ordinal response model with human counts.")
    verdicts = verdict_rows(part, "Bayesian model", pd.DataFrame(rows), ["unit"]) if rows else None
    si = vs[vs["component"] == "stability_index"]
    disp = [("Stability index (content share of the latent variance) per model", headline(si, ["model"]))]
    figs = [FigureSpec("bayes_variance_shares", "Share of the latent variance of each model's answers by component, "
                       f"with {level:.0%} posterior intervals.", lambda: _plots().plot_variance_shares(fit))]
    info = {"model": kind, "converged": fit.converged, "summary": fit.summary(), "gate": fit.gate,
            "diagnostics": fit.diagnostics, "settings": kw}
    return (Section("bayes", f"Bayesian {kind} model", f"Hierarchical {kind} model with crossed item, model and "
                    "design-factor effects (robustalign.models).", verdicts, tables, disp, figs,
                    results=results, notes=notes), info)


# --------------------------------------------------------------------------------------------------
# the bundled example
# --------------------------------------------------------------------------------------------------
EXAMPLE_MAIN: dict[str, Any] = {
    "title": "Cultural alignment of nine LLMs in four languages (Rystrøm et al. 2025 data)",
    "metrics": ["spearman", "js"],
    "alignment": {"against": "language"},
    "domains": {"prefix": 1},
    "claims": [
        {"kind": "closer", "model": "gpt-4o", "than": "gemma-2-27b-it", "group": "en"},
        {"kind": "closer", "model": "gemma-2-27b-it", "than": "gemma-2-2b-it", "group": "da",
         "text": "the larger gemma-2-27b-it is closer to Danish respondents than gemma-2-2b-it"},
    ],
}
EXAMPLE_STEERING = {
    "metrics": ["js"],
    "alignment": {"against": "steer_target"},
    "stability": {"enabled": False},
    "steering": {"column": "steer_target", "by": ["model", "language"],
                 "compare": ["congruent", "congruent", "incongruent"], "compare_metric": "spearman"},
}


def example_data() -> Any:
    """The bundled multicultural-alignment data, read once per process (the audit and the command that
    prints it share one copy)."""
    from robustalign.datasets import load_multicultural_alignment

    if "data" not in _EXAMPLE:
        _EXAMPLE["data"] = load_multicultural_alignment()
    return _EXAMPLE["data"]


_EXAMPLE: dict[str, Any] = {}


def run_example_audit(*, rng: RngLike = 0, n_resamples: int = 2000, n_permutations: int = 2000,
                      progress: Callable[[str], None] | None = None, workers: int | None = None,
                      figure_formats: Sequence[str] | None = None) -> AuditReport:
    """The audit of the bundled multicultural-alignment data (``robustalign audit --example``).

    Part A: nine models answering 32 World Values Survey items in four prompt languages, each compared
    with the human answers of its language (alignment, ranking, stability across prompt language,
    extrapolability across WVS blocks, two "closer" claims). Part B: the steering experiment (gemma-2-27b-it
    told its respondents are from one of ten countries), against the country reference: steering
    specificity and the published congruent-vs-incongruent comparison, per prompt language.

    The steps of both parts run together (``workers``, ``figure_formats``: see :func:`run_audit`).
    """
    from robustalign.report._steps import execute

    if progress:
        progress("loading the bundled multicultural-alignment data")
    t0 = time.perf_counter()
    data = example_data()
    load_s = round(time.perf_counter() - t0, 2)
    from robustalign.resampling import keyed_stream

    g_a, g_b = keyed_stream(rng, "audit", "part A"), keyed_stream(rng, "audit", "part B")
    d_main = AuditDesign.from_dict({**EXAMPLE_MAIN, "seed": rng, "n_resamples": n_resamples,
                                    "n_permutations": n_permutations}, source="--example (part A)")
    d_steer = AuditDesign.from_dict({**EXAMPLE_STEERING, "seed": rng, "n_resamples": n_resamples,
                                     "n_permutations": n_permutations}, source="--example (part B)")
    common: dict[str, Any] = dict(n_resamples=None, n_permutations=None, progress=progress, title=None,
                                  item_table=None, persona=None)
    a = _plan_audit(data.responses, data.reference_language, design=d_main, rng=g_a, prefix="", **common,
                    part="A. Nine models in four prompt languages, against each language's humans")
    b = _plan_audit(data.steering, data.reference_country, design=d_steer, rng=g_b, prefix="steering_", **common,
                    part="B. Steering experiment (gemma-2-27b-it), against each country's humans")
    a.pr.timings["loading the data"] = load_s
    info = execute([a, b], workers=workers, figure_formats=figure_formats)
    rep = a.finish().combine(b.finish(), title=EXAMPLE_MAIN["title"])
    rep.provenance["data"] = data.citation
    rep.provenance["seed"] = rng
    rep.provenance["execution"] = info
    return rep
