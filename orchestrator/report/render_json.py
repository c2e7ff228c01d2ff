"""The report as JSON: every verdict and comparison with its figures, for scripts and dashboards.

Raw latency samples are not repeated here (they are in the results database); each job carries its
summary statistics instead.
"""

from __future__ import annotations

from typing import Any

from orchestrator.report.model import Report
from orchestrator.report.qualify import JobVerdict
from orchestrator.report.regression import Comparison
from orchestrator.serialize import dumps, jsonable

SCHEMA = "mlfarm-report/1"


def verdict_dict(v: JobVerdict) -> dict[str, Any]:
    data: dict[str, Any] = jsonable(v)
    data["status"] = v.status
    if v.predictions is not None:  # both figures with their runtimes, and the words every other surface uses
        data["predictions"] = {**v.predictions.to_json(), "text": v.predictions.text()}
    return data


def comparison_dict(c: Comparison) -> dict[str, Any]:
    data: dict[str, Any] = jsonable(c)
    data["pct"] = c.pct
    return data


def report_dict(report: Report) -> dict[str, Any]:
    run = report.run
    return {
        "schema": SCHEMA,
        "passed": report.passed,
        "exit_code": 0 if report.passed else 1,
        "headline": report.headline,
        "generated_at": report.generated_at,
        "run": {"id": run.id, "spec_name": run.spec_name, "status": run.status, "started_at": run.started_at,
                "finished_at": run.finished_at, "git_rev": run.git_rev, "gates": jsonable(run.gates),
                "regression": jsonable(run.regression)},
        "baseline": {"setting": report.baseline.setting, "runs": list(report.baseline.ids),
                     "note": report.baseline.note},
        "seed": report.seed,
        "devices": [jsonable(d) for d in run.devices],
        "verdicts": [verdict_dict(v) for v in report.verdicts],
        "comparisons": [comparison_dict(c) for c in report.comparisons],
        "uncompared": [list(k) for k in report.uncompared],
        "events": [jsonable(e) for e in (*run.events, *(e for j in run.jobs for e in j.events))],
        "notes": list(report.notes),
        "change_points": [{"device_key": s.key[0], "component": s.key[1], "variant": s.key[2],
                           "compute_units": s.key[3], "metric": s.metric, "run_id": s.points[i].run_id,
                           "change": s.level_change(i)} for s in report.history for i in s.change_points],
    }


def render_json(report: Report) -> str:
    return dumps(report_dict(report)) + "\n"
