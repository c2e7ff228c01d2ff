"""``mlfarm qualify``: build -> plan -> run -> report, with an exit code for CI."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from orchestrator.cli._app import App, json_option, pass_app, returns_exit_code, spec_argument
from orchestrator.cli._progress import RunProgress
from orchestrator.cli.report import DEFAULT_FORMATS, produce_report
from orchestrator.cli.run import DEFAULT_IPA, device_option, runnable_refs
from orchestrator.pipeline import qualify as run_pipeline
from orchestrator.report import parse_formats
from orchestrator.report.data import check_baseline_setting
from orchestrator.runner.session import RunOptions


@click.command()
@spec_argument
@device_option
@click.option("--baseline", help="Compare with: a run id, last, window:N or none [the spec's baseline:].")
@click.option("--format", "formats", default=DEFAULT_FORMATS, show_default=True, help="Report outputs.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), help="Report folder [reports/RUN-ID/].")
@click.option("--all-variants", is_flag=True, help="Measure every built variant, not only the plan's choices.")
@click.option("--harness-ipa", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help=f"The Swift harness for real devices [{DEFAULT_IPA}].")
@json_option
@pass_app
@returns_exit_code
def qualify(app: App, spec_path: Path, devices: str | None, baseline: str | None, formats: str, out: Path | None,
            all_variants: bool, harness_ipa: Path | None, as_json: bool) -> int:
    """Qualify a release: exit 0 when every gate passes and no regression is found, 1 otherwise, 2 for bad input.

    Virtual devices listed in the spec (virtual:ID) are started for the run and stopped after it.
    """
    spec = app.spec(spec_path)
    refs = runnable_refs(spec, devices)
    fmts = parse_formats(formats)
    if baseline is not None:
        baseline = check_baseline_setting(baseline)
    ipa = harness_ipa or (DEFAULT_IPA if DEFAULT_IPA.exists() else None)
    options = RunOptions(refs, all_variants=all_variants, harness_ipa=ipa)
    with RunProgress(app.err, quiet=as_json) as ui:
        outcome = asyncio.run(run_pipeline(spec, settings=app.settings, catalog=app.catalog(), options=options,
                                           ui=ui))
    return produce_report(app, outcome.run_id, baseline=baseline, formats=fmts, out=out, as_json=as_json)
