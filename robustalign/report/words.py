"""Plain words for the report: one word per outcome, no library jargon without a gloss, no ``nan``.

The statistics modules write their reasons for readers of the code (``fdr_bh``, ``congruent=congruent``);
:func:`plain` rewrites those spellings for a reader of the report, without changing a number.
"""

from __future__ import annotations

import math
import re

#: The one word (phrase) per outcome used in the report, its grid and verdicts.csv.
OUTCOME = {"supported": "supported", "not supported": "not supported", "inconclusive": "inconclusive"}
#: Above this many items a sample size is not a plan but a statement that the effect cannot be detected.
MAX_SURVEY_ITEMS = 5_000
HUGE_COMMENT = "more items than any survey has: not detectable"

#: One-line glosses of the terms a reader may not know; the report lists those that occur in it.
GLOSSARY = {
    "SD across": "SD across levels: how far a model's average answer moves between the levels of a factor "
                 "(e.g. prompt languages), as a standard deviation of the per-level means.",
    "identification AUC": "identification AUC: the chance that a target's own steering prompt fits that target "
                          "better than another target's prompt does (0.5 = no better than chance).",
    "Mantel r": "Mantel r: correlation between the distances among the steered answers and the distances among "
                "the human groups (does steering recover the human map?).",
    "TOST": "TOST (two one-sided tests): an equivalence test; 'stable' means the whole interval lies inside "
            "the margin, not merely that no effect was found.",
    "BCa": "BCa: bias-corrected and accelerated bootstrap interval.",
    "Benjamini-Hochberg": "Benjamini-Hochberg: adjustment of p-values for many tests at once, controlling the "
                          "share of false discoveries.",
    "Holm": "Holm: adjustment of p-values for many tests at once, controlling the chance of any false "
            "positive.",
    "Monte Carlo": "Monte Carlo error: the part of a number that would change with another random seed.",
    "split-half reliability": "split-half reliability: agreement of a model's ranking of groups between two "
                              "random halves of the items (can the ranking be measured at all?).",
    "noise floor": "noise floor: the flip rate expected with no effect at all, from sampling the answers alone.",
    "specificity": "specificity: how much better a target's own steering prompt fits the target than other "
                   "targets' prompts do.",
    "rank interval": "rank interval: the ranks a model takes across resamples of the items.",
    "JS similarity": "JS similarity: 1 minus the Jensen-Shannon distance between the answer distributions "
                     "(1 = identical).",
    "Spearman": "Spearman: rank correlation between the model's and the humans' answers across items.",
    "specification": "specification: one admissible way of analysing a claim (levels, pooling, metric, "
                     "aggregation); a claim is judged across all of them.",
}

_ADJ = {"fdr_bh": "Benjamini-Hochberg", "BH": "Benjamini-Hochberg", "holm": "Holm", "bonferroni": "Bonferroni",
        "fdr_by": "Benjamini-Yekutieli"}


def _needed(m: re.Match) -> str:
    n = int(m.group(1).replace(",", ""))
    out = f"about {n:,}{m.group(2) or ''} items would be needed"
    return out + (f" ({HUGE_COMMENT})" if n > MAX_SURVEY_ITEMS else "")


def _factorial(m: re.Match) -> str:
    c = int(m.group(1))
    return f"1/{c}! = 1/{math.factorial(c):,}" if c <= 12 else m.group(0)


def plain(text) -> str:
    """``text`` with the library's spellings replaced by words (numbers unchanged)."""
    s = str(text)
    s = re.sub(r"\b(fdr_bh|fdr_by|BH|holm|bonferroni)-adjusted", lambda m: f"{_ADJ[m.group(1)]}-adjusted", s)
    s = re.sub(r"\((fdr_bh|fdr_by|holm|bonferroni)\)", lambda m: f"({_ADJ[m.group(1)]})", s)
    # "congruent=congruent vs congruent=incongruent" -> "congruent vs incongruent steering"
    # (bounded names and a literal " vs " first: linear time even on a 200,000-character model name)
    if " vs " in s and "=" in s:
        s = re.sub(r"(?<![\w.-])([\w.-]{1,80})=([\w.-]{1,80}) vs \1=([\w.-]{1,80})", r"\2 vs \3 steering", s)
    s = re.sub(r"^(NOT SUPPORTED|SUPPORTED): ", "", s)
    s = re.sub(r"about ([\d,]+)( \([^)]*\))? items would be needed", _needed, s)
    s = re.sub(r"1/(\d+)!(?! =)", _factorial, s)
    s = re.sub(r"\[nan, nan\]", "[no interval]", s)
    return re.sub(r"(?<![\w])nan(?![\w])", "n/a", s)


def needed_text(n) -> str:
    """An items-needed number with a comment when it is beyond any survey, or ``""``."""
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return ""
    try:
        n = int(n)
    except (TypeError, ValueError):
        return ""
    return f"{n:,}" + (f" ({HUGE_COMMENT})" if n > MAX_SURVEY_ITEMS else "")


def glossary_for(texts) -> list[str]:
    """The glosses of the terms that occur in ``texts``, in the glossary's order."""
    blob = " ".join(str(t) for t in texts)
    return [g for term, g in GLOSSARY.items() if term.lower() in blob.lower()]


def fmt_interval(est, lo, hi, d: int = 3, reason: str = "") -> str:
    """``est [lo, hi]``; without finite bounds ``est (no interval: reason)``; never ``nan``."""
    def ok(x):
        try:
            return x is not None and math.isfinite(float(x))
        except (TypeError, ValueError):
            return False

    if not ok(est):
        return "no estimate" + (f": {reason}" if reason else "")
    if ok(lo) and ok(hi):
        return f"{float(est):.{d}f} [{float(lo):.{d}f}, {float(hi):.{d}f}]"
    return f"{float(est):.{d}f} (no interval: {reason or 'the resamples gave no spread'})"
