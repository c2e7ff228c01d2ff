"""Print a Plan: one row per (device, component) with the choice, or every candidate of one device (--explain)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from orchestrator.plan.model import Candidate, DevicePlan, Plan
from orchestrator.plan.predictions import candidate_predictions


def _latency(c: Candidate) -> str:
    if c.latency.ms is None:
        return "-"
    tag = "" if c.latency.source == "measured" else (" est." if c.latency.scale == 1.0 else " est.*")
    return f"{c.latency.ms:,.1f} ms{tag}"


def _psnr(c: Candidate) -> str:
    return "-" if c.psnr_db is None else f"{c.psnr_db:.1f} dB"


def _memory(c: Candidate, d: DevicePlan) -> str:
    """Both predictions on an emulated device, each labelled by its runtime; the device's decides the plan."""
    return f"{candidate_predictions(d, c).text()} / {d.allowed_mb:,.0f} MB allowed"


def render_plan(plan: Plan, console: Console) -> None:
    table = Table(title=f"plan for {plan.spec_name}: chosen variant per device and component "
                        "(predicted peak / allowed = limit minus headroom; on an emulated device the device's "
                        "prediction (Core ML) decides, the emulation's (MIL executor) is compared with its run)")
    for col in ("device", "component", "chosen variant", "units", "memory", "PSNR", "latency"):
        table.add_column(col, no_wrap=col in ("chosen variant", "units"), overflow="fold")
    warnings: dict[str, list[str]] = {}
    for d in plan.devices:
        for i, comp in enumerate(plan.components):
            c = d.chosen.get(comp)
            name = d.key if i == 0 else ""
            if c is None:
                rejected = [x for x in d.for_component(comp) if x.rejected]
                why = rejected[0].reasons[-1].message if rejected else "no candidates"
                table.add_row(name, comp, Text("nothing fits", style="bold red"), "-", "-", "-",
                              Text(why, style="red"))
            else:
                table.add_row(name, comp, c.variant, c.compute_units, _memory(c, d), _psnr(c), _latency(c))
        for w in d.warnings:
            warnings.setdefault(w.replace(f"of {d.profile_id} ", "of this device "), []).append(d.key)
    console.print(table)
    for text, keys in warnings.items():
        who = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
        console.print(f"[yellow]note[/] ({who}): {text}", soft_wrap=True)


def render_explain(d: DevicePlan, console: Console) -> None:
    console.print(f"[bold]{d.key}[/] ({d.profile_name}, {d.os_name} {d.os_major}): limit {d.limit_mb:,.0f} MB"
                  f"{' (increased-memory-limit)' if d.increased_limit else ''}, headroom {d.headroom:.0%}, "
                  f"allowed {d.allowed_mb:,.0f} MB; jobs run on {d.runtime}")
    for w in d.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    table = Table()
    for col in ("component", "variant", "units", "weights", "predicted", "PSNR", "latency", "verdict"):
        table.add_column(col, overflow="fold")
    for c in d.candidates:
        style = {"chosen": "bold green", "rejected": "red"}.get(c.verdict, "")
        why = "; ".join(r.message for r in c.reasons)
        notes = "; ".join(c.notes)
        verdict = Text(c.verdict + (f": {why}" if why else "") + (f" ({notes})" if notes else ""), style=style)
        weights = f"{c.memory.weights_mb:,.0f} MB {c.memory.weights_basis}" if c.memory.weights_mb else "-"
        table.add_row(c.component, c.variant, c.compute_units, weights, candidate_predictions(d, c).text(), _psnr(c),
                      _latency(c), verdict)
    console.print(table)
