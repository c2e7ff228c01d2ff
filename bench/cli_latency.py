"""Wall time of mlfarm's lookup commands, each beside the bare interpreter start-up measured in the same run.

Every command runs as a fresh process (what a user pays per invocation), ``--repeats`` times, alternating with
``python -c "import click, rich"`` (the floor any click + rich CLI pays here); the figure is the median of each
and their difference (what mlfarm itself adds). Target: every lookup under 1 s on this machine. The script
re-executes itself under ``flock /tmp/mlfarm-cpu.lock`` so no other timing runs at the same time.

    .venv/bin/python bench/cli_latency.py [--repeats 7] [--artifacts DIR] [--run-artifact ID|PATH] [--before DIR]

``--before DIR`` (a checkout of an earlier revision, e.g. ``git archive REV | tar -x -C DIR``) times the same
commands from there too, interleaved with ours (``python -c`` imports the package from its working folder).

``--run-artifact`` adds ``mlfarm run-artifact`` of that artifact, beside the model's own execution time as the
command reports it (``seconds`` of its JSON): the rest is mlfarm's start-up and loading.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = "/tmp/mlfarm-cpu.lock"
PYTHON = sys.executable
LOOKUPS = (
    ("profiles", ["profiles"]),
    ("profiles show", ["profiles", "show", "iphone-12"]),
    ("runs", ["runs"]),
    ("spec check", ["spec", "check", "examples/tiny-sd.yaml"]),
    ("report (no run)", ["report", "--json"]),
    ("artifacts", ["artifacts"]),
)


def timed(argv: list[str], env: dict[str, str], cwd: Path = REPO) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, proc.stdout


def mlfarm(*args: str) -> list[str]:
    return [PYTHON, "-c", "from orchestrator.cli import entry_point; entry_point()", *args]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--artifacts", help="artifact store for `artifacts` and `--run-artifact` [a temporary one]")
    parser.add_argument("--run-artifact", metavar="ID|PATH", help="also time run-artifact of this artifact")
    parser.add_argument("--before", type=Path, help="an earlier checkout to time the same commands from")
    args = parser.parse_args()
    if os.environ.get("MLFARM_BENCH_LOCKED") != "1":
        os.environ["MLFARM_BENCH_LOCKED"] = "1"
        os.execvp("flock", ["flock", LOCK, PYTHON, *sys.argv])
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MLFARM_DB=str(Path(tmp) / "results.db"),
                   MLFARM_ARTIFACTS=args.artifacts or str(Path(tmp) / "artifacts"), COLUMNS="120")
        floor = [PYTHON, "-c", "import click, rich.console, rich.table"]
        before_head = f" {'before s':>9}" if args.before else ""
        print(f"{'command':<22}{before_head} {'mlfarm s':>9} {'bare start-up s':>16} {'added s':>8}")
        cases = list(LOOKUPS)
        if args.run_artifact:
            cases.append(("run-artifact", ["run-artifact", args.run_artifact, "--json"]))
        for label, argv in cases:
            ours, base, model, before = [], [], [], []
            for _ in range(args.repeats):
                seconds, out = timed(mlfarm(*argv), env)
                ours.append(seconds)
                base.append(timed(floor, env)[0])
                if args.before:
                    before.append(timed(mlfarm(*argv), env, args.before)[0])
                if label == "run-artifact":
                    model.append(json.loads(out)["seconds"])
            med, ref = statistics.median(ours), statistics.median(base)
            was = f" {statistics.median(before):>9.2f}" if before else ""
            print(f"{label:<22}{was} {med:>9.2f} {ref:>16.2f} {med - ref:>8.2f}", flush=True)
            if model:
                print(f"{'  of which execution':<22} {statistics.median(model):>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
