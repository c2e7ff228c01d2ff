"""Print a Plan: one row per (device, component) with the choice, or every candidate of one device (--explain)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from orchestrator.plan.model import Candidate, DevicePlan, Plan
from orchestrator.plan.predictions import candidate_predictions


def _latency(c: Candidate) -> str:
    if c.latency.ms is None:
        return "-"
    tag = "" if c.latency.source == "measured" else (" est." if c.latency.scale == 1.0 else " est.*")
    return f"{_figure(c.latency.ms)} ms{tag}"


def _figure(value: float) -> str:
    """Three significant digits for small values (a tiny model's 0.042 ms or 0.31 MB is not "0.0"),
    thousands separators and no decimals for large ones."""
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"



def render_plan(plan: Plan, console: Console) -> None:
    """One row per (device, component). Device keys and variant ids are what users copy into --devices and
    --variants, so they never wrap: when the wide layout (one column each) does not fit the console, the
    device key becomes a row of its own above its components, and the compute units go under the variant."""
    rows = [(d, comp, d.chosen.get(comp)) for d in plan.devices for comp in plan.components]
    wide = _wide_width(plan) <= console.width
    table = Table(title=f"plan for {plan.spec_name}: chosen variant per device and component "
                        "(predicted peak / allowed = limit minus headroom; on an emulated device the device's "
                        "prediction (Core ML) decides, the emulation's (MIL executor) is compared with its run)",
                  box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    idents = ("device", "component", "chosen variant", "units") if wide else ("device / component", "variant / units")
    for col in idents:
        table.add_column(col, no_wrap=True)
    table.add_column("predicted peak / allowed", justify="right")
    table.add_column("PSNR dB", justify="right")
    table.add_column("latency ms", overflow="fold", min_width=10)
    previous = None
    for d, comp, c in rows:
        if not wide and d is not previous:
            table.add_row(Text(d.key, style="bold"))
        first = d is not previous
        previous = d
        variant, units, figures = _plan_cells(d, comp, c)
        if wide:
            table.add_row(d.key if first else "", comp, variant, units, *figures)
        else:
            table.add_row(f"  {comp}", Text.assemble(variant, "\n", (units, "dim")) if units else variant, *figures)
    console.print(table)
    warnings: dict[str, list[str]] = {}
    for d in plan.devices:
        for w in d.warnings:
            warnings.setdefault(w.replace(f"of {d.profile_id} ", "of this device "), []).append(d.key)
    for text, keys in warnings.items():
        who = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
        console.print(f"[yellow]note[/] ({who}): {text}")


def _plan_cells(d: DevicePlan, comp: str, c: Candidate | None) -> tuple[Text | str, str, list[Text | str]]:
    """(variant, units, [memory, PSNR, latency or why nothing fits]) of one plan row."""
    if c is None:
        rejected = [x for x in d.for_component(comp) if x.rejected]
        why = rejected[0].reasons[-1].message if rejected else "no candidates"
        return Text("nothing fits", style="bold red"), "", ["-", "-", Text(why, style="red")]
    psnr = "-" if c.psnr_db is None else f"{c.psnr_db:.1f}"
    latency = "-" if c.latency.ms is None else _latency(c).replace(" ms", "")
    return c.variant, c.compute_units, [f"{candidate_predictions(d, c).text()} / {_figure(d.allowed_mb)} MB", psnr,
                                        latency]


def _wide_width(plan: Plan) -> int:
    """Columns the one-column-per-identifier layout needs (identifiers whole, figures at their narrowest)."""
    devices = max((len(d.key) for d in plan.devices), default=6)
    components = max((len(c) for c in plan.components), default=9)
    variants = max((len(c.variant) for d in plan.devices for c in d.chosen.values() if c), default=12)
    units = max((len(c.compute_units) for d in plan.devices for c in d.chosen.values() if c), default=5)
    memory = max((len(candidate_predictions(d, c).text()) + 12 for d in plan.devices for c in d.chosen.values()
                  if c), default=len("predicted peak / allowed"))
    return (max(devices, 6) + max(components, 9) + max(variants, 14) + max(units, 5) + memory
            + len("PSNR dB") + 10 + 6)


def render_explain(d: DevicePlan, console: Console) -> None:
    """Every candidate of one device, grouped by component and verdict: chosen, eligible, then the rejected ones
    grouped by the rules that rejected them, each reason stated once above its group."""
    console.print(f"[bold]{d.key}[/] ({d.profile_name}, {d.os_name} {d.os_major}): limit {d.limit_mb:,.0f} MB"
                  f"{' (increased-memory-limit)' if d.increased_limit else ''}, headroom {d.headroom:.0%}, "
                  f"allowed {d.allowed_mb:,.0f} MB; jobs run on {d.runtime}")
    for w in d.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    for component in dict.fromkeys(c.component for c in d.candidates):
        for title, style, group in explain_groups(d, component):
            console.print()
            console.print(Text(f"{component}: {title}", style=style))
            console.print(_candidates_table(d, group, per_row_reason=title.startswith("rejected by")))


def explain_groups(d: DevicePlan, component: str) -> list[tuple[str, str, list[Candidate]]]:
    """(heading, style, candidates) of one component in the order shown: chosen, eligible, rejected by each set
    of rules (the sentence in the heading when it is the same for the whole group)."""
    candidates = d.for_component(component)
    groups: list[tuple[str, str, list[Candidate]]] = []
    for verdict, style in (("chosen", "bold green"), ("eligible", "")):
        found = [c for c in candidates if c.verdict == verdict and not c.rejected]
        if found:
            groups.append((f"{verdict} ({len(found)})", style, found))
    by_rules: dict[tuple[str, ...], list[Candidate]] = {}
    for c in candidates:
        if c.rejected:
            by_rules.setdefault(tuple(r.rule for r in c.reasons), []).append(c)
    for rules, found in by_rules.items():
        messages = {tuple(r.message for r in c.reasons) for c in found}
        if len(messages) == 1:
            groups.append((f"rejected ({len(found)}): {'; '.join(next(iter(messages)))}", "red", found))
        else:
            groups.append((f"rejected by {', '.join(rules)} ({len(found)})", "red", found))
    return groups


def _candidates_table(d: DevicePlan, group: list[Candidate], *, per_row_reason: bool) -> Table:
    """Identifiers never wrap; units go in the headers so figures stay short; notes go below the table."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("variant", no_wrap=True)
    table.add_column("units", no_wrap=True)
    for col in ("weights MB", "predicted peak", "PSNR dB", "latency ms"):
        table.add_column(col, justify="right")
    if per_row_reason:
        table.add_column("why", overflow="fold", min_width=16)
    for c in group:
        weights = f"{_figure(c.memory.weights_mb)} {_BASIS[c.memory.weights_basis]}" if c.memory.weights_mb else "-"
        psnr = "-" if c.psnr_db is None else f"{c.psnr_db:.1f}"
        latency = "-" if c.latency.ms is None else _latency(c).replace(" ms", "")
        row = [c.variant, c.compute_units, weights, candidate_predictions(d, c).text(), psnr, latency]
        table.add_row(*row, *(["; ".join(r.message for r in c.reasons)] if per_row_reason else []))
    notes: dict[str, list[str]] = {}
    for c in group:
        for n in c.notes:
            notes.setdefault(n, []).append(f"{c.variant} {c.compute_units}")
    table.caption = "\n".join(f"note: {n} ({', '.join(who)})" for n, who in notes.items()) or None
    table.caption_justify = "left"
    return table


_BASIS = {"compressed": "packed", "decompressed": "fp16"}
