"""Architecture guard: every random draw and every permutation p-value formula lives in robustalign/resampling/.

Like the import-lightness test (tests/test_imports.py), this reads the package's source: it parses each
module (comments and docstrings are not code, so examples in docstrings do not count) and lists

* calls that draw from a random generator (``gen.integers(...)``, ``np.random.normal(...)``,
  ``gen.choice(...)``, ...), and
* the permutation p-value formula ``(1 + b) / (1 + B)`` (a division whose numerator and denominator are
  both sums with the constant 1),

outside ``robustalign/resampling/`` (the engine: bootstraps, permutation tests, stream scheme, draws),
``robustalign/simulate.py`` (the data simulator, whose job is to draw) and ``robustalign/models/`` (the
Bayesian models: draws belong to the samplers). A new statistic hands its null or its resampling design
to ``robustalign.resampling`` (``keyed_stream``, ``resampling.draws``, ``permutation_p_values``).

``ALLOWED`` lists the offenders that existed when the guard was written, each with the reason it is
still there; an entry that no longer matches anything is reported by ``test_allow_list_is_current``
only as a skip, so it can be deleted once the module is cleaned. Any offender not on the list fails.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import robustalign

ROOT = Path(robustalign.__file__).resolve().parent
EXEMPT = ("resampling/", "simulate.py", "models/")

#: Generator / RandomState / ``random`` module methods that consume randomness.
DRAWS = frozenset({
    "integers", "random", "random_sample", "rand", "randn", "randint", "random_integers", "random_raw",
    "permutation", "permuted", "shuffle", "choice", "choices", "sample", "bytes",
    "dirichlet", "multinomial", "multivariate_hypergeometric", "multivariate_normal",
    "standard_normal", "normal", "lognormal", "standard_gamma", "gamma", "beta", "binomial", "negative_binomial",
    "poisson", "uniform", "standard_exponential", "exponential", "standard_t", "standard_cauchy", "chisquare",
    "laplace", "logistic", "gumbel", "geometric", "hypergeometric", "vonmises", "wald", "weibull", "triangular",
    "rayleigh", "pareto", "power", "zipf", "logseries", "f", "noncentral_chisquare", "noncentral_f", "gauss",
})

#: Offenders still present, as ``"path:function"`` (path relative to robustalign/). Remove an entry when
#: its module hands the draw to robustalign.resampling; never add one for new code.
ALLOWED: dict[str, str] = {}


def _is_one(node) -> bool:
    return isinstance(node, ast.Constant) and not isinstance(node.value, bool) and node.value == 1


def _sum_with_one(node) -> bool:
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and (_is_one(node.left) or _is_one(node.right))


class _Finder(ast.NodeVisitor):
    def __init__(self, rel: str):
        self.rel, self.stack, self.found = rel, [], []

    def _scope(self, node):
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scope

    def _add(self, node, what):
        func = next((n for n in reversed(self.stack) if n[0].islower() or n[0] == "_"), "<module>")
        self.found.append((f"{self.rel}:{func}", node.lineno, what))

    def visit_Call(self, node):
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr in DRAWS:
            self._add(node, f"draw .{f.attr}(")
        self.generic_visit(node)

    def visit_BinOp(self, node):
        if isinstance(node.op, ast.Div) and _sum_with_one(node.left) and _sum_with_one(node.right):
            self._add(node, "p-value formula (1 + ...) / (1 + ...)")
        self.generic_visit(node)


@cache
def _offenders() -> list[tuple[str, int, str]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(EXEMPT):
            continue
        finder = _Finder(rel)
        finder.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        out += finder.found
    return out


def _listing(rows) -> str:
    return "\n".join(f"  robustalign/{key.split(':')[0]}:{line} in {key.split(':')[1]}(): {what}"
                     for key, line, what in rows)


def test_draws_and_p_value_formulas_only_in_resampling():
    new = [r for r in _offenders() if r[0] not in ALLOWED]
    assert not new, (
        "random draws or permutation p-value formulas outside robustalign/resampling/ (take the draws from "
        "robustalign.resampling.keyed_stream and resampling.draws, the p-values from "
        "resampling.permutation_p_values):\n" + _listing(new)
    )


def test_guard_finds_what_it_is_meant_to_find(tmp_path):
    # the scanner itself: a draw, a legacy global draw and the formula are found; a docstring example,
    # a non-drawing call and an unrelated ratio are not
    src = '''
def f(gen, b, B, p, eps, kmax):
    """>>> np.random.default_rng(0).normal(size=3)"""
    x = gen.integers(0, 5, size=3)
    y = np.random.normal(size=2)
    child = gen.spawn(2)
    q = (p + eps) / (1 + kmax * eps)
    return (1 + b) / (1.0 + B)
'''
    finder = _Finder("x.py")
    finder.visit(ast.parse(src))
    whats = sorted(w for _, _, w in finder.found)
    assert whats == ["draw .integers(", "draw .normal(", "p-value formula (1 + ...) / (1 + ...)"]
    assert {k for k, _, _ in finder.found} == {"x.py:f"}


def test_allow_list_is_current():
    present = {r[0] for r in _offenders()}
    stale = sorted(set(ALLOWED) - present)
    assert not stale, f"allow-list entries with nothing left to allow (delete them): {stale}"


# --------------------------------------------------------------------------------------------------
# function length
# --------------------------------------------------------------------------------------------------
#: Code lines (docstring excluded) a function may have; longer ones say why in a comment starting
#: "# long:" inside the function, or are listed below.
MAX_LINES = 80

#: Functions that were longer when this guard was written, with their length then. They may shrink, never
#: grow; cut each along its validate -> prepare -> estimate -> test -> verdict -> result steps and delete
#: its entry. No new entry may be added.
LONG: dict[str, int] = {
}


def _function_lengths() -> dict[str, tuple[int, bool]]:
    """``"path:function" -> (code lines without the docstring, has a '# long:' comment)``."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            body = node.body
            doc = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str)
            first = (body[1].lineno if len(body) > 1 else body[0].end_lineno) if doc else node.lineno
            n = node.end_lineno - first + 1
            said = any("# long:" in ln for ln in lines[node.lineno - 1:node.end_lineno])
            key = f"{rel}:{node.name}"
            if n > out.get(key, (0, False))[0]:
                out[key] = (n, said)
    return out


def test_no_function_is_longer_than_80_lines_without_saying_why():
    too_long = {k: n for k, (n, said) in _function_lengths().items()
                if n > MAX_LINES and not said and n > LONG.get(k, MAX_LINES)}
    assert not too_long, (
        f"functions over {MAX_LINES} code lines (or longer than their entry in LONG): {too_long}. Cut them along "
        "their steps (validate -> prepare -> estimate -> test -> verdict -> result), or say why in a '# long:' "
        "comment inside the function.")


def test_long_list_is_current():
    lengths = _function_lengths()
    stale = {k: lengths.get(k, (0, False))[0] for k in LONG if lengths.get(k, (0, False))[0] <= MAX_LINES}
    assert not stale, f"these functions are now at most {MAX_LINES} lines: delete their LONG entries: {stale}"


# --------------------------------------------------------------------------------------------------
# private names stay in their module
# --------------------------------------------------------------------------------------------------
def _module_name(rel: str) -> str:
    parts = ["robustalign", *rel[:-3].split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


class _PrivateImports(ast.NodeVisitor):
    """``from robustalign.x import _y`` (absolute or relative) and ``m._y`` where ``m`` names an imported
    robustalign module or object. Private modules imported as modules (``from robustalign.resampling
    import _weights``) and dunder names are fine."""

    def __init__(self, rel: str):
        self.rel, self.module, self.found = rel, _module_name(rel), []
        self.package = self.module if rel.endswith("__init__.py") else self.module.rpartition(".")[0]
        self.bound: dict[str, str] = {}  # local name -> robustalign module or object it names

    @staticmethod
    def _private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    def _source(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))

    def visit_Import(self, node):
        for a in node.names:
            if a.name.startswith("robustalign"):
                self.bound[a.asname or a.name.split(".")[0]] = a.name

    def visit_ImportFrom(self, node):
        src = self._source(node)
        if not src.startswith("robustalign"):
            return
        for a in node.names:
            self.bound[a.asname or a.name] = f"{src}.{a.name}"
            if self._private(a.name) and not _is_module(f"{src}.{a.name}") and src != self.module:
                self.found.append((self.rel, node.lineno, f"from {src} import {a.name}"))

    def visit_Attribute(self, node):
        v = node.value
        if self._private(node.attr) and isinstance(v, ast.Name) and v.id in self.bound \
                and _is_module(self.bound[v.id]) and self.bound[v.id] != self.module:
            self.found.append((self.rel, node.lineno, f"{v.id}.{node.attr} ({self.bound[v.id]})"))
        self.generic_visit(node)


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split(".")[1:])
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def _private_imports(rel: str, text: str) -> list[tuple[str, int, str]]:
    finder = _PrivateImports(rel)
    tree = ast.parse(text)
    for node in ast.walk(tree):  # imports first (they may sit inside functions), then attribute reads
        if isinstance(node, ast.Import | ast.ImportFrom):
            finder.visit(node)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            finder.visit_Attribute(node)
    return finder.found


def test_no_private_name_is_used_across_modules():
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        found += _private_imports(rel, path.read_text(encoding="utf-8"))
    assert not found, (
        "private names used outside their module (make the name public in its home, without the underscore and "
        "documented as internal if it is not for users, or move it to where it is used; see "
        "docs/architecture.md):\n" + "\n".join(f"  robustalign/{r}:{line}: {what}" for r, line, what in found))


def test_private_name_guard_finds_what_it_is_meant_to_find():
    src = '''
from robustalign.schema import Scale, _code
from robustalign.resampling import _weights
from ..scoring import _pad
from . import _helper_function
import robustalign.power as pw
from robustalign.claims import preferences as P

def f():
    from robustalign.report.render import _figure_of
    _weights.leave_one_out(1)
    P._one_model(2)
    self._x = pw.__name__ + pw._z(3)
'''
    whats = sorted(w for _, _, w in _private_imports("claims/x.py", src))
    assert whats == sorted([
        "from robustalign.schema import _code", "from robustalign.scoring import _pad",
        "from robustalign.claims import _helper_function", "from robustalign.report.render import _figure_of",
        "P._one_model (robustalign.claims.preferences)", "pw._z (robustalign.power)",
    ])
