"""Reports: release qualification (gates) and performance regression (statistics) for one run.

    with ResultsStore(settings.db_path) as store:
        report = build_report(store, run_id, "last", catalog)      # baseline: run id | last | window:N | none
    paths = write_reports(report, ("md", "html", "junit", "json"), Path("reports") / run_id)
    render_terminal(report, console)
    sys.exit(report_exit_code(report))                              # 0 all gates pass and no regression, else 1

Modules: ``data`` (store -> dataclasses; ``plan_view`` reads the plan's choices), ``qualify`` (gates),
``regression`` (bootstrap statistics), ``model`` (the Report), ``text``/``units`` (wording shared by every
output), ``plots`` (matplotlib SVG), and one ``render_*`` module per output format.

``mlfarm report`` and ``mlfarm qualify`` both go through ``orchestrator.cli.report.produce_report``.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterable
from pathlib import Path

from orchestrator.errors import EXIT_FAILED, EXIT_OK, UsageError
from orchestrator.profiles import Catalog
from orchestrator.report.data import load_baseline, load_run, resolve_run_id
from orchestrator.report.history import load_series
from orchestrator.report.model import Report
from orchestrator.report.noise import noise_floors
from orchestrator.report.qualify import qualify_run
from orchestrator.report.regression import compare_runs
from orchestrator.report.render_terminal import render_terminal
from orchestrator.results import ResultsStore

# format -> (file name, renderer): ``orchestrator.report.<renderer>.<renderer>(report) -> str``. Imported only
# when that format is written, so a Markdown-only report never imports matplotlib.
FILE_FORMATS = {"md": ("report.md", "render_markdown"), "html": ("report.html", "render_html"),
                "junit": ("junit.xml", "render_junit"), "json": ("report.json", "render_json")}
FORMATS = ("terminal", *FILE_FORMATS)
HISTORY_RUNS = 30  # runs of history a report plots and learns noise floors from


def build_report(store: ResultsStore, run_id: str, baseline: str | None, catalog: Catalog, *,
                 seed: int = 0) -> Report:
    """Qualify ``run_id`` (or ``last``) and compare it with ``baseline`` (None: the spec's ``baseline:``)."""
    run = load_run(store, resolve_run_id(store, run_id), catalog)
    base = load_baseline(store, run, baseline, catalog)
    # The noise floor is learned from the runs before this one only: the candidate must not widen its own test.
    history = load_series(store, run.spec_name, "latency_ms", until=run.id, limit=HISTORY_RUNS, seed=seed)
    before = {s.key: [p.value for p in s.points if p.run_id != run.id] for s in history}
    comparisons = compare_runs(run, base, seed=seed, floors=noise_floors(before))
    compared = {(c.device_key, c.component, c.variant, c.compute_units) for c in comparisons}
    uncompared = tuple(j.key for j in run.jobs if base.runs and j.status in ("ok", "jetsam")
                       and j.key not in compared)
    return Report(run, base, qualify_run(run), comparisons, uncompared, seed, time.time(), history)


def parse_formats(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"md,html"`` -> ("md", "html"); unknown names are a UsageError (exit 2)."""
    items = [f.strip() for f in (text.split(",") if isinstance(text, str) else text) if f.strip()]
    unknown = [f for f in items if f not in FORMATS]
    if unknown or not items:
        raise UsageError(f"unknown report format(s): {', '.join(unknown) or '(none given)'}",
                         fix=f"use a comma-separated list of {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(items))


def write_reports(report: Report, formats: Iterable[str], out_dir: Path) -> dict[str, Path]:
    """Write every file format in ``formats`` under ``out_dir``; returns format -> path ("terminal" is skipped)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for fmt in formats:
        if fmt in FILE_FORMATS:
            name, renderer = FILE_FORMATS[fmt]
            render = getattr(importlib.import_module(f"orchestrator.report.{renderer}"), renderer)
            path = out_dir / name
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(render(report), encoding="utf-8")
            tmp.replace(path)
            paths[fmt] = path
    return paths


def report_exit_code(report: Report) -> int:
    """0 when every gate passes and no regression is found, 1 otherwise."""
    return EXIT_OK if report.passed else EXIT_FAILED


__all__ = ["FILE_FORMATS", "FORMATS", "Report", "build_report", "parse_formats", "render_terminal",
           "report_exit_code", "write_reports"]
