"""``mlfarm build`` and ``mlfarm artifacts``: Core ML artifacts for a release, and the store that keeps them.

Imports stay light (no torch, no coremltools) so that cache hits and ``artifacts`` commands are fast; the
converters are imported only when something has to be built.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.build.builder import BuildEvent, BuildPlan, execute, plan_build
from orchestrator.build.compress import DEFAULT_KMEANS, KMEANS, CompressionSettings
from orchestrator.build.maintenance import plan_gc, verify_entries
from orchestrator.build.store import ArtifactEntry, ArtifactStore
from orchestrator.cli._app import App, json_option, pass_app, returns_exit_code, spec_argument
from orchestrator.cli._progress import RunProgress
from orchestrator.errors import EXIT_INPUT, ArtifactError

_STEPS = {"queued": 0, "export": 0, "convert": 1, "compress": 2, "save": 3, "done": 4, "cached": 4, "failed": 4}


def _split(values: Sequence[str]) -> list[str] | None:
    """Repeatable options that also take comma-separated lists: --variants a,b --variants c."""
    items = [v.strip() for text in values for v in text.split(",") if v.strip()]
    return items or None


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:,.2f} MB"


class BuildDisplay:
    """Rich progress: one row per artifact moving through export -> convert -> compress -> save."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description:<52}"), BarColumn(bar_width=12),
                                 TextColumn("{task.fields[stage]:<9}"), TextColumn("{task.fields[detail]}"),
                                 TimeElapsedColumn(), console=console, transient=False)
        self.tasks: dict[tuple[str, str], TaskID] = {}

    def __call__(self, event: BuildEvent) -> None:
        key = (event.component, event.variant)
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(f"{event.component} {event.variant}", total=4, stage="",
                                                     detail="")
        stage = {"done": "[green]built", "cached": "[cyan]cached", "failed": "[red]failed"}.get(event.stage,
                                                                                             event.stage)
        detail = f"{event.detail} ({event.seconds:.1f} s)" if event.seconds is not None else event.detail
        self.progress.update(self.tasks[key], completed=_STEPS[event.stage], stage=stage, detail=detail)
        if event.stage in ("done", "cached", "failed"):
            self.progress.stop_task(self.tasks[key])


@click.command()
@spec_argument
@click.option("--components", multiple=True, metavar="NAMES", help="Only these components (comma-separated).")
@click.option("--variants", multiple=True, metavar="IDS", help="Only these variant ids (comma-separated), "
                                                                "e.g. fp16-palette6-split_einsum_v2.")
@click.option("--kmeans", type=click.Choice(KMEANS), default=DEFAULT_KMEANS, show_default=True,
              help="Palette k-means implementation.")
@click.option("--dry-run", is_flag=True, help="Show what is cached and what would be built; build nothing.")
@json_option
@pass_app
@returns_exit_code
def build(app: App, spec_path: Path, components: tuple[str, ...], variants: tuple[str, ...], kmeans: str,
          dry_run: bool, as_json: bool) -> int:
    """Build Core ML artifacts for every (component, variant) of a release spec; unchanged ones are cache hits."""
    spec = app.spec(spec_path)
    store = ArtifactStore(app.settings.artifacts_dir)
    start = time.perf_counter()
    plan = plan_build(spec, store, components=_split(components), variants=_split(variants),
                      settings=CompressionSettings(kmeans=kmeans))  # type: ignore[arg-type]
    if dry_run:
        app.emit(as_json, _plan_json(plan), lambda c: _render_plan(c, plan))
        return 0
    if as_json:
        entries = execute(plan, spec, store)
    elif app.console.is_terminal:
        display = BuildDisplay(app.console)
        with display.progress:
            entries = execute(plan, spec, store, progress=display)
    else:  # piped or logged: rich's bars would only print when the build ends (minutes at SD scale)
        with RunProgress(app.console, quiet=True) as lines:
            entries = execute(plan, spec, store, progress=lines.build_event)
    seconds = time.perf_counter() - start
    data = {"spec": spec.name, "store": str(store.root), "seconds": round(seconds, 3),
            "built": sum(not e.cache_hit for e in entries), "cached": sum(bool(e.cache_hit) for e in entries),
            "artifacts": [e.to_json() for e in entries]}
    app.emit(as_json, data, lambda c: c.print(
        f"{data['built']} built, {data['cached']} cached in {seconds:.1f} s -> {store.root}"))
    return 0


def _plan_json(plan: BuildPlan) -> dict[str, Any]:
    return {"spec": plan.spec_name, "source": plan.source_id, "items": [
        {"component": i.component, "variant": i.variant.id, "target": i.target.name, "cached": i.cached,
         "reason": i.lookup.reason, "build_key": i.key.digest,
         "id": i.lookup.entry.id if i.lookup.entry else None} for i in plan.items]}


def _render_plan(console: Console, plan: BuildPlan) -> None:
    table = Table(title=f"build plan for {plan.spec_name} ({plan.source_id})")
    for col in ("component", "variant", "target", "status"):
        table.add_column(col, no_wrap=col in ("component", "variant"))
    for i in plan.items:
        status = f"[cyan]cached[/] {i.lookup.entry.id}" if i.lookup.entry else f"[yellow]build[/] ({i.lookup.reason})"
        table.add_row(i.component, i.variant.id, i.target.name, status)
    console.print(table)
    console.print(f"{len(plan.misses)} to build, {len(plan.items) - len(plan.misses)} cached")


@click.group(invoke_without_command=True)
@json_option
@click.pass_context
def artifacts(ctx: click.Context, as_json: bool) -> None:
    """The artifact store: list, show, verify and garbage-collect built artifacts."""
    if ctx.invoked_subcommand is None:
        ctx.exit(ctx.invoke(list_, spec_name=None, as_json=as_json))


def _entries_table(entries: list[ArtifactEntry], title: str) -> Table:
    table = Table(title=title)
    for col in ("id", "spec", "target", "size", "weights stored / fp16", "built"):
        table.add_column(col, no_wrap=col == "id")  # what `artifacts show` / `analyze` / `run-artifact` take
    for e in entries:
        w = e.manifest.get("weights", {})
        ratio = (f"{_mb(w.get('bytes_stored'))} / {_mb(w.get('bytes_decompressed_fp16'))}" if w else "-")
        target = e.manifest.get("min_deployment_target", {}).get("coremltools", "-")
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.created_at)) if e.created_at else "-"
        table.add_row(e.id, e.spec_name, target, _mb(e.manifest.get("files", {}).get("bytes_on_disk")), ratio, when)
    return table


@artifacts.command("list")
@click.option("--spec", "spec_name", help="Only artifacts built for this release (spec name).")
@json_option
@pass_app
@returns_exit_code
def list_(app: App, spec_name: str | None, as_json: bool) -> int:
    """List named builds and the blobs they point at."""
    store = ArtifactStore(app.settings.artifacts_dir)
    entries = store.entries(spec_name)

    def render(console: Console) -> None:
        if not entries:
            console.print(f"no artifacts in {store.root}; build some with `mlfarm build SPEC`")
            return
        console.print(_entries_table(entries, f"artifacts in {store.root}"))

    app.emit(as_json, [e.to_json() for e in entries], render)
    return 0


@artifacts.command("show")
@click.argument("ident", metavar="ID")
@json_option
@pass_app
@returns_exit_code
def show(app: App, ident: str, as_json: bool) -> int:
    """One artifact's manifest (ID: an id, SPEC/COMPONENT/VARIANT, or a sha256 prefix)."""
    entry = ArtifactStore(app.settings.artifacts_dir).find(ident)

    def render(console: Console) -> None:
        m = entry.manifest
        console.print(f"[bold]{entry.id}[/]  {entry.name}\n  path: {entry.path}\n  sha256: {entry.sha256}")
        for key in ("variant", "source", "tools", "min_deployment_target", "files", "weights", "compression",
                    "build", "inputs", "outputs", "analysis", "quality"):
            if key in m:
                console.print(f"  {key}: {m[key]}", soft_wrap=True)

    app.emit(as_json, {**entry.to_json(), "manifest": entry.manifest}, render)
    return 0


@artifacts.command("verify")
@click.argument("idents", metavar="[ID]...", nargs=-1)
@json_option
@pass_app
@returns_exit_code
def verify(app: App, idents: tuple[str, ...], as_json: bool) -> int:
    """Re-hash artifacts (all, or the given ones); exit 2 naming every corrupt or missing one."""
    store = ArtifactStore(app.settings.artifacts_dir)
    entries = [store.find(i) for i in idents] if idents else store.entries()
    results = verify_entries(store, entries)
    bad = [r for r in results if r.state != "ok"]

    def render(console: Console) -> None:
        for r in results:
            mark = "[green]ok[/]" if r.state == "ok" else f"[red]{r.state}[/]"
            console.print(f"{mark:>20} {r.entry.id}  ({r.entry.name})")
        console.print(f"{len(results) - len(bad)} ok, {len(bad)} bad in {store.root}")

    app.emit(as_json, {"store": str(store.root), "results": [r.to_json() for r in results],
                       "bad": len(bad)}, render)
    if bad:
        names = ", ".join(f"{r.entry.id} ({r.state})" for r in bad)
        err = ArtifactError(f"{len(bad)} artifact(s) failed verification: {names}", path=bad[0].entry.path,
                            fix="rebuild them with `mlfarm build SPEC` (a corrupt blob is rebuilt, never used)")
        app.err.print(f"[bold red]error:[/] {err.message}\n[bold]fix:[/] {err.fix}", soft_wrap=True)
        return EXIT_INPUT
    return 0


@artifacts.command("gc")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted.")
@json_option
@pass_app
@returns_exit_code
def gc(app: App, dry_run: bool, as_json: bool) -> int:
    """Delete blobs no build entry points at, and stale staging folders."""
    plan = plan_gc(ArtifactStore(app.settings.artifacts_dir))
    if not dry_run:
        plan.execute()
    verb = "would free" if dry_run else "freed"
    app.emit(as_json, {**plan.to_json(), "dry_run": dry_run}, lambda c: c.print(
        f"{verb} {_mb(plan.bytes_freed)}: {len(plan.blobs)} blob(s), {len(plan.tmp)} staging folder(s)"))
    return 0
