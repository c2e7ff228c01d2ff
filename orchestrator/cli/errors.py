"""The one place that turns exceptions into what the user reads, and into exit codes.

MlfarmError subclasses carry their own message and fix; this table adds the few library exceptions that
can reach the CLI, so the user never sees a traceback unless they pass --debug.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass

import click
from rich.console import Console
from rich.markup import escape

from orchestrator.errors import EXIT_INPUT, EXIT_OPERATIONAL, MlfarmError, ValidationError


@dataclass(frozen=True)
class Rendered:
    kind: str
    message: str
    fix: str | None
    exit_code: int
    problems: list[dict[str, str | None]]


# What to do after Ctrl-C, per command: only a run can be resumed; builds and analyses already done are kept
# in the artifact store (by content hash), so rerunning the same command continues where it stopped.
_KEPT = "rerun the same command: finished builds and analyses are kept and not redone"
INTERRUPTED_FIX = {
    "run": "`mlfarm run --resume RUN` continues the run (`mlfarm runs` lists runs)",
    "qualify": "`mlfarm run --resume RUN` continues the run it started (`mlfarm runs` lists runs)",
    "plan": _KEPT, "build": _KEPT, "analyze": _KEPT,
}


def _library(exc: BaseException, command: str | None = None) -> Rendered | None:
    if isinstance(exc, click.ClickException):
        return Rendered("UsageError", exc.format_message(), "see `mlfarm COMMAND --help`", EXIT_INPUT, [])
    if isinstance(exc, KeyboardInterrupt | click.exceptions.Abort):
        return Rendered("Interrupted", "interrupted", INTERRUPTED_FIX.get(command or "", "rerun the command"), 130, [])
    if isinstance(exc, PermissionError):
        return Rendered("PermissionError", str(exc), "check the file permissions", EXIT_OPERATIONAL, [])
    if isinstance(exc, OSError) and exc.errno == 28:
        return Rendered("DiskFull", str(exc), "free disk space (`mlfarm artifacts gc` removes unused artifacts)",
                        EXIT_OPERATIONAL, [])
    return None


def render(exc: BaseException, command: str | None = None) -> Rendered:
    if isinstance(exc, MlfarmError):
        problems = []
        if isinstance(exc, ValidationError):
            problems = [{"file": p.file, "key": p.key, "message": p.message, "fix": p.fix} for p in exc.problems]
        return Rendered(type(exc).__name__, exc.message, exc.fix, exc.exit_code, problems)
    known = _library(exc, command)
    if known:
        return known
    return Rendered(type(exc).__name__, f"internal error: {type(exc).__name__}: {exc}",
                    "this is a bug in mlfarm; rerun with --debug and report the traceback", EXIT_OPERATIONAL, [])


def report(exc: BaseException, *, as_json: bool, debug: bool, err: Console | None = None,
           command: str | None = None) -> int:
    """Print ``exc`` as error + fix (``command``: the subcommand that was running, for its own advice)."""
    r = render(exc, command)
    err = err or Console(stderr=True, highlight=False)
    if debug:
        err.print(escape("".join(traceback.format_exception(exc))))
    err.print(f"[bold red]error:[/] {escape(r.message)}", soft_wrap=True)
    if r.fix:
        err.print(f"[bold]fix:[/] {escape(r.fix)}", soft_wrap=True)
    if as_json:
        click.echo(json.dumps({"error": {"type": r.kind, "message": r.message, "fix": r.fix,
                                         "exit_code": r.exit_code, "problems": r.problems}}, indent=2))
    return r.exit_code
