"""The report as one self-contained HTML file: inline CSS, inline SVG plots, no script, no network.

Order follows what a release engineer asks first: the verdict, what ships to each device, why anything
failed, memory against the limits, latency with its spread, what changed since the baseline, then the
detail (every job, events, notes).
"""

from __future__ import annotations

from html import escape

from orchestrator.report import plots, text
from orchestrator.report.model import CLASS_ORDER, Report
from orchestrator.report.plot_history import trend_plot
from orchestrator.report.qualify import JobVerdict

CSS = """
body{font:14px/1.45 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#212121;margin:0;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e0e0e0}
.meta{color:#616161;font-size:12.5px}
.banner{border-radius:8px;padding:14px 18px;margin:14px 0;font-size:18px;font-weight:600;color:#fff}
.banner.pass{background:#2e7d32}.banner.fail{background:#c62828}
.banner small{display:block;font-size:12.5px;font-weight:400;opacity:.9;margin-top:2px}
.banner ul{margin:6px 0 0;padding-left:20px;font-size:13px;font-weight:400}
table{border-collapse:collapse;width:100%;background:#fff;font-size:12.5px;margin:6px 0}
th,td{border:1px solid #e0e0e0;padding:4px 7px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.nw{white-space:nowrap}
code{font-size:12px}.s-pass{color:#2e7d32;font-weight:600}.s-fail{color:#c62828;font-weight:600}
.s-warn{color:#ef8f00;font-weight:600}.s-na{color:#9e9e9e}
.c-regression{color:#c62828;font-weight:600}.c-suspicious{color:#ef8f00;font-weight:600}
.c-improvement{color:#2e7d32}.c-insufficient{color:#9e9e9e}
.tag{display:inline-block;font-size:11px;border-radius:3px;padding:0 5px;margin-left:4px;background:#ede7f6;
color:#4527a0;white-space:nowrap}
.why{color:#b71c1c;font-size:12px}.warn{color:#e65100;font-size:12px}
svg.plot{width:100%;height:auto;background:#fff;border:1px solid #e0e0e0;border-radius:4px}
figure.narrow svg.plot{max-width:820px}td code{white-space:nowrap}
ul.notes{font-size:12.5px;color:#424242}figure{margin:8px 0}figcaption{font-size:12px;color:#616161}
"""


# Plain symbols, not emoji: a headless browser or a CI artifact viewer may have no emoji font.
_MARK = {"pass": "✓", "fail": "✗", "warn": "!", "n/a": "–"}


def _status(status: str) -> str:
    cls = {"pass": "s-pass", "fail": "s-fail", "warn": "s-warn"}.get(status, "s-na")
    return f'<span class="{cls}">{_MARK[status]} {escape(text.STATUS_WORD[status])}</span>'


def _device(key: str, emulated: bool) -> str:
    tag = '<span class="tag">emulated: not device latency</span>' if emulated else ""
    return f"<b>{escape(key)}</b>{tag}"


def _table(header: list[str], rows: list[list[str]], num: set[int] | None = None) -> str:
    num = num or set()
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _header(report: Report) -> str:
    run = report.run
    cls = "pass" if report.passed else "fail"
    ids = ", ".join(report.baseline.ids) or "none"
    return (f"<h1>{escape(run.spec_name)} · release qualification</h1>"
            f'<div class="meta">run <code>{escape(run.id)}</code> ({escape(run.status)}) · started '
            f"{text.when(run.started_at)} · git <code title='{escape(run.git_rev or '')}'>"
            f"{escape(text.git_rev(run.git_rev))}</code> · baseline "
            f"{escape(report.baseline.setting)} → <code>{escape(ids)}</code></div>"
            f'<div class="banner {cls}">{escape(report.headline)}{_top_problems(report)}</div>')


def _top_problems(report: Report, limit: int = 6) -> str:
    """Under the verdict: the first failures and regressions, so the reader knows why before scrolling."""
    lines = [f"{v.device_key} · {v.component}: {p}" for v in report.failed for p in text.problems(v)
             if not p.startswith("stability")]
    lines += [f"{c.device_key} · {c.component} · {c.variant}: {c.metric} regression {text.change_text(c)}"
              for c in report.regressions]
    if not lines:
        return "<small>exit code 0: every gate passes and no regression was found</small>"
    more = f"<li>… and {len(lines) - limit} more below</li>" if len(lines) > limit else ""
    items = "".join(f"<li>{escape(line)}</li>" for line in lines[:limit])
    return f"<small>exit code 1</small><ul>{items}{more}</ul>"


def _ships(report: Report) -> str:
    """Device x component: the gating variant and its verdict (what ships where)."""
    comps = list(report.run.components)
    rows = []
    for d in report.run.devices:
        limit = text.mb(d.limit_mb) + ("†" if d.limit_unverified else "")
        unverified = (f'<div class="meta">† unverified: {escape(", ".join(d.unverified))}</div>'
                      if d.unverified else "")
        row = [_device(d.key, d.emulated), escape(f"{d.profile_id} ({d.family})") + unverified, limit]
        for comp in comps:
            cell = [v for v in report.gating if v.device_key == d.key and v.component == comp]
            row.append("<br>".join(f"<code>{escape(v.variant)}</code> {escape(v.compute_units)} {_status(v.status)}"
                                   + _changed(report, v) for v in cell) or "–")
        rows.append(row)
    return "<h2>What ships to each device</h2>" + _table(["device", "profile", "memory limit", *comps], rows, {2})


def _changed(report: Report, v: JobVerdict) -> str:
    """The regressions of this job, one short line each (e.g. "regression: latency +15.7%")."""
    lines = [f'<div class="why">regression: {escape(c.metric)} {escape(text.change_text(c).split(" [")[0])}</div>'
             for c in report.regressions if (c.device_key, c.component, c.variant, c.compute_units)
             == (v.device_key, v.component, v.variant, v.compute_units)]
    return "".join(lines)


def _reasons(v: JobVerdict) -> str:
    out = []
    for g in v.gates:
        if g.status in ("fail", "warn"):
            cls = "why" if g.status == "fail" else "warn"
            flags = f" ({escape('; '.join(g.flags))})" if g.flags else ""
            out.append(f'<div class="{cls}">{escape(g.gate)}: {escape(g.reason)}{flags}</div>')
    return "".join(out)


def _verdict_rows(verdicts: tuple[JobVerdict, ...]) -> list[list[str]]:
    return [[_device(v.device_key, v.emulated), escape(v.component), f"<code>{escape(v.variant)}</code>",
             escape(v.compute_units), escape(text.memory_cell(v)), escape(text.predicted_cell(v)),
             escape(text.latency_cell(v)), escape(text.psnr_cell(v)), escape(text.cv_cell(v)),
             _status(v.status) + _reasons(v)] for v in verdicts]


_VERDICT_HEADER = ["device", "component", "variant", "units", "peak / allowed", "predicted", "p50 / p90", "PSNR",
                   "CV", "verdict"]


def _qualification(report: Report) -> str:
    g = report.run.gates
    rule = (f"Gates: peak ≤ limit × (1 − {g.memory_headroom:.0%}); jetsam fails; p90 ≤ the latency budget; "
            f"PSNR ≥ {g.min_psnr_db:g} dB (device outputs, else the artifact's); CV ≤ {g.max_cv:.0%} "
            "(else unstable: rerun advised).")
    return (f"<h2>Qualification</h2><p class=meta>{escape(rule)}</p>"
            + _table(_VERDICT_HEADER, _verdict_rows(report.gating), {4, 5, 6, 7, 8}))


def _figure(svg: str | None, caption: str, cls: str = "") -> str:
    if not svg:
        return '<p class="meta">Nothing to plot: no job of this run has the figures this plot needs.</p>'
    return f'<figure class="{cls}">{svg}<figcaption>{escape(caption)}</figcaption></figure>'



def _plots(report: Report) -> str:
    out = ["<h2>Memory against the limit</h2>",
           _figure(plots.memory_plot(report), "Measured peak footprint of each shipped job as a share of the "
                   "device's memory limit. Right of the dashed line eats into the headroom; right of the red line "
                   "is killed by jetsam (hatched bars were). † limit no source confirms."),
           "<h2>Latency</h2>",
           _figure(plots.latency_plot(report), "Box: p25-p75, whiskers p10-p90, line: median, red tick: the "
                   "p90 budget. Emulated devices run on this machine: not device latency."),
           "<h2>Predicted vs measured memory</h2>",
           _figure(plots.prediction_plot(report), "Each point is a job; on the diagonal the memory model was "
                   "exact, inside the band it was within 10%.", "narrow")]
    return "".join(out)


def _regression(report: Report) -> str:
    base = report.baseline
    if not base.runs:
        return f"<h2>Regression</h2><p>No baseline: {escape(base.note or base.setting)}.</p>"
    spec = report.run.regression
    method = (f"Latency: ratio of medians with a {spec.confidence:.0%} hierarchical-bootstrap interval (launches, "
              f"then predictions within them; {spec.resamples} resamples, seed {report.seed}); the threshold is "
              f"the spec's or the device's noise floor learned from earlier runs, and widened 3x with fewer than "
              f"{spec.min_launches} launches a side; memory and quality: difference in MB / dB. "
              "A change beyond the threshold whose interval excludes no change is a regression (or improvement); "
              "beyond the threshold but not excluding no change is suspicious.")
    rows = [[_device(c.device_key, False), escape(c.component), f"<code>{escape(c.variant)}</code>",
             escape(c.compute_units), escape(c.metric), escape(text.value_text(c, c.baseline)),
             escape(text.value_text(c, c.candidate)), escape(text.change_text(c)), escape(text.threshold_text(c)),
             f'<span class="c-{c.classification.split()[0]}">{escape(c.classification)}</span>'
             f'<div class="meta">{escape(c.reason)}</div>']
            for c in sorted(report.comparisons, key=lambda c: CLASS_ORDER.index(c.classification))]
    return (f"<h2>Regression against {escape(base.setting)}</h2><p class=meta>{escape(method)}</p>"
            + _figure(plots.regression_plot(report), "Point: change; bar: confidence interval; grey band: "
                      "within the threshold (no change). A metric whose every figure is unchanged gets no panel.")
            + _table(["device", "component", "variant", "units", "metric", "baseline", "candidate", "change [CI]",
                      "threshold", "verdict"], rows, {5, 6, 7, 8}))


def _history(report: Report) -> str:
    changes = [f"{s.label}: from run {s.points[i].run_id}" + (f" ({d:+.1%})" if (d := s.level_change(i)) is not None
                                                                else "")
               for s in report.history for i in s.change_points]
    listed = ("<ul class=notes>" + "".join(f"<li>{escape(c)}</li>" for c in changes) + "</ul>") if changes else \
        "<p class=meta>No change point in the latency history.</p>"
    return ("<h2>Latency history</h2>"
            + _figure(trend_plot(report.history), "Median latency per run of this spec (the last point is this "
                      "run); dashed line and diamond: a change point (E-divisive means, permutation test).")
            + listed)


def _details(report: Report) -> str:
    out = []
    others = tuple(v for v in report.verdicts if not v.gating)
    if others:
        out.append("<h2>Other measured jobs (not chosen by the plan)</h2>"
                   + _table(_VERDICT_HEADER, _verdict_rows(others), {4, 5, 6, 7, 8}))
    events = [*report.run.events, *(e for j in report.run.jobs for e in j.events)]
    if events:
        rows = [[escape(e.kind), escape(e.device_key or "–"), escape(e.job_id or "–"), escape(e.message),
                 f"<code>{escape(', '.join(f'{k}={v}' for k, v in sorted(e.data.items())))}</code>"] for e in events]
        out.append("<h2>Events</h2>" + _table(["kind", "device", "job", "message", "data"], rows))
    if report.notes:
        out.append("<h2>Notes</h2><ul class=notes>" + "".join(f"<li>{escape(n)}</li>" for n in report.notes)
                   + "</ul>")
    return "".join(out)


def render_html(report: Report) -> str:
    body = _header(report) + _ships(report) + _qualification(report) + _plots(report) + _regression(report) \
        + _history(report) + _details(report)
    title = f"mlfarm · {report.run.spec_name} · {report.run.id}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
            f"<style>{CSS}</style></head><body><main>{body}"
            f'<p class="meta">generated by mlfarm · {text.when(report.generated_at)}</p></main></body></html>\n')
