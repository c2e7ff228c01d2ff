"""Every output format of one report that has a gate failure, a regression, an unstable job and a clean baseline."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import numpy as np
import pytest
from rich.console import Console

from orchestrator.report import FILE_FORMATS, build_report, render_terminal, write_reports
from orchestrator.report.model import Report
from orchestrator.report.render_html import render_html
from orchestrator.report.render_junit import render_junit
from orchestrator.report.render_markdown import render_markdown
from tests.report.runs import RunWriter, jetsam_event, tiny_sd_jobs, with_job


@pytest.fixture(scope="module")
def report(tmp_path_factory, catalog) -> Iterator[Report]:
    writer = RunWriter(tmp_path_factory.mktemp("renderers") / "results.db")
    rng = np.random.default_rng(5)
    writer.run(tiny_sd_jobs(rng))
    jobs = tiny_sd_jobs(rng)
    jobs = with_job(jobs, "host", "unet", latencies=[x * 1.15 for x in jobs[1].latencies])
    jobs = with_job(jobs, "virtual:iphone-12", "unet", status="jetsam", peak_mb=2110.0, latencies=[], psnr_db=None,
                    events=[jetsam_event(2110.0, 2048.0)])
    jobs = with_job(jobs, "host", "vae_decoder", latencies=list(rng.normal(30, 12, 30).clip(5)))
    yield build_report(writer.store, writer.run(jobs), "last", catalog)
    writer.close()


@pytest.fixture(scope="module")
def html(report) -> str:
    return render_html(report)


def test_the_fixture_report_has_what_the_renderers_must_show(report):
    assert [v.device_key for v in report.failed] == ["virtual:iphone-12"]
    assert {(c.device_key, c.component, c.metric) for c in report.regressions} == {
        ("host", "unet", "latency"), ("virtual:iphone-12", "unet", "memory")}
    assert [(v.device_key, v.component) for v in report.unstable] == [("host", "vae_decoder")]


def test_junit_has_one_testcase_per_gate_and_comparison(report):
    root = ET.fromstring(render_junit(report))
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"qualification: host", "qualification: virtual:iphone-12",
                           "qualification: virtual:iphone-15-pro", "regression"}
    phone = suites["qualification: virtual:iphone-12"]
    names = [c.get("name") for c in phone.findall("testcase")]
    variant = "[fp16-palette6-split_einsum_v2, cpu_only]"
    assert names == [f"{comp} {gate} {variant}" for comp in ("text_encoder", "unet", "vae_decoder")
                     for gate in ("memory", "latency", "quality", "stability")]
    failures = [(c.get("name"), c.find("failure")) for c in phone.findall("testcase") if c.find("failure") is not None]
    assert [(n, f.get("type"), f.get("message")) for n, f in failures] == [
        (f"unet memory {variant}", "memory", "killed by emulated jetsam at 2,110 MB (limit 2,048 MB, "
                                             "per-process-limit) (emulated limit)")]
    assert phone.get("tests") == "12" and phone.get("failures") == "1" and phone.get("skipped") == "2"
    regression = suites["regression"]
    failed = [c.get("name") for c in regression.findall("testcase") if c.find("failure") is not None]
    assert sorted(failed) == [f"unet latency {variant}", f"unet memory {variant}"]
    assert root.get("failures") == "3"
    assert int(root.get("tests")) == 36 + len(report.comparisons)
    # The unstable job passes, with its warning where CI tools show test output.
    host = suites["qualification: host"]
    [stab] = [c for c in host.findall("testcase") if c.get("name").startswith("vae_decoder stability")]
    assert stab.find("failure") is None and "rerun advised" in stab.find("system-out").text


def test_html_is_self_contained_with_inline_svg_plots(html):
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<svg") == 5  # memory vs limit, latency, predicted vs measured, regression deltas, history
    assert "http" not in html  # no link, font, script or namespace URL: nothing to fetch
    for banned in ("<script", "<link", "<img", "<iframe", "@import", "src="):
        assert banned not in html
    assert set(re.findall(r"url\((.)", html)) == {"#"}  # only references inside the page (SVG clip paths)
    headings = re.findall(r"<h2>(.*?)</h2>", html)
    assert headings == ["What ships to each device", "Qualification", "Memory against the limit", "Latency",
                        "Predicted vs measured memory", "Regression against last", "Latency history", "Events",
                        "Notes"]
    assert '<div class="banner fail">FAIL: 1 gate failure, 2 regressions, 1 suspicious, 1 unstable' in html
    assert "emulated: not device latency" in html and "3,072 MB†" in html
    assert "† unverified: os.max, memory.app_limit_mb, memory.app_limit_increased_mb" in html  # iphone-15-pro
    assert "regression: latency +" in html  # the regression is shown next to the variant that ships


def test_html_plots_are_reproducible(report, html):
    assert render_html(report) == html


def test_markdown_fits_a_pull_request_comment(report):
    md = render_markdown(report)
    assert md.startswith("## ❌ mlfarm · tiny-sd · run `")
    assert len(md) < 65_536
    tables = re.findall(r"((?:^\|.*\|\n)+)", md, flags=re.M)
    assert len(tables) == 3  # qualification, flagged comparisons, folded unchanged comparisons
    for table in tables:
        rows = table.strip().split("\n")
        widths = {len(re.split(r"(?<!\\)\|", r)) for r in rows}
        assert len(widths) == 1, table  # every row has as many cells as the header
        assert re.fullmatch(r"\|(---\|)+", rows[1])
    assert "- **virtual:iphone-12** unet (`fp16-palette6-split_einsum_v2`, cpu_only): memory: killed by" in md
    assert "<details><summary>" in md and "no change" in md


def test_json_carries_verdicts_and_comparisons(report):
    from orchestrator.report.render_json import render_json

    data = json.loads(render_json(report))
    assert data["passed"] is False and data["exit_code"] == 1
    assert data["baseline"]["setting"] == "last" and len(data["baseline"]["runs"]) == 1
    statuses = {(v["device_key"], v["component"]): v["status"] for v in data["verdicts"]}
    assert statuses[("virtual:iphone-12", "unet")] == "fail" and statuses[("host", "vae_decoder")] == "warn"
    latency = [c for c in data["comparisons"] if c["classification"] == "regression" and c["metric"] == "latency"]
    assert latency[0]["pct"] == pytest.approx((latency[0]["change"] - 1) * 100)


def test_terminal_shows_verdict_reasons_and_changes(report):
    buf = io.StringIO()
    render_terminal(report, Console(file=buf, width=220, color_system=None))
    out = buf.getvalue()
    assert "FAIL: 1 gate failure, 2 regressions, 1 suspicious, 1 unstable measurement" in out
    assert "virtual:iphone-12 unet (fp16-palette6-split_einsum_v2, cpu_only): memory: killed by emulated jetsam" in out
    assert "stability: unstable measurement: CV" in out
    assert re.search(r"latency .* \+1\d\.\d% \[\+\d+\.\d%, \+\d+\.\d%\] .* regression", out)


def test_write_reports_writes_every_file_format(report, tmp_path):
    paths = write_reports(report, ["terminal", "md", "junit", "json"], tmp_path / "out")
    assert set(paths) == {"md", "junit", "json"}
    paths = write_reports(report, FILE_FORMATS, tmp_path / "out")
    assert {fmt: p.name for fmt, p in paths.items()} == {"md": "report.md", "html": "report.html",
                                                         "junit": "junit.xml", "json": "report.json"}
    # each file is its renderer's document for this report, whole
    assert paths["md"].read_text(encoding="utf-8") == render_markdown(report)
    assert paths["html"].read_text(encoding="utf-8") == render_html(report)
    assert paths["junit"].read_text(encoding="utf-8") == render_junit(report)
    doc = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert doc["passed"] is False and doc["headline"] == report.headline
    assert len(doc["verdicts"]) == len(report.verdicts) and len(doc["comparisons"]) == len(report.comparisons)
    assert not list((tmp_path / "out").glob("*.tmp"))


@pytest.mark.parametrize("width", [80, 120, 200])
def test_terminal_tables_fit_the_terminal(report, width):
    buf = io.StringIO()
    render_terminal(report, Console(file=buf, width=width, color_system=None))
    table_lines = [line for line in buf.getvalue().splitlines() if not line.lstrip().startswith(("!", "✗", "note:"))]
    assert max(len(line) for line in table_lines) <= width
    header = next(line for line in table_lines if "verdict" in line and "device" in line)
    assert ("units" in header) == (width >= 140)  # narrow terminals fold the units into the variant
