"""The ``robustalign`` command.

``robustalign audit RESPONSES --reference REFERENCE [--scales SCALES] [--design design.toml] --out DIR``
audits stored responses against human references: it runs every assessment the data's design factors
allow (without ``--reference``, given ``--scales``, only those that need no human data: stability with
position bias and flip rates against their noise floor; :func:`robustalign.report.run_audit`) and
writes a self-contained ``report.html``, ``report.md``, one CSV per table of estimates and the figures
as PDF and PNG. ``robustalign audit --example`` runs on
the bundled multicultural-alignment data. Progress goes to stderr. Bad input ends with one clear
message and exit status 2, never a traceback; an existing non-empty output directory is never
overwritten without ``--force``, and ``--force`` replaces only the files an earlier report recorded as
its own. Ctrl-C ends the run with exit status 130 and one line.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import warnings

import pandas as pd

from robustalign import __version__
from robustalign._errors import RobustAlignError, RobustAlignWarning
from robustalign.report.render import InterruptedAfterWrite, check_out, write_report

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class _Interrupts:
    """Ctrl-C that cannot be lost: the handler records it before raising KeyboardInterrupt, so an
    interrupt swallowed where Python cannot raise (a weakref callback, a C callback in a plotting
    library) is raised again at the next progress line and still ends the run with exit 130."""

    def __init__(self):
        self.pending = False

    def handler(self, signum, frame):
        self.pending = True
        raise KeyboardInterrupt

    def unraisable(self, info):  # "Exception ignored in ...": silent for our own interrupt
        if info.exc_type is not None and issubclass(info.exc_type, KeyboardInterrupt):
            self.pending = True
            return
        sys.__unraisablehook__(info)

    def check(self) -> None:
        if self.pending:
            raise KeyboardInterrupt


_INTERRUPTS = _Interrupts()


def _fmt_ci(est: float, lo: float, hi: float) -> str:
    return f"{est:6.3f} [{lo:6.3f}, {hi:6.3f}]"


def _print_table(tab: pd.DataFrame, row_keys: list[str], out=None) -> None:
    level = tab["conf_level"].iloc[0]
    wide = {}
    for metric, g in tab.groupby("metric", sort=False):
        s = g.set_index(row_keys).apply(lambda r: _fmt_ci(r["estimate"], r["conf_low"], r["conf_high"]), axis=1)
        wide[f"{metric} [{level:.0%} CI]"] = s
    print(pd.DataFrame(wide).to_string(), file=out or sys.stdout)


class _Progress:
    """Progress lines on stderr with the elapsed time, flushed at once."""

    def __init__(self, quiet: bool = False):
        self.t0 = time.time()
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        _INTERRUPTS.check()  # an interrupt swallowed on the way ends the run here
        if not self.quiet:
            print(f"[{time.time() - self.t0:6.1f} s] {msg}", file=sys.stderr, flush=True)


def _print_report(report, row_keys) -> None:
    """Alignment table (when there is a reference) and the verdicts in words on stdout."""
    tab = report.tables.get("alignment")
    if tab is None:
        print("\nNo human reference: alignment is not assessed.")
        print("\nVerdicts")
        print(report.summary())
        return
    print("\nAlignment of each model with its human reference group")
    print("(spearman: rank correlation across items of mean answer vs human mean, as published;")
    print(" js: mean over items of 1 - Jensen-Shannon distance, base 2)\n")
    keys = [c for c in row_keys if c in tab.columns]
    _print_table(tab, list(dict.fromkeys(keys)))
    print("\nVerdicts")
    print(report.summary())


def _figure_formats(text: str) -> tuple[str, ...]:
    from robustalign.report._figures import check_figure_formats

    try:
        return check_figure_formats(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _inputs(args) -> dict:
    """The input files by role, which ``--out`` may neither be nor contain."""
    return {"responses": args.responses, "reference": args.reference, "scales": args.scales,
            "design": args.design, "respondents": getattr(args, "reference_respondents", None),
            "association": getattr(args, "association", None)}


def _run(args, report, row_keys, progress) -> int:
    _print_report(report, row_keys)
    if args.out:
        out = write_report(report, args.out, force=args.force, progress=progress, inputs=_inputs(args),
                           figure_formats=getattr(args, "figure_formats", None))
        print(f"\nReport written to {out}/report.html (also report.md, {len(report.tables)} CSV tables, figures/)")
    else:
        print("\n(no --out given: nothing was written; pass --out DIR for the report, tables and figures)")
    return 0


def _example(args) -> int:
    from robustalign.report import run_example_audit

    progress = _Progress(args.quiet)
    print("robustalign audit --example: Rystrøm et al. (2025) multicultural-alignment data", flush=True)
    if args.out:  # refuse before spending minutes on the audit
        check_out(args.out, args.force, _inputs(args))
    # with --out the figures are drawn while the audit runs, by the process that built each section
    formats = (getattr(args, "figure_formats", None) or ("png",)) if args.out else None
    report = run_example_audit(rng=args.seed, n_resamples=args.n_resamples, n_permutations=args.n_permutations,
                               progress=progress, figure_formats=formats)
    part = report.parts[0]
    from robustalign.report.audit import example_data

    r = example_data().responses  # the copy the audit read
    print(f"  {r}")
    for _, e in part.exclusions.iterrows():
        print(f"  excluded: {e['n_rows']} rows ({e['reason']}; {e['action']})")
    return _run(args, report, ["model", "language"], progress)


def _audit(args) -> int:
    if args.example:
        return _example(args)
    if args.responses is None:
        raise RobustAlignError("give RESPONSES (with --reference REFERENCE, or --scales SCALES for an audit without "
                               "a human reference), or --example for the bundled data.")
    own = _own_kind_report(args)  # forced-choice or scored (correct / wrong) tables: their own report
    if own is not None:
        return own
    if args.reference is None and args.scales is None:
        raise RobustAlignError("without --reference, give --scales SCALES (item, options, labels, ordinal) so that "
                               "answers can be mapped to options.")
    from robustalign.io import load_reference, read_table
    from robustalign.report import load_design, run_audit
    from robustalign.schema import make_scales

    progress = _Progress(args.quiet)
    design = load_design(args.design)
    if args.against:
        design.against = args.against
    _association_from_design(args, design)
    if args.out:
        check_out(args.out, args.force, _inputs(args))
    progress("reading and validating the input files")
    orders = {"order_column": design.orders["column"], "order_map": design.orders["map"]} if design.orders else {}
    persona = _persona_inputs(args, design)
    if args.reference is not None or persona is not None:
        ref = (load_reference(args.reference, scales=args.scales, group_col=args.group_col)
               if args.reference is not None else persona[0].to_reference())
        resp = _load_responses(args, ref, None, orders)
        excl = resp.exclusions.merged(ref.exclusions)
    else:
        ref = None
        resp = _load_responses(args, None, make_scales(read_table(args.scales)), orders)
        excl = resp.exclusions
    design.check_data(resp, ref)
    _check_memory(args, design, resp, ref)
    print(f"  {resp}")
    for _, e in excl.to_frame().iterrows():
        print(f"  excluded/recoded: {e['n_rows']} rows ({e['reason']}; {e['action']})")
    item_table = None
    if args.scales and design.domains.get("column"):
        item_table = read_table(args.scales)
    measure = _association_input(args, ref)  # checked before the audit spends its time
    report = run_audit(resp, ref, design=design, rng=args.seed,
                       n_resamples=args.n_resamples, n_permutations=args.n_permutations, progress=progress,
                       item_table=item_table, persona=persona)
    if measure is not None and ref is not None:  # _association_input refuses a measure without a reference
        from robustalign.claims.association import add_measure_section

        progress(f"cultural fit vs {measure.name} across models")
        add_measure_section(report, resp, ref, measure, design=design, rng=args.seed, n_resamples=args.n_resamples,
                            n_permutations=args.n_permutations)
    return _run(args, report, ["model", design.against, "group"], progress)


def _association_from_design(args, design) -> None:
    """The design's ``[association]`` (file relative to the design file) where no flag gives it: flags win."""
    a = design.association
    if not a:
        return
    if args.association is None:
        args.association = a["file"]
        args.association_source = f"design file {design.source!r}: [association] file = {a['file']!r}"
    if args.association_group is None:
        args.association_group = a.get("group")
    if args.association_expect is None:
        args.association_expect = a.get("expect")


def _association_input(args, ref):
    """The ``--association`` measure (or the design's ``[association]``), checked (file, column, line, fix), or
    None."""
    if args.association is None:
        return None
    if ref is None:
        what = getattr(args, "association_source", None) or f"--association {args.association}"
        raise RobustAlignError(f"{what}: correlating a measure with cultural fit needs a human reference; give "
                               "--reference.")
    from robustalign.claims.association import load_unit_measure

    return load_unit_measure(args.association, group=args.association_group, expect=args.association_expect)


def _own_kind_report(args) -> int | None:
    """Audit a table whose columns mark its own kind: forced choices (``outcome_a``, ``outcome_b``, ``order``,
    ``choice``: the preferences report) or scored answers (``correct`` and ``culture`` or ``country``, given
    without --reference/--scales: the accuracy report). None for any other table."""
    if getattr(args, "source", "table") != "table":
        return None
    from robustalign.claims.preferences import REQUIRED
    from robustalign.io import read_table

    with warnings.catch_warnings():  # only the columns are looked at here: the loader below warns once
        warnings.simplefilter("ignore")
        cols = set(read_table(args.responses).columns)
    pairwise = set(REQUIRED) <= cols
    scored = "correct" in cols and bool({"culture", "country"} & cols) and args.reference is None \
        and args.scales is None
    if not (pairwise or scored):
        return None
    for flag, val in (("--reference", args.reference), ("--scales", args.scales),
                      ("--association", args.association)):
        if val is not None and pairwise:
            raise RobustAlignError(f"{args.responses} holds forced choices (columns {list(REQUIRED)}); {flag} "
                                   "does not apply to them. Remove it, or audit the survey answers separately.")
    if scored and args.association is not None:
        raise RobustAlignError(f"{args.responses} holds scored answers without a human reference; --association "
                               "correlates a measure with cultural fit, which needs --reference. Remove it, or give "
                               "survey responses with --reference.")
    from robustalign.report import load_design

    progress = _Progress(args.quiet)
    design = load_design(args.design)
    if design.association:  # as the flag above: a measure correlated with cultural fit needs survey responses
        raise RobustAlignError(f"design file {design.source!r}: [association] does not apply to {args.responses} "
                               "(forced choices, or scored answers without a human reference). Fix: remove "
                               "[association] from the design file, or audit survey responses with --reference.")
    if args.out:
        check_out(args.out, args.force, _inputs(args))
    progress("reading and validating the input files")
    if pairwise:
        from robustalign.claims.preferences import load_pairwise, preference_report

        data = load_pairwise(args.responses)
        print(f"  {len(data.data):,} forced choices of {len(data.models)} models")
        report = preference_report(data, design=design, rng=args.seed, n_resamples=args.n_resamples,
                                   n_permutations=args.n_permutations)
        return _run(args, report, ["model", "claim"], progress)
    from robustalign.claims.accuracy import accuracy_audit_report

    report = accuracy_audit_report(args.responses, culture="culture" if "culture" in cols else "country",
                                   design=design, rng=args.seed, n_resamples=args.n_resamples,
                                   n_permutations=args.n_permutations)
    return _run(args, report, ["claim", "model"], progress)


def _persona_inputs(args, design):
    """(respondent-level reference, cell factors) from ``--reference-respondents`` or the design's [persona]."""
    if args.reference_respondents is None and not design.persona:
        return None
    if args.scales is None:
        raise RobustAlignError("--reference-respondents (or a design's [persona]) needs --scales SCALES (item, "
                               "options, labels, ordinal) to check each respondent's answers against the item's scale.")
    from robustalign.persona import persona_inputs

    return persona_inputs(design.persona, args.scales, path=args.reference_respondents, by=args.persona_by,
                          group_col=args.group_col)


#: Where ``--from`` reads responses: a table file, Inspect eval logs, lm-evaluation-harness samples files.
SOURCES = {"table": "a CSV, Parquet or JSON-lines table", "inspect": "Inspect eval logs (.eval or .json)",
           "lm-eval": "lm-evaluation-harness samples files (samples_<task>_<date>.jsonl)"}


def _load_responses(args, ref, scales, orders):
    """Responses from ``args.responses`` as ``--from`` says: a table, or the logs of an evaluation tool
    (a file or a folder searched for them), read by the matching importer."""
    from robustalign.io import load_responses

    source = getattr(args, "source", "table")
    fields = {}
    if getattr(args, "item_field", None):
        fields["item_field"] = args.item_field
    if getattr(args, "factor_fields", None):
        fields["factor_fields"] = [f.strip() for f in args.factor_fields.split(",") if f.strip()]
    if source == "table":
        if fields:
            raise RobustAlignError("--item-field and --factor-fields apply with --from inspect or lm-eval (fields of "
                                   "the tool's logs); a table names its columns itself.")
        return load_responses(args.responses, ref, scales=scales, drop_unreferenced=args.drop_unreferenced,
                              allow_missing=args.allow_missing, **orders)
    from pathlib import Path

    if not Path(args.responses).exists():
        raise RobustAlignError(f"--from {source}: {args.responses!r} does not exist. Give {SOURCES[source]}, or "
                               "the folder they were written to.")
    module, reader, package = {"inspect": ("inspect_log", "read_inspect", "inspect_ai"),
                               "lm-eval": ("lm_eval", "read_lm_eval", None)}[source]
    try:
        from importlib import import_module

        df = getattr(import_module(f"robustalign.importers.{module}"), reader)(args.responses, ref, scales=scales,
                                                                               **fields)
    except ModuleNotFoundError as e:
        if package is None or e.name != package:
            raise
        raise RobustAlignError(f"--from {source} reads logs with the `{package}` package, which is not "
                               f"installed. Install it (`pip install {package}`), or export the responses "
                               "to a table and omit --from.") from None
    from robustalign.importers._common import finish

    return finish(df, ref, scales, args.drop_unreferenced, f"--from {source} ({args.responses})",
                  allow_missing=args.allow_missing, **orders)


def _dispatch(args) -> int:
    """Run the command; every error becomes one line on stderr and an exit status."""
    try:
        with warnings.catch_warnings():  # robustalign's own warnings as one line each, without source paths
            default = warnings.showwarning
            warnings.showwarning = lambda m, c, *a, **k: (
                print(f"robustalign: warning: {m}", file=sys.stderr) if issubclass(c, RobustAlignWarning)
                else default(m, c, *a, **k))
            return args.func(args)
    except BrokenPipeError:  # output piped into e.g. `head`: not an error of the audit
        return 0
    except (RobustAlignError, ValueError, OSError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"robustalign: error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:  # a bug, not bad input: still one message, the traceback on request
        if getattr(args, "debug", False):
            raise
        print(f"robustalign: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback, and "
              "please report it)", file=sys.stderr)
        return EXIT_INTERNAL


def _interrupted(args, after_write: bool) -> int:
    out = getattr(args, "out", None)
    if after_write:
        msg = f"interrupted after the report was written to {out}" if out else "interrupted"
    else:
        msg = f"interrupted; nothing was written to {out}" if out else "interrupted; nothing was written"
    print(f"\nrobustalign: {msg}", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


def _run_guarded(args, command: bool) -> int:
    """:func:`_dispatch` with Ctrl-C turned into exit 130 and one line, wherever it lands.

    As a command (``command``), a Ctrl-C after the run ended is ignored rather than restored to
    Python's handler, so it cannot print a traceback while the interpreter exits.
    """
    main_thread = threading.current_thread() is threading.main_thread()
    old_handler = signal.signal(signal.SIGINT, _INTERRUPTS.handler) if main_thread else None
    old_hook, sys.unraisablehook = sys.unraisablehook, _INTERRUPTS.unraisable
    _INTERRUPTS.pending = False
    try:
        code = _dispatch(args)
        if _INTERRUPTS.pending:  # swallowed after the last check: the run finished all the same
            return _interrupted(args, after_write=code == 0)
        return code
    except InterruptedAfterWrite:
        return _interrupted(args, after_write=True)
    except KeyboardInterrupt:
        return _interrupted(args, after_write=False)
    finally:
        sys.unraisablehook = old_hook
        if main_thread:
            signal.signal(signal.SIGINT, signal.SIG_IGN if command else old_handler)
        _INTERRUPTS.pending = False


def _check_memory(args, design, resp, ref) -> None:
    """Refuse resample counts whose arrays cannot fit in memory, before the audit allocates them."""
    from robustalign._validation import check_resample_memory

    cells = len(resp.models) * (len(ref.groups) if ref is not None else 1) * len(design.metrics)
    for name, flag in (("n_resamples", "--n-resamples"), ("n_permutations", "--n-permutations")):
        n = getattr(args, name) or getattr(design, name)
        check_resample_memory(n, len(resp.items) + cells, f"{flag} (design: {name})")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="robustalign", description="Honest error bars on cultural-alignment claims.")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("audit", help="audit stored responses against human references",
                       description="Run every assessment the data's design allows and write a report.")
    a.add_argument("responses", nargs="?", help="responses file (CSV, Parquet or JSONL), or with --from the "
                   "logs of an evaluation tool (files or a folder)")
    a.add_argument("--from", dest="source", choices=list(SOURCES), default="table",
                   help="what RESPONSES is: table (default), inspect (Inspect eval logs) or lm-eval "
                   "(lm-evaluation-harness samples_*.jsonl, written with --log_samples)")
    a.add_argument("--item-field", help="with --from: the sample metadata (Inspect) or doc (lm-eval) field that holds "
                   "the item id (default: the sample id / doc_id)")
    a.add_argument("--factor-fields", help="with --from: comma-separated metadata/doc fields kept as design factors "
                   "(default: Inspect keeps every scalar metadata field, lm-eval none)")
    a.add_argument("--reference", help="human reference file: item, group, option, share[, n] (optional: without it, "
                   "only the assessments that need no human data run, e.g. stability and position bias)")
    a.add_argument("--scales", help="item scales file: item, options, labels, ordinal[, domain ...]")
    a.add_argument("--design", help="design file (TOML): factors, claims, seed, resamples; see README")
    a.add_argument("--reference-respondents", help="respondent-level human answers for a persona experiment: "
                   "respondent, group, attributes, one answer per item (long or wide); responses name the respondent "
                   "in a `persona` column. Without --reference the group shares are built from it")
    a.add_argument("--persona-by", help="design factors that separate persona cells, comma-separated (e.g. language)")
    a.add_argument("--association", help="per-model measure file (model, item, value; e.g. 1 = refused) whose "
                   "correlation with cultural fit across models is audited (needs --reference)")
    a.add_argument("--association-group", help="with --association: the human group cultural fit is measured "
                   "against (default: --against, or the reference's only group)")
    a.add_argument("--association-expect", choices=["positive", "negative"], default=None,
                   help="with --association: the claimed sign of the correlation (default: either sign)")
    a.add_argument("--group-col", default="group", help="name of the group column in the reference")
    a.add_argument("--against", help="responses column naming each cell's own reference group (e.g. language)")
    a.add_argument("--drop-unreferenced", action="store_true",
                   help="drop (and count) responses to items without a human reference")
    a.add_argument("--allow-missing", action="store_true",
                   help="accept empty answers (the model gave none): dropped and counted as 'missing answer'")
    a.add_argument("--example", action="store_true", help="run on the bundled multicultural-alignment data")
    a.add_argument("--out", help="directory for the report, tables and figures (never overwritten without --force)")
    a.add_argument("--force", action="store_true", help="allow writing into a non-empty --out")
    a.add_argument("--figure-formats", type=_figure_formats, default=None, metavar="png,svg[,pdf]",
                   help="figure files: PNG (always; the HTML embeds it), default 'png'; 'png,svg' adds vector copies "
                        "with editable text, 'pdf' PDF copies (slower: font subsetting)")
    a.add_argument("--seed", type=int, default=None, help="random seed (default: the design's, else 0; recorded)")
    a.add_argument("--n-resamples", type=int, default=None, help="bootstrap resamples for intervals (default 2000)")
    a.add_argument("--n-permutations", type=int, default=None,
                   help="permutations for p-values (default 2000)")
    a.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    a.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    a.set_defaults(func=_audit)
    p.add_argument("--version", action="version", version=f"robustalign {__version__}")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "example", False):
        args.seed = 0 if args.seed is None else args.seed
        args.n_resamples = args.n_resamples or 2000
        args.n_permutations = args.n_permutations or 2000
    for name in ("n_resamples", "n_permutations"):
        v = getattr(args, name, None)
        if v is not None and v < 10:
            print(f"robustalign: error: --{name.replace('_', '-')} must be at least 10; got {v}. Use the default "
                  "(2000) or more for intervals and p-values.", file=sys.stderr)
            return EXIT_BAD_INPUT
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures are written to files; no display is needed
    return _run_guarded(args, command=argv is None)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
