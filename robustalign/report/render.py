"""Render an :class:`~robustalign.report.audit.AuditReport`: self-contained HTML, Markdown, CSVs, figures.

The HTML embeds every figure as a base64 PNG and its style inline, so it opens offline and can be
mailed as one file. Figures are also written as PNG (SVG and PDF copies on request) next to it, tables as
CSV with the statistics modules' own ``to_frame()`` columns (``estimate, conf_low, conf_high, conf_level``, ...).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import json
import os
import re
import shutil
import signal
import tempfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from robustalign._errors import RobustAlignError
from robustalign.export import csv_safe
from robustalign.report.words import OUTCOME, fmt_interval, glossary_for, needed_text

WORDS = {k: v.capitalize() for k, v in OUTCOME.items()}
ORDER = ["supported", "not supported", "inconclusive"]
#: What the number in a summary-grid cell is, by the start of the assessment's name.
KEY_NUMBER = {
    "closest model": "alignment of the first-ranked model with that group",
    "stability": "the factor effect: SD across levels of the model's mean answer position",
    "extrapolability": "transfer gap to humans: model minus human Spearman r over all domain pairs",
    "steerability": "mean specificity of the steering prompts",
    "claim": "median margin of the claim across specifications (no interval; p of the joint test)",
    "Bayesian": "no single number; see the convergence diagnostics",
}
#: An assessment with at least this many verdicts is shown as one table rather than one card each.
TABLE_FROM = 4

MANIFEST_MARK = {"tool": "robustalign", "manifest": 1}
#: Files every report has; an existing one that no robustalign run recorded is never replaced.
FIXED_FILES = ("report.html", "report.md", "verdicts.csv", "provenance.json")


def check_out(out, force: bool, inputs: dict | None = None) -> Path:
    """Refuse an ``out`` the report cannot be written to, before the audit runs.

    Refused: an ``out`` that is, or contains, one of the ``inputs`` (``{"responses": path, ...}``);
    an ``out`` that is a file; a missing or unwritable parent folder; a non-empty directory unless
    ``force``; with ``force``, a report file already in ``out`` that no robustalign run recorded as its
    own. Returns the resolved path (a symbolic link given as ``out`` is followed once, here).
    """
    given = str(out)
    out = Path(out).expanduser().resolve()
    for role, f in (inputs or {}).items():
        if f is None:
            continue
        fp = Path(f).expanduser().resolve()
        if fp == out or out in fp.parents:
            what = "is" if fp == out else "contains"
            raise RobustAlignError(f"--out {given!r} {what} the {role} file {str(f)!r}; a report never shares "
                                   "a folder with its inputs, so that no run can remove or replace them. Choose "
                                   "an --out folder of its own (e.g. a new subfolder).")
    if os.path.lexists(out) and not out.is_dir():
        raise RobustAlignError(f"output path {given!r} exists and is not a directory; choose another --out.")
    if not out.parent.is_dir():
        raise RobustAlignError(f"the folder {str(out.parent)!r} that should hold --out {given!r} does not exist; "
                               "create it first or choose another --out.")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise RobustAlignError(f"output directory {given!r} exists and is not empty; choose another --out "
                                   "or pass --force to replace the files of an earlier robustalign report there.")
        _refuse_conflicts(out, list(FIXED_FILES), ["figures"], _own_files(out)[0])
    _probe_writable(out, given)
    return out


def _probe_writable(out: Path, given: str) -> None:
    """Create and remove a folder beside ``out`` (where the report is staged) and check ``out`` itself."""
    try:
        Path(tempfile.mkdtemp(prefix=f".{out.name}.robustalign-probe-", dir=out.parent)).rmdir()
    except OSError as e:
        raise RobustAlignError(f"cannot write beside --out {given!r} ({e.strerror or e}); the report is staged in "
                               f"{str(out.parent)!r} and moved into place when it is complete. Choose a "
                               "writable --out.") from None
    if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):
        raise RobustAlignError(f"output directory {given!r} is not writable; choose another --out.")


def _inside(out: Path, rel: str) -> Path | None:
    """``out / rel`` when ``rel`` is a plain relative path whose folders are real folders (no links)."""
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or any(x in ("..", ".") for x in parts):
        return None
    p = out
    for x in parts[:-1]:
        p = p / x
        if os.path.islink(p) or (os.path.lexists(p) and not p.is_dir()):
            return None
    return out / rel


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _own_files(out: Path) -> tuple[set[str], set[str]]:
    """Files and folders that an earlier robustalign run recorded in ``out/provenance.json`` as its own,
    as long as they are still regular files (not links) inside ``out`` with the recorded SHA-256 (a
    file changed since, or listed by hand, is not the run's any more). Nothing else is ever removed."""
    prov = out / "provenance.json"
    if os.path.islink(prov) or not prov.is_file():
        return set(), set()
    try:
        data = json.loads(prov.read_text(encoding="utf-8"))
    except (ValueError, OSError, UnicodeDecodeError):
        return set(), set()
    mark = data.get("written_by") if isinstance(data, dict) else None
    if not isinstance(mark, dict) or mark.get("tool") != "robustalign":
        return set(), set()
    sums = data.get("sha256") if isinstance(data.get("sha256"), dict) else {}
    listed = data.get("files") if isinstance(data.get("files"), list) else []
    files = {f for f in listed if isinstance(f, str) and isinstance(sums.get(f), str)}
    dirs = {d for d in (data.get("dirs") if isinstance(data.get("dirs"), list) else []) if isinstance(d, str)}
    own = {f for f in files if (p := _inside(out, f)) is not None and not os.path.islink(p) and p.is_file()
           and _sha256(p) == sums[f]}
    own_dirs = {d for d in dirs if (p := _inside(out, d)) is not None and not os.path.islink(p) and p.is_dir()}
    return own | {"provenance.json"}, own_dirs


def _refuse_conflicts(out: Path, files: list[str], dirs: list[str], own: set[str]) -> None:
    """Refuse when a file this run writes already exists in ``out`` and is not a recorded robustalign file,
    or a folder it writes into is a link or a file."""
    bad = [d for d in dirs if os.path.lexists(out / d) and (os.path.islink(out / d) or not (out / d).is_dir())]
    bad += [f for f in files if f not in own and (os.path.lexists(out / f) or _inside(out, f) is None)]
    if bad:
        raise RobustAlignError(
            f"--force would replace {len(bad)} file(s) in {str(out)!r} that no robustalign report recorded as its "
            f"own: {bad[:5]}. --force only replaces the files listed in the provenance.json of an earlier "
            "robustalign report, unchanged since (a report from an older robustalign has no such record: "
            "delete its files yourself once); move these away or choose another --out.")


def _needed(r) -> str:
    """The sample size an inconclusive verdict would need, formatted (with a comment when huge), or ``""``."""
    return needed_text(r["n_needed"]) if r["verdict"] == "inconclusive" else ""


def _count_line(v: pd.DataFrame) -> str:
    counts = v["verdict"].value_counts()
    return (f"{len(v)} verdicts: {counts.get('supported', 0)} supported, {counts.get('not supported', 0)} not "
            f"supported, {counts.get('inconclusive', 0)} inconclusive (cannot be judged at this sample size).")


def _groups(v: pd.DataFrame):
    """``(key, rows)`` for each kind of verdict present, in the report's order."""
    for key in ORDER:
        sub = v[v["verdict"] == key]
        if len(sub):
            yield key, sub


def _assessments(v: pd.DataFrame):
    """``(part, assessment, rows)`` in the order the audit produced them."""
    for (part, a), sub in v.groupby(["part", "assessment"], sort=False):
        yield part, a, sub


def key_number_of(assessment: str) -> str:
    for k, words in KEY_NUMBER.items():
        if str(assessment).startswith(k) or (k == "steerability" and " vs " in str(assessment)):
            return words if not (k == "steerability" and " vs " in str(assessment)) else \
                "difference in alignment between the two kinds of steering"
    return "the assessment's estimate"


def _p_text(r) -> str:
    p, pa = r.get("p_value", np.nan), r.get("p_adjusted", np.nan)
    out = [f"p = {p:.3g}" if pd.notna(p) else "", f"adjusted {pa:.3g}" if pd.notna(pa) else ""]
    return ", ".join(x for x in out if x)


def cell_text(r) -> str:
    """The number of a summary-grid cell: the estimate with its interval, or why there is none."""
    est = r.get("estimate", np.nan)
    if pd.isna(est):
        return ""
    if pd.isna(r.get("conf_low", np.nan)):
        return f"{est:.3f}" + (f" (p = {r['p_value']:.3g})" if pd.notna(r.get("p_value", np.nan)) else "")
    return fmt_interval(est, r["conf_low"], r["conf_high"])


def no_verdict_lines(report) -> list[str]:
    """For each part without any verdict, why (its assessments that did not run, with the reasons)."""
    have = set(report.verdicts["part"])
    return [f"No verdict for {p.title}: " + "; ".join(f"{a}: {why}" for a, why in p.not_run) + "."
            for p in report.parts if p.title not in have]


def grid_frames(report):
    """``(part, DataFrame of (verdict, text) cells)`` per part: rows = units, columns = assessments."""
    v = report.verdicts
    for part, sub in v.groupby("part", sort=False):
        sub = sub.assign(col=[("claims" if str(c).startswith("claim ") else c) for c in sub["grid_column"]])
        cols = list(dict.fromkeys(sub["col"]))
        rows = list(dict.fromkeys(sub["grid_row"]))
        g = pd.DataFrame(index=rows, columns=cols, dtype=object)
        for _, r in sub.iterrows():
            g.at[r["grid_row"], r["col"]] = (r["verdict"], cell_text(r))
        yield part, g


def verdict_lines(report) -> list[str]:
    """The verdicts in words, grouped: what is supported, what is not, what cannot be judged (and the n needed)."""
    v = report.verdicts
    lines = [_count_line(v)]
    for key, sub in _groups(v):
        lines.append(f"{WORDS[key].upper()} ({len(sub)}):")
        for _, r in sub.iterrows():
            need = f" [needed: about {n}]" if (n := _needed(r)) else ""
            lines.append(f"  - {r['assessment']}: {r['reason']}{need}")
    return lines


def glossary(report) -> list[str]:
    texts = list(report.verdicts["reason"]) + [s.intro for p in report.parts for s in p.sections] + \
        [t for p in report.parts for s in p.sections for t, _ in s.display]
    return glossary_for(texts)


# --------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------
def figure_of(obj):
    import matplotlib.figure

    if isinstance(obj, matplotlib.figure.Figure):
        return obj
    if isinstance(obj, np.ndarray):
        return obj.ravel()[0].figure
    if isinstance(obj, (list, tuple)):
        return obj[0].figure
    return obj.figure


def draw_figure(spec):
    """The matplotlib Figure of a report figure, as the report draws it (house style, long names cut)."""
    import matplotlib

    from robustalign.plots._style import RC, fit_to_texts, shorten_labels

    with matplotlib.rc_context(RC):
        return fit_to_texts(shorten_labels(figure_of(spec.draw())))  # long names cut; tables keep them


def _render_figures(report, fig_dir: Path, progress, formats=None) -> dict:
    """Draw every figure once; write PNG and the vector copies asked for (report/_figures.py)."""
    from robustalign.report._figures import check_figure_formats, render_figures

    return render_figures(report, fig_dir, progress, check_figure_formats(formats))


# --------------------------------------------------------------------------------------------------
# markdown
# --------------------------------------------------------------------------------------------------
_MD_BOUNDARY_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_MD_BLOCK_START = re.compile(r"^(\d*)([-+*#>=.)])")


def md_escape(x, *, alt: bool = False) -> str:
    """Text of a name or message for Markdown: one line, no HTML, no links, no emphasis.

    Line breaks become spaces; ``&``, ``<``, ``>`` become entities (no raw HTML or autolinks);
    backslash, backtick, ``*``, ``~`` and ``|`` are backslash-escaped, ``_`` where it could start or
    end emphasis (``model_1`` stays as it is), ``]`` before ``(`` or ``[`` (no links or images), and
    with ``alt`` (image alt text) every bracket.
    """
    s = " ".join(str(x).splitlines())
    s = html.escape(s, quote=False)
    s = re.sub(r"([\\`*~|])", r"\\\1", s)
    s = _MD_BOUNDARY_UNDERSCORE.sub(r"\\_", s)
    if alt:
        return re.sub(r"([\[\]])", r"\\\1", s)
    return re.sub(r"\](?=[(\[])", r"\\]", s)


def _md_block(x) -> str:
    """:func:`md_escape` for text that starts a paragraph: its first characters cannot make a heading,
    a list, a quote or a code block."""
    s = md_escape(x).strip()
    return _MD_BLOCK_START.sub(r"\1\\\2", s, count=1)


def _cell(x) -> str:
    """A table cell as text: a missing number is an empty cell, never ``nan``."""
    if x is None or (isinstance(x, (float, np.floating)) and not np.isfinite(x)) or x is pd.NA or x is pd.NaT:
        return ""
    t = str(x)
    return "" if t.strip().lower() in ("nan", "<na>", "none", "nat") else t


def _text_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell of ``df`` as its text (:func:`_cell`), column by column from plain lists (a fraction of
    ``DataFrame.apply``'s cost; the report writes each table twice, for Markdown and HTML)."""
    if not len(df.columns):
        return df
    cols = [[_cell(x) for x in df.iloc[:, j].tolist()] for j in range(df.shape[1])]
    return pd.DataFrame(dict(enumerate(cols)), index=df.index).set_axis(df.columns, axis=1)


def _md_table(df: pd.DataFrame, max_rows: int = 60) -> str:
    if df is None or not len(df):
        return "_(empty)_\n"
    d = _text_frame(df.head(max_rows))
    lines = ["| " + " | ".join(md_escape(c) for c in d.columns) + " |", "|" + "---|" * d.shape[1]]
    lines += ["| " + " | ".join(md_escape(x) for x in row) + " |" for row in d.itertuples(index=False)]
    more = f"\n_{len(df) - max_rows} more rows in the CSV._\n" if len(df) > max_rows else ""
    return "\n".join(lines) + "\n" + more


def _md_figure(name: str, spec, f: dict) -> str:
    if f.get("error"):
        return f"_Figure {name} could not be drawn: {md_escape(f['error'])}_\n"
    vector = f.get("vector")
    link = f" ([{vector.rsplit('.', 1)[1].upper()}](figures/{vector}))" if vector else ""
    return f"![{md_escape(spec.caption, alt=True)}](figures/{name}.png)\n\n{_md_block(spec.caption)}{link}\n"


def _md_summary(report) -> list[str]:
    e = md_escape
    out = ["## Summary\n", _count_line(report.verdicts) + "\n", *(f"{e(x)}\n" for x in no_verdict_lines(report))]
    for part, g in grid_frames(report):
        out.append(f"**{e(part)}**\n")
        lines = ["| | " + " | ".join(e(c) for c in g.columns) + " |", "|---" * (g.shape[1] + 1) + "|"]
        for row, vals in g.iterrows():
            cells = [f"**{e(c[0])}** {e(c[1])}".strip() if isinstance(c, tuple) else "" for c in vals]
            lines.append(f"| {e(row)} | " + " | ".join(cells) + " |")
        out.append("\n".join(lines) + "\n")
        out.append("Numbers: " + "; ".join(f"{e(c)}: {e(key_number_of(c))}" for c in g.columns) + ".\n")
    return out


def _md_verdicts(report) -> list[str]:
    e = md_escape
    out = ["## Verdicts\n"]
    for part, a, sub in _assessments(report.verdicts):
        out.append(f"### {e(a)} ({e(part)})\n")
        for _, r in sub.iterrows():
            need = f" **Needed: about {e(n)}.**" if (n := _needed(r)) else ""
            out.append(f"- **{e(r['verdict'])}**, {e(r['unit'])}: {e(r['reason'])}{need}")
        out.append("")
    return out


def to_markdown(report, figs: dict) -> str:
    """The report as Markdown; every name and message in it goes through :func:`md_escape`."""
    e = md_escape
    out = [f"# {e(report.title)}\n"]
    if report.provenance.get("data"):
        out.append(f"Data: {e(report.provenance['data'])}\n")
    out.append("Contents: Summary, Verdicts, Terms, Evidence ("
               + ", ".join(e(p.title) for p in report.parts) + "), Diagnostics.\n")
    out += _md_summary(report)
    out += _md_verdicts(report)
    out.append("## Terms\n")
    out += [f"- {e(g)}" for g in glossary(report)] + [""]
    out.append("## Evidence\n")
    for p in report.parts:
        out.append(f"### {e(p.title)}\n\n{_md_block(p.description)}\n")
        for s in p.sections:
            out.append(f"#### {e(s.title)}\n\n{_md_block(s.intro)}\n")
            for title, tab in s.display:
                out.append(f"**{e(title)}**\n\n{_md_table(tab)}")
            names = [p.prefix + n for n in s.tables]
            out.append("Tables: " + ", ".join(f"`{n}.csv`" for n in names) + "\n")
            for spec in s.figures:
                out.append(_md_figure(p.prefix + spec.name, spec, figs.get(p.prefix + spec.name, {})))
            for n in s.notes:
                out.append(f"> {e(n)}\n")
    out.append("## Diagnostics\n")
    for title, body in _diagnostics(report, figs):
        out.append(f"### {e(title)}\n")
        out.append(_md_table(body) if isinstance(body, pd.DataFrame) else f"{_md_block(body)}\n")
    return "\n".join(out) + "\n"


def step_times(report, figs: dict | None = None) -> pd.DataFrame:
    """Seconds per step of the audit and per figure drawn (the report's step table)."""
    rows = [(p.title, k, v) for p in report.parts for k, v in p.timings.items()]
    rows += [("figures", f"figure {k}", v["seconds"]) for k, v in (figs or {}).items() if "seconds" in v]
    ex = report.provenance.get("execution")
    if ex:  # the steps' wall time together: in two processes less than the sum of the rows above
        rows.append(("all parts", f"every step, {ex['workers']} process{'es' if ex['workers'] > 1 else ''} (wall)",
                     ex["seconds"]))
    d = pd.DataFrame(rows, columns=["part", "step", "seconds"])
    d["seconds"] = d["seconds"].map(lambda x: f"{x:.2f}")
    return d


def _diagnostics(report, figs: dict | None = None) -> list[tuple[str, object]]:
    """(title, DataFrame or text) blocks shared by the Markdown and HTML renderers."""
    blocks = [("Time per step", step_times(report, figs))]
    for p in report.parts:
        ex = p.exclusions.copy()
        if len(ex):
            ex["example_rows"] = ex["example_rows"].astype(str)
        blocks.append((f"{p.title}: exclusions", ex if len(ex) else "No rows were excluded or recoded."))
        nr = pd.DataFrame(p.not_run, columns=["assessment", "why it was not run"])
        blocks.append((f"{p.title}: assessments not run", nr if len(nr) else "Every assessment ran."))
        if p.fits:
            for f in p.fits:
                d = f["diagnostics"].copy()
                blocks.append((f"{p.title}: Bayesian {f['model']} model convergence ({'CONVERGED' if f['converged'] else 'NOT CONVERGED'})",
                               f"{f['summary']} Settings: {f['settings']}."))
                blocks.append((f"{p.title}: convergence per parameter", d))
        else:
            blocks.append((f"{p.title}: Bayesian fits", "No Bayesian model was fitted in this audit (not requested), "
                           "so there is no convergence to report; every interval is from resampling items."))
        st = {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in p.settings.items()}
        st.update({f"hash of {k}": v for k, v in p.hashes.items()})
        blocks.append((f"{p.title}: settings, seeds, data hashes",
                       pd.DataFrame({"setting": list(st), "value": [str(x) for x in st.values()]})))
    vers = report.provenance.get("versions", {})
    blocks.append(("Versions", pd.DataFrame({"package": list(vers), "version": list(vers.values())})))
    return blocks


# --------------------------------------------------------------------------------------------------
# html
# --------------------------------------------------------------------------------------------------
CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1120px;margin:.8em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.35em;margin:.2em 0}h2{border-bottom:2px solid #0072B2;padding-bottom:.2em;margin-top:2em}
#toc{font-size:.85em;margin:.2em 0 .4em}#summary{margin-top:.4em;font-size:1.15em}
h3.gp{font-size:.9em;margin:.5em 0 .1em}p.count{font-size:.85em;margin:.1em 0}
table.grid{font-size:.74em;margin:.1em 0 .1em}table.grid td,table.grid th{padding:.05em .35em;line-height:1.3}
table.grid th{max-width:13em;white-space:normal;font-weight:600}table.grid td.cell{white-space:nowrap}
table.grid th.unit{background:#fff;max-width:22em}
p.keys{font-size:.7em;color:#555;margin:0 0 .3em}
table.vt td.reason{font-size:.9em;color:#444}ul.terms{font-size:.9em}
h3{margin-top:1.6em}h4{margin-bottom:.3em}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0 1em}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.v{border-left:6px solid #999;padding:.4em .8em;margin:.5em 0;background:#fafafa}
.supported{border-color:#0072B2}.not-supported{border-color:#D55E00}.inconclusive{border-color:#999}
.badge{display:inline-block;font-size:.75em;font-weight:bold;padding:.1em .5em;border-radius:3px;color:#fff}
.b-supported{background:#0072B2}.b-not-supported{background:#D55E00}.b-inconclusive{background:#777}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#444}
.note{font-size:.9em;color:#444;background:#f6f6f6;padding:.4em .8em}
.tables{font-size:.85em;color:#555}details{margin:.5em 0}
"""


def _esc(x) -> str:
    return html.escape(str(x))


def _html_table(df: pd.DataFrame, max_rows: int = 80) -> str:
    if df is None or not len(df):
        return "<p><i>(empty)</i></p>"
    d = _text_frame(df.head(max_rows))
    head = "".join(f"<th>{_esc(c)}</th>" for c in d.columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(x)}</td>" for x in row) + "</tr>" for row in d.itertuples(index=False))
    more = f"<p class='tables'>{len(df) - max_rows} more rows in the CSV.</p>" if len(df) > max_rows else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _badge(key: str) -> str:
    cls = key.replace(" ", "-")
    return f"<span class='badge b-{cls}'>{_esc(OUTCOME.get(key, key))}</span>"


def summary_html(report) -> str:
    """The one-screen summary: per part a grid of units x assessments, a badge and the key number per cell."""
    out = [f"<p class='count'>{_esc(_count_line(report.verdicts))}</p>",
           *(f"<p class='note'>{_esc(x)}</p>" for x in no_verdict_lines(report))]
    for part, g in grid_frames(report):
        head = "".join(f"<th title='{_esc(key_number_of(c))}'>{_esc(c)}</th>" for c in g.columns)
        body = []
        for row, vals in g.iterrows():
            cells = "".join(f"<td class='cell'>{_badge(c[0])} <span class='est'>{_esc(c[1])}</span></td>"
                            if isinstance(c, tuple) else "<td class='cell empty'></td>" for c in vals)
            body.append(f"<tr><th class='unit'>{_esc(row)}</th>{cells}</tr>")
        keys = "; ".join(f"<i>{_esc(c)}</i>: {_esc(key_number_of(c))}" for c in g.columns)
        out.append(f"<h3 class='gp'>{_esc(part)}</h3><table class='grid'><thead><tr><th></th>{head}</tr></thead>"
                   f"<tbody>{''.join(body)}</tbody></table><p class='keys'>Numbers: {keys}.</p>")
    return "\n".join(out)


def verdicts_html(report) -> str:
    """Every verdict with its reason, by assessment; an assessment with many verdicts is one table."""
    v = report.verdicts
    out = [f"<p><b>{_esc(_count_line(v))}</b></p>"]
    for part, a, sub in _assessments(v):
        out.append(f"<h3>{_esc(a)} <small>({_esc(part)})</small></h3>")
        if len(sub) >= TABLE_FROM:
            rows = "".join(
                f"<tr class='v {r['verdict'].replace(' ', '-')}'><td>{_esc(r['unit'])}</td><td>{_badge(r['verdict'])}</td>"
                f"<td>{_esc(cell_text(r))}</td><td>{_esc(_p_text(r))}</td><td>{_esc(_needed(r))}</td>"
                f"<td class='reason'>{_esc(r['reason'])}</td></tr>" for _, r in sub.iterrows())
            out.append("<table class='vt'><thead><tr><th>unit</th><th>verdict</th><th>estimate [interval]</th>"
                       "<th>p</th><th>items needed</th><th>reason</th></tr></thead>"
                       f"<tbody>{rows}</tbody></table>")
            continue
        for _, r in sub.iterrows():
            cls = r["verdict"].replace(" ", "-")
            need = f" <b>Needed: about {_esc(n)}.</b>" if (n := _needed(r)) else ""
            out.append(f"<div class='v {cls}'>{_badge(r['verdict'])} <b>{_esc(r['unit'])}</b><br>"
                       f"{_esc(r['reason'])}{need}</div>")
    return "\n".join(out)


def _toc(report) -> str:
    parts = " ".join(f"<a href='#part-{i}'>{_esc(p.title.split('.')[0] if '.' in p.title[:4] else i + 1)}</a>"
                     for i, p in enumerate(report.parts))
    return ("<nav id='toc'><b>Contents</b>: <a href='#summary'>Summary</a> &middot; <a href='#verdicts'>Verdicts"
            "</a> &middot; <a href='#terms'>Terms</a> &middot; <a href='#evidence'>Evidence</a> "
            f"(parts {parts}) &middot; <a href='#diagnostics'>Diagnostics</a></nav>")


def to_html(report, figs: dict) -> str:
    out = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
           "<meta name='viewport' content='width=device-width, initial-scale=1'>",
           f"<title>{_esc(report.title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{_esc(report.title)}</h1>", _toc(report),
           "<h2 id='summary'>Summary</h2>", summary_html(report)]
    if report.provenance.get("data"):
        out.append(f"<p class='note'>Data: {_esc(report.provenance['data'])}</p>")
    out.append("<h2 id='verdicts'>Verdicts</h2>")
    out.append(verdicts_html(report))
    out.append("<h2 id='terms'>Terms</h2><ul class='terms'>"
               + "".join(f"<li>{_esc(g)}</li>" for g in glossary(report)) + "</ul>")
    out.append("<h2 id='evidence'>Evidence</h2>")
    for i, p in enumerate(report.parts):
        out.append(f"<h3 id='part-{i}'>{_esc(p.title)}</h3><p>{_esc(p.description)}</p>")
        for s in p.sections:
            out.append(f"<h4>{_esc(s.title)}</h4><p>{_esc(s.intro)}</p>")
            for spec in s.figures:
                name = p.prefix + spec.name
                f = figs.get(name, {})
                if f.get("png"):
                    b64 = base64.b64encode(f["png"]).decode("ascii")
                    out.append(f"<figure><img alt='{_esc(spec.caption)}' src='data:image/png;base64,{b64}'>"
                               f"<figcaption>{_esc(spec.caption)}</figcaption></figure>")
                else:
                    out.append(f"<p class='note'>Figure {_esc(name)} could not be drawn: {_esc(f.get('error'))}</p>")
            for title, tab in s.display:
                out.append(f"<details{' open' if len(tab) <= 40 else ''}><summary>{_esc(title)}</summary>"
                           f"{_html_table(tab)}</details>")
            for n in s.notes:
                out.append(f"<p class='note'>{_esc(n)}</p>")
            names = [p.prefix + n for n in s.tables]
            out.append("<p class='tables'>Tables: " + ", ".join(f"<code>{_esc(n)}.csv</code>" for n in names) + "</p>")
    out.append("<h2 id='diagnostics'>Diagnostics</h2>")
    for title, body in _diagnostics(report, figs):
        out.append(f"<h4>{_esc(title)}</h4>")
        out.append(_html_table(body, 200) if isinstance(body, pd.DataFrame) else f"<p>{_esc(body)}</p>")
    out.append("</body></html>")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
class InterruptedAfterWrite(KeyboardInterrupt):
    """Ctrl-C arrived while the finished report was being moved into place; the move was completed."""


@contextlib.contextmanager
def _deferred_interrupt():
    """Hold back Ctrl-C for the few renames that put a finished report in place, then raise it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if got and old is not signal.SIG_IGN:
        raise InterruptedAfterWrite("after the report was written")


def verdicts_table(report) -> pd.DataFrame:
    """verdicts.csv: one row per verdict, the numbers numeric and ``n_needed`` a whole number (blank if none)."""
    v = report.verdicts.drop(columns=["grid_row", "grid_column"], errors="ignore").copy()
    n = pd.to_numeric(v["n_needed"], errors="coerce")
    v["n_needed"] = np.ceil(n.where(np.isfinite(n))).astype("Int64")
    return v


def _write_files(report, stage: Path, progress, formats=None) -> tuple[list[str], list[str]]:
    """Write every file of the report into the fresh folder ``stage``; return (files, folders) written."""
    fig_dir = stage / "figures"
    fig_dir.mkdir()
    for name, tab in report.tables.items():
        csv_safe(tab).to_csv(stage / f"{name}.csv", index=False)
    csv_safe(verdicts_table(report)).to_csv(stage / "verdicts.csv", index=False)
    figs = _render_figures(report, fig_dir, progress, formats)
    (stage / "report.md").write_text(to_markdown(report, figs), encoding="utf-8")
    (stage / "report.html").write_text(to_html(report, figs), encoding="utf-8")
    files = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
    dirs = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_dir())
    return files, dirs


def _planned_files(report, formats=None) -> list[str]:
    """The files a report will write (figures that fail to draw are left out later)."""
    from robustalign.report._figures import check_figure_formats

    figs = [f"figures/{p.prefix}{spec.name}.{ext}" for p in report.parts for s in p.sections for spec in s.figures
            for ext in check_figure_formats(formats)]
    return [*FIXED_FILES, *(f"{n}.csv" for n in report.tables), *figs]


def _manifest(report, files: list[str], dirs: list[str], complete: bool, sums: dict) -> str:
    from robustalign import __version__

    prov = {"title": report.title, **report.provenance, "written_by": {**MANIFEST_MARK, "version": __version__},
            "complete": complete, "files": files, "dirs": dirs, "sha256": {f: sums[f] for f in files if f in sums}}
    return json.dumps(prov, indent=2, default=str)


def _commit(report, stage: Path, out: Path, files: list[str], dirs: list[str]) -> None:
    """Move the finished files from ``stage`` into ``out``.

    A new ``out`` is the stage folder renamed (one atomic step). Into an existing ``out`` (``force``):
    first a provenance.json marked incomplete that lists the old and new files, then the old report
    pages and every old recorded file this run does not write again (no stale file survives), then the
    new files, and last the complete provenance.json. Only recorded files are removed or replaced.
    """
    if not os.path.lexists(out):
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(stage, 0o777 & ~umask)
        os.rename(stage, out)
        return
    own, own_dirs = _own_files(out)
    _refuse_conflicts(out, files, dirs, own)
    sums = {f: _sha256(out / f) for f in own if f != "provenance.json"}
    sums.update(json.loads((stage / "provenance.json").read_text(encoding="utf-8"))["sha256"])
    interim = stage / ".provenance.interim.json"
    interim.write_text(_manifest(report, sorted(own | set(files)), sorted(own_dirs | set(dirs)), False, sums),
                       encoding="utf-8")
    os.replace(interim, out / "provenance.json")
    for f in ["report.html", "report.md", *sorted(own - set(files))]:
        if f in own and f != "provenance.json":
            (out / f).unlink()
    for d in sorted(own_dirs - set(dirs), reverse=True):
        with contextlib.suppress(OSError):  # only when empty: a user's file in it stays, and so does it
            (out / d).rmdir()
    for d in dirs:
        (out / d).mkdir(exist_ok=True)
    rest = [f for f in files if f not in ("report.md", "report.html", "provenance.json")]
    for f in [*rest, "report.md", "report.html", "provenance.json"]:
        os.replace(stage / f, out / f)


def write_report(report, out_dir, *, force: bool = False, progress=None, inputs: dict | None = None,
                 figure_formats=None) -> Path:
    """Write the report into ``out_dir``: CSV tables, figures, report.md, report.html, provenance.json.

    Every file is written into a fresh folder beside ``out_dir`` and moved into place only when all
    are done, so an interrupted or failed run leaves ``out_dir`` as it was. ``provenance.json`` lists the
    files of this run (``files``, with their ``sha256``) under a robustalign mark; with ``force``, the
    recorded files of an earlier report, while unchanged, are the only ones replaced or removed, and a
    run that would replace any other file is refused before it draws a figure. ``inputs`` (role -> path)
    may not lie in ``out_dir``. See :func:`check_out` for what else is refused. ``figure_formats``: PNG plus
    the vector copies, default ``("png",)``; ``("png", "svg")`` adds SVG copies, ``"pdf"`` PDF copies.
    """
    out = check_out(out_dir, force, inputs)
    if out.is_dir():  # refuse before drawing anything, and again when moving into place
        _refuse_conflicts(out, _planned_files(report, figure_formats), ["figures"], _own_files(out)[0])
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.robustalign-", suffix=".partial", dir=out.parent))
    try:
        files, dirs = _write_files(report, stage, progress, figure_formats)
        sums = {f: _sha256(stage / f) for f in files}
        (stage / "provenance.json").write_text(_manifest(report, files, dirs, True, sums), encoding="utf-8")
        files.append("provenance.json")
        if progress:
            progress(f"moving the finished report into {out}")
        with _deferred_interrupt():
            _commit(report, stage, out, sorted(files), dirs)
    finally:
        if stage.is_dir() and not stage.is_symlink():  # the stage folder is this run's own (mkdtemp)
            shutil.rmtree(stage, ignore_errors=True)
    return out
