"""Stable plans: latencies with intervals, ties keep the previous run's choice, identical inputs give identical
plans; the previous choice and the measured spread read from a real results store."""

from __future__ import annotations

import pytest

from orchestrator.config import builtin_profiles_dir
from orchestrator.plan import History, Overheads, PlanTarget, make_plan
from orchestrator.plan.facts import history_from_store, previous_choices
from orchestrator.plan.latency import ESTIMATE_DEFAULT_FACTOR, calibrated_error
from orchestrator.plan.model import LatencyEstimate
from orchestrator.profiles import Catalog, load_catalog
from orchestrator.results import DeviceRow, Measurement, NewJob, ResultsStore
from tests.plan.test_plan import facts_for, spec

MAC = "macbook-air-13-m2@16gb"
ORIGINAL, SPLIT = "fp16-none-original", "fp16-none-split_einsum_v2"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog([builtin_profiles_dir()])


def two_attentions():
    return spec(weights=("none",), attention=("original", "split_einsum_v2"), units=("cpu_and_gpu",))


def measured(original_ms: float, split_ms: float, spread: float = 0.15) -> History:
    keys = [(MAC, "unet", ORIGINAL, "cpu_and_gpu"), (MAC, "unet", SPLIT, "cpu_and_gpu")]
    return History(dict(zip(keys, (original_ms, split_ms), strict=True)), {k: spread for k in keys})


def chosen(history: History, previous=None, catalog_=None) -> str:
    s = two_attentions()
    plan = make_plan(s, [PlanTarget("mac", catalog_.get(MAC))], facts_for(s), history, Overheads.default(),
                     previous)
    return plan.devices[0].chosen["unet"].variant


def test_identical_inputs_give_identical_plans(catalog):
    s = two_attentions()
    args = (s, [PlanTarget("mac", catalog.get(MAC))], facts_for(s), measured(100.0, 97.0), Overheads.default(),
            {("mac", "unet"): (ORIGINAL, "cpu_and_gpu")})
    first, second = make_plan(*args), make_plan(*args)
    assert first == second and first.to_json() == second.to_json()


def test_noisy_history_that_flips_at_face_value_keeps_the_previous_choice(catalog):
    # two reruns of the same thing measured 100/95 and 95/100 ms (+-15% between launches): face value flips
    run_a, run_b = measured(100.0, 95.0), measured(95.0, 100.0)
    assert chosen(run_a, catalog_=catalog) == SPLIT and chosen(run_b, catalog_=catalog) == ORIGINAL
    previous = {("mac", "unet"): (ORIGINAL, "cpu_and_gpu")}
    assert chosen(run_a, previous, catalog) == ORIGINAL and chosen(run_b, previous, catalog) == ORIGINAL
    s = two_attentions()
    kept = make_plan(s, [PlanTarget("mac", catalog.get(MAC))], facts_for(s), run_a, Overheads.default(),
                     previous).devices[0].chosen["unet"]
    assert any(n.startswith(f"kept from the previous run: not significantly slower than {SPLIT}") for n in kept.notes)


def test_a_significantly_faster_candidate_replaces_the_previous_choice(catalog):
    previous = {("mac", "unet"): (ORIGINAL, "cpu_and_gpu")}
    assert chosen(measured(100.0, 50.0, spread=0.05), previous, catalog) == SPLIT


def test_a_measurement_and_an_uncalibrated_estimate_tie(catalog):
    # the flip: one candidate measured (noisy), the other only a FLOPs estimate scaled by that one
    # measurement; the estimate's error is then unknown (a factor of 2), so the two are not significantly different
    history = History({(MAC, "unet", ORIGINAL, "cpu_and_gpu"): 120.0}, {(MAC, "unet", ORIGINAL, "cpu_and_gpu"): 0.3})
    s = two_attentions()
    d = make_plan(s, [PlanTarget("mac", catalog.get(MAC))], facts_for(s), history, Overheads.default(),
                  {("mac", "unet"): (ORIGINAL, "cpu_and_gpu")}).devices[0]
    split = next(c for c in d.candidates if c.variant == SPLIT)
    assert split.latency.source == "estimate" and split.latency.high_ms == pytest.approx(
        split.latency.ms * ESTIMATE_DEFAULT_FACTOR, rel=1e-3)
    assert d.chosen["unet"].variant == ORIGINAL


def test_the_previous_choice_is_not_kept_when_it_is_no_longer_eligible_or_of_lower_quality(catalog):
    s = spec(weights=("none", "palette6"), attention=("split_einsum_v2",), units=("cpu_and_gpu",))
    plan = make_plan(s, [PlanTarget("mac", catalog.get(MAC))], facts_for(s), History(), Overheads.default(),
                     {("mac", "unet"): ("fp16-palette6-split_einsum_v2", "cpu_and_gpu")})
    assert plan.devices[0].chosen["unet"].variant == SPLIT  # quality first: the uncompressed one
    gone = make_plan(s, [PlanTarget("mac", catalog.get(MAC))], facts_for(s), History(), Overheads.default(),
                     {("mac", "unet"): ("fp16-palette4-split_einsum_v2", "cpu_and_gpu")})
    assert gone.devices[0].chosen["unet"].variant == SPLIT


def test_intervals_tie_when_they_overlap():
    a = LatencyEstimate(100.0, "measured", low_ms=90.0, high_ms=110.0)
    assert a.ties_with(LatencyEstimate(108.0, "measured", low_ms=105.0, high_ms=111.0))
    assert not a.ties_with(LatencyEstimate(130.0, "measured", low_ms=120.0, high_ms=140.0))
    assert LatencyEstimate(None, "unknown").ties_with(LatencyEstimate(None, "unknown"))
    assert not a.ties_with(LatencyEstimate(None, "unknown"))


def test_calibrated_error_is_the_worst_ratio_to_the_scale():
    assert calibrated_error([2.0], 2.0) == ESTIMATE_DEFAULT_FACTOR
    assert calibrated_error([1.0, 2.0, 3.0], 2.0) == pytest.approx(2.0)  # 1.0 is 2x off the scale of 2
    assert calibrated_error([1.9, 2.0, 2.1], 2.0) == pytest.approx(1.25)  # never trusted better than 25%


def test_previous_choices_and_spread_come_from_the_store(tmp_path):
    with ResultsStore(tmp_path / "r.db") as store:
        plan = {"devices": [{"key": "host", "chosen": {"unet": {"variant": SPLIT, "compute_units": "cpu_only"},
                                                       "vae_decoder": None}}]}
        run = store.create_run(spec_name="s", spec_digest="d", plan=plan)
        store.add_device(run, DeviceRow("host", "host", "host"))
        [job] = store.add_jobs(run, [NewJob("host", "unet", SPLIT, "cpu_only")])
        store.start_job(job)
        launches = [(0, 100.0), (0, 101.0), (1, 120.0), (1, 121.0), (2, 80.0), (2, 81.0)]
        store.finish_job(job, "ok", measurements=[Measurement("latency_ms", v, "ms", i, launch=k)
                                                  for i, (k, v) in enumerate(launches)])
        assert previous_choices(store, spec_name="s") == {}  # an unfinished run is no precedent
        store.set_run_status(run, "finished")
        assert previous_choices(store, spec_name="s") == {("host", "unet"): (SPLIT, "cpu_only")}
        history = history_from_store(store, spec_name="s")
        key = ("host", "unet", SPLIT, "cpu_only")
        assert history.get(*key) == pytest.approx(100.5)
        assert history.spread[key] == pytest.approx((120.5 - 80.5) / 2 / 100.5)
