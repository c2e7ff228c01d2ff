"""``mlfarm plan``: which variant each device gets, and why (``--explain DEVICE`` shows every candidate)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from orchestrator.cli._app import App, json_option, pass_app, returns_exit_code, spec_argument
from orchestrator.cli._progress import RunProgress
from orchestrator.errors import UsageError
from orchestrator.plan import Plan, make_plan
from orchestrator.plan.facts import facts_from_manifest, history_from_store, previous_choices
from orchestrator.plan.memory import Overheads
from orchestrator.plan.render import render_explain, render_plan
from orchestrator.plan.targets import resolve_targets
from orchestrator.runner.session import prepare_artifacts
from orchestrator.spec import ReleaseSpec, parse_device_refs


def compute_plan(app: App, spec: ReleaseSpec, devices: str | None, *, quiet: bool) -> Plan:
    texts = [d for d in devices.split(",") if d.strip()] if devices else list(spec.devices)
    try:
        refs = parse_device_refs(texts)
    except ValueError as exc:
        raise UsageError(f"--devices: {exc}", fix="e.g. --devices all or --devices iphone-12,host") from None
    if any(r.kind in ("connected", "usb") for r in refs):
        raise UsageError("planning for connected devices needs them opened: use `mlfarm run` (it plans per "
                         "attached device) or name their profiles here (`mlfarm devices` shows them)",
                         fix="e.g. --devices iphone-12,ipad-pro-m4@16gb")
    targets = resolve_targets(refs, app.catalog())
    with RunProgress(app.err, quiet=quiet) as ui:
        # PSNR (an executor run per artifact, minutes at SD scale) only when the quality gate can reject
        entries = prepare_artifacts(spec, app.settings, ui, psnr=spec.gates.min_psnr_db > 0)
    facts = {k: f for k, e in entries.items() if e is not None
             and (f := facts_from_manifest(e.manifest, artifact_id=e.id)) is not None}
    with app.store() as store:
        history = history_from_store(store, spec_name=spec.name)
        previous = previous_choices(store, spec_name=spec.name)
    return make_plan(spec, targets, facts, history, Overheads.load(app.settings.workdir), previous)


@click.command()
@spec_argument
@click.option("--devices", help="Comma-separated profile ids, host, host:ID, virtual:ID or all [the spec's].")
@click.option("--explain", "explain", metavar="DEVICE", help="Show every candidate for one device with reasons.")
@json_option
@pass_app
@returns_exit_code
def plan(app: App, spec_path: Path, devices: str | None, explain: str | None, as_json: bool) -> int:
    """Choose a variant per device and component: quality first, then latency, then size; builds what is missing."""
    spec = app.spec(spec_path)
    result = compute_plan(app, spec, devices, quiet=as_json)
    data = result.to_json()
    if explain:
        try:
            device = result.device(explain)
        except KeyError:
            raise UsageError(f"--explain {explain}: not a device of this plan",
                             fix=f"one of: {', '.join(d.key for d in result.devices)}") from None
        data = next(d for d in data["devices"] if d["key"] == device.key)
        app.emit(as_json, data, lambda console: render_explain(device, console))
        return 0

    def render(console: Console) -> None:
        render_plan(result, console)
        nothing = [d.key for d in result.devices if any(c is None for c in d.chosen.values())]
        if nothing:
            console.print(f"[red]{len(nothing)} device(s) get no variant for some component:[/] "
                          f"{', '.join(nothing[:12])}{' ...' if len(nothing) > 12 else ''}; "
                          "`--explain DEVICE` shows why")

    app.emit(as_json, data, render)
    return 0
