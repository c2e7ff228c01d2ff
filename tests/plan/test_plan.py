"""make_plan against hand-computed expectations, including the seed cases of the issue."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.config import builtin_profiles_dir
from orchestrator.plan import ArtifactFacts, History, Overheads, PlanTarget, make_plan
from orchestrator.profiles import load_catalog
from orchestrator.spec.model import ComponentSpec, GateSpec, ModelSpec, ReleaseSpec, TensorSpec, VariantAxes
from orchestrator.variants import WEIGHTS

MB = 1024 * 1024
GIB = 1024 * MB
UNET_FP16 = int(1.6 * GIB)  # the seed case: an SD-class UNet whose fp16 weights are 1.6 GiB
ACT = 100 * MB


@pytest.fixture(scope="module")
def catalog():
    return load_catalog([builtin_profiles_dir()])


def spec(weights=("none", "palette8", "palette6", "palette4"), attention=("original", "split_einsum_v2"),
         units=("all", "cpu_and_ne", "cpu_and_gpu"), headroom=0.15, min_psnr=35.0, include=()) -> ReleaseSpec:
    return ReleaseSpec(
        name="seed", devices=("all",),
        model=ModelSpec("builtin:test", {"unet": ComponentSpec({"sample": TensorSpec((2, 4, 64, 64))})}),
        variants=VariantAxes(precision=("fp16",), weights=weights, attention=attention, compute_units=units,
                             include=include),
        gates=GateSpec(min_psnr_db=min_psnr, memory_headroom=headroom),
    )


def facts_for(s: ReleaseSpec, psnr=None, fp16_bytes=UNET_FP16, act=ACT):
    out = {}
    for v in s.variant_list():
        scheme = WEIGHTS[v.weights]
        dense = fp16_bytes * (2 if v.precision == "fp32" else 1)
        stored = dense if not scheme.compressed else int(fp16_bytes * scheme.bits / 16)
        out[("unet", v.id)] = ArtifactFacts("unet", v.id, stored, dense, act, 1e12,
                                            psnr_db=(psnr or {}).get(v.weights, 60.0))
    return out


# The runtime overheads these tests plan with: their own table, deliberately unlike the priors in
# orchestrator/plan/overhead.yaml, so every expected peak below follows from these numbers (and a plan that
# read the shipped priors instead of the table it was given would fail).
NE_MB, GPU_MB, CPU_MB, EXECUTOR_MB = 140.0, 240.0, 90.0, 37.0
_FAMILY = {"all": NE_MB, "cpu_and_ne": NE_MB, "cpu_and_gpu": GPU_MB, "cpu_only": CPU_MB}
OVERHEADS = Overheads({
    "coreml": {family: dict(_FAMILY) for family in ("iphone", "ipad", "mac", "host")},
    "mil-executor": {family: dict.fromkeys(_FAMILY, EXECUTOR_MB) for family in ("iphone", "ipad", "mac", "host")},
})


def pick(d, variant, units):
    return next(c for c in d.candidates if c.variant == variant and c.compute_units == units)


def plan_for(s, targets, facts=None):
    return make_plan(s, targets, facts if facts is not None else facts_for(s), History(), OVERHEADS)


def test_4gb_iphone_on_ios17_gets_a_6_bit_or_smaller_unet(catalog):
    s = spec()
    d = plan_for(s, [PlanTarget("iphone-12", catalog.get("iphone-12"), os_major=17)]).devices[0]
    chosen = d.chosen["unet"]
    assert chosen is not None and WEIGHTS[chosen.variant.split("-")[1]].bits <= 6
    assert chosen.variant == "fp16-palette6-split_einsum_v2"  # highest quality that fits
    assert chosen.compute_units in ("all", "cpu_and_ne")  # compressed weights stay compressed only on the NE
    # hand computation: 25 MB app + 1.6 GiB * 6/16 = 614.4 MB + 100 MB activations + the NE overhead
    assert chosen.predicted_mb == pytest.approx(25 + 614.4 + 100 + NE_MB, abs=0.1)
    assert d.allowed_mb == pytest.approx(2048 * 0.85, abs=0.1)
    # 25 MB app + 1,638.4 MB fp16 weights + 100 MB activations + the GPU overhead
    fp16 = pick(d, "fp16-none-split_einsum_v2", "cpu_and_gpu")
    expected = f"predicted {25 + 1638.4 + 100 + GPU_MB:,.0f} MB > 1,741 MB allowed (2,048 MB limit - 15%)"
    assert any(r.rule == "memory" and r.message == expected for r in fp16.reasons), fp16.reasons
    p8 = pick(d, "fp16-palette8-split_einsum_v2", "cpu_and_ne")
    assert [r.rule for r in p8.reasons] == ["ane-size"]


def test_on_ios16_palettes_bring_no_runtime_saving_and_the_plan_says_so(catalog):
    s = spec()
    d = plan_for(s, [PlanTarget("iphone-12", catalog.get("iphone-12"), os_major=16)]).devices[0]
    p6 = pick(d, "fp16-palette6-split_einsum_v2", "cpu_and_ne")
    assert p6.memory.weights_basis == "decompressed"
    assert p6.predicted_mb == pytest.approx(25 + 1638.4 + 100 + NE_MB, abs=0.1)
    assert any("no runtime memory saving on iOS 16" in n for n in p6.notes)
    assert any(r.rule == "memory" for r in p6.reasons)
    assert d.chosen["unet"] is None  # nothing fits a 4 GB phone on iOS 16


def test_16gb_m2_mac_gets_the_fp16_unet(catalog):
    s = spec()
    d = plan_for(s, [PlanTarget("mac", catalog.get("macbook-air-13-m2@16gb"))]).devices[0]
    assert d.limit_mb == int(16 * 1024 * 0.67)
    assert d.chosen["unet"].variant.startswith("fp16-none-")


def test_6gb_iphone_allows_what_the_4gb_rejects(catalog):
    s = spec()
    small, large = plan_for(s, [PlanTarget("a", catalog.get("iphone-12"), os_major=17),
                                PlanTarget("b", catalog.get("iphone-13-pro"), os_major=17)]).devices
    big_choice = large.chosen["unet"]
    assert big_choice.variant.startswith("fp16-none-") and big_choice.compute_units == "cpu_and_gpu"
    same = next(c for c in small.candidates if (c.variant, c.compute_units) == (big_choice.variant, "cpu_and_gpu"))
    assert same.rejected and same.reasons[0].rule == "memory"


def test_grouped_palettes_need_ios18(catalog):
    s = spec(weights=("palette4-g16",))
    d = plan_for(s, [PlanTarget("x", catalog.get("iphone-12"), os_major=17)]).devices[0]
    reasons = {r.message for c in d.candidates for r in c.reasons}
    assert "needs iOS 18 for grouped palettes; this device runs at most iOS 17" in reasons
    d18 = plan_for(s, [PlanTarget("x", catalog.get("iphone-12"), os_major=18)]).devices[0]
    assert d18.chosen["unet"] is not None


def test_original_attention_rejected_on_mobile_neural_engine_but_fine_on_gpu(catalog):
    s = spec(weights=("palette4",), attention=("original",))
    d = plan_for(s, [PlanTarget("x", catalog.get("iphone-15-pro"))]).devices[0]
    by_units = {c.compute_units: c for c in d.candidates}
    assert by_units["cpu_and_ne"].reasons[0].rule == "attention-ane"
    assert "#267" in by_units["cpu_and_ne"].reasons[0].message
    assert not by_units["cpu_and_gpu"].rejected


def test_the_attention_rule_skips_a_component_without_attention(catalog):
    s = spec(weights=("palette4",), attention=("original",))
    cnn = {k: dataclasses.replace(f, has_attention=False) for k, f in facts_for(s).items()}
    d = plan_for(s, [PlanTarget("x", catalog.get("iphone-15-pro"))], facts=cnn).devices[0]
    ne = next(c for c in d.candidates if c.compute_units == "cpu_and_ne")
    assert all(r.rule != "attention-ane" for r in ne.reasons) and not ne.rejected


def test_facts_read_attention_from_the_manifest_op_counts():
    from orchestrator.plan.facts import facts_from_manifest

    analysis = {"weights_bytes_stored": 1, "weights_bytes_decompressed": 2, "activation_peak_bytes": 3, "flops": 4}
    base = {"component": "c", "variant": "fp16-none-original", "analysis": analysis}
    assert facts_from_manifest(base | {"ops": {"conv": 3, "linear": 1}}).has_attention is False
    assert facts_from_manifest(base | {"ops": {"softmax": 2, "matmul": 4}}).has_attention is True
    assert facts_from_manifest(base).has_attention is True  # unknown: the rule still applies


def test_no_neural_engine_and_fp32(catalog):
    intel = dataclasses.replace(catalog.get("mac-mini-m1@8gb"), ane=None, chip="Intel Core i7", id="intel-mac")
    s = spec(weights=("none",), include=())
    d = plan_for(s, [PlanTarget("intel", intel)]).devices[0]
    ne = next(c for c in d.candidates if c.compute_units == "cpu_and_ne")
    assert ne.reasons[0].message == "compute units cpu_and_ne, but it has no Neural Engine"
    from orchestrator.spec.model import VariantPoint
    s32 = spec(weights=("none",), attention=("original",), include=(VariantPoint("fp32", "none", "original"),))
    d32 = plan_for(s32, [PlanTarget("m", catalog.get("macbook-pro-m1-max@64gb"))]).devices[0]
    fp32_ne = pick(d32, "fp32-none-original", "cpu_and_ne")
    assert any(r.rule == "fp32-ane" for r in fp32_ne.reasons)
    assert d32.chosen["unet"].variant == "fp16-none-original"  # same quality tier, faster in fp16


def test_quality_gate_uses_manifest_psnr(catalog):
    s = spec(weights=("palette6", "palette4"))
    facts = facts_for(s, psnr={"palette6": 40.0, "palette4": 30.5})
    d = plan_for(s, [PlanTarget("x", catalog.get("iphone-15-pro"))], facts).devices[0]
    p4 = [c for c in d.candidates if "palette4" in c.variant]
    assert all(any(r.message == "PSNR 30.5 dB is below the 35 dB quality gate" for r in c.reasons) for c in p4)
    assert "palette6" in d.chosen["unet"].variant


def test_measured_history_wins_over_the_estimate(catalog):
    s = spec(weights=("palette6",), attention=("split_einsum_v2",), units=("cpu_and_ne", "cpu_and_gpu"))
    prof = catalog.get("iphone-15-pro")
    history = History({(prof.id, "unet", "fp16-palette6-split_einsum_v2", "cpu_and_gpu"): 10.0,
                       (prof.id, "unet", "fp16-palette6-split_einsum_v2", "cpu_and_ne"): 50.0})
    p = make_plan(s, [PlanTarget("x", prof)], facts_for(s), history, Overheads.default())
    chosen = p.devices[0].chosen["unet"]
    assert chosen.latency.source == "measured" and chosen.latency.ms == 10.0
    assert chosen.compute_units == "cpu_and_gpu"
    estimate_only = make_plan(s, [PlanTarget("x", prof)], facts_for(s)).devices[0].chosen["unet"]
    assert estimate_only.latency.source == "estimate"


def test_missing_artifacts_are_rejected_with_the_fix(catalog):
    s = spec(weights=("none",))
    d = plan_for(s, [PlanTarget("x", catalog.get("iphone-15-pro"))], facts={}).devices[0]
    assert d.chosen["unet"] is None
    assert all(c.reasons[0].rule == "not-built" and "mlfarm build" in c.reasons[0].message for c in d.candidates)


def test_emulated_targets_carry_the_executor_prediction(catalog):
    s = spec(weights=("palette6",), attention=("split_einsum_v2",), units=("cpu_and_ne",))
    d = plan_for(s, [PlanTarget("virtual:iphone-12", catalog.get("iphone-12"), os_major=17,
                                runs_on="mil-executor")]).devices[0]
    c = d.chosen["unet"]
    assert c.memory.weights_basis == "compressed"  # what ships: Core ML keeps palettes compressed on the NE
    assert c.run_memory is not None and c.run_memory.weights_basis == "decompressed"  # the executor does not
    # the executor holds the loaded 6-bit constants and fp32 copies of the decompressed weights, and its overhead
    assert c.run_predicted_mb == pytest.approx(25 + 614.4 + 2 * 1638.4 + 100 + EXECUTOR_MB, abs=0.1)
    assert any("emulated" in w for w in d.warnings)


def test_unverified_limits_and_assumed_ram_are_flagged(catalog):
    d = plan_for(spec(), [PlanTarget("pad", catalog.get("ipad-pro-m1"))]).devices[0]
    assert any("not confirmed by a source" in w for w in d.warnings)
    assert any("smallest option (8 GB)" in w for w in d.warnings)


def test_plan_is_pure_and_serialisable(catalog):
    s = spec()
    targets = [PlanTarget("iphone-12", catalog.get("iphone-12"), os_major=17)]
    a, b = plan_for(s, targets), plan_for(s, targets)
    assert a == b
    data = a.to_json()
    assert data["devices"][0]["chosen"]["unet"]["variant"] == "fp16-palette6-split_einsum_v2"


def test_overhead_refit_uses_median_residuals():
    base = Overheads.default()
    fitted = base.refit([("coreml", "iphone", "cpu_and_ne", r) for r in (80.0, 95.0, 300.0)])
    assert fitted.get("coreml", "iphone", "cpu_and_ne") == 95.0
    assert fitted.get("coreml", "iphone", "cpu_and_gpu") == base.get("coreml", "iphone", "cpu_and_gpu")
    too_few = base.refit([("coreml", "mac", "all", 10.0)])
    assert too_few.get("coreml", "mac", "all") == base.get("coreml", "mac", "all")


def test_estimates_are_scaled_by_what_measurements_say_about_them(catalog):
    s = spec(weights=("none", "palette6"), attention=("split_einsum_v2",), units=("cpu_and_gpu",))
    prof = catalog.get("macbook-air-13-m2@16gb")
    # fp16-none measured 10x slower than its FLOPs estimate on this device
    first = make_plan(s, [PlanTarget("x", prof)], facts_for(s)).devices[0]
    raw_none = pick(first, "fp16-none-split_einsum_v2", "cpu_and_gpu").latency.ms
    history = History({(prof.id, "unet", "fp16-none-split_einsum_v2", "cpu_and_gpu"): raw_none * 10})
    d = make_plan(s, [PlanTarget("x", prof)], facts_for(s), history, Overheads.default()).devices[0]
    p6 = pick(d, "fp16-palette6-split_einsum_v2", "cpu_and_gpu")
    assert p6.latency.source == "estimate" and p6.latency.scale == pytest.approx(10.0)
    assert p6.latency.ms == pytest.approx(p6.latency.estimate_ms * 10.0, rel=1e-3)


def test_the_apps_own_footprint_counts(catalog):
    base = spec(weights=("palette6",), attention=("split_einsum_v2",), units=("cpu_and_ne",))
    busy = dataclasses.replace(base, app=dataclasses.replace(base.app, footprint_mb=1000.0))
    quiet = plan_for(base, [PlanTarget("x", catalog.get("iphone-12"), os_major=17)]).devices[0]
    loaded = plan_for(busy, [PlanTarget("x", catalog.get("iphone-12"), os_major=17)]).devices[0]
    assert quiet.chosen["unet"] is not None and loaded.chosen["unet"] is None
    (c,) = loaded.candidates
    assert c.memory.app_mb == 1000.0 and c.predicted_mb == pytest.approx(1000 + 614.4 + 100 + NE_MB, abs=0.1)


def test_a_chip_without_a_published_ane_figure_is_ranked_no_slower_than_its_predecessor(catalog):
    from orchestrator.plan.latency import effective_tflops

    def ane(profile_id):
        return effective_tflops(catalog.get(profile_id), "cpu_and_ne", "fp16", "coreml")

    m5, m4, m1 = ane("macbook-pro-14-m5@16gb"), ane("macbook-pro-14-m4@16gb"), ane("macbook-air-m1@8gb")
    assert catalog.get("macbook-pro-14-m5@16gb").ane.tops is None  # the premise: no published figure
    assert m5 == pytest.approx(m4) and m5 > m1
    assert ane("iphone-17-pro") == pytest.approx(ane("iphone-16-pro"))
