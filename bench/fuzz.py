"""Fuzz mlfarm's input boundaries with generated hostile inputs and count what goes wrong.

    .venv/bin/python bench/fuzz.py [--per-kind 500] [--timeout 20]

Four kinds of input (tests/fuzz/cases.py): release specs and device profiles (random edits of valid ones,
hostile values, damaged YAML), command lines (random tokens) and result folders (edited result.json, FIFOs,
folders, huge integers, .npz named .npy, lying .npy headers). For each: tracebacks (an exception that is not
mlfarm's own), hangs (a case still running after --timeout s, caught with SIGALRM), and for rejections the share
of problems naming their file, their key and carrying a fix. The reference beside each figure is the audit's
(issue 13): 31% of 654 fuzzed rejections had no fix.
"""

from __future__ import annotations

import argparse
import collections
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz.cases import KINDS, Verdict, run_case


class Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise Hang


def one(kind: str, seed: int, timeout: int) -> Verdict:
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        with tempfile.TemporaryDirectory() as folder:
            return run_case(kind, seed, Path(folder) / "case")
    except Hang:
        return Verdict("hang", detail=f"{kind} seed {seed}")
    finally:
        signal.alarm(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-kind", type=int, default=500)
    parser.add_argument("--timeout", type=int, default=20)
    args = parser.parse_args()
    totals: collections.Counter[str] = collections.Counter()
    examples: list[str] = []
    start = time.perf_counter()
    for kind in KINDS:
        counts: collections.Counter[str] = collections.Counter()
        for seed in range(args.per_kind):
            v = one(kind, seed, args.timeout)
            counts[v.kind] += 1
            counts["problems"] += v.problems
            counts["with_file"] += v.with_file
            counts["with_key"] += v.with_key
            counts["with_fix"] += v.with_fix
            if v.detail and len(examples) < 15:
                examples.append(f"[{v.kind}] {v.detail}")
        totals.update(counts)
        print(f"{kind:8s} cases {args.per_kind:5d}  accepted {counts['accepted']:5d}  rejected {counts['rejected']:5d}"
              f"  tracebacks {counts['traceback']:3d}  hangs {counts['hang']:3d}  problems {counts['problems']:6d}",
              flush=True)
    n = totals["problems"] or 1
    cases = args.per_kind * len(KINDS)
    print(f"\n{cases} generated inputs in {time.perf_counter() - start:.0f} s: {totals['traceback']} tracebacks, "
          f"{totals['hang']} hangs, {totals['rejected']} rejections with {totals['problems']} problems")
    print(f"problems naming their file: {100 * totals['with_file'] / n:.1f}%   their key: "
          f"{100 * totals['with_key'] / n:.1f}% (the rest concern the whole file: YAML syntax, unreadable)   "
          f"with a fix: {100 * totals['with_fix'] / n:.1f}%   (reference, issue 13 audit: 69% with a fix)")
    for line in examples:
        print("  " + line)
    return 0 if totals["traceback"] == 0 and totals["hang"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
