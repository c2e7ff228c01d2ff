"""``mlfarm harness``: build the Swift harness app (macOS) and print the job/result contract it speaks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from orchestrator.cli._app import App, json_option, pass_app, returns_exit_code
from orchestrator.config import contract_dir, resource_dir
from orchestrator.harness import app_build
from orchestrator.harness.contract import schema


@click.group()
def harness() -> None:
    """The Swift harness app: build its .ipa on a Mac, print the job/result JSON Schemas."""


@harness.command("build")
@click.option("--team", envvar="MLFARM_DEVELOPMENT_TEAM",
              help="Apple development team id, 10 characters [MLFARM_DEVELOPMENT_TEAM].")
@click.option("--bundle-id", default=app_build.DEFAULT_BUNDLE_ID, show_default=True,
              help="Bundle id of the app; the orchestrator launches this id.")
@click.option("--configuration", type=click.Choice(app_build.CONFIGURATIONS), default="Release", show_default=True)
@click.option("--increased-memory-limit", is_flag=True,
              help="Sign with com.apple.developer.kernel.increased-memory-limit (must match the spec's "
                   "app.increased_memory_limit).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to put the .ipa [harness_app/build/MLFarmHarness.ipa].")
@click.option("--dry-run", is_flag=True, help="Print the commands instead of running them (any OS).")
@json_option
@pass_app
@returns_exit_code
def build(app: App, team: str | None, bundle_id: str, configuration: str, increased_memory_limit: bool,
          out: Path | None, dry_run: bool, as_json: bool) -> int:
    """Build the development-signed harness .ipa with xcodegen + xcodebuild (macOS with Xcode only)."""
    if not dry_run:
        app_build.check_platform()
    plan = app_build.make_build_plan(resource_dir("harness_app"), team=team, bundle_id=bundle_id,
                                     configuration=configuration, increased_memory_limit=increased_memory_limit,
                                     out=out)
    if dry_run:
        app.emit(as_json, plan.to_json(), lambda console: _render_plan(console, plan))
        return 0
    with app.err.status("building the harness") as status:
        def show(step: app_build.Step) -> None:
            status.update(f"{step.name}: {escape(step.display())}")
            app.err.print(f"[dim]{step.name}[/] ...")

        ipa = app_build.execute(plan, on_step=show)

    def render(console: Console) -> None:
        console.print(f"built {ipa}")
        console.print(f"install it with `mlfarm run SPEC --harness-ipa {ipa}` (bundle id {plan.bundle_id})")

    app.emit(as_json, {**plan.to_json(), "ipa": str(ipa)}, render)
    return 0


def _render_plan(console: Console, plan: app_build.BuildPlan) -> None:
    console.print(f"[bold]harness build plan[/] (bundle id {plan.bundle_id}, team {plan.team}, "
                  f"{plan.configuration}, entitlements {app_build.ENTITLEMENTS[plan.increased_memory_limit]})")
    for step in plan.steps:
        console.print(f"[dim]{step.name}:[/] {escape(step.display())}")
    console.print(f"[dim]{plan.export_options_path.name}:[/] {escape(json.dumps(plan.export_options))}")
    console.print(f"[dim]ipa:[/] {plan.ipa}")


@harness.command("schema")
@click.argument("name", required=False, type=click.Choice(["job", "result"]))
@click.option("--path", "path_only", is_flag=True, help="Print only the schema file path(s).")
@json_option
@pass_app
@returns_exit_code
def schema_command(app: App, name: str | None, path_only: bool, as_json: bool) -> int:
    """Print the job or result JSON Schema (both when NAME is left out) that the Swift and Python harnesses share."""
    docs: list[dict[str, Any]] = [
        {"name": n, "path": str(contract_dir() / f"{n}.schema.json"), "title": schema(n).get("title"),
         "schema": schema(n)}
        for n in ([name] if name else ["job", "result"])
    ]
    if path_only and not as_json:
        click.echo("\n".join(d["path"] for d in docs))
        return 0

    def render(console: Console) -> None:
        for d in docs:
            console.print(f"[bold]{d['name']}[/]: {d['title']} ({d['path']})")
            if name:
                console.print_json(json.dumps(d["schema"]))

    app.emit(as_json, docs[0] if name else docs, render)
    return 0
