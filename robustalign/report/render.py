"""Render an :class:`~robustalign.report.audit.AuditReport`: self-contained HTML, Markdown, CSVs, figures.

The HTML embeds every figure as a base64 PNG and its style inline, so it opens offline and can be
mailed as one file. Figures are also written as PDF (vector) and PNG next to it, tables as CSV with the
statistics modules' own ``to_frame()`` columns (``estimate, conf_low, conf_high, conf_level``, ...).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from robustalign._errors import RobustAlignError

WORDS = {
    "supported": "Holds",
    "not supported": "Does not hold",
    "inconclusive": "Cannot be judged at this sample size",
}
ORDER = ["supported", "not supported", "inconclusive"]


def check_out(out, force: bool) -> Path:
    """Refuse an ``out`` that is a file, or a non-empty directory unless ``force`` (never overwrite silently)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RobustAlignError(f"output path {str(out)!r} exists and is not a directory; choose another --out.")
    if out.exists() and any(out.iterdir()) and not force:
        raise RobustAlignError(f"output directory {str(out)!r} exists and is not empty; choose another --out "
                               "or pass --force to overwrite it.")
    return out


def prepare_out(out, force: bool) -> Path:
    """Create ``out`` after :func:`check_out`."""
    out = check_out(out, force)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _needed(r) -> str:
    """The sample size an inconclusive verdict would need, formatted, or ``""``."""
    n = r["n_needed"]
    return f"{int(n):,}" if r["verdict"] == "inconclusive" and n is not None and np.isfinite(n) else ""


def _count_line(v: pd.DataFrame) -> str:
    counts = v["verdict"].value_counts()
    return (f"{len(v)} verdicts: {counts.get('supported', 0)} hold, {counts.get('not supported', 0)} do not "
            f"hold, {counts.get('inconclusive', 0)} cannot be judged at this sample size.")


def _groups(v: pd.DataFrame):
    """``(key, rows)`` for each kind of verdict present, in the report's order."""
    for key in ORDER:
        sub = v[v["verdict"] == key]
        if len(sub):
            yield key, sub


def verdict_lines(report) -> list[str]:
    """The verdicts in words, grouped: what holds, what does not, what cannot be judged (and the n needed)."""
    v = report.verdicts
    lines = [_count_line(v)]
    for key, sub in _groups(v):
        lines.append(f"{WORDS[key].upper()} ({len(sub)}):")
        for _, r in sub.iterrows():
            need = f" [needed: about {n}]" if (n := _needed(r)) else ""
            lines.append(f"  - {r['assessment']}: {r['reason']}{need}")
    return lines


# --------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------
def _figure_of(obj):
    import matplotlib.figure

    if isinstance(obj, matplotlib.figure.Figure):
        return obj
    if isinstance(obj, np.ndarray):
        return obj.ravel()[0].figure
    if isinstance(obj, (list, tuple)):
        return obj[0].figure
    return obj.figure


def _render_figures(report, fig_dir: Path, progress) -> dict:
    """Draw every figure once; write PDF and PNG; return name -> (png bytes, caption) or an error."""
    import matplotlib
    import matplotlib.pyplot as plt

    from robustalign.plots._style import RC

    out = {}
    for p in report.parts:
        for s in p.sections:
            for spec in s.figures:
                name = p.prefix + spec.name
                if progress:
                    progress(f"figure {name}")
                try:
                    with matplotlib.rc_context(RC):
                        fig = _figure_of(spec.draw())
                        fig.savefig(fig_dir / f"{name}.pdf")
                        buf = io.BytesIO()
                        fig.savefig(buf, format="png", dpi=200)
                    plt.close(fig)
                    png = buf.getvalue()
                    (fig_dir / f"{name}.png").write_bytes(png)
                    out[name] = {"png": png, "caption": spec.caption, "error": None}
                except Exception as e:  # a figure must not take the report down; say so in it
                    plt.close("all")
                    out[name] = {"png": None, "caption": spec.caption, "error": f"{type(e).__name__}: {e}"}
    return out


# --------------------------------------------------------------------------------------------------
# markdown
# --------------------------------------------------------------------------------------------------
def _md_table(df: pd.DataFrame, max_rows: int = 60) -> str:
    if df is None or not len(df):
        return "_(empty)_\n"
    d = df.head(max_rows).astype(str)
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in d.columns) + " |", "|" + "---|" * d.shape[1]]
    lines += ["| " + " | ".join(esc(x) for x in row) + " |" for row in d.itertuples(index=False)]
    more = f"\n_{len(df) - max_rows} more rows in the CSV._\n" if len(df) > max_rows else ""
    return "\n".join(lines) + "\n" + more


def to_markdown(report, figs: dict) -> str:
    out = [f"# {report.title}\n"]
    if report.provenance.get("data"):
        out.append(f"Data: {report.provenance['data']}\n")
    out.append("## Verdicts\n")
    v = report.verdicts
    out.append(_count_line(v) + "\n")
    for key, sub in _groups(v):
        out.append(f"### {WORDS[key]} ({len(sub)})\n")
        for _, r in sub.iterrows():
            need = f" **Needed: about {n}.**" if (n := _needed(r)) else ""
            out.append(f"- **{r['assessment']}** ({r['part']}): {r['reason']}{need}")
        out.append("")
    out.append("## Evidence\n")
    for p in report.parts:
        out.append(f"### {p.title}\n\n{p.description}\n")
        for s in p.sections:
            out.append(f"#### {s.title}\n\n{s.intro}\n")
            for title, tab in s.display:
                out.append(f"**{title}**\n\n{_md_table(tab)}")
            names = [p.prefix + n for n in s.tables]
            out.append("Tables: " + ", ".join(f"`{n}.csv`" for n in names) + "\n")
            for spec in s.figures:
                name = p.prefix + spec.name
                f = figs.get(name, {})
                if f.get("error"):
                    out.append(f"_Figure {name} could not be drawn: {f['error']}_\n")
                else:
                    out.append(f"![{spec.caption}](figures/{name}.png)\n\n_{spec.caption}_ "
                               f"([PDF](figures/{name}.pdf))\n")
            for n in s.notes:
                out.append(f"> {n}\n")
    out.append("## Diagnostics\n")
    for title, body in _diagnostics(report):
        out.append(f"### {title}\n")
        out.append(_md_table(body) if isinstance(body, pd.DataFrame) else f"{body}\n")
    return "\n".join(out) + "\n"


def _diagnostics(report) -> list[tuple[str, object]]:
    """(title, DataFrame or text) blocks shared by the Markdown and HTML renderers."""
    blocks = []
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
        st.update({f"time: {k} (s)": v for k, v in p.timings.items()})
        blocks.append((f"{p.title}: settings, seeds, data hashes",
                       pd.DataFrame({"setting": list(st), "value": [str(x) for x in st.values()]})))
    vers = report.provenance.get("versions", {})
    blocks.append(("Versions", pd.DataFrame({"package": list(vers), "version": list(vers.values())})))
    return blocks


# --------------------------------------------------------------------------------------------------
# html
# --------------------------------------------------------------------------------------------------
CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1000px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:2px solid #0072B2;padding-bottom:.2em;margin-top:2em}
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
    d = df.head(max_rows).astype(str)
    head = "".join(f"<th>{_esc(c)}</th>" for c in d.columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(x)}</td>" for x in row) + "</tr>" for row in d.itertuples(index=False))
    more = f"<p class='tables'>{len(df) - max_rows} more rows in the CSV.</p>" if len(df) > max_rows else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def verdicts_html(report) -> str:
    v = report.verdicts
    out = [f"<p><b>{_esc(_count_line(v))}</b></p>"]
    for key, sub in _groups(v):
        cls = key.replace(" ", "-")
        out.append(f"<h3>{_esc(WORDS[key])} ({len(sub)})</h3>")
        for _, r in sub.iterrows():
            need = f" <b>Needed: about {n}.</b>" if (n := _needed(r)) else ""
            out.append(f"<div class='v {cls}'><span class='badge b-{cls}'>{_esc(key.upper())}</span> "
                       f"<b>{_esc(r['assessment'])}</b> <small>({_esc(r['part'])})</small><br>"
                       f"{_esc(r['reason'])}{need}</div>")
    return "\n".join(out)


def to_html(report, figs: dict) -> str:
    out = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
           "<meta name='viewport' content='width=device-width, initial-scale=1'>",
           f"<title>{_esc(report.title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{_esc(report.title)}</h1>"]
    if report.provenance.get("data"):
        out.append(f"<p class='note'>Data: {_esc(report.provenance['data'])}</p>")
    out.append("<h2 id='verdicts'>Verdicts</h2>")
    out.append(verdicts_html(report))
    out.append("<h2 id='evidence'>Evidence</h2>")
    for p in report.parts:
        out.append(f"<h3>{_esc(p.title)}</h3><p>{_esc(p.description)}</p>")
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
    for title, body in _diagnostics(report):
        out.append(f"<h4>{_esc(title)}</h4>")
        out.append(_html_table(body, 200) if isinstance(body, pd.DataFrame) else f"<p>{_esc(body)}</p>")
    out.append("</body></html>")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
def _remove_previous(out: Path) -> None:
    """With ``force``: delete the files a previous report listed in its provenance (and nothing else)."""
    prov = out / "provenance.json"
    if not prov.is_file():
        return
    try:
        files = json.loads(prov.read_text(encoding="utf-8")).get("files", [])
    except (ValueError, OSError):
        return
    for f in files:
        p = (out / f).resolve()
        if out.resolve() in p.parents and p.is_file():
            p.unlink()


def write_report(report, out_dir, *, force: bool = False, progress=None) -> Path:
    out = prepare_out(out_dir, force)
    _remove_previous(out)
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    for name, tab in report.tables.items():
        tab.to_csv(out / f"{name}.csv", index=False)
    v = report.verdicts
    v.to_csv(out / "verdicts.csv", index=False)
    figs = _render_figures(report, fig_dir, progress)
    (out / "report.md").write_text(to_markdown(report, figs), encoding="utf-8")
    (out / "report.html").write_text(to_html(report, figs), encoding="utf-8")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "provenance.json")
    prov = {"title": report.title, **report.provenance, "files": files}
    (out / "provenance.json").write_text(json.dumps(prov, indent=2, default=str), encoding="utf-8")
    return out
