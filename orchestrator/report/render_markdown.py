"""The report as Markdown that fits a pull-request comment: verdict, gating table, what changed.

Unchanged comparisons and jobs the plan did not choose are folded into ``<details>`` so the comment stays
short; GitHub's 65,536-character comment limit is respected by truncating the folded part first.
"""

from __future__ import annotations

from orchestrator.report import text
from orchestrator.report.model import CLASS_ORDER, Report
from orchestrator.report.regression import Comparison

MAX_CHARS = 60_000  # below GitHub's 65,536 limit for a comment body


def cell(value: object) -> str:
    """A table cell: pipes escaped, newlines flattened."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def _qualification(report: Report) -> list[str]:
    rows = [[text.device_cell(v.device_key, v.emulated), v.component, f"`{v.variant}`", v.compute_units,
             text.memory_cell(v), text.predicted_cell(v), text.latency_cell(v), text.psnr_cell(v), text.cv_cell(v),
             f"{text.STATUS_MARK[v.status]} {text.STATUS_WORD[v.status]}"] for v in report.gating]
    out = ["### Qualification", ""]
    out += table(["device", "component", "variant", "units", "peak / allowed memory", "predicted peak",
                  "p50 / p90 latency", "PSNR", "CV", "verdict"], rows)
    problems = [f"- **{cell(v.device_key)}** {v.component} (`{v.variant}`, {v.compute_units}): {cell(p)}"
                for v in report.gating for p in text.problems(v)]
    if problems:
        out += ["", "**Why**", "", *problems]
    return out


def _comparison_rows(comparisons: list[Comparison]) -> list[list[str]]:
    return [[c.device_key, c.component, f"`{c.variant}`", c.compute_units, c.metric, text.value_text(c, c.baseline),
             text.value_text(c, c.candidate), text.change_text(c), text.threshold_text(c),
             f"{text.CLASS_MARK[c.classification]} {c.classification}"] for c in comparisons]


def _regression(report: Report) -> list[str]:
    base = report.baseline
    ids = ", ".join(f"`{i}`" for i in base.ids)
    out = ["### Regression", ""]
    if not base.runs:
        return [*out, f"No baseline ({cell(base.note or base.setting)})."]
    out.append(f"Against {base.setting} ({ids}); ratio of medians (latency) or difference (memory, quality) with "
               f"a {report.run.regression.confidence:.0%} bootstrap interval (latency: over launches).")
    header = ["device", "component", "variant", "units", "metric", "baseline", "candidate", "change [CI]",
              "threshold", "verdict"]
    ordered = sorted(report.comparisons, key=lambda c: CLASS_ORDER.index(c.classification))
    flagged = [c for c in ordered if c.classification not in ("no change", "insufficient data")]
    quiet = [c for c in ordered if c not in flagged]
    out.append("")
    out += table(header, _comparison_rows(flagged)) if flagged else ["No change beyond the thresholds."]
    if quiet:
        counts = ", ".join(f"{report.count(k)} {k}" for k in ("no change", "insufficient data") if report.count(k))
        out += ["", f"<details><summary>{counts}</summary>", "", *table(header, _comparison_rows(quiet)), "",
                "</details>"]
    return out


def render_markdown(report: Report) -> str:
    run = report.run
    mark = "✅" if report.passed else "❌"
    out = [f"## {mark} mlfarm · {cell(run.spec_name)} · run `{run.id}`", "", f"**{cell(report.headline)}**", "",
           f"<sub>spec at git `{text.git_rev(run.git_rev)}` · started {text.when(run.started_at)}</sub>", ""]
    out += _qualification(report)
    out += ["", *_regression(report)]
    if report.notes:
        out += ["", "<sub>", *[f"Note: {cell(n)}<br>" for n in report.notes], "</sub>"]
    body = "\n".join(out) + "\n"
    if len(body) > MAX_CHARS:
        cut = body.find("<details>")
        head = body[:cut] if 0 <= cut < MAX_CHARS else body[:MAX_CHARS]
        body = head + "\n_(truncated: see report.html for every comparison)_\n"
    return body
