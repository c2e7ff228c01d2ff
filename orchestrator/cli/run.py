"""``mlfarm run``: measure the plan's choices (or every variant) on devices and store every figure."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.console import Console

from orchestrator.cli._app import App, json_option, pass_app, returns_exit_code, spec_argument
from orchestrator.cli._progress import RunProgress
from orchestrator.errors import UsageError
from orchestrator.runner.engine import RunSummary
from orchestrator.runner.session import RunOptions, resume_run, start_run
from orchestrator.spec import ReleaseSpec, parse_device_refs
from orchestrator.spec.loader import DeviceRef

DEFAULT_IPA = Path("harness_app/build/MLFarmHarness.ipa")


def device_option(f):  # type: ignore[no-untyped-def]
    return click.option("--devices", help="Comma-separated: host, host:ID, virtual:ID, usb:UDID, connected "
                                          "[the spec's runnable devices].")(f)


def runnable_refs(spec: ReleaseSpec, devices: str | None) -> list[DeviceRef]:
    """Devices to run on: --devices, or the spec's devices that can run (catalog ids are for planning)."""
    if devices:
        try:
            return parse_device_refs([d for d in devices.split(",") if d.strip()])
        except ValueError as exc:
            raise UsageError(f"--devices: {exc}", fix="e.g. --devices host,virtual:iphone-12") from None
    refs = [r for r in parse_device_refs(list(spec.devices)) if r.runnable]
    if not refs:
        raise UsageError(f"{spec.path}: devices lists no device to run on ({', '.join(spec.devices)})",
                         fix="add host, virtual:ID, usb:UDID or connected, or pass --devices")
    return refs


def summary_json(run_id: str, summary: RunSummary) -> dict[str, object]:
    counts: dict[str, int] = {}
    for status in summary.statuses.values():
        counts[status] = counts.get(status, 0) + 1
    return {"run_id": run_id, "jobs": counts, "wall_s": round(summary.wall_s, 2)}


def execute(app: App, spec: ReleaseSpec, refs: list[DeviceRef], *, all_variants: bool, resume: str | None,
            harness_ipa: Path | None, quiet: bool) -> tuple[str, RunSummary]:
    ipa = harness_ipa or (DEFAULT_IPA if DEFAULT_IPA.exists() else None)
    with RunProgress(app.err, quiet=quiet) as ui:
        if resume:
            coro = resume_run(spec, resume, settings=app.settings, catalog=app.catalog(), harness_ipa=ipa, ui=ui)
        else:
            coro = start_run(spec, settings=app.settings, catalog=app.catalog(),
                             options=RunOptions(refs, all_variants=all_variants, harness_ipa=ipa), ui=ui)
        return asyncio.run(coro)


@click.command()
@spec_argument
@device_option
@click.option("--all-variants", is_flag=True, help="Run every built variant, not only the plan's choices.")
@click.option("--resume", "resume", metavar="RUN_ID", help="Finish an interrupted run without redoing finished jobs.")
@click.option("--harness-ipa", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help=f"The Swift harness for real devices [{DEFAULT_IPA}].")
@json_option
@pass_app
@returns_exit_code
def run(app: App, spec_path: Path, devices: str | None, all_variants: bool, resume: str | None,
        harness_ipa: Path | None, as_json: bool) -> int:
    """Build (cached), plan, and measure on devices; every figure goes to the results database."""
    spec = app.spec(spec_path)
    refs = runnable_refs(spec, devices) if not resume else []
    run_id, summary = execute(app, spec, refs, all_variants=all_variants, resume=resume, harness_ipa=harness_ipa,
                              quiet=as_json)
    data = summary_json(run_id, summary)

    def render(console: Console) -> None:
        jobs = ", ".join(f"{n} {s}" for s, n in sorted(data["jobs"].items())) or "no jobs"  # type: ignore[attr-defined]
        console.print(f"run [bold]{run_id}[/]: {jobs} in {summary.wall_s:.0f} s; "
                      f"`mlfarm report {run_id}` writes the report")

    app.emit(as_json, data, render)
    return 0
