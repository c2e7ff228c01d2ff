"""The ``mlfarm`` command line. One module per command group; ``COMMANDS`` lists them.

Exit codes: 0 ok, 1 a gate failed or a regression was found, 2 bad input, 3 operational failure.
"""

from __future__ import annotations

import os

# Before any command imports torch: OpenMP threads sleep instead of spinning, so the orchestrator and the
# harness processes it starts do not slow each other down (see orchestrator/harness/__main__.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import importlib
import sys
from pathlib import Path

import click

from orchestrator import __version__
from orchestrator.cli import _log as cli_log
from orchestrator.cli import errors as cli_errors
from orchestrator.cli._app import App
from orchestrator.config import Settings

# Command name -> (module, attribute); a command group module owns its subcommands. Modules are imported only
# when their command runs (``LazyGroup``): importing all of them (the runner, the report, the device backends)
# was most of a lookup's start-up time.
COMMANDS: dict[str, tuple[str, str]] = {
    "profiles": ("orchestrator.cli.profiles", "profiles"),
    "spec": ("orchestrator.cli.spec", "spec"),
    "runs": ("orchestrator.cli.runs", "runs"),
    "plan": ("orchestrator.cli.plan", "plan"),
    "run": ("orchestrator.cli.run", "run"),
    "qualify": ("orchestrator.cli.qualify", "qualify"),
    "calibrate": ("orchestrator.cli.calibrate", "calibrate"),
    "build": ("orchestrator.cli.build", "build"),
    "artifacts": ("orchestrator.cli.build", "artifacts"),
    "devices": ("orchestrator.cli.devices", "devices"),
    "virtual": ("orchestrator.cli.devices", "virtual"),
    "report": ("orchestrator.cli.report", "report"),
    "history": ("orchestrator.cli.history", "history"),
    "harness": ("orchestrator.cli.harness", "harness"),
    "analyze": ("orchestrator.cli.analyze", "analyze"),
    "run-artifact": ("orchestrator.cli.analyze", "run_artifact"),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module when the command is looked up, not at start-up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command) and command.name == cmd_name, (module, attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mlfarm")
@click.option("--profiles", "profile_dirs", multiple=True, type=click.Path(path_type=Path),
              help="Extra device profile folder (repeatable); its profiles override built-in ones by id. "
                   "Also MLFARM_PROFILE_PATH.")
@click.option("--db", type=click.Path(path_type=Path), help="Results database [.mlfarm/results.db; MLFARM_DB].")
@click.option("--artifacts", type=click.Path(path_type=Path), help="Artifact store [artifacts/; MLFARM_ARTIFACTS].")
@click.option("--usbmux", help="usbmuxd address: a Unix socket path or HOST:PORT [USBMUXD_SOCKET_ADDRESS].")
@click.option("--debug", is_flag=True, help="Show tracebacks, and third-party warnings (always in .mlfarm/mlfarm.log).")
@click.pass_context
def cli(ctx: click.Context, profile_dirs: tuple[Path, ...], db: Path | None, artifacts: Path | None,
        usbmux: str | None, debug: bool) -> None:
    """mlfarm: pick, build, measure and qualify Core ML variants for each Apple device."""
    settings = Settings.load(profile_dirs=profile_dirs, db=db, artifacts=artifacts, usbmux=usbmux, debug=debug)
    cli_log.configure(settings)
    ctx.obj = App(settings)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        rv = cli.main(args=args, prog_name="mlfarm", standalone_mode=False)
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            return int(exc.code or 0) if isinstance(exc.code, int | None) else 1
        return cli_errors.report(exc, as_json="--json" in args, debug="--debug" in args, command=_command(args))
    return rv if isinstance(rv, int) else 0


def _command(args: list[str]) -> str | None:
    """The subcommand named in ``args`` (skipping global options and their values)."""
    takes_value = {"--profiles", "--db", "--artifacts", "--usbmux"}
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in takes_value:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def entry_point() -> None:
    sys.exit(main())
