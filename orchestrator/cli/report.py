"""``mlfarm report RUN``: qualification verdicts and regression statistics for one run, in every format.

``produce_report`` is also what ``mlfarm qualify`` calls after its run finishes, so both commands print,
write and exit the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from orchestrator.cli._app import App, json_option, pass_app, returns_exit_code
from orchestrator.report import FORMATS, build_report, parse_formats, render_terminal, report_exit_code, write_reports
from orchestrator.report.data import check_baseline_setting
from orchestrator.report.render_json import report_dict

DEFAULT_FORMATS = ",".join(FORMATS)


def produce_report(app: App, run: str, *, baseline: str | None = None, formats: Sequence[str] = FORMATS,
                   out: Path | None = None, as_json: bool = False, seed: int = 0) -> int:
    """Build the report of ``run`` (a run id or ``last``), write its files, print it; return the exit code.

    ``baseline`` None uses the run's own spec setting (``baseline:``, default ``last``). Files go to
    ``out`` (default ``reports/<run-id>/`` under the working folder). Returns 0 when every gate passes
    and no regression is found, 1 otherwise; bad input raises an InputError (exit 2).
    """
    if baseline is not None:
        baseline = check_baseline_setting(baseline)
    with app.store() as store:
        report = build_report(store, run, baseline, app.catalog(), seed=seed)
    out_dir = out if out is not None else app.settings.workdir / "reports" / report.run.id
    paths = write_reports(report, formats, out_dir)

    def render(console: Console) -> None:
        if "terminal" in formats:
            render_terminal(report, console)
        else:
            console.print(escape(report.headline))
        for fmt, path in paths.items():
            console.print(f"{fmt:>5}: {escape(str(path))}", soft_wrap=True)

    code = report_exit_code(report)
    app.emit(as_json, {"exit_code": code, "files": {k: str(v) for k, v in paths.items()},
                       "report": report_dict(report)}, render)
    return code


@click.command("report")
@click.argument("run", metavar="RUN")
@click.option("--baseline", help="What to compare with: a run id, last (the previous run of the same spec), "
                                 "window:N (the last N runs, pooled) or none. [the spec's baseline:]")
@click.option("--format", "formats", default=DEFAULT_FORMATS, show_default=True,
              help="Comma-separated outputs: " + ", ".join(FORMATS) + ".")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the report files. [reports/RUN-ID/]")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Bootstrap seed (the same seed gives the same intervals).")
@json_option
@pass_app
@returns_exit_code
def report(app: App, run: str, baseline: str | None, formats: str, out: Path | None, seed: int,
           as_json: bool) -> int:
    """Qualify RUN (a run id, or `last`) against its gates and compare it with a baseline.

    Exit code 0 when every gate passes and no regression is found, 1 otherwise, 2 for bad input.
    """
    return produce_report(app, run, baseline=baseline, formats=parse_formats(formats), out=out, as_json=as_json,
                          seed=seed)
