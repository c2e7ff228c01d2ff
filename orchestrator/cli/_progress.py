"""Rich progress for long commands: build stages per artifact, then one bar per device while jobs run.

With ``--json`` (or a console that is not a terminal) the same events are printed as plain lines on stderr,
so logs stay readable and stdout stays machine-readable.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from orchestrator.runner.engine import WorkItem

STATUS_STYLE = {"ok": "green", "jetsam": "bold red", "error": "red", "timeout": "yellow", "skipped": "dim"}


class RunProgress:
    """ProgressSink + build progress for one command; use as a context manager."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.live = console.is_terminal and not quiet
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}", markup=True), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False)
        self.tasks: dict[str, Any] = {}
        self.build_task: Any = None
        self.cached: list[str] = []  # cache hits of the current stage, summed up in one line when it ends

    def __enter__(self) -> RunProgress:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._flush_cached()
        if self.live:
            self.progress.stop()

    def _line(self, text: str) -> None:
        if self.live:
            self.progress.console.print(text, highlight=False)
        else:
            self.console.print(text, highlight=False, soft_wrap=True)

    # --- stages and build ---------------------------------------------------------------------
    def stage(self, text: str) -> None:
        self._flush_cached()
        self._line(f"[bold]== {text}[/]")

    def _flush_cached(self) -> None:
        """One line for every cache hit of a stage: a cached spec would otherwise print a line per artifact."""
        if self.cached:
            shown = ", ".join(self.cached[:3]) + (f" and {len(self.cached) - 3} more" if len(self.cached) > 3 else "")
            self._line(f"  [dim]{'cached':>8} {len(self.cached)}: {shown}[/]")
            self.cached = []

    def build_event(self, event: Any) -> None:
        stage = getattr(event, "stage", "")
        name = f"{event.component} {event.variant}"
        if stage == "cached":
            self.cached.append(name)
        elif stage in ("done", "failed"):
            took = f" ({event.seconds:.1f} s)" if getattr(event, "seconds", None) else ""
            style = {"done": "green", "failed": "red"}[stage]
            self._line(f"  [{style}]{stage:>6}[/] {name}{took} {event.detail or ''}".rstrip())
        else:  # export, convert, compress, ...: minutes each at SD scale, so they show when piped too
            self._line(f"  [dim]{stage:>8}[/] {name}")

    # --- analysis and PSNR ------------------------------------------------------------------------
    def check_event(self, event: Any) -> None:
        """A ``mil.check.CheckEvent``: one line per artifact; the PSNR run's ops as a bar (live) or as a line
        per quarter (piped), so a long run is never silent."""
        took = f" ({event.seconds:.1f} s)" if event.seconds is not None else ""
        if event.stage == "cached":
            self.cached.append(event.name)
        elif event.stage == "analysed":
            self._line(f"  [green]{event.stage:>8}[/] {event.name}{took}")
        elif event.stage == "psnr-cached":
            self.cached.append(f"{event.name} psnr")
        elif event.stage == "psnr-done":
            self._finish_psnr(event.name)
            self._line(f"  [green]{'psnr':>8}[/] {event.name}{took}")
        elif event.stage == "psnr":
            self._psnr_progress(event)

    def _psnr_progress(self, event: Any) -> None:
        key = f"psnr {event.name}"
        if self.live:
            if key not in self.tasks:
                self.tasks[key] = self.progress.add_task(f"  psnr {event.name} (ops)", total=event.total)
            self.progress.update(self.tasks[key], completed=event.done)
            return
        quarter = max(event.total // 4, 1)
        if event.done == 1 or event.done % quarter == 0:
            self._line(f"  {'psnr':>8} {event.name}: {event.done}/{event.total} ops")

    def _finish_psnr(self, name: str) -> None:
        task = self.tasks.pop(f"psnr {name}", None)
        if task is not None:
            self.progress.remove_task(task)

    # --- ProgressSink ---------------------------------------------------------------------------
    def device_started(self, device_key: str, total: int) -> None:
        if self.live:
            self.tasks[device_key] = self.progress.add_task(f"[bold]{device_key}[/]", total=total)

    def job_started(self, item: WorkItem) -> None:
        if self.live and item.device_key in self.tasks:
            self.progress.update(self.tasks[item.device_key],
                                 description=f"[bold]{item.device_key}[/] {item.component} {item.variant}")

    def job_finished(self, item: WorkItem, status: str, detail: str) -> None:
        style = STATUS_STYLE.get(status, "")
        if item.predictions is not None and status in ("ok", "jetsam"):  # labelled, as in the plan and reports
            detail = f"{detail}; predicted {item.predictions.text()}"
        self._line(f"  {item.device_key:<24} {item.component:<13} {item.variant:<34} "
                   f"[{style}]{status}[/] {detail}")
        if self.live and item.device_key in self.tasks:
            self.progress.advance(self.tasks[item.device_key])
