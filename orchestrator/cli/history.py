"""``mlfarm history SPEC``: each figure's trend across the finished runs of a spec, with change points."""

from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.cli._app import App, json_option, pass_app, returns_exit_code
from orchestrator.errors import UsageError
from orchestrator.report.history import METRICS, Series, load_series

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: tuple[float, ...]) -> str:
    lo, hi = min(values), max(values)
    if hi <= lo:
        return _BARS[0] * len(values)
    return "".join(_BARS[round((v - lo) / (hi - lo) * (len(_BARS) - 1))] for v in values)


def _spec_name(app: App, spec: str) -> str:
    """A spec file's name, or the argument itself when it is no file (a spec name as `mlfarm runs` shows it)."""
    path = Path(spec)
    return app.spec(path).name if path.is_file() else spec


def _changes(s: Series) -> str:
    out = []
    for i in s.change_points:
        d = s.level_change(i)
        out.append(f"{s.points[i].run_id}" + (f" ({d:+.1%})" if d is not None else ""))
    return ", ".join(out) or "–"


def _table(metric: str, series: tuple[Series, ...], width: int) -> Table:
    """Wide terminals get every column; narrow ones put the units under the variant and keep runs and last.
    Identifier columns never wrap (they are copied into commands); the change points fold instead."""
    unit = METRICS[metric]
    wide = width >= 140
    table = Table(title=f"{metric}: per-run {'median' if unit == 'ms' else 'value'} ({unit}), oldest run first",
                  title_justify="left", box=box.HEAVY_HEAD if wide else box.SIMPLE_HEAD, pad_edge=wide,
                  padding=(0, 1, 0, 1) if wide else (0, 1, 0, 0))
    for i, col in enumerate(("device", "component", "variant", *(("units",) if wide else ()))):
        longest = max(len(col), *(len(s.key[i]) for s in series))
        table.add_column(col, no_wrap=True, min_width=longest)  # rich shrinks no_wrap cells with an ellipsis
    numbers = ("runs", "first", "last", "min", "max") if wide else ("runs", "last")
    for col in numbers:
        table.add_column(col, justify="right", no_wrap=True)
    if wide:
        table.add_column("trend", no_wrap=True)
    table.add_column("change points (new level from run)" if wide else "new level from", overflow="fold")
    for s in series:
        v = s.values
        figures = {"runs": str(len(v)), "first": f"{v[0]:.4g}", "last": f"{v[-1]:.4g}", "min": f"{min(v):.4g}",
                   "max": f"{max(v):.4g}"}
        device, component, variant, units = (escape(k) for k in s.key)
        ids = [device, component, variant, units] if wide else [device, component, f"{variant}\n[dim]{units}[/]"]
        trend = [sparkline(v[-30:])] if wide else []
        table.add_row(*ids, *(figures[c] for c in numbers), *trend, escape(_changes(s)))
    return table


def _json(series: tuple[Series, ...]) -> list[dict[str, object]]:
    return [{"device_key": s.key[0], "component": s.key[1], "variant": s.key[2], "compute_units": s.key[3],
             "metric": s.metric, "unit": s.unit, "change_points": list(s.change_points),
             "change_runs": [s.points[i].run_id for i in s.change_points],
             "points": [{"run_id": p.run_id, "started_at": p.started_at, "git_rev": p.git_rev, "value": p.value,
                         "launches": p.launches} for p in s.points]} for s in series]


@click.command("history")
@click.argument("spec", metavar="SPEC")
@click.option("--metric", "metrics", multiple=True, type=click.Choice(tuple(METRICS)),
              help="Figure to trend (repeatable). [latency_ms]")
@click.option("--device", "devices", multiple=True, help="Only this device key (repeatable), e.g. host.")
@click.option("--runs", "limit", default=30, show_default=True, type=click.IntRange(min=2),
              help="How many of the latest finished runs.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Seed of the change-point permutation tests.")
@json_option
@pass_app
@returns_exit_code
def history(app: App, spec: str, metrics: tuple[str, ...], devices: tuple[str, ...], limit: int, seed: int,
            as_json: bool) -> int:
    """The trend of each figure across the finished runs of SPEC (a spec file or a spec name), per device,
    component and variant, with change points (E-divisive means, permutation test)."""
    name = _spec_name(app, spec)
    metrics = metrics or ("latency_ms",)
    with app.store() as store:
        if not store.list_runs(spec_name=name, limit=1, status=("finished",)):
            raise UsageError(f"no finished run of spec {name!r} in {store.path}",
                             fix="run `mlfarm runs` to list the runs and their spec names")
        found = {m: load_series(store, name, m, limit=limit, devices=devices or None, seed=seed) for m in metrics}

    def render(console: Console) -> None:
        for metric, series in found.items():
            if series:
                console.print(_table(metric, series, console.width))
            else:
                console.print(f"no {metric} figures for {escape(name)}" + (" on " + ", ".join(devices)
                                                                            if devices else ""))

    app.emit(as_json, {"spec_name": name, "series": [x for m in metrics for x in _json(found[m])]}, render)
    return 0
