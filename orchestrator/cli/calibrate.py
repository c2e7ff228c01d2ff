"""``mlfarm calibrate``: refit the memory model's runtime overheads from measured peaks."""

from __future__ import annotations

import statistics

import click
from rich.console import Console
from rich.table import Table

from orchestrator.cli._app import App, json_option, pass_app, returns_exit_code
from orchestrator.errors import UsageError
from orchestrator.plan.calibrate import observations, refit, write
from orchestrator.plan.memory import Overheads


@click.command()
@click.option("--spec", "spec_name", help="Only runs of this release.")
@click.option("--runs", "limit", default=10, show_default=True, type=click.IntRange(min=1),
              help="How many of the newest finished runs to learn from.")
@click.option("--dry-run", is_flag=True, help="Show the fit without writing .mlfarm/overhead.yaml.")
@json_option
@pass_app
@returns_exit_code
def calibrate(app: App, spec_name: str | None, limit: int, dry_run: bool, as_json: bool) -> int:
    """Refit runtime overheads (measured peak minus weights and activations) per runtime, family and units."""
    with app.store() as store:
        runs = store.list_runs(spec_name=spec_name, limit=limit, status=("finished",))
        obs = observations(store, runs, app.catalog())
    if not obs:
        raise UsageError("no finished job with a measured peak and an analysed artifact to learn from",
                         fix="run `mlfarm run SPEC` (or `mlfarm qualify SPEC`) first")
    prior = Overheads.load(app.settings.workdir)
    fitted = refit(prior, obs)
    groups: dict[tuple[str, str, str], list[float]] = {}
    for o in obs:
        groups.setdefault((o.runtime, o.family, o.compute_units), []).append(o.residual_mb)
    rows = [{"runtime": r, "family": f, "compute_units": u, "jobs": len(v),
             "median_residual_mb": round(statistics.median(v), 1), "prior_mb": prior.get(r, f, u),
             "fitted_mb": fitted.get(r, f, u)} for (r, f, u), v in sorted(groups.items())]
    by_component: dict[tuple[str, str], list[float]] = {}
    for o in obs:
        by_component.setdefault((o.runtime, o.component), []).append(o.residual_mb)
    offsets = [{"runtime": r, "component": c, "jobs": len(v), "median_residual_mb": round(statistics.median(v), 1),
                "offset_mb": fitted.component_offset(r, c)} for (r, c), v in sorted(by_component.items()) if c]
    path = None if dry_run else write(fitted, app.settings.workdir)

    def render(console: Console) -> None:
        table = Table(title=f"runtime overhead from {len(obs)} measured job(s) in {len(runs)} run(s)")
        for col in ("runtime", "family", "units", "jobs", "median residual", "prior", "fitted"):
            table.add_column(col)
        for r in rows:
            table.add_row(str(r["runtime"]), str(r["family"]), str(r["compute_units"]), str(r["jobs"]),
                          f"{r['median_residual_mb']:,.1f} MB", f"{r['prior_mb']:,.0f} MB", f"{r['fitted_mb']:,.1f} MB")
        console.print(table)
        per = Table(title="per-component offset from the runtime's overhead")
        for col in ("runtime", "component", "jobs", "median residual", "offset"):
            per.add_column(col)
        for r in offsets:
            per.add_row(str(r["runtime"]), str(r["component"]), str(r["jobs"]),
                        f"{r['median_residual_mb']:,.1f} MB", f"{r['offset_mb']:+,.1f} MB")
        console.print(per)
        console.print("groups with fewer than 3 jobs keep their prior; " +
                      (f"written to {path}" if path else "dry run: nothing written"))

    app.emit(as_json, {"groups": rows, "components": offsets, "written": str(path) if path else None}, render)
    return 0
