"""History: per-run series from the store, change points, `mlfarm history`, the trend plot, window baselines."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.report import build_report
from orchestrator.report.history import load_series
from orchestrator.report.render_html import render_html
from orchestrator.report.render_json import report_dict
from tests.report.runs import REPO, RunWriter, tiny_sd_jobs, with_job

UNET = ("host", "unet", "fp16-palette6-split_einsum_v2", "cpu_only")


def stepped_runs(writer: RunWriter, n: int = 9, step_at: int = 5) -> list[str]:
    """``n`` runs of tiny-sd; from run ``step_at`` on, the host UNet is 30% slower."""
    rng = np.random.default_rng(0)
    ids = []
    for i in range(n):
        slow = 1.3 if i >= step_at else 1.0
        jobs = with_job(tiny_sd_jobs(rng, cv=0.02), "host", "unet",
                        latencies=list(48.0 * slow * rng.lognormal(0.0, 0.02, 30)))
        ids.append(writer.run(jobs))
    return ids


def test_series_have_one_point_per_run_and_the_step_as_change_point(writer: RunWriter):
    ids = stepped_runs(writer)
    series = {s.key: s for s in load_series(writer.store, "tiny-sd", "latency_ms")}
    assert len(series) == 9
    unet = series[UNET]
    assert [p.run_id for p in unet.points] == ids and {p.launches for p in unet.points} == {3}
    assert unet.change_points == (5,) and unet.level_change(5) == pytest.approx(0.3, abs=0.05)
    assert all(s.change_points == () for k, s in series.items() if k != UNET)


def test_series_end_at_a_given_run_and_skip_unfinished_runs_and_failed_jobs(writer: RunWriter):
    ids = stepped_runs(writer, n=4)
    rng = np.random.default_rng(1)
    writer.run(tiny_sd_jobs(rng), status="interrupted")
    writer.run(with_job(tiny_sd_jobs(rng), "host", "unet", status="error", latencies=[]))
    series = {s.key: s for s in load_series(writer.store, "tiny-sd", "latency_ms", until=ids[2])}
    assert [p.run_id for p in series[UNET].points] == ids[:3]
    latest = {s.key: s for s in load_series(writer.store, "tiny-sd", "latency_ms")}
    assert len(latest[UNET].points) == 4 and len(latest[("host", "vae_decoder", *UNET[2:])].points) == 5


def test_history_command_json_and_table(writer: RunWriter, mlfarm):
    ids = stepped_runs(writer)
    result = mlfarm("history", "tiny-sd", "--device", "host", "--json")
    assert result.exit_code == 0, result.err
    data = result.json()
    assert data["spec_name"] == "tiny-sd" and {s["device_key"] for s in data["series"]} == {"host"}
    unet = next(s for s in data["series"] if s["component"] == "unet")
    assert unet["change_runs"] == [ids[5]] and len(unet["points"]) == 9

    table = mlfarm("history", REPO / "examples" / "tiny-sd.yaml", "--metric", "latency_ms",
                   "--metric", "peak_footprint_mb")
    assert table.exit_code == 0, table.err
    assert "fp16-palette6-split_einsum_v2" in table.out and "virtual:iphone-15-pro" in table.out
    assert f"{ids[5]} (+" in table.out and "peak_footprint_mb" in table.out


def test_history_identifiers_are_never_broken_in_a_narrow_terminal(writer: RunWriter, mlfarm, monkeypatch):
    stepped_runs(writer, n=3)
    monkeypatch.setenv("COLUMNS", "90")
    out = mlfarm("history", "tiny-sd").out
    for identifier in ("fp16-palette6-split_einsum_v2", "virtual:iphone-15-pro", "text_encoder", "vae_decoder"):
        assert identifier in out
    assert "…" not in out


def test_history_of_an_unknown_spec_exits_2(writer: RunWriter, mlfarm):
    stepped_runs(writer, n=2)
    result = mlfarm("history", "no-such-spec")
    assert result.exit_code == 2 and "no finished run of spec 'no-such-spec'" in result.err


def test_the_html_report_plots_the_trend_and_lists_change_points(writer: RunWriter, catalog):
    ids = stepped_runs(writer)
    report = build_report(writer.store, ids[-1], "last", catalog)
    html = render_html(report)
    section = html[html.index("<h2>Latency history</h2>"):]
    assert section.index("<svg") < section.index("<h2>", 5)
    assert f"host · unet · fp16-palette6-split_einsum_v2 · cpu_only: from run {ids[5]} (+" in html
    [cp] = report_dict(report)["change_points"]
    assert (cp["device_key"], cp["component"], cp["run_id"]) == ("host", "unet", ids[5])
    assert cp["change"] == pytest.approx(0.3, abs=0.05)


def test_window_baseline_pools_the_launches_of_its_runs(writer: RunWriter, catalog):
    ids = stepped_runs(writer, n=4, step_at=99)
    report = build_report(writer.store, ids[-1], "window:3", catalog)
    latency = [c for c in report.comparisons if c.metric == "latency"]
    assert {c.launches_baseline for c in latency} == {9} and {c.launches_candidate for c in latency} == {3}
    assert all(c.classification == "no change" for c in latency)
