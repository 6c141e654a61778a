"""The gate record at full size: seeds one after another, each fit in a fresh process, one JSON line each.

Each seed runs ``bench_models.py --route robustalign Q --seed S`` in its own process (so compile, memory
and the compile caches are those of a new process) and appends its row (wall, compile and sampling
seconds, CPU seconds, load average at start and end, the gate's numbers and verdict, and the verdict of the
earlier every-scalar R-hat rule) to ``bench/results/gate_record_Q<Q>_ta<target_accept>.jsonl`` (``_ta08`` for 0.8).

Run: ``python bench/gate_record.py [--items 200] [--seeds 1 10] [--tune 500] [--target-accept 0.8] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="gate_record")
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs=2, default=(1, 10))
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--target-accept", type=float, default=0.8, help="0.8: the library default")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    tag = f"{args.target_accept:g}".replace(".", "")  # 0.8 -> 08, 0.9 -> 09
    out = args.out or HERE / "results" / f"gate_record_Q{args.items}_ta{tag}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in range(args.seeds[0], args.seeds[1] + 1):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(HERE / "bench_models.py"), "--route", "robustalign",
                               str(args.items), "--tune", str(args.tune), "--seed", str(seed),
                               "--target-accept", str(args.target_accept)],
                              capture_output=True, text=True)
        row: dict = {"seed": seed, "process_wall_s": time.perf_counter() - t0, "returncode": proc.returncode,
                     "machine": _cpu_model(), "cores": os.cpu_count()}
        if proc.returncode == 0:
            row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        else:
            row["error"] = proc.stderr.strip().splitlines()[-1:] if proc.stderr else "no output"
        with open(out, "a") as fh:
            fh.write(json.dumps(row, default=float) + "\n")
        print(json.dumps(row, default=float), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
