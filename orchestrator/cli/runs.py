"""``mlfarm runs``: the runs in the results database."""

from __future__ import annotations

import time

import click
from rich.console import Console
from rich.table import Table

from orchestrator.cli._app import App, json_option, pass_app, returns_exit_code


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


@click.command()
@click.option("--spec", "spec_name", help="Only runs of this release (spec name).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@json_option
@pass_app
@returns_exit_code
def runs(app: App, spec_name: str | None, limit: int, as_json: bool) -> int:
    """List runs, newest first, with their job counts by status."""
    with app.store() as store:
        rows = store.list_runs(spec_name=spec_name, limit=limit)
        counts = {}
        for r in rows:
            tally: dict[str, int] = {}
            for j in store.jobs(r.id):
                tally[j.status] = tally.get(j.status, 0) + 1
            counts[r.id] = tally

    def render(console: Console) -> None:
        if not rows:
            console.print(f"no runs in {app.settings.db_path}; start one with `mlfarm run SPEC`")
            return
        table = Table(title=f"runs in {app.settings.db_path}")
        for col in ("run", "spec", "status", "started", "finished", "jobs"):
            table.add_column(col, no_wrap=col in ("run", "spec"))  # run ids are what --resume / report take
        for r in rows:
            jobs = ", ".join(f"{n} {s}" for s, n in sorted(counts[r.id].items())) or "-"
            table.add_row(r.id, r.spec_name, r.status, _when(r.started_at), _when(r.finished_at), jobs)
        console.print(table)

    data = [{"id": r.id, "spec_name": r.spec_name, "spec_digest": r.spec_digest, "status": r.status,
             "started_at": r.started_at, "finished_at": r.finished_at, "jobs": counts[r.id]} for r in rows]
    app.emit(as_json, data, render)
    return 0
