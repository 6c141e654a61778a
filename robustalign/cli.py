"""The ``robustalign`` command.

``robustalign audit RESPONSES --reference REFERENCE [--scales SCALES] [--against COLUMN] --out DIR``
audits stored responses against human references; ``robustalign audit --example`` runs on the bundled
multicultural-alignment data. Bad input ends with one clear message and exit status 2, never a
traceback; an existing output directory is never overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from robustalign._errors import RobustAlignError

EXIT_BAD_INPUT = 2


def _fmt_ci(est: float, lo: float, hi: float) -> str:
    return f"{est:6.3f} [{lo:6.3f}, {hi:6.3f}]"


def alignment_table(responses, reference, *, against=None, group_map=None, metrics=("spearman", "js"),
                    n_resamples=2000, confidence_level=0.95, rng=0) -> pd.DataFrame:
    """Alignment per model x group for each metric, with cluster-bootstrap intervals (tidy)."""
    from robustalign.alignment import alignment

    seeds = np.random.SeedSequence(rng).spawn(len(metrics))
    frames = []
    for metric, seed in zip(metrics, seeds):
        if metric == "spearman" and responses.kind not in ("score",) and not all(
            reference.scales[i].ordinal for i in responses.items
        ):
            continue  # a profile of mean positions needs ordered options
        res = alignment(responses, reference, metric=metric, against=against, group_map=group_map,
                        n_resamples=n_resamples, confidence_level=confidence_level,
                        rng=np.random.default_rng(seed))
        f = res.to_frame()
        f.insert(0, "metric", metric)
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def _print_table(tab: pd.DataFrame, row_keys: list[str], out=None) -> None:
    level = tab["conf_level"].iloc[0]
    wide = {}
    for metric, g in tab.groupby("metric", sort=False):
        s = g.set_index(row_keys).apply(lambda r: _fmt_ci(r["estimate"], r["conf_low"], r["conf_high"]), axis=1)
        wide[f"{metric} [{int(level * 100)}% CI]"] = s
    print(pd.DataFrame(wide).to_string(), file=out or sys.stdout)


def _example(args) -> int:
    from robustalign.datasets import load_multicultural_alignment

    t0 = time.time()
    print("robustalign audit --example: Rystrøm et al. (2025) multicultural-alignment data", flush=True)
    data = load_multicultural_alignment()
    r = data.responses
    print(f"  {r}", flush=True)
    for _, e in r.exclusions.to_frame().iterrows():
        print(f"  excluded: {e['n_rows']} rows ({e['reason']}; {e['action']})")
    print(f"  computing alignment per model x prompt language ({args.n_resamples} cluster-bootstrap "
          "resamples over items) ...", flush=True)
    tab = alignment_table(r, data.reference_language, against="language", n_resamples=args.n_resamples,
                          rng=args.seed)
    print("\nAlignment of each model with the human answers of its prompt language")
    print("(spearman: rank correlation across items of mean pro-score vs human pro share, as published;")
    print(" js: mean over items of 1 - Jensen-Shannon distance, base 2, of the pro/con distributions)\n")
    _print_table(tab, ["model", "language"])
    print(f"\nIntervals: BCa, items resampled as a sample of possible items; seed {args.seed}; "
          f"{time.time() - t0:.1f} s.")
    if args.out:
        out = _prepare_out(Path(args.out), args.force)
        tab.to_csv(out / "alignment.csv", index=False)
        (out / "provenance.json").write_text(json.dumps(_provenance(args, r, data.reference_language), indent=2))
        print(f"Tables written to {out}/")
    return 0


def _provenance(args, responses, reference) -> dict:
    from importlib.metadata import version

    return {
        "robustalign": version("robustalign"),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "seed": args.seed,
        "n_resamples": args.n_resamples,
        "responses_hash": responses.data_hash(),
        "reference_hash": reference.data_hash(),
    }


def _prepare_out(out: Path, force: bool) -> Path:
    if out.exists() and any(out.iterdir()) and not force:
        raise RobustAlignError(f"output directory {str(out)!r} exists and is not empty; choose another --out "
                               "or pass --force to overwrite it.")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _audit(args) -> int:
    if args.example:
        return _example(args)
    if args.responses is None or args.reference is None:
        raise RobustAlignError("give RESPONSES and --reference REFERENCE (or --example for the bundled data).")
    from robustalign.io import load_reference, load_responses

    ref = load_reference(args.reference, scales=args.scales, group_col=args.group_col)
    resp = load_responses(args.responses, ref, drop_unreferenced=args.drop_unreferenced)
    print(f"  {resp}")
    for _, e in resp.exclusions.merged(ref.exclusions).to_frame().iterrows():
        print(f"  excluded/recoded: {e['n_rows']} rows ({e['reason']}; {e['action']})")
    tab = alignment_table(resp, ref, against=args.against, n_resamples=args.n_resamples, rng=args.seed)
    keys = [c for c in tab.columns if c in ("model", args.against, "group")]
    _print_table(tab, list(dict.fromkeys(keys)))
    if args.out:
        out = _prepare_out(Path(args.out), args.force)
        tab.to_csv(out / "alignment.csv", index=False)
        (out / "provenance.json").write_text(json.dumps(_provenance(args, resp, ref), indent=2))
        print(f"Tables written to {out}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="robustalign", description="Honest error bars on cultural-alignment claims.")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("audit", help="audit stored responses against human references")
    a.add_argument("responses", nargs="?", help="responses file (CSV, Parquet or JSONL)")
    a.add_argument("--reference", help="human reference file: item, group, option, share[, n]")
    a.add_argument("--scales", help="item scales file: item, options, labels, ordinal")
    a.add_argument("--group-col", default="group", help="name of the group column in the reference")
    a.add_argument("--against", help="responses column naming each cell's own reference group (e.g. language)")
    a.add_argument("--drop-unreferenced", action="store_true",
                   help="drop (and count) responses to items without a human reference")
    a.add_argument("--example", action="store_true", help="run on the bundled multicultural-alignment data")
    a.add_argument("--out", help="directory for tables (never overwritten without --force)")
    a.add_argument("--force", action="store_true", help="allow writing into a non-empty --out")
    a.add_argument("--seed", type=int, default=0, help="random seed (recorded)")
    a.add_argument("--n-resamples", type=int, default=2000, help="bootstrap resamples for intervals")
    a.set_defaults(func=_audit)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into e.g. `head`: not an error of the audit
        return 0
    except (RobustAlignError, ValueError, OSError) as e:
        print(f"robustalign: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
