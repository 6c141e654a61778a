"""Run robustalign's benchmarks.

Every ``bench/bench_<name>.py`` module defines ``main(argv)``. Without arguments all of them run, in
name order; otherwise only the named ones (``resampling`` or ``bench_resampling``). Arguments after
``--`` are passed to each module's ``main``.

    python bench/run.py                      # every benchmark
    python bench/run.py resampling -- --quick
    python bench/run.py realsize -- --scale 0.05 --quick    # real-size timings, small while developing
    python bench/run.py realsize -- --audit                 # ... with the 2,000,000-row audit (minutes)
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    found = available()
    names = [a.removeprefix("bench_").removesuffix(".py") for a in argv] or list(found)
    unknown = [n for n in names if n not in found]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {sorted(found)}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))
    status = 0
    for name in names:
        module = importlib.import_module(f"bench_{name}")
        print(f"=== bench_{name} ===", flush=True)
        status = max(status, int(module.main(passthrough) or 0))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
