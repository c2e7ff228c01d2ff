"""The flow of mlfarm, stage by stage (each stage is a subpackage; this module only wires them):

    release spec ─┐
    profiles ─────┼─> build ──> analyze ──> plan ──> run ──> results DB ──> report / gate
    model source ─┘   Core ML    weights,    per-     harness    SQLite       md, html,
                      artifacts  liveness,   device   on device             junit, json
                                 PSNR        choice   or host

    build    orchestrator.build.builder.build_spec        content-addressed, cached
    analyze  orchestrator.mil.check.check_spec             analysis + quality sections in each manifest
    plan     orchestrator.plan.make_plan                   pure: spec, targets, artifact facts, history
    run      orchestrator.runner.session.start_run         devices in parallel, one commit per job
    report   orchestrator.report.build_report              gates, regression statistics, renderers

``qualify`` is all of it: the exit code says whether the release passes (0) or not (1).
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.config import Settings
from orchestrator.profiles import Catalog
from orchestrator.runner.engine import RunSummary
from orchestrator.runner.session import RunOptions, RunUI, prepare_artifacts, start_run
from orchestrator.spec.model import ReleaseSpec

__all__ = ["QualifyOutcome", "prepare_artifacts", "qualify", "start_run"]


@dataclass(frozen=True)
class QualifyOutcome:
    run_id: str
    summary: RunSummary


async def qualify(spec: ReleaseSpec, *, settings: Settings, catalog: Catalog, options: RunOptions,
                  ui: RunUI) -> QualifyOutcome:
    """Build, analyse, plan and run; the caller reports on ``run_id`` (see orchestrator.report)."""
    run_id, summary = await start_run(spec, settings=settings, catalog=catalog, options=options, ui=ui)
    return QualifyOutcome(run_id, summary)
