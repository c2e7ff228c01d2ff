"""False alarms and detection of the regression gate: identical reruns of the README example, then injected slowdowns.

    .venv/bin/python bench/false_alarms.py                      # both parts (reruns: ~2 min each on 2 cores)
    .venv/bin/python bench/false_alarms.py --trials-only        # the in-process trials alone (~2-4 min)
    .venv/bin/python bench/false_alarms.py --reruns-only --reruns 10

Part 1, reruns: ``mlfarm qualify examples/tiny-sd.yaml`` (artifacts cached after a first, uncounted run that is
also the first baseline) rerun ``--reruns`` times on an unchanged tree, each against the previous run. Counted:
regressions reported (target 0), other verdicts, and whether the plan (the variant chosen per device and
component, from ``runs.plan``) is the same every time (target: yes).

Part 2, trials: the harness's benchmark loop (``run_benchmark``: cold and warm load, an untimed first
prediction, warmup, timed predictions, the delay knob ``MLFARM_HARNESS_DELAY_FACTOR`` read the way the harness
reads it) in this process on a small ML program. One launch is one pass of that loop with a fresh model load;
each trial measures three conditions in ``launches`` launches of ``iterations`` predictions (the spec's
``measure.launches`` when the spec has it, else 3, and ``measure.iterations``), the conditions interleaved launch
by launch in a rotating order so whatever the machine does falls on all three alike:

    baseline  factor 1.00
    slow      factor ``--slowdown`` (1.10): a regression in >= 95% of trials (target)
    same      factor 1.00: flagged (regression or improvement) in <= 5% of trials (target)

Each trial is classified by the report's statistic (``compare_latency``: hierarchical bootstrap over launches,
the spec's regression thresholds) with its own seed. The reference printed beside it, from the same samples:
the per-prediction bootstrap that treated every prediction as independent (the statistic before issue 19).

Both parts measure time: the script re-executes itself under ``flock /tmp/mlfarm-cpu.lock``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.harness.contract import InputSpec, Job
from orchestrator.harness.host import DELAY_ENV, delay_factor, run_benchmark
from orchestrator.harness.runtime import mil_loader
from orchestrator.report.data import JobData
from orchestrator.report.regression import classify, compare_latency, ratio_of_medians
from orchestrator.results import ResultsStore
from orchestrator.spec import load_spec
from orchestrator.spec.model import RegressionSpec

LOCK = "/tmp/mlfarm-cpu.lock"
REPO = Path(__file__).resolve().parents[1]
SHAPE = (128, 512)
KEY = ("host", "probe", "fp32-none-original", "cpu_only")
ORDERS = (("baseline", "slow", "same"), ("slow", "same", "baseline"), ("same", "baseline", "slow"))


# ---- part 1: identical reruns of the README example --------------------------------------------------------
def qualify(db: Path, spec: Path, out: Path, devices: str | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "orchestrator.cli", "--db", str(db), "qualify", str(spec), "--format", "json",
           "--out", str(out), "--json"] + (["--devices", devices] if devices else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"qualify failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def chosen(db: Path, run_id: str) -> dict[tuple[str, str], tuple[str, str] | None]:
    with ResultsStore(db) as store:
        row = store.get_run(run_id)
    plan = row.plan if row else {}
    return {(d["key"], comp): (c["variant"], c["compute_units"]) if c else None
            for d in plan.get("devices", ()) for comp, c in d.get("chosen", {}).items()}


def reruns(spec: Path, n: int, devices: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="mlfarm-false-alarms-") as tmp:
        db = Path(tmp) / "results.db"
        t0 = time.perf_counter()
        first = qualify(db, spec, Path(tmp) / "r0", devices)
        print(f"warm-up run {first['report']['run']['id']} (builds what is missing, the first baseline): "
              f"{first['report']['headline']} ({time.perf_counter() - t0:.0f} s)")
        plans, verdicts, regressions = [chosen(db, first["report"]["run"]["id"])], Counter[str](), 0
        for i in range(1, n + 1):
            t0 = time.perf_counter()
            data = qualify(db, spec, Path(tmp) / f"r{i}", devices)["report"]
            counts = Counter(c["classification"] for c in data["comparisons"])
            verdicts.update(counts)
            regressions += counts["regression"]
            plans.append(chosen(db, data["run"]["id"]))
            flagged = [f"{c['device_key']} {c['component']} {c['metric']} {c['classification']}"
                       for c in data["comparisons"] if c["classification"] in ("regression", "suspicious")]
            print(f"rerun {i:2d}: {data['headline']} ({time.perf_counter() - t0:.0f} s)"
                  + (f"; {', '.join(flagged)}" if flagged else ""))
        same = all(p == plans[0] for p in plans)
        print(f"\nreruns: {n}; regressions reported: {regressions} (target 0); verdicts {dict(verdicts)}; "
              f"plan identical in all {n + 1} runs: {same} (target: yes)")
        if not same:
            for i, p in enumerate(plans[1:], 1):
                changed = {k: (plans[i - 1].get(k), v) for k, v in p.items() if plans[i - 1].get(k) != v}
                if changed:
                    print(f"  run {i}: {changed}")


# ---- part 2: injected slowdown, in-process trials ----------------------------------------------------------
def probe_model(root: Path) -> Path:
    """The probe program of ``bench/regression_trials.py`` (4 x linear + relu, a few ms per prediction)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from regression_trials import build_probe

    return build_probe(root)


def one_launch(model: Path, iterations: int, factor: float, name: str) -> list[float]:
    job = Job(job_id=name, model=model.name, compute_units="cpu_only", inputs=(InputSpec("x", SHAPE),),
              warmup=1, iterations=iterations, return_outputs=False)
    timings, _, _ = run_benchmark(job, model, mil_loader, model.parent, deadline=time.perf_counter() + 300,
                                  factor=factor)
    return timings.latencies


Blocks = dict[str, list[list[float]]]  # condition -> launches of one trial


def trial(model: Path, i: int, launches: int, iterations: int, factors: dict[str, float]) -> Blocks:
    out: dict[str, list[list[float]]] = {c: [] for c in factors}
    for k in range(launches):
        for condition in ORDERS[(i + k) % len(ORDERS)]:
            out[condition].append(one_launch(model, iterations, factors[condition], f"{condition}-{i}-{k}"))
    return out


def job(launches: list[list[float]]) -> JobData:
    values = tuple(v for launch in launches for v in launch)
    ids = tuple(k for k, launch in enumerate(launches) for _ in launch)
    return JobData("probe", *KEY, status="ok", predicted_peak_mb=None, limit_mb=None, error=None,
                   metrics={"latency_ms": values}, launch_ids={"latency_ms": ids})


def per_prediction(cand: list[list[float]], base: list[list[float]], spec: RegressionSpec, seed: int) -> str:
    """The reference: every prediction an independent sample (the statistic before launches were the unit)."""
    c, b = [v for x in cand for v in x], [v for x in base for v in x]
    ratio, low, high = ratio_of_medians(c, b, resamples=spec.resamples, confidence=spec.confidence, seed=seed)
    t = spec.latency_pct / 100
    return classify(ratio, low, high, null=1.0, up=1 + t, down=1 - t)


def rates(blocks: list[Blocks],
          verdict: Callable[[list[list[float]], list[list[float]], int], str]) -> tuple[Counter[str], Counter[str]]:
    slow = Counter(verdict(b["slow"], b["baseline"], i) for i, b in enumerate(blocks))
    same = Counter(verdict(b["same"], b["baseline"], i) for i, b in enumerate(blocks))
    return slow, same


def trials(n: int, launches: int, iterations: int, slowdown: float, spec: RegressionSpec) -> None:
    import torch

    torch.set_num_threads(1)  # as the harness subprocess runs (OMP_NUM_THREADS=1)
    factors = {c: delay_factor({DELAY_ENV: str(f)}) for c, f in
               {"baseline": 1.0, "slow": slowdown, "same": 1.0}.items()}
    with tempfile.TemporaryDirectory(prefix="mlfarm-probe-") as tmp:
        model = probe_model(Path(tmp))
        t0 = time.perf_counter()
        blocks = [trial(model, i, launches, iterations, factors) for i in range(n)]
    base = [v for b in blocks for x in b["baseline"] for v in x]
    launch_medians = [float(np.median(x)) for b in blocks for x in b["baseline"]]
    print(f"\n{n} trials x 3 conditions x {launches} launches x {iterations} predictions "
          f"({time.perf_counter() - t0:.0f} s); baseline median {np.median(base):.2f} ms, launch medians spread "
          f"(IQR / median) {np.subtract(*np.percentile(launch_medians, [75, 25])) / np.median(launch_medians):.1%}")

    def ours(c: list[list[float]], b: list[list[float]], i: int) -> str:
        return compare_latency(KEY, job(c), [job(b)], spec, seed=i).classification

    def reference(c: list[list[float]], b: list[list[float]], i: int) -> str:
        return per_prediction(c, b, spec, seed=i)

    for name, verdict in (("launch-level (ours)", ours), ("per-prediction (reference)", reference)):
        slow, same = rates(blocks, verdict)
        detected = slow["regression"] / n
        flagged = (same["regression"] + same["improvement"]) / n
        print(f"{name:28s} {slowdown - 1:+.0%} slowdown detected {detected:4.0%} (target >= 95%) {dict(slow)}; "
              f"identical flagged {flagged:4.0%} (target <= 5%) {dict(same)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=REPO / "examples" / "tiny-sd.yaml")
    parser.add_argument("--devices", help="qualify --devices for the reruns [the spec's]")
    parser.add_argument("--reruns", type=int, default=10)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--launches", type=int, help="launches per condition and trial [spec measure.launches, 3]")
    parser.add_argument("--iterations", type=int, help="predictions per launch [spec measure.iterations]")
    parser.add_argument("--slowdown", type=float, default=1.10)
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--trials-only", action="store_true")
    only.add_argument("--reruns-only", action="store_true")
    args = parser.parse_args()
    if os.environ.get("MLFARM_CPU_LOCK") != "held":
        os.environ["MLFARM_CPU_LOCK"] = "held"
        os.execvp("flock", ["flock", LOCK, sys.executable, *sys.argv])
    spec = load_spec(args.spec)
    spec_launches = getattr(spec.measure, "launches", None)  # measure.launches: the launches lane's field
    launches = args.launches or spec_launches or 3
    iterations = args.iterations or spec.measure.iterations
    print(f"spec {args.spec.name}: measure.launches {spec_launches if spec_launches else 'absent'} (this mlfarm "
          f"{'measures' if spec_launches else 'does not measure'} several launches per job)")
    if not args.trials_only:
        reruns(args.spec, args.reruns, args.devices)
    if not args.reruns_only:
        trials(args.trials, launches, iterations, args.slowdown, spec.regression)


if __name__ == "__main__":
    main()
