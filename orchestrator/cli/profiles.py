"""``mlfarm profiles``: the device catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from orchestrator.cli._app import App, json_option, pass_app, returns_exit_code
from orchestrator.errors import ProfileError
from orchestrator.profiles import DeviceProfile, check_folder, load_catalog

DAGGER = "†"


def _mark(p: DeviceProfile, key: str, text: str) -> str:
    return text + (DAGGER if not p.is_verified(key) else "")


def _limits(p: DeviceProfile, key: str) -> str:
    spec = getattr(p.memory, key)
    if spec is None:
        return "-"
    text = "/".join(f"{v:,}" for _, v in sorted(spec.items())) if isinstance(spec, dict) else f"{spec:,}"
    return _mark(p, f"memory.{key}", text)


def _ram(p: DeviceProfile) -> str:
    return _mark(p, "ram_gb", " ".join(str(r) for r in p.ram_options))


def _ram_shown(p: DeviceProfile, base: DeviceProfile | None) -> str:
    """RAM of the profile shown: an ``ID@NNgb`` option's own size (the others listed beside it), else every size."""
    others = [r for r in (base.ram_options if base else ()) if r not in p.ram_options]
    also = f"other options: {', '.join(f'{p.model_id}@{r}gb' for r in others)}" if others else ""
    notes = ["smallest option assumed"] * p.ram_assumed + [also] * bool(also)
    return _ram(p) + (f" ({'; '.join(notes)})" if notes else "")


def _gpu_cores(p: DeviceProfile) -> str:
    if p.gpu_cores is None:
        return "-"
    cores = p.gpu_cores if isinstance(p.gpu_cores, tuple) else (p.gpu_cores,)
    return _mark(p, "gpu_cores", " or ".join(str(c) for c in cores) + (" (by configuration)" if len(cores) > 1 else ""))


def _ane(p: DeviceProfile) -> str:
    if p.ane is None:
        return "none"
    tops = "?" if p.ane.tops is None else f"{p.ane.tops:g}"
    return f"{p.ane.cores}c/" + _mark(p, "ane.tops", f"{tops} TOPS")


def profile_json(p: DeviceProfile, origin: str | None = None) -> dict[str, Any]:
    from orchestrator.serialize import jsonable

    data: dict[str, Any] = jsonable(p)
    data["origin"] = origin
    return data


@click.group(invoke_without_command=True)
@json_option
@click.option("--family", type=click.Choice(["iphone", "ipad", "mac", "host"]), help="Only this family.")
@pass_app
@click.pass_context
@returns_exit_code
def profiles(ctx: click.Context, app: App, as_json: bool, family: str | None) -> int:
    """List device profiles (id, name, chip, RAM, memory limits, Neural Engine). † = unverified figure."""
    if ctx.invoked_subcommand is not None:
        return 0
    catalog = app.catalog()
    rows = [p for p in catalog if family is None or p.family == family]

    def render(console: Console) -> None:
        table = Table(title=f"{len(rows)} device profiles (limits in MB; raised = with increased-memory-limit; "
                            "† = no source confirms the figure)",
                      box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        table.add_column("id", no_wrap=True)  # what --devices takes: never wrapped
        for col in ("name", "chip", "RAM GB", "app limit", "raised", "ANE", "max OS"):
            table.add_column(col, overflow="fold")
        for p in rows:
            table.add_row(p.id, p.name, p.chip, _ram(p), _limits(p, "app_limit_mb"),
                          _limits(p, "app_limit_increased_mb"), _ane(p),
                          _mark(p, "os.max", f"{p.os.name} {p.os.max}"))
        console.print(table)

    app.emit(as_json, [profile_json(p, catalog.origin(p.id)) for p in rows], render)
    return 0


@profiles.command("show")
@click.argument("profile_id")
@json_option
@pass_app
@returns_exit_code
def show(app: App, profile_id: str, as_json: bool) -> int:
    """Everything about one profile (ID or ID@NNgb), with sources."""
    catalog = app.catalog()
    p = catalog.get(profile_id)
    base = next((q for q in catalog if q.id == p.model_id), None)  # every RAM option, unresolved

    def render(console: Console) -> None:
        table = Table(show_header=False, title=f"{p.id}: {p.name}")
        table.add_column("key", style="bold")
        table.add_column("value", overflow="fold")
        rows = [
            ("family", p.family), ("product types", ", ".join(p.product_types) or "-"), ("chip", p.chip),
            ("RAM GB", _ram_shown(p, base)),
            ("app limit MB", _limits(p, "app_limit_mb")),
            ("with increased-memory-limit", _limits(p, "app_limit_increased_mb")),
            ("limit basis", p.memory.basis), ("limit source", p.memory.source),
            ("Neural Engine", _ane(p)), ("GPU cores", _gpu_cores(p)),
            ("max OS", _mark(p, "os.max", f"{p.os.name} {p.os.max}")),
            ("unverified", ", ".join(p.unverified) or "-"),
            ("origin", catalog.origin(p.id) or "-"),
        ]
        rows += [("note", n) for n in p.notes] + [("source", s) for s in p.sources]
        for k, v in rows:
            table.add_row(k, v)
        console.print(table)

    app.emit(as_json, profile_json(p, catalog.origin(p.id)), render)
    return 0


@profiles.command("match")
@click.argument("product_type")
@click.option("--ram-gb", type=click.IntRange(min=1), help="RAM of the device, for models sold with several sizes.")
@json_option
@pass_app
@returns_exit_code
def match(app: App, product_type: str, ram_gb: int | None, as_json: bool) -> int:
    """Which profile a ProductType (e.g. iPhone13,2 or Mac14,2) belongs to."""
    p = app.catalog().match(product_type, ram_gb=ram_gb)

    def render(console: Console) -> None:
        note = "  (RAM not given: smallest option assumed; pass --ram-gb)" if p.ram_assumed else ""
        console.print(f"{product_type} -> [bold]{p.id}[/] ({p.name}, {p.chip}, {_ram(p)} GB, "
                      f"limit {p.limit_mb():,} MB){note}")

    app.emit(as_json, {"product_type": product_type, "ram_gb": ram_gb, "profile": profile_json(p)}, render)
    return 0


@profiles.command("check")
@click.argument("folder", type=click.Path(path_type=Path))
@json_option
@pass_app
@returns_exit_code
def check(app: App, folder: Path, as_json: bool) -> int:
    """Validate a folder of your own profiles (exit 2 with every problem listed)."""
    found, problems = check_folder(folder)
    if problems:
        raise ProfileError(problems)
    load_catalog([app.settings.builtin_profiles, folder])  # a ProductType clash with a built-in profile
    builtin = {p.id for p in app.catalog()}
    data = [{"id": p.id, "name": p.name, "overrides_builtin": p.id in builtin} for p in found]

    def render(console: Console) -> None:
        for d in data:
            extra = " (overrides the built-in profile)" if d["overrides_builtin"] else ""
            console.print(f"[green]ok[/] {d['id']}: {d['name']}{extra}")
        console.print(f"{len(data)} profile(s) valid in {folder}")

    app.emit(as_json, {"folder": str(folder), "profiles": data}, render)
    return 0
