"""``mlfarm spec``: release specs."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from orchestrator.cli._app import App, json_option, pass_app, returns_exit_code, spec_argument
from orchestrator.serialize import jsonable


@click.group()
def spec() -> None:
    """Release specs (YAML): check them before building."""


@spec.command("check")
@spec_argument
@json_option
@pass_app
@returns_exit_code
def check(app: App, spec_path: Path, as_json: bool) -> int:
    """Validate a release spec (schema, device ids, model components); exit 2 listing every problem."""
    s = app.spec(spec_path)
    variants = [v.id for v in s.variant_list()]

    def render(console: Console) -> None:
        console.print(f"[green]ok[/] {spec_path}: release [bold]{s.name}[/] from {s.model.source}")
        console.print(f"  components: {', '.join(s.model.components)}")
        console.print(f"  {len(variants)} variant(s) per component: {', '.join(variants)}")
        console.print(f"  compute units: {', '.join(s.variants.compute_units)}")
        console.print(f"  devices: {', '.join(s.devices)}")

    data = {"spec": jsonable(s), "path": str(spec_path), "digest": s.digest, "variants": variants}
    app.emit(as_json, data, render)
    return 0
