"""What every command shares: settings, consoles, the catalog, the store, and one way to print results."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from orchestrator.config import Settings
from orchestrator.profiles import Catalog, host_profile, load_catalog
from orchestrator.results import ResultsStore
from orchestrator.serialize import dumps
from orchestrator.spec import ReleaseSpec, load_spec

F = TypeVar("F", bound=Callable[..., Any])


def _console(stderr: bool = False) -> Console:
    """A console; when output is not a terminal (CI logs, pipes) and COLUMNS is unset, 140 columns rather than
    rich's 80, so tables stay readable in logs."""
    probe = Console(stderr=stderr)
    width = None if probe.is_terminal or os.environ.get("COLUMNS") else 140
    return Console(stderr=stderr, highlight=False, width=width)


@dataclass
class App:
    """Per-invocation state, created by the root command and passed to subcommands."""

    settings: Settings
    console: Console = field(default_factory=_console)
    err: Console = field(default_factory=lambda: _console(stderr=True))
    _catalog: Catalog | None = None

    def catalog(self) -> Catalog:
        """Built-in profiles, then user folders (overriding by id), plus the run-time ``host`` profile."""
        if self._catalog is None:
            folders = [self.settings.builtin_profiles, *self.settings.profile_dirs]
            self._catalog = load_catalog(folders).with_profile(host_profile(), origin="this machine")
        return self._catalog

    def store(self) -> ResultsStore:
        return ResultsStore(self.settings.db_path)

    def spec(self, path: Path) -> ReleaseSpec:
        return load_spec(path, catalog=self.catalog())

    def emit(self, as_json: bool, data: Any, render: Callable[[Console], None]) -> None:
        if as_json:
            click.echo(dumps(data))
        else:
            render(self.console)


pass_app = click.make_pass_decorator(App)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(f)


def spec_argument(f: F) -> F:
    return click.argument("spec_path", metavar="SPEC", type=click.Path(path_type=Path))(f)


def returns_exit_code(f: F) -> F:
    """Commands return an int exit code; None means 0."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        rv = f(*args, **kwargs)
        return 0 if rv is None else int(rv)

    return wrapper  # type: ignore[return-value]
