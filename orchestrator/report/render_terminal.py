"""The report in a terminal: rich tables, verdict first, reasons next to what failed."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.report import text
from orchestrator.report.model import CLASS_ORDER, Report
from orchestrator.report.regression import Comparison

_STATUS_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "n/a": "dim"}
_CLASS_STYLE = {"regression": "bold red", "suspicious": "yellow", "insufficient data": "dim",
                "improvement": "green", "no change": ""}


def _header(report: Report, console: Console) -> None:
    run = report.run
    style = "bold green" if report.passed else "bold red"
    console.print(f"[bold]mlfarm report[/] · {escape(run.spec_name)} · run {run.id} ({run.status})")
    console.print(f"[{style}]{escape(report.headline)}[/]")
    base = ", ".join(report.baseline.ids) or "none"
    console.print(f"[dim]baseline: {escape(report.baseline.setting)} → {escape(base)} · started "
                  f"{text.when(run.started_at)} · git {text.git_rev(run.git_rev)}[/]")


# Columns holding what users copy into --devices / --variants: never wrapped (the other columns wrap instead).
_IDENTIFIERS = frozenset({"device", "profile", "component", "variant"})


def _devices(report: Report) -> Table:
    table = Table(title="devices", title_justify="left")
    for col in ("device", "profile", "family", "backend", "memory limit", "note"):
        table.add_column(col, no_wrap=col in _IDENTIFIERS)
    for d in report.run.devices:
        limit = text.mb(d.limit_mb) + ("†" if d.limit_unverified else "")
        note = "emulated: not device latency" if d.emulated else ""
        table.add_row(escape(d.key), escape(d.profile_id), d.family, d.backend, limit, note)
    return table


def _job_cell(device_key: str, emulated: bool, component: str, units: str, variant: str) -> str:
    """Narrow terminals: device key, component and variant id stacked in one cell, each whole on its line."""
    return f"{escape(device_key)}{' (emulated)' * emulated}\n  {component} ({units})\n  {variant}"


WITH_PREDICTIONS = 200  # columns from which the qualification table holds the predictions too (else a list below)


def _predictions(report: Report, console: Console) -> None:
    """The plan's predicted peaks, labelled by runtime, one line per gating job (when the table had no room)."""
    console.print("predicted peak memory (the plan's; on emulated devices the device's decides, the emulation's "
                  "is compared with the measurement):")
    for v in report.gating:
        console.print(f"  {escape(v.device_key)} {v.component} ({v.variant}): {text.predicted_cell(v)}")


def _qualification(report: Report, width: int) -> Table:
    """Wide terminals get every column; narrow ones stack device, component and variant in one cell (each
    identifier whole on its own line) and leave CV to the reasons."""
    wide = width >= 140
    roomy = width >= WITH_PREDICTIONS  # the two labelled predictions need their own wide column
    table = Table(title="qualification (gating jobs; p50 / p90 latency, peak / allowed memory)", title_justify="left",
                  box=box.HEAVY_HEAD if wide else box.SIMPLE_HEAD, pad_edge=wide,
                  padding=(0, 1, 0, 1) if wide else (0, 1, 0, 0))
    idents = ["device", "component", "variant", "units"] if wide else ["device / job"]
    for col in idents:
        table.add_column(col, no_wrap=True)
    for col, min_width in [("memory", 9)] + ([("predicted", 9)] if roomy else []) + [("latency", 8), ("PSNR", 7)] + (
            [("CV", 5)] if wide else []) + [
            ("verdict", 8)]:
        table.add_column(col, min_width=None if wide else min_width, overflow="fold")
    for v in report.gating:
        style = _STATUS_STYLE[v.status]
        if wide:
            cells = [escape(text.device_cell(v.device_key, v.emulated)), v.component, v.variant, v.compute_units]
        else:
            cells = [_job_cell(v.device_key, v.emulated, v.component, v.compute_units, v.variant)]
        cells += [text.memory_cell(v)] + ([text.predicted_cell(v)] if roomy else [])
        cells += [text.latency_cell(v), text.psnr_cell(v)]
        cells += [text.cv_cell(v)] if wide else []
        table.add_row(*cells, f"[{style}]{text.STATUS_WORD[v.status]}[/]")
    return table


def _flagged(report: Report) -> list[Comparison]:
    """Comparisons worth a line in a terminal: everything but "no change", worst first."""
    rows = [c for c in report.comparisons if c.classification != "no change"]
    return sorted(rows, key=lambda c: CLASS_ORDER.index(c.classification))


def _regression(report: Report, width: int) -> Table:
    """Flagged comparisons; narrow terminals get "baseline → candidate" in one column and no threshold (the wide
    layout's ten columns need ~165 at their natural widths: below that they would fold mid-word)."""
    wide = width >= 170
    n = len(report.baseline.runs)
    table = Table(title=f"regression vs {report.baseline.setting} ({n} run{'s' if n != 1 else ''} pooled)",
                  title_justify="left", box=box.HEAVY_HEAD if wide else box.SIMPLE_HEAD, pad_edge=wide,
                  padding=(0, 1, 0, 1) if wide else (0, 1, 0, 0))
    ci = f"change [{report.run.regression.confidence:.0%} CI]"
    columns = (["device", "component", "variant", "units", "metric", "baseline", "candidate", ci, "threshold",
                "verdict"] if wide else ["device / job", "metric", "baseline → candidate", ci, "verdict"])
    for col in columns:
        whole = col in _IDENTIFIERS or col in ("device / job", "units", "verdict")
        table.add_column(col, overflow="fold", no_wrap=whole)
    for c in _flagged(report):
        style = _CLASS_STYLE[c.classification]
        verdict = f"[{style}]{c.classification}[/]" if style else c.classification
        before, after = text.value_text(c, c.baseline), text.value_text(c, c.candidate)
        if wide:
            cells = [escape(c.device_key), c.component, c.variant, c.compute_units, c.metric, before, after,
                     text.change_text(c), text.threshold_text(c)]
        else:
            cells = [_job_cell(c.device_key, False, c.component, c.compute_units, c.variant), c.metric,
                     f"{before} → {after}", text.change_text(c)]
        table.add_row(*cells, verdict)
    return table


def render_terminal(report: Report, console: Console) -> None:
    """Print the whole report to ``console`` (inject a ``Console(file=StringIO())`` in tests)."""
    _header(report, console)
    console.print(_devices(report))
    console.print(_qualification(report, console.width))
    if console.width < WITH_PREDICTIONS and report.gating:
        _predictions(report, console)
    for v in report.gating:
        for line in text.problems(v):
            mark = "[yellow]![/]" if line.startswith("stability") else "[red]✗[/]"
            console.print(f"  {mark} {escape(v.device_key)} {v.component} ({v.variant}, {v.compute_units}): "
                          f"{escape(line)}", soft_wrap=True)
    others = len(report.verdicts) - len(report.gating)
    if others:
        console.print(f"[dim]{others} other job(s) measured but not chosen by the plan (see the HTML report)[/]")
    quiet = report.count("no change")
    if _flagged(report):
        console.print(_regression(report, console.width))
    if report.comparisons:
        console.print(f"regression: {quiet} of {len(report.comparisons)} comparison(s) show no change beyond the "
                      "thresholds" + (" (listed in report.md / report.html)" if quiet else ""))
    elif report.baseline.runs:
        console.print("[dim]regression: no job of this run has a counterpart in the baseline[/]")
    for note in report.notes:
        console.print(f"[dim]note: {escape(note)}[/]", soft_wrap=True)
