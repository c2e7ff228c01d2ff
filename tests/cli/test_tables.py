"""Terminal tables keep identifiers whole: device keys, variant ids and profile ids are what users copy into
--devices / --variants, so at 80 and 120 columns each one appears unbroken on one line, and no line is wider
than the console. Also: ``plan --explain`` grouped by verdict with each rejection stated once, and
``profiles show ID@RAM`` showing that option's own figures."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from rich.console import Console

from orchestrator.config import builtin_profiles_dir
from orchestrator.plan import ArtifactFacts, History, Overheads, make_plan
from orchestrator.plan.render import explain_groups, render_explain, render_plan
from orchestrator.plan.targets import resolve_targets
from orchestrator.profiles import load_catalog
from orchestrator.spec import parse_device_refs
from orchestrator.spec.model import ComponentSpec, GateSpec, ModelSpec, ReleaseSpec, TensorSpec, VariantAxes
from orchestrator.variants import WEIGHTS

MB = 1024 * 1024
WIDTHS = (80, 120)


@pytest.fixture(scope="module")
def plan():
    catalog = load_catalog([builtin_profiles_dir()])
    spec = ReleaseSpec(
        name="tables", devices=("all",),
        model=ModelSpec("builtin:test", {"text_encoder": ComponentSpec({"ids": TensorSpec((1, 77))}),
                                         "unet": ComponentSpec({"sample": TensorSpec((2, 4, 64, 64))})}),
        variants=VariantAxes(precision=("fp16",), weights=("none", "palette6", "palette4-g16"),
                             attention=("original", "split_einsum_v2"), compute_units=("all", "cpu_and_ne")),
        gates=GateSpec(min_psnr_db=35.0, memory_headroom=0.15),
    )
    facts = {}
    for component, fp16 in (("text_encoder", 250 * MB), ("unet", 1640 * MB)):
        for v in spec.variant_list():
            scheme = WEIGHTS[v.weights]
            stored = int(fp16 * scheme.bits / 16) if scheme.compressed else fp16
            facts[(component, v.id)] = ArtifactFacts(component, v.id, stored, fp16, 100 * MB, 1e12, psnr_db=40.0)
    targets = resolve_targets(parse_device_refs(["all"]), catalog)
    return make_plan(spec, targets, facts, History(), Overheads.default())


def rendered(draw, width: int) -> list[str]:
    out = StringIO()
    draw(Console(file=out, width=width, color_system=None, legacy_windows=False))
    return out.getvalue().splitlines()


def whole(identifier: str, lines: list[str]) -> bool:
    """``identifier`` on one line, not as part of a longer one (``iphone-11-pro`` inside ``iphone-11-pro-max``)."""
    pattern = re.compile(rf"(?<![\w@:.-]){re.escape(identifier)}(?![\w@:.-])")
    return any(pattern.search(line) for line in lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_plan_table_keeps_device_keys_and_variant_ids_whole(plan, width):
    lines = rendered(lambda c: render_plan(plan, c), width)
    assert max(len(line) for line in lines) <= width
    keys = [d.key for d in plan.devices]
    assert len(keys) > 100 and any("@" in k for k in keys)
    broken = [k for k in keys if not whole(k, lines)]
    assert not broken, broken[:5]
    chosen = {c.variant for d in plan.devices for c in d.chosen.values() if c}
    assert "fp16-palette4-g16-split_einsum_v2" in chosen or any(len(v) > 25 for v in chosen)
    assert all(whole(v, lines) for v in chosen)


@pytest.mark.parametrize("width", WIDTHS)
def test_explain_states_each_rejection_once_and_keeps_ids_whole(plan, width):
    device = plan.device("iphone-12")
    lines = rendered(lambda c: render_explain(device, c), width)
    assert max(len(line) for line in lines) <= width
    for c in device.candidates:
        assert whole(c.variant, lines) and whole(c.compute_units, lines)
    text = " ".join(" ".join(lines).split())  # headings may wrap at spaces
    groups = {component: explain_groups(device, component) for component in ("unet", "text_encoder")}
    deduplicated = 0
    for message in {r.message for c in device.candidates for r in c.reasons}:
        holders = [c for c in device.candidates if any(r.message == message for r in c.reasons)]
        in_groups = sum(any(c in holders for c in g) for found in groups.values() for _, _, g in found)
        # a sentence shared by a group is printed once for that group, not once per candidate
        assert 1 <= text.count(" ".join(message.split())) <= in_groups
        deduplicated += in_groups < len(holders)
    assert deduplicated
    for component, found in groups.items():
        titles = [t for t, _, _ in found]
        assert titles[0].startswith("chosen") and all(not t.startswith("chosen") for t in titles[1:])
        assert sum(len(g) for _, _, g in found) == len(device.for_component(component))
        rejected = [g for t, _, g in found if t.startswith("rejected")]
        assert rejected and all(len({tuple(r.rule for r in c.reasons) for c in g}) == 1 for g in rejected)
    # no figure rounded to nothing (a whole-number "0 MB" or "0.0 ms"; "140 MB" is fine)
    assert not re.search(r"(?<![\d.,])0\.0 ms|(?<![\d.,])0 MB", text), text


@pytest.mark.parametrize("width", WIDTHS)
def test_profiles_table_keeps_ids_whole(mlfarm, monkeypatch, width):
    monkeypatch.setenv("COLUMNS", str(width))
    result = mlfarm("profiles")
    assert result.exit_code == 0
    lines = result.out.splitlines()
    assert max(len(line) for line in lines) <= width
    ids = [p["id"] for p in mlfarm("profiles", "--json").json()]
    assert "iphone-11-pro-max" in ids
    broken = [i for i in ids if not whole(i, lines)]
    assert not broken, broken[:5]


def test_profiles_show_of_a_ram_option_shows_its_own_figures(mlfarm):
    result = mlfarm("profiles", "show", "mac-m4-max@128gb")
    assert result.exit_code == 0
    ram = next(line for line in result.out.splitlines() if "RAM GB" in line)
    assert re.search(r"RAM GB\s+│?\s*128", ram) and "36†" not in ram.split("other options")[0]
    gpu = next(line for line in result.out.splitlines() if "GPU cores" in line)
    assert "(32, 40)" not in gpu and "32 or 40" in gpu
    assert mlfarm("profiles", "show", "mac-m4-max@128gb", "--json").json()["ram_gb"] == 128
    assert "../shared" not in result.out
