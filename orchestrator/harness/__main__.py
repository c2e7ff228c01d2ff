"""``python -m orchestrator.harness JOB.json [--root DIR] [--runtime coreml|mil-executor]``."""

from __future__ import annotations

import os

# Before torch loads OpenMP: worker threads sleep between parallel regions instead of spinning. Spinning
# threads of several harnesses (or a harness next to the orchestrator) on one machine slow each other
# down by 10-100x; sleeping costs nothing measurable for a single process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
from pathlib import Path

from orchestrator.errors import ContractError
from orchestrator.harness.host import run_job
from orchestrator.harness.runtime import choose_loader, coreml_available


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.harness", description=__doc__)
    parser.add_argument("job", type=Path, help="path of job.json; result.json is written next to it")
    parser.add_argument("--root", type=Path, help="folder job.model is relative to [the job's folder]")
    parser.add_argument("--runtime", choices=["coreml", "mil-executor"],
                        help="force a runtime [Core ML on macOS, the MIL executor elsewhere]")
    args = parser.parse_args(argv)
    job_path = args.job.resolve()
    root = (args.root or job_path.parent).resolve()
    runtime = args.runtime or ("coreml" if coreml_available() else "mil-executor")
    try:
        return run_job(job_path, root, choose_loader(runtime), runtime_name=runtime)
    except (ContractError, OSError, ValueError) as exc:
        print(f"error: cannot run {job_path}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
