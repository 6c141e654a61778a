"""Benchmark at the size of a real persona experiment: timings against their goals, in one run.

Workload (generated here, seeded)
    4 models x ~600 personas (half from each of two countries) x 2 prompt languages x 4 paraphrases x
    5 samples x 30 items (4- and 5-point ordinal scales): 2.88 million response rows at ``--scale 1``,
    with ``persona``, ``country``, ``language``, ``paraphrase`` and ``sample`` as design factors.
    ``--scale`` shrinks the number of personas (0.05 while developing).

Timings (medians of ``--repeats``; the machine's load average is printed, since other processes share it)
    (a) ``make_responses`` on the generated table, against reading the same rows with ``pd.read_csv`` and
        ``pd.read_parquet`` (the ratio). Goal: under 5 s at full size.
    (b) ``assess_stability`` per model x country unit (``by="unit"``), factors language and paraphrase,
        default resamples, on ``--stab-personas`` personas per country, for ``--stab-units`` units (model x
        country). The personas pool within each cell (an item x paraphrase stratum holds the answers of every
        persona), so the number of null draws does not grow with the personas: per unit and factor 10,000
        draws of every stratum's level x option table (multivariate hypergeometric, (L - 1)(K - 1)
        hypergeometric draws per stratum and draw), one set shared by the noise floor and the item-level null.
        Each draw costs more with more answers per cell (numpy's sampler: about 115 ns at 50, 220 ns at 750),
        and the parts that read the rows grow with them, so the default (10 personas) understates the real
        size: ``--stab-personas 150 --stab-units 16`` is the published experiment's 2.88 million rows (71.5 CPU-s, 42 s of
        it in the table draws, measured at load average 5). Goal: 10 times faster than the time measured on
        the default workload before the nulls were vectorised (``BEFORE_STABILITY_S``, CPU seconds: the
        steadier figure on a shared machine). The line after the timing says where the CPU goes.
        The sequential answer nulls (``assess_stability(sequential=True)``: each null stops once its p-value
        is clearly on one side of 0.05) run in the same part, after the fixed route: their CPU time, the ratio
        to the fixed route and to the published experiment's 233 s, the draws used and whether the verdicts agree. At the
        published experiment's size: 21.1 CPU-s against 70.8 for the fixed route (3.4 x), 11.1 x faster than 233 s, the same
        verdicts (load average 6.6-8.1).
        ``--stab-compare`` also runs the earlier null draws (a random key sorted per answer) once in the same
        run and prints the ratio, whether the verdicts agree and the largest answer-null p-value difference
        in Monte Carlo SEs.
    (c) ``audit_claim`` for one model x country: "prompting in the country's language raises alignment"
        (``Claim.steering_raises`` with ``steer="language"``), multiverse over paraphrases.
    (d) ``robustalign audit --example`` as a command, wall time and CPU time (its own and its figure
        workers'). Goal: under 15 s on 2 cores.
    (e) ``robustalign audit`` on ``--audit-rows`` rows (default 2,000,000) as a command: wall time, peak
        memory of the process (``resource.getrusage``) and the longest silence between its progress lines
        (goal: none over 10 s). Off unless ``--audit``: it takes minutes.

Run with ``python bench/run.py realsize`` (``make bench``); ``-- --scale 0.05 --quick`` while developing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

#: (b) before the nulls were vectorised, on its default workload (2 units, 10 personas per unit, 2,000
#: resamples, 10,000 permutations), on the shared 2-core development machine (load average about 10):
#: 473.8 s wall, 100.2 s CPU. After, run back to back with it: 84.8 s wall (load about 5), 55.0 s CPU, and
#: the same ``to_frame()`` within 1e-16. With the table draws shared by the noise floor and the item-level
#: null: 5.5 s CPU (median of 3, load average 5.3-5.8), 18 times faster; 3.1 s of it in the table draws.
BEFORE_STABILITY_S = {"units": 2, "personas": 10, "seconds": 473.8, "cpu": 100.2}
#: (b) the published experiment's figure at its real size (16 model x country units, 2.77 million rows): 233 s; the goal is
#: 10 times faster. ``--stab-personas 150 --stab-units 16`` is that size here.
ISSUE_STABILITY_S = {"units": 16, "personas": 150, "seconds": 233.0}


def workload(n_personas=600, n_items=30, n_models=4, n_lang=2, n_para=4, n_samples=5, n_countries=2, seed=0):
    """Responses, reference and scales of a simulated persona experiment (answers uniform at random)."""
    rng = np.random.default_rng(seed)
    countries = ["IN", "US", "DE", "BR", "JP", "NG"][:n_countries]
    K = np.where(np.arange(n_items) % 3 == 0, 5, 4)
    shape = (n_models, n_personas, n_lang, n_para, n_samples, n_items)
    m, p, lang, para, s, i = (a.ravel() for a in np.indices(shape, dtype=np.int32))
    persona_country = np.repeat(np.arange(n_countries), -(-n_personas // n_countries))[:n_personas]
    items = np.array([f"Q{j:02d}" for j in range(n_items)])
    df = pd.DataFrame({
        "model": pd.Categorical.from_codes(m, [f"model_{j}" for j in range(n_models)]).astype(str),
        "persona": pd.Categorical.from_codes(p, [f"P{j:04d}" for j in range(n_personas)]).astype(str),
        "country": np.array(countries)[persona_country[p]],
        "language": np.array(["en", "xx"])[lang],
        "paraphrase": para + 1,
        "sample": s + 1,
        "item": items[i],
        "answer": (rng.random(len(m)) * K[i]).astype(np.int64) + 1,
    })
    ref = pd.DataFrame([{"item": it, "group": g, "option": o + 1, "share": sh, "n": 500}
                        for j, it in enumerate(items) for g in countries
                        for o, sh in enumerate(rng.dirichlet(np.ones(K[j])))])
    scales = pd.DataFrame({"item": items, "options": ["|".join(str(o + 1) for o in range(k)) for k in K],
                           "ordinal": True})
    return df, ref, scales


_CPU: dict[str, float] = {}


def _median_time(fn, repeats, label=None):
    """Median wall seconds of ``repeats`` calls (and the median CPU seconds of this process, kept under
    ``label``: on a shared machine the CPU time is the steadier figure)."""
    times, cpu, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    if label:
        _CPU[label] = statistics.median(cpu)
    return statistics.median(times), out


def _line(label, seconds, goal=None, against=None):
    cpu = f" (cpu {_CPU[label]:.2f} s)" if label in _CPU else ""
    parts = [f"  {label:<44s} {seconds:8.2f} s{cpu}"]
    if goal is not None:
        parts.append(f"goal {goal:.3g} s: {'met' if seconds <= goal else 'NOT met'}")
    if against is not None:
        parts.append(against)
    print("; ".join(parts), flush=True)


def bench_make_responses(scale, repeats, tmp):
    import robustalign as ra

    n_p = max(2, round(600 * scale))
    df, ref, scales = workload(n_personas=n_p)
    R = ra.make_reference(ref, scales)
    df.to_parquet(tmp / "responses.parquet")
    df.to_csv(tmp / "responses.csv", index=False)
    t_pq, _ = _median_time(lambda: pd.read_parquet(tmp / "responses.parquet"), repeats, "pd.read_parquet")
    t_csv, _ = _median_time(lambda: pd.read_csv(tmp / "responses.csv"), repeats, "pd.read_csv")
    t_mr, resp = _median_time(lambda: ra.make_responses(df, R), repeats, "make_responses")
    goal = 5.0 * len(df) / 2_770_000  # the goal scales with the rows
    print(f"(a) make_responses, {len(df):,} rows ({n_p} personas)")
    _line("pd.read_parquet", t_pq)
    _line("pd.read_csv", t_csv)
    _line("make_responses", t_mr, goal,
          f"{t_mr / t_csv:.2f} x read_csv, {t_mr / t_pq:.2f} x read_parquet")
    t_sub, sub = _median_time(lambda: resp.subset(country="IN", language="xx"), repeats, "subset")
    _line("subset", t_sub, None, f"Responses.subset(country=, language=) -> {len(sub.data):,} rows; "
          f"{t_sub / t_mr:.3f} x make_responses")
    return resp, R


def bench_stability(personas, n_units, quick, compare=False, repeats=3):
    import robustalign as ra
    from robustalign.claims.stability import assess_stability
    from robustalign.resampling import stability_nulls

    n_countries = 4 if n_units > 8 else 2
    n_models = -(-n_units // n_countries)
    df, ref, scales = workload(n_personas=personas * n_countries, n_models=n_models, n_countries=n_countries)
    df["unit"] = df["model"] + "|" + df["country"]
    keep = sorted(df["unit"].unique())[:n_units]
    df = df[df["unit"].isin(keep)].drop(columns=["country"]).reset_index(drop=True)
    R = ra.make_reference(ref, scales)
    resp = ra.make_responses(df, R)
    kw = {"n_resamples": 200, "n_permutations": 1000} if quick else {}

    def run(method, n=repeats, sequential=False):
        stability_nulls.NULL_DRAWS = method
        label = f"assess_stability ({method}{', sequential' if sequential else ''})"
        try:
            return _median_time(lambda: assess_stability(resp, R, by="unit", factors=["language", "paraphrase"],
                                                         rng=0, sequential=sequential, **kw), n, label)
        finally:
            stability_nulls.NULL_DRAWS = "tables"

    load = os.getloadavg()[0]
    with _null_clock() as clock:
        sec, res = run("tables")
    print(f"(b) assess_stability, {n_units} units x 2 factors, {personas} personas per unit, {len(df):,} rows"
          f"{' (quick: 200 resamples, 1,000 permutations)' if quick else ''}; null draws: multivariate "
          f"hypergeometric tables; median of {repeats} runs, load average {load:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after")
    before = BEFORE_STABILITY_S
    per_unit_before = before["seconds"] / before["units"]
    same = personas == before["personas"] and not quick
    cpu_before = before["cpu"] / before["units"] * n_units
    cpu = _CPU["assess_stability (tables)"]
    _line("assess_stability (tables)", sec, None,  # the goal is in CPU time: the machine is shared
          f"{sec / n_units:.2f} s per unit" + (f"; first version: {per_unit_before:.1f} s per unit wall, "
                                                f"{cpu_before:.1f} s cpu; now {cpu_before / cpu:.1f} x faster (cpu; "
                                                f"goal 10 x: {'met' if cpu_before / cpu >= 10 else 'NOT met'})"
                                                if same else ""))
    total = _CPU["assess_stability (tables)"]
    per_run = {k: v / repeats for k, v in clock.items()}
    stats = per_run["answer nulls"] - per_run["table draws"]
    print(f"      where the cpu goes (mean of the runs): answer-null table draws {per_run['table draws']:.2f} s, "
          f"their statistics (modal flips, item x level interaction) {stats:.2f} s, spread null "
          f"{per_run['spread null']:.2f} s, the rest (bootstraps, other parts) "
          f"{total - per_run['answer nulls'] - per_run['spread null']:.2f} s", flush=True)
    with _null_clock() as clock_seq:
        sec_seq, res_seq = run("tables", sequential=True)
    _sequential_lines(res, res_seq, sec_seq, cpu, clock_seq, repeats, n_units, personas, quick)
    if compare:  # the previous null draws (a uniform key sorted per answer), in the same run
        sec_old, old = run("sort", 1)  # minutes: once
        cpu_old = _CPU["assess_stability (sort)"]
        same_verdicts = res.verdicts["verdict"].tolist() == old.verdicts["verdict"].tolist()
        _line("assess_stability (sort)", sec_old, None,
              f"tables are {cpu_old / cpu:.2f} x faster (cpu); same verdicts: {same_verdicts}; "
              f"{_p_gap(res, old, kw.get('n_permutations', 10_000))}")


def _sequential_lines(res, res_seq, sec_seq, cpu, clock, repeats, n_units, personas, quick):
    """The sequential answer nulls (``assess_stability(sequential=True)``) against the fixed route of the same
    run: CPU time, ratios (to the fixed route; to the published experiment's 233 s at its size), draws used, agreement."""
    cpu_seq = _CPU["assess_stability (tables, sequential)"]
    issue = ISSUE_STABILITY_S
    at_issue = n_units == issue["units"] and personas == issue["personas"] and not quick
    _line("assess_stability (tables, sequential)", sec_seq, None,
          f"{cpu / cpu_seq:.2f} x faster than the fixed route (cpu)" +
          (f"; {issue['seconds'] / cpu_seq:.1f} x faster than the published experiment's {issue['seconds']:.0f} s (goal 10 x: "
           f"{'met' if issue['seconds'] / cpu_seq >= 10 else 'NOT met'})" if at_issue else ""))
    used = pd.DataFrame(res_seq.provenance["answer_null_draws"])
    n = pd.concat([used["noise_floor"], used["item_level"]]).dropna()
    same = res.verdicts["verdict"].tolist() == res_seq.verdicts["verdict"].tolist()
    rows = ["flip_noise_floor", "item_level_sd"]
    cols = ["quantity", "unit", "factor", "p_value"]
    fa, fb = (r.to_frame() for r in (res, res_seq))
    m = fa.loc[fa["quantity"].isin(rows), cols].merge(fb.loc[fb["quantity"].isin(rows), cols], on=cols[:3])
    alpha = 1 - res.provenance["confidence_level"]
    side = int(((m["p_value_x"] < alpha) == (m["p_value_y"] < alpha)).sum())
    per_run = {k: v / repeats for k, v in clock.items()}
    print(f"      sequential: answer-null draws per test mean {n.mean():,.0f}, max {n.max():,.0f} of "
          f"{res.provenance['n_permutations']:,} ({len(n)} tests); answer nulls {per_run['answer nulls']:.2f} s "
          f"cpu; same verdicts as the fixed route: {same}; answer-null p-values on the same side of {alpha:.2g}: "
          f"{side} of {len(m)}", flush=True)


@contextlib.contextmanager
def _null_clock():
    """CPU seconds spent in the stability nulls while the block runs: the answer nulls (table draws and their
    statistics), their table draws alone, and the spread null of the factor effect. One clock read per chunk
    of draws, so the overhead is negligible."""
    from robustalign.claims import _stability_parts, stability
    from robustalign.resampling import stability_nulls

    clock = {"answer nulls": 0.0, "table draws": 0.0, "spread null": 0.0}

    def timed(fn, key):
        def wrapper(*args, **kwargs):
            c = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                clock[key] += time.process_time() - c
        return wrapper

    saved = [(_stability_parts, "answer_permutation_nulls"), (stability, "spread_permutation_null"),
             (stability_nulls.AnswerPermuter, "draw")]
    originals = [getattr(obj, name) for obj, name in saved]
    for (obj, name), fn, key in zip(saved, originals, ["answer nulls", "spread null", "table draws"]):
        setattr(obj, name, timed(fn, key))
    try:
        yield clock
    finally:
        for (obj, name), fn in zip(saved, originals):
            setattr(obj, name, fn)


def _p_gap(a, b, n_perm):
    """The largest difference between the answer nulls' p-values of two runs with independent draws of the same
    null, in Monte Carlo SEs of the difference (sqrt(2 p (1 - p) / n_perm) at their mean p)."""
    cols = ["quantity", "unit", "factor", "p_value"]
    rows = ["flip_noise_floor", "item_level_sd"]
    fa, fb = (f.loc[f["quantity"].isin(rows), cols] for f in (a.to_frame(), b.to_frame()))
    m = fa.merge(fb, on=cols[:3], suffixes=("_a", "_b"))
    p = (m["p_value_a"] + m["p_value_b"]) / 2
    z = (m["p_value_a"] - m["p_value_b"]).abs() / np.sqrt(2 * p * (1 - p) / n_perm)
    return f"answer-null p-values: largest |difference| {z.max():.2f} MC SE over {len(m)}"


def bench_audit_claim(resp, R, quick):
    from robustalign.claims.multiverse import Claim, audit_claim

    t_sub = time.perf_counter()
    one = resp.subset(models=["model_0"], country="IN")
    t_sub = time.perf_counter() - t_sub
    claim = Claim.steering_raises("model_0", target="xx", steer="language", baseline="en", group="IN")
    kw = {"n_resamples": 200, "n_permutations": 1000} if quick else {}
    sec, _ = _median_time(lambda: audit_claim(one, R, claim, factors=["paraphrase"], rng=0, **kw), 1, "audit_claim")
    print(f"(c) audit_claim, one model x country ({len(one.data):,} rows, taken with subset in {t_sub:.2f} s), "
          "'xx' vs 'en'")
    _line("audit_claim", sec)


def bench_example(tmp, py, env, extra):
    code, wall, gap, peak, cpu, lines = _run_command([*py, "audit", "--example", "--out", str(tmp / "ex"), *extra],
                                                     env)
    print(f"(d) robustalign audit --example (exit {code})")
    _line("wall", wall, 15.0, f"cpu {cpu:.1f} s; longest silence {gap:.1f} s; peak memory {peak:.0f} MB")
    for line in lines:
        if line.startswith(("[", "longest")):
            print(f"      {line}")


def _run_command(args, env):
    """Run a command; wall time, peak memory of the child and the longest gap between its stderr lines."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    stamps = [t0]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lines = []

    def read():
        for line in proc.stderr:
            stamps.append(time.perf_counter())
            lines.append(line.rstrip())

    th = threading.Thread(target=read)
    th.start()
    code = proc.wait()
    th.join()
    end = time.perf_counter()
    stamps.append(end)
    gaps = np.diff(stamps)
    j = int(np.argmax(gaps))  # the silence ends with line j (or with the exit)
    lines.append(f"longest silence before: {lines[j] if j < len(lines) else 'the exit'}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_mb = after.ru_maxrss / 1024  # the largest child so far (the commands run in order of size)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return code, end - t0, float(gaps.max()), peak_mb, cpu, lines


def bench_commands(tmp, example, audit, audit_rows, quick):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    py = [sys.executable, "-m", "robustalign"]
    extra = ["--n-resamples", "200", "--n-permutations", "200"] if quick else []
    if example:
        bench_example(tmp, py, env, extra)
    if not audit:
        print("(e) 2,000,000-row audit: skipped (pass --audit)")
        return
    n_p = max(2, round(audit_rows / (4 * 2 * 4 * 5 * 30)))
    df, ref, scales = workload(n_personas=n_p)
    df.to_parquet(tmp / "big.parquet")
    ref.to_csv(tmp / "ref.csv", index=False)
    scales.to_csv(tmp / "scales.csv", index=False)
    # alignment against each persona's country; stability across the prompt language and the paraphrase
    (tmp / "design.toml").write_text('[alignment]\nagainst = "country"\n\n[stability]\n'
                                     'factors = ["language", "paraphrase"]\n', encoding="utf-8")
    args = [*py, "audit", str(tmp / "big.parquet"), "--reference", str(tmp / "ref.csv"), "--scales",
            str(tmp / "scales.csv"), "--design", str(tmp / "design.toml"), "--out", str(tmp / "big"), *extra]
    code, wall, gap, peak, cpu, lines = _run_command(args, env)
    print(f"(e) robustalign audit on {len(df):,} rows (exit {code})")
    _line("wall", wall, None, f"cpu {cpu:.1f} s; peak memory {peak:.0f} MB; longest silence {gap:.1f} s (goal <= 10 s: "
          f"{'met' if gap <= 10 else 'NOT met'})")
    for line in lines if code == 0 else lines[-6:]:
        if code != 0 or line.startswith(("[", "longest")):
            print(f"      {line}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench_realsize")
    ap.add_argument("--scale", type=float, default=1.0, help="share of the ~600 personas for (a) and (c)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stab-personas", type=int, default=10, help="personas per unit for (b)")
    ap.add_argument("--stab-units", type=int, default=2, help="model x country units for (b) (16 in the published experiment)")
    ap.add_argument("--stab-compare", action="store_true",
                    help="(b) also with the previous null draws (sorted keys), for the ratio in one run")
    ap.add_argument("--audit", action="store_true", help="run (e), the 2,000,000-row audit (minutes)")
    ap.add_argument("--audit-rows", type=int, default=2_000_000)
    ap.add_argument("--quick", action="store_true", help="fewer resamples and repeats, for a smoke run")
    ap.add_argument("--only", default="abcde", help="which parts to run, e.g. 'ab'")
    a = ap.parse_args(argv)
    repeats = 1 if a.quick else a.repeats
    print(f"load average at start: {os.getloadavg()[0]:.1f} (cpus: {os.cpu_count()})", flush=True)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        resp = R = None
        if "a" in a.only or "c" in a.only:
            resp, R = bench_make_responses(a.scale, repeats, tmp)
        if "b" in a.only:
            bench_stability(a.stab_personas, a.stab_units, a.quick, a.stab_compare, repeats)
        if "c" in a.only:
            bench_audit_claim(resp, R, a.quick)
        if "d" in a.only or "e" in a.only:
            bench_commands(tmp, "d" in a.only, a.audit and "e" in a.only, a.audit_rows, a.quick)
    print(f"load average at end: {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
