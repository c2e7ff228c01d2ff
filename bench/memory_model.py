"""The memory model against measured peaks: predicted vs measured per (device, component, variant), median |error|.

Reads the newest finished run of a spec from a results database (a run of `mlfarm run SPEC --devices host
--all-variants`, which measures every variant on this machine), recomputes each job's prediction with the current
model (executor weights and fp16 temporaries from the artifacts' analysis, the app footprint, and a runtime
overhead plus per-component offset) and prints it next to the measured peak, the reference. The overhead is fitted
leave-one-out: each job's prediction uses the overhead refitted on every *other* job of the run, so the table is
not the fit judging itself.

    flock /tmp/mlfarm-cpu.lock .venv/bin/mlfarm --db /tmp/m.db run examples/tiny-sd.yaml --devices host --all-variants
    .venv/bin/python bench/memory_model.py --db /tmp/m.db --spec tiny-sd

SD scale: the same with `examples/sd15-unet-random.yaml` (restricted to the variants you need) under
/tmp/mlfarm-big.lock. The measurement itself is the run's; this script only reads it (no lock needed here).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--spec", default=None, help="spec name (default: any)")
    parser.add_argument("--run", default=None, help="run id (default: the newest finished run)")
    args = parser.parse_args()

    from orchestrator.config import builtin_profiles_dir
    from orchestrator.plan.calibrate import observations
    from orchestrator.plan.memory import Overheads
    from orchestrator.profiles import host_profile, load_catalog
    from orchestrator.results.store import ResultsStore

    with ResultsStore(args.db) as store:
        runs = store.list_runs(spec_name=args.spec, limit=50, status=("finished",))
        runs = [r for r in runs if args.run in (None, r.id)][:1]
        if not runs:
            sys.exit(f"no finished run in {args.db}")
        catalog = load_catalog([builtin_profiles_dir()]).with_profile(host_profile(), origin="host")
        obs = observations(store, runs, catalog)
        rows = []
        for o in obs:
            job = store.get_job(o.job_id)
            peak = next(m.value for m in store.measurements(o.job_id) if m.metric == "peak_footprint_mb")
            others = [x for x in obs if x.job_id != o.job_id]
            fitted = Overheads.default().refit(
                [(x.runtime, x.family, x.compute_units, x.residual_mb) for x in others],
                [(x.runtime, x.component, x.residual_mb) for x in others])
            modelled = peak - o.residual_mb  # app + weights + activations
            predicted = modelled + fitted.get(o.runtime, o.family, o.compute_units, o.component)
            rows.append((job.device_key if job else "?", o.component, job.variant if job else "?", predicted, peak))
    print(f"run {runs[0].id}: {len(rows)} jobs; overhead fitted leave-one-out per runtime and component\n")
    print("| device | component | variant | predicted MB | measured MB | error |\n|---|---|---|---:|---:|---:|")
    errors = []
    for device, comp, variant, predicted, peak in sorted(rows):
        err = predicted / peak - 1.0
        errors.append(err)
        print(f"| {device} | {comp} | {variant} | {predicted:,.1f} | {peak:,.1f} | {err:+.1%} |")
    print(f"\nmedian |error| {statistics.median(abs(e) for e in errors):.1%}, median signed "
          f"{statistics.median(errors):+.1%}, worst {max(errors, key=abs):+.1%} (target: median |error| <= 10%)")


if __name__ == "__main__":
    main()
